/** What a node says about the machine it runs on. Advertised in its certificate and in the catalogue. */
export interface HardwareSummary {
  /** `process.platform`: `darwin`, `linux`, `win32`, … */
  os: string
  /** `process.arch`: `arm64`, `x64`, … */
  arch: string
  cpuModel: string
  /** Physical cores where known, otherwise logical cores. */
  cpuCores: number
  ramTotalBytes: number
  /** GPU backend the engine uses. */
  gpu: 'metal' | 'cuda' | 'vulkan' | 'none'
  vramTotalBytes: number
}
