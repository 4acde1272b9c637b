/**
 * Polls `condition` (sync or async) every `intervalMs` until it holds; rejects naming `what` once `timeoutMs` has
 * passed. Tests wait on observable state with it instead of sleeping for a guessed time.
 */
export async function until(
  condition: () => boolean | Promise<boolean>,
  what: string,
  timeoutMs = 10_000,
  intervalMs = 20,
): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, intervalMs))
  }
}
