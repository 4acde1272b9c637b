import Table from 'cli-table3'
import { type Command, InvalidArgumentError } from 'commander'
import { grantCredits, listAccounts, queryUsage } from '../accounts/ledger.js'
import { DEFAULT_COORDINATOR_DATA_DIR, isoTime, nonNegativeInteger, print, withStore } from './command-helpers.js'

const DURATION = /^(\d+(?:\.\d+)?)(ms|s|m|h|d)$/
const UNIT_MS: Record<string, number> = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 }

/** `--since`: an ISO time, or a duration back from now (`90s`, `15m`, `1h`, `7d`). */
export function parseSince(value: string, nowMs = Date.now()): number {
  const duration = DURATION.exec(value)
  if (duration !== null) return nowMs - Number(duration[1]) * (UNIT_MS[duration[2] as string] as number)
  const ms = Date.parse(value)
  if (Number.isNaN(ms))
    throw new InvalidArgumentError('expected an ISO time (2026-01-31T12:00:00Z) or a duration like 1h')
  return ms
}

/** `lull-coordinator usage` and `credits list|grant`: the ledger and balances, read from the accounts store. */
export function addUsageCommands(program: Command): void {
  program
    .command('usage')
    .description('usage records (one per request: client, node, model, tokens, credits, outcome) and their totals')
    .option('--client <id>', 'only this API key id (or "open")')
    .option('--node <id>', 'only this node id')
    .option('--since <time>', 'only records since an ISO time or a duration back from now (1h, 7d)', (value) =>
      parseSince(value),
    )
    .option('--data-dir <dir>', "the coordinator's data dir", DEFAULT_COORDINATOR_DATA_DIR)
    .option('--json', 'print as JSON', false)
    .action(async (options: { client?: string; node?: string; since?: number; dataDir: string; json: boolean }) => {
      const result = await withStore(options.dataDir, (store) =>
        queryUsage(store, {
          ...(options.client === undefined ? {} : { client: options.client }),
          ...(options.node === undefined ? {} : { node: options.node }),
          ...(options.since === undefined ? {} : { sinceMs: options.since }),
        }),
      )
      const table = new Table({
        head: ['finished', 'client', 'node', 'model', 'prompt', 'output', 'credits', 'outcome'],
      })
      for (const record of result.records) {
        table.push([
          isoTime(record.finishedAtMs),
          record.client,
          record.node === undefined ? '-' : `${record.node.slice(0, 12)}…`,
          record.model,
          record.promptTokens,
          record.outputTokens,
          record.credits,
          record.disputed === undefined ? record.outcome : `${record.outcome} (disputed)`,
        ])
      }
      const { totals } = result
      const summary = `${totals.requests} request(s): ${totals.byOutcome.completed} completed, ${totals.byOutcome.cancelled} cancelled, ${totals.byOutcome.failed} failed, ${totals.disputed} disputed; ${totals.promptTokens} prompt + ${totals.outputTokens} output tokens; ${totals.credits} credits`
      print(options.json, result, totals.requests === 0 ? summary : `${table.toString()}\n${summary}`)
    })

  const credits = program.command('credits').description('account balances, and granting credits')
  credits
    .command('list')
    .description('every account: balance, granted, earned (by its nodes) and spent (by its keys)')
    .option('--data-dir <dir>', "the coordinator's data dir", DEFAULT_COORDINATOR_DATA_DIR)
    .option('--json', 'print as JSON', false)
    .action(async (options: { dataDir: string; json: boolean }) => {
      const accounts = await withStore(options.dataDir, (store) => listAccounts(store))
      const table = new Table({ head: ['account', 'balance', 'granted', 'earned', 'spent'] })
      for (const account of accounts) {
        table.push([account.id, account.balance, account.granted, account.earned, account.spent])
      }
      print(options.json, accounts, accounts.length === 0 ? 'no accounts yet' : table.toString())
    })
  credits
    .command('grant')
    .description('add credits to an account (a key spends from its account; see keys list)')
    .argument('<account>', 'the account id')
    .argument('<amount>', 'credits to add', nonNegativeInteger)
    .option('--data-dir <dir>', "the coordinator's data dir", DEFAULT_COORDINATOR_DATA_DIR)
    .option('--json', 'print as JSON', false)
    .action(async (account: string, amount: number, options: { dataDir: string; json: boolean }) => {
      const next = await withStore(options.dataDir, (store) => grantCredits(store, account, amount))
      print(options.json, next, `account ${next.id}: balance ${next.balance}`)
    })
}
