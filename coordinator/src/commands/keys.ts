import Table from 'cli-table3'
import type { Command } from 'commander'
import { createApiKey, listApiKeys, revokeApiKey } from '../accounts/api-keys.js'
import {
  DEFAULT_COORDINATOR_DATA_DIR,
  fail,
  isoTime,
  nonNegativeInteger,
  positiveNumber,
  print,
  withStore,
} from './command-helpers.js'

interface CreateOptions {
  dataDir: string
  name: string
  account?: string
  admin: boolean
  credits: number
  rate?: number
  burst?: number
  quotaTokens?: number
  json: boolean
}

/** `lull-coordinator keys create|list|revoke`: API keys, stored by hash in the accounts store. */
export function addKeysCommand(program: Command): void {
  const keys = program.command('keys').description('create, list and revoke client API keys (stored only as hashes)')
  keys
    .command('create')
    .description('create an API key; its secret is shown once, here, and never again')
    .requiredOption('--name <name>', 'who or what the key is for')
    .option('--account <id>', 'the account its requests spend from (default: the new key id)')
    .option('--admin', 'also allow the admin view (lull-coordinator status, explain)', false)
    .option('--credits <n>', 'credits to grant the account now', nonNegativeInteger, 0)
    .option('--rate <requests-per-second>', 'request rate limit', positiveNumber)
    .option('--burst <n>', 'requests allowed at once after a quiet spell', positiveNumber)
    .option('--quota-tokens <n>', 'output tokens allowed per UTC day (default: no quota)', nonNegativeInteger)
    .option('--data-dir <dir>', "the coordinator's data dir", DEFAULT_COORDINATOR_DATA_DIR)
    .option('--json', 'print as JSON', false)
    .action(async (options: CreateOptions) => {
      const { secret, key } = await withStore(options.dataDir, (store) =>
        createApiKey(store, {
          name: options.name,
          ...(options.account === undefined ? {} : { account: options.account }),
          role: options.admin ? 'admin' : 'client',
          credits: options.credits,
          ...(options.rate === undefined ? {} : { ratePerSecond: options.rate }),
          ...(options.burst === undefined ? {} : { burst: options.burst }),
          ...(options.quotaTokens === undefined ? {} : { quotaTokens: options.quotaTokens }),
        }),
      )
      const { hash: _hash, ...shown } = key
      print(
        options.json,
        { ...shown, secret },
        `created ${key.id} (${key.role}, account ${key.account})\n\n  ${secret}\n\nThis secret is shown only now: give it to the client (lull --api-key, or LULL_API_KEY).`,
      )
    })
  keys
    .command('list')
    .description('list API keys (never their secrets)')
    .option('--data-dir <dir>', "the coordinator's data dir", DEFAULT_COORDINATOR_DATA_DIR)
    .option('--json', 'print as JSON', false)
    .action(async (options: { dataDir: string; json: boolean }) => {
      const list = await withStore(options.dataDir, (store) => listApiKeys(store).map(({ hash: _hash, ...key }) => key))
      const table = new Table({
        head: ['id', 'name', 'account', 'role', 'rate/s', 'burst', 'quota', 'created', 'revoked'],
      })
      for (const key of list) {
        table.push([
          key.id,
          key.name,
          key.account,
          key.role,
          key.ratePerSecond,
          key.burst,
          key.quotaTokens ?? '-',
          isoTime(key.createdAtMs),
          isoTime(key.revokedAtMs),
        ])
      }
      print(
        options.json,
        list,
        list.length === 0 ? 'no API keys yet: lull-coordinator keys create --name <name>' : table.toString(),
      )
    })
  keys
    .command('revoke')
    .description('revoke an API key: a running coordinator refuses it from the next request on')
    .argument('<id>', 'the key id (key_…, from keys list)')
    .option('--data-dir <dir>', "the coordinator's data dir", DEFAULT_COORDINATOR_DATA_DIR)
    .option('--json', 'print as JSON', false)
    .action(async (id: string, options: { dataDir: string; json: boolean }) => {
      const found = await withStore(options.dataDir, (store) => revokeApiKey(store, id))
      if (!found) fail(`no API key ${id} in ${options.dataDir}: see lull-coordinator keys list`)
      print(options.json, { id, revoked: true }, `revoked ${id}`)
    })
}
