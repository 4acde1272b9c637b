import { mkdirSync } from 'node:fs'
import { join } from 'node:path'
import { type Database, open, type RootDatabase } from 'lmdb'
import { ACCOUNTS_DB_FILE } from './constants.js'
import type { AccountRecord, ApiKeyRecord, JoinTokenRecord, UsageRecord } from './records.js'

/**
 * The accounts store: one LMDB environment (`<data-dir>/accounts.lmdb`) holding API keys and join tokens (by hash),
 * accounts with their balances, the usage ledger and quota counters. LMDB is transactional and safe for several
 * processes at once: the running coordinator and the `lull-coordinator keys|tokens|usage` commands open the same
 * file. A transaction's promise resolves once it is committed and synced to disk (`overlappingSync: false`), and
 * writes in the same event turn share one commit, so a busy coordinator pays one sync per batch.
 */
export class AccountsStore {
  readonly root: RootDatabase
  readonly keys: Database<ApiKeyRecord, string>
  /** SHA-256 (hex) of an API key secret → key id. */
  readonly keyHashes: Database<string, string>
  readonly tokens: Database<JoinTokenRecord, string>
  /** SHA-256 (hex) of a join token secret → token id. */
  readonly tokenHashes: Database<string, string>
  readonly accounts: Database<AccountRecord, string>
  /** The ledger: one record per request, keyed by the coordinator's request id (so a second write is a no-op). */
  readonly usage: Database<UsageRecord, string>
  /** Output tokens counted against a key's quota: `<key id>/<period start ms>` → tokens. */
  readonly quota: Database<number, string>

  private constructor(root: RootDatabase) {
    this.root = root
    const options = { encoding: 'json' as const }
    this.keys = root.openDB<ApiKeyRecord, string>({ name: 'keys', ...options })
    this.keyHashes = root.openDB<string, string>({ name: 'key-hashes', ...options })
    this.tokens = root.openDB<JoinTokenRecord, string>({ name: 'tokens', ...options })
    this.tokenHashes = root.openDB<string, string>({ name: 'token-hashes', ...options })
    this.accounts = root.openDB<AccountRecord, string>({ name: 'accounts', ...options })
    this.usage = root.openDB<UsageRecord, string>({ name: 'usage', ...options })
    this.quota = root.openDB<number, string>({ name: 'quota', ...options })
  }

  /** Opens (creating if needed) the store in `dataDir`. */
  static open(dataDir: string): AccountsStore {
    mkdirSync(dataDir, { recursive: true, mode: 0o700 })
    const root = open({
      path: join(dataDir, ACCOUNTS_DB_FILE),
      noSubdir: true,
      maxDbs: 16,
      overlappingSync: false,
      encoding: 'json',
    })
    return new AccountsStore(root)
  }

  /** Reads from now on see what other processes (the CLI) committed. */
  refresh(): void {
    this.root.resetReadTxn()
  }

  /** Runs `action` in one write transaction; resolves once it is committed and on disk. */
  transaction<T>(action: () => T): Promise<T> {
    return this.root.transaction(action)
  }

  /** An account, or a fresh empty one (not yet stored). */
  account(id: string): AccountRecord {
    return this.accounts.get(id) ?? { id, balance: 0, granted: 0, earned: 0, spent: 0 }
  }

  async close(): Promise<void> {
    await this.root.close()
  }
}
