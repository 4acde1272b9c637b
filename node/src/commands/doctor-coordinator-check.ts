/** `lull-node doctor`'s coordinator check: a real libp2p dial and node-protocol negotiation, within a timeout. */
import { createLullHost, NODE_PROTOCOL } from '@lull/proto'
import { multiaddr } from '@multiformats/multiaddr'
import { DOCTOR_DIAL_TIMEOUT_MS } from '../constants.js'
import type { CheckResult } from './doctor-checks.js'

/** Dials the coordinator with a throwaway identity and negotiates the node protocol, within a timeout. */
export async function checkCoordinator(
  address: string | undefined,
  timeoutMs = DOCTOR_DIAL_TIMEOUT_MS,
): Promise<CheckResult> {
  const name = 'coordinator'
  if (address === undefined) {
    return {
      name,
      status: 'warn',
      summary: 'not checked: no address given',
      fix: 'pass --coordinator <multiaddr> (as lull-coordinator start prints it) to test the connection',
    }
  }
  let target: ReturnType<typeof multiaddr>
  try {
    target = multiaddr(address)
  } catch {
    return {
      name,
      status: 'fail',
      summary: `${address} is not a multiaddr`,
      fix: 'copy the address lull-coordinator start prints, e.g. /ip4/203.0.113.5/tcp/4710/p2p/12D3KooW…',
    }
  }
  const expectedPeer = target.getComponents().findLast((component) => component.name === 'p2p')?.value
  if (expectedPeer === undefined) {
    return {
      name,
      status: 'fail',
      summary: `${address} has no /p2p/<peer id>: the coordinator cannot be authenticated`,
      fix: 'use the full address lull-coordinator start prints, ending in /p2p/<peer id>',
    }
  }
  const hostPort = target
    .getComponents()
    .filter((component) => component.name !== 'p2p')
    .map((component) => component.value ?? component.name)
    .join(':')
  const host = await createLullHost({})
  const startedMs = performance.now()
  try {
    const stream = await host.dialProtocol(target, NODE_PROTOCOL, { signal: AbortSignal.timeout(timeoutMs) })
    const elapsedMs = performance.now() - startedMs
    await stream.close().catch(() => stream.abort(new Error('doctor done')))
    return {
      name,
      status: 'ok',
      summary: `${address} answered the node protocol (${NODE_PROTOCOL}) in ${elapsedMs.toFixed(0)} ms`,
    }
  } catch (error) {
    return { name, status: 'fail', ...explainDialFailure(error as Error, hostPort, expectedPeer, timeoutMs) }
  } finally {
    await host.stop()
  }
}

function explainDialFailure(
  error: Error,
  hostPort: string,
  expectedPeer: string,
  timeoutMs: number,
): { summary: string; fix: string } {
  const text = `${error.name} ${error.message} ${String((error as { cause?: unknown }).cause ?? '')}`
  if (/ECONNREFUSED/.test(text)) {
    return {
      summary: `nothing listens at ${hostPort} (connection refused)`,
      fix: 'start the coordinator (lull-coordinator start), or check the host and port in the address',
    }
  }
  if (/abort|timeout/i.test(text)) {
    return {
      summary: `no answer from ${hostPort} within ${timeoutMs} ms`,
      fix: 'check that the host is up and reachable from here, and that a firewall lets TCP through to that port',
    }
  }
  if (/UnexpectedPeer|does not match expected remote identity/i.test(text)) {
    return {
      summary: `${hostPort} answered as a different peer than ${expectedPeer}`,
      fix: 'the coordinator got a new identity or the address is for another one: copy its current address again',
    }
  }
  if (/Unsupported|protocol selection|negotiat/i.test(text)) {
    return {
      summary: `${hostPort} does not speak ${NODE_PROTOCOL}`,
      fix: 'that peer is not a Lull coordinator, or runs an incompatible version: update both to the same release',
    }
  }
  return {
    summary: `could not reach ${hostPort}: ${error.name}: ${error.message}`,
    fix: 'check the address, that the coordinator runs, and that the network allows the connection',
  }
}
