import { execFile } from 'node:child_process'
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { promisify } from 'node:util'
import { AccountsStore, writeUsage } from '@lull/coordinator'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'

/** `lull-coordinator keys|tokens|usage|credits` through the real binary, on a data dir of their own. */
const run = promisify(execFile)
const ROOT = resolve(import.meta.dirname, '..', '..')
const COORDINATOR_CLI = join(ROOT, 'coordinator/dist/cli.js')

let dataDir: string

async function cli(args: string[]) {
  try {
    const { stdout, stderr } = await run(process.execPath, [COORDINATOR_CLI, ...args, '--data-dir', dataDir], {
      timeout: 60_000,
    })
    return { code: 0, stdout, stderr }
  } catch (error) {
    const failed = error as { code: number; stdout: string; stderr: string }
    return { code: failed.code, stdout: failed.stdout, stderr: failed.stderr }
  }
}

async function json(args: string[]) {
  const result = await cli([...args, '--json'])
  expect(result.code, result.stderr).toBe(0)
  return JSON.parse(result.stdout)
}

beforeAll(async () => {
  dataDir = await mkdtemp(join(tmpdir(), 'lull-accounts-cli-'))
})

afterAll(async () => {
  await rm(dataDir, { recursive: true, force: true })
})

describe('lull-coordinator keys, tokens, usage and credits', () => {
  it('creates, lists and revokes keys; the secret is shown once and never stored', async () => {
    const created = await json([
      'keys',
      'create',
      '--name',
      'app',
      '--credits',
      '500',
      '--rate',
      '5',
      '--burst',
      '10',
      '--quota-tokens',
      '1000',
    ])
    expect(created.secret).toMatch(/^lull_sk_[A-Za-z0-9_-]{43}$/)
    expect(created).toMatchObject({ name: 'app', role: 'client', ratePerSecond: 5, burst: 10, quotaTokens: 1000 })
    expect(created.hash).toBeUndefined()
    const admin = await json(['keys', 'create', '--name', 'ops', '--admin'])
    expect(admin.role).toBe('admin')

    const listed = await json(['keys', 'list'])
    expect(listed.map((key: { id: string }) => key.id)).toEqual([created.id, admin.id])
    expect(JSON.stringify(listed)).not.toContain(created.secret)
    expect(JSON.stringify(listed)).not.toContain('hash')
    // Not in the store either: only its SHA-256 is.
    for (const file of await readdir(dataDir)) {
      expect((await readFile(join(dataDir, file))).includes(Buffer.from(created.secret))).toBe(false)
    }

    expect((await json(['keys', 'revoke', created.id])).revoked).toBe(true)
    const after = await json(['keys', 'list'])
    expect(after.find((key: { id: string }) => key.id === created.id).revokedAtMs).toBeGreaterThan(0)
    const missing = await cli(['keys', 'revoke', 'key_nosuchkey0'])
    expect(missing.code).not.toBe(0)
    expect(missing.stderr).toMatch(/keys list/)

    const balances = await json(['credits', 'list'])
    expect(balances.find((account: { id: string }) => account.id === created.account).balance).toBe(500)
    const granted = await json(['credits', 'grant', created.account, '250'])
    expect(granted.balance).toBe(750)
  })

  it('creates, lists and revokes join tokens', async () => {
    const created = await json(['tokens', 'create', '--name', 'gaming-pc', '--account', 'alice'])
    expect(created.secret).toMatch(/^lull_jt_/)
    expect(created.account).toBe('alice')
    const listed = await json(['tokens', 'list'])
    expect(listed).toHaveLength(1)
    expect(JSON.stringify(listed)).not.toContain(created.secret)
    await json(['tokens', 'revoke', created.id])
    expect((await json(['tokens', 'list']))[0].revokedAtMs).toBeGreaterThan(0)
  })

  it('shows usage records and totals, filtered by client, node and time', async () => {
    const store = AccountsStore.open(dataDir)
    const nowMs = Date.now()
    const base = {
      model: 'lull-tiny',
      maxTokens: 64,
      submittedAtMs: nowMs - 1_000,
      outcome: 'completed' as const,
    }
    try {
      await writeUsage(store, {
        ...base,
        requestId: 'req_old_000001',
        clientRequestId: 'cli_old_00001',
        client: 'key_a',
        node: 'node-1',
        promptTokens: 5,
        outputTokens: 7,
        credits: 7,
        finishedAtMs: nowMs - 3 * 3_600_000,
      })
      await writeUsage(store, {
        ...base,
        requestId: 'req_new_000002',
        clientRequestId: 'cli_new_00002',
        client: 'key_a',
        node: 'node-2',
        promptTokens: 6,
        outputTokens: 11,
        credits: 11,
        finishedAtMs: nowMs,
      })
      await writeUsage(store, {
        ...base,
        requestId: 'req_new_000003',
        clientRequestId: 'cli_new_00003',
        client: 'key_b',
        node: 'node-2',
        promptTokens: 1,
        outputTokens: 0,
        credits: 0,
        finishedAtMs: nowMs,
        outcome: 'failed',
        errorCode: 'node-lost',
      })
    } finally {
      await store.close()
    }
    const all = await json(['usage'])
    expect(all.totals).toMatchObject({ requests: 3, promptTokens: 12, outputTokens: 18, credits: 18 })
    expect(all.totals.byOutcome).toEqual({ completed: 2, cancelled: 0, failed: 1 })
    expect((await json(['usage', '--client', 'key_a'])).totals.requests).toBe(2)
    expect((await json(['usage', '--node', 'node-2'])).totals.requests).toBe(2)
    const recent = await json(['usage', '--client', 'key_a', '--since', '1h'])
    expect(recent.records.map((record: { requestId: string }) => record.requestId)).toEqual(['req_new_000002'])
    const since = new Date(nowMs - 4 * 3_600_000).toISOString()
    expect((await json(['usage', '--since', since])).totals.requests).toBe(3)
    const table = await cli(['usage'])
    expect(table.stdout).toMatch(/3 request\(s\): 2 completed, 0 cancelled, 1 failed/)
    const bad = await cli(['usage', '--since', 'yesterday-ish'])
    expect(bad.code).not.toBe(0)
    expect(bad.stderr).toMatch(/ISO time/)
  })
})
