import { type ChildProcess, spawn } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { createWriteStream } from 'node:fs'
import { mkdir, mkdtemp, readdir, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { LullClient } from '@lull/client-sdk'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'

const ROOT = resolve(import.meta.dirname, '..', '..')
const CANARY = `canary-${randomBytes(12).toString('hex')}`

let dir: string
const children: ChildProcess[] = []

function launch(name: string, script: string, args: string[]): ChildProcess {
  const child = spawn(process.execPath, [join(ROOT, script), ...args, '--log-level', 'trace'], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, LULL_LOG_LEVEL: 'trace' },
  })
  child.stdout?.pipe(createWriteStream(join(dir, 'logs', `${name}.out`)))
  child.stderr?.pipe(createWriteStream(join(dir, 'logs', `${name}.err`)))
  children.push(child)
  return child
}

async function filesUnder(root: string): Promise<string[]> {
  const entries = await readdir(root, { withFileTypes: true, recursive: true })
  return entries.filter((entry) => entry.isFile()).map((entry) => join(entry.parentPath, entry.name))
}

async function waitForFile(path: string): Promise<string> {
  const deadline = Date.now() + 30_000
  for (;;) {
    const text = await readFile(path, 'utf8').catch(() => '')
    if (text.trim() !== '') return text.trim()
    if (Date.now() > deadline) throw new Error(`${path} was not written`)
    await new Promise((r) => setTimeout(r, 50))
  }
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'lull-canary-'))
  await mkdir(join(dir, 'logs'))
})

afterAll(async () => {
  for (const child of children) if (child.exitCode === null) child.kill('SIGKILL')
  await rm(dir, { recursive: true, force: true })
})

describe('no persistence of payloads', () => {
  it('leaves no trace of prompts or answers in any log line or any file, at the most verbose log level', async () => {
    const readyFile = join(dir, 'coordinator.addr')
    launch('coordinator', 'coordinator/dist/cli.js', [
      'start',
      '--open',
      '--listen',
      '/ip4/127.0.0.1/tcp/0',
      '--data-dir',
      join(dir, 'data', 'coordinator'),
      '--ready-file',
      readyFile,
    ])
    const address = await waitForFile(readyFile)
    for (const index of [1, 2]) {
      launch(`node-${index}`, 'node/dist/bin.cjs', [
        'start',
        '--coordinator',
        address,
        // Serve regardless of what else this machine is doing (the idle policy is tested on its own).
        '--when',
        'always',
        '--threads',
        '1',
        '--slots',
        '2',
        '--data-dir',
        join(dir, 'data', `node-${index}`),
      ])
    }

    const client = await LullClient.connect({ coordinator: address })
    const answers: string[] = []
    try {
      const deadline = Date.now() + 60_000
      while (((await client.models())[0]?.nodes.length ?? 0) < 2) {
        if (Date.now() > deadline) throw new Error('nodes did not register')
        await new Promise((r) => setTimeout(r, 100))
      }
      for (let round = 0; round < 5; round++) {
        const results = await Promise.all(
          [0, 1, 2, 3].map((index) =>
            client
              .chat({
                model: 'lull-tiny',
                messages: [
                  { role: 'system', content: `You keep secrets. ${CANARY}` },
                  { role: 'user', content: `Please repeat ${CANARY} and tell me about the garden (${round}.${index})` },
                ],
                maxTokens: 24,
                seed: round * 4 + index,
              })
              .final(),
          ),
        )
        answers.push(...results.map((result) => result.text))
      }
    } finally {
      await client.close()
    }
    for (const child of children) child.kill('SIGTERM')
    await Promise.all(
      children.map((child) => (child.exitCode === null ? new Promise((r) => child.once('exit', r)) : undefined)),
    )

    const logFiles = await filesUnder(join(dir, 'logs'))
    const logText = (await Promise.all(logFiles.map((file) => readFile(file, 'utf8')))).join('\n')
    // The test is only worth something if the components logged verbosely about these very requests.
    expect(logText).toMatch(/"level":20.*"msg":"dispatched"/)
    expect(logText).toMatch(/"level":20.*"msg":"request served"/)

    const secrets = [
      CANARY,
      Buffer.from(CANARY).toString('hex'),
      Buffer.from(CANARY).toString('base64'),
      ...answers.filter((answer) => answer.split(' ').length >= 4),
    ]
    expect(secrets.length).toBeGreaterThan(10)
    const everyFile = [...logFiles, ...(await filesUnder(join(dir, 'data')))]
    expect(everyFile.some((file) => file.endsWith('.gguf'))).toBe(true)
    const hits: string[] = []
    for (const file of everyFile) {
      const bytes = await readFile(file)
      for (const secret of secrets)
        if (bytes.includes(Buffer.from(secret))) hits.push(`${file}: ${secret.slice(0, 40)}`)
    }
    expect(hits).toEqual([])
  })
})
