/**
 * Fixtures for the packages' tests (`@lull/proto/testing`): not part of the protocol, never used by running code.
 */
import type { HardwareSummary } from './hardware.js'

/** A plain hardware summary for test certificates. */
export const TEST_HARDWARE: HardwareSummary = {
  os: 'linux',
  arch: 'x64',
  cpuModel: 'test',
  cpuCores: 2,
  ramTotalBytes: 1,
  gpu: 'none',
  vramTotalBytes: 0,
}
