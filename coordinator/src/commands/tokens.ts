import Table from 'cli-table3'
import type { Command } from 'commander'
import { createJoinToken, listJoinTokens, revokeJoinToken } from '../accounts/join-tokens.js'
import { DEFAULT_COORDINATOR_DATA_DIR, fail, isoTime, print, withStore } from './command-helpers.js'

/** `lull-coordinator tokens create|list|revoke`: node join tokens, stored by hash in the accounts store. */
export function addTokensCommand(program: Command): void {
  const tokens = program
    .command('tokens')
    .description('create, list and revoke node join tokens (stored only as hashes)')
  tokens
    .command('create')
    .description('create a join token; its secret is shown once, here, and never again')
    .requiredOption('--name <name>', 'which node or operator it is for')
    .option('--account <id>', "the account credited for its nodes' work (default: the new token id)")
    .option('--data-dir <dir>', "the coordinator's data dir", DEFAULT_COORDINATOR_DATA_DIR)
    .option('--json', 'print as JSON', false)
    .action(async (options: { name: string; account?: string; dataDir: string; json: boolean }) => {
      const { secret, token } = await withStore(options.dataDir, (store) =>
        createJoinToken(store, {
          name: options.name,
          ...(options.account === undefined ? {} : { account: options.account }),
        }),
      )
      const { hash: _hash, ...shown } = token
      print(
        options.json,
        { ...shown, secret },
        `created ${token.id} (account ${token.account})\n\n  ${secret}\n\nThis secret is shown only now: start the node with lull-node start --join-token <token> (or LULL_JOIN_TOKEN).`,
      )
    })
  tokens
    .command('list')
    .description('list join tokens (never their secrets)')
    .option('--data-dir <dir>', "the coordinator's data dir", DEFAULT_COORDINATOR_DATA_DIR)
    .option('--json', 'print as JSON', false)
    .action(async (options: { dataDir: string; json: boolean }) => {
      const list = await withStore(options.dataDir, (store) =>
        listJoinTokens(store).map(({ hash: _hash, ...token }) => token),
      )
      const table = new Table({ head: ['id', 'name', 'account', 'created', 'revoked'] })
      for (const token of list) {
        table.push([token.id, token.name, token.account, isoTime(token.createdAtMs), isoTime(token.revokedAtMs)])
      }
      print(
        options.json,
        list,
        list.length === 0 ? 'no join tokens yet: lull-coordinator tokens create --name <name>' : table.toString(),
      )
    })
  tokens
    .command('revoke')
    .description(
      'revoke a join token: nodes using it cannot register again (those connected stay until they reconnect)',
    )
    .argument('<id>', 'the token id (tok_…, from tokens list)')
    .option('--data-dir <dir>', "the coordinator's data dir", DEFAULT_COORDINATOR_DATA_DIR)
    .option('--json', 'print as JSON', false)
    .action(async (id: string, options: { dataDir: string; json: boolean }) => {
      const found = await withStore(options.dataDir, (store) => revokeJoinToken(store, id))
      if (!found) fail(`no join token ${id} in ${options.dataDir}: see lull-coordinator tokens list`)
      print(options.json, { id, revoked: true }, `revoked ${id}`)
    })
}
