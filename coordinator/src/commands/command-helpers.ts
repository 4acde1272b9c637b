import { homedir } from 'node:os'
import { join } from 'node:path'
import { InvalidArgumentError } from 'commander'
import { AccountsStore } from '../accounts/store.js'

/** The data dir every coordinator command defaults to (the same as `start`). */
export const DEFAULT_COORDINATOR_DATA_DIR = join(homedir(), '.lull', 'coordinator')

export function positiveNumber(value: string): number {
  const number = Number(value)
  if (!Number.isFinite(number) || number <= 0) throw new InvalidArgumentError('expected a positive number')
  return number
}

export function nonNegativeInteger(value: string): number {
  const number = Number(value)
  if (!Number.isSafeInteger(number) || number < 0) throw new InvalidArgumentError('expected a whole number ≥ 0')
  return number
}

/** Runs `action` on the accounts store in `dataDir` (shared with a running coordinator), closing it after. */
export async function withStore<T>(dataDir: string, action: (store: AccountsStore) => Promise<T> | T): Promise<T> {
  const store = AccountsStore.open(dataDir)
  try {
    return await action(store)
  } finally {
    await store.close()
  }
}

/** Prints `value` as JSON or `text`. */
export function print(json: boolean, value: unknown, text: string): void {
  process.stdout.write(json ? `${JSON.stringify(value, null, 2)}\n` : text.endsWith('\n') ? text : `${text}\n`)
}

/** Exits with a message that says what to do. */
export function fail(message: string): never {
  process.stderr.write(`lull-coordinator: ${message}\n`)
  process.exit(1)
}

export function isoTime(ms: number | undefined): string {
  return ms === undefined ? '-' : new Date(ms).toISOString()
}
