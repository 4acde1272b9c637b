import { join } from 'node:path'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { type FinishEvent, LullClient, ResumeFailedError } from '@lull/client-sdk'
import { createLogger, LullNode } from '@lull/node'
import { loadOrCreateIdentity } from '@lull/proto'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startTestNetwork, type TestNetwork } from './network-fixture.js'
import { SCRIPTED_PARTIAL, SCRIPTED_PARTIAL_TOKENS, ScriptedNode } from './scripted-node.js'

/**
 * Resuming an answer whose node is lost after its first chunk: one real node (lull-tiny) plus a scripted node that
 * the scheduler prefers (more free slots), which sends one real sealed chunk of text and then crashes.
 */
const PROMPT = 'Tell me about the lighthouse on the hill.'

let network: TestNetwork
let client: LullClient
let scripted: ScriptedNode | undefined
const crashed: ScriptedNode[] = []

/** A scripted node the scheduler prefers, which sends one chunk ({@link SCRIPTED_PARTIAL}) and then holds. */
async function startCrashingNode(): Promise<ScriptedNode> {
  const node = await ScriptedNode.start({
    coordinator: network.address,
    modelDigest: network.nodes[0]!.certificate.modelDigest,
    behaviour: 'first-chunk-then-hold',
  })
  crashed.push(node)
  await network.waitForNodes(client, 2)
  return node
}

/**
 * Runs a greedy chat whose node crashes after its first chunk, and collects what the app sees. `onCrash` runs once,
 * right after the crash; `via` is the client to ask (the shared one by default).
 */
async function chatThroughCrash(
  node: ScriptedNode,
  maxTokens: number,
  options: { via?: LullClient; onCrash?: () => void } = {},
) {
  let text = ''
  let finish: FinishEvent | undefined
  const dispatchedTo: string[] = []
  for await (const event of (options.via ?? client).chat({
    model: 'lull-tiny',
    messages: [{ role: 'user', content: PROMPT }],
    temperature: 0,
    maxTokens,
    onDispatched: (info) => dispatchedTo.push(info.nodeId),
  })) {
    if (event.type === 'finish') finish = event
    else {
      const first = text === ''
      text += event.text
      node.abortLink()
      if (first) options.onCrash?.()
    }
  }
  return { text, finish, dispatchedTo }
}

beforeAll(async () => {
  network = await startTestNetwork({ nodes: 1, slots: 2 })
  client = await LullClient.connect({ coordinator: network.address, maxResumes: 2 })
})

afterAll(async () => {
  await client?.close()
  await scripted?.stop()
  await Promise.allSettled(crashed.map((node) => node.stop()))
  await network?.stop()
})

describe('resume after the first token', () => {
  it('continues an answer whose node is lost after its first chunk on another node: one complete answer', async () => {
    const real = network.nodes[0]!
    scripted = await ScriptedNode.start({
      coordinator: network.address,
      modelDigest: real.certificate.modelDigest,
      behaviour: 'first-chunk-then-hold',
    })
    await network.waitForNodes(client, 2)
    const node = scripted
    const servedBefore = real.stats.requestsServed

    const events: Array<{ type: string; text?: string; nodeId?: string; usage?: { outputTokens: number } }> = []
    let error: unknown
    try {
      for await (const event of client.chat({
        model: 'lull-tiny',
        messages: [{ role: 'user', content: PROMPT }],
        temperature: 0.8,
        seed: 7,
        maxTokens: 32,
      })) {
        events.push(event)
        // The scripted partial text arrived: now its node crashes.
        if (event.type === 'text-delta' && events.length === 1) node.abortLink()
      }
    } catch (failure) {
      error = failure
    }

    expect(error).toBeUndefined()
    expect(node.dispatches).toHaveLength(1)
    const text = events
      .filter((event) => event.type === 'text-delta')
      .map((event) => event.text)
      .join('')
    expect(events[0]).toEqual({ type: 'text-delta', text: SCRIPTED_PARTIAL })
    expect(text.startsWith(SCRIPTED_PARTIAL)).toBe(true)
    expect(text.indexOf(SCRIPTED_PARTIAL, 1)).toBe(-1)
    expect(text.length).toBeGreaterThan(SCRIPTED_PARTIAL.length)
    const finishes = events.filter((event) => event.type === 'finish')
    expect(finishes).toHaveLength(1)
    expect(events.at(-1)?.type).toBe('finish')
    expect(finishes[0]?.nodeId).toBe(real.nodeId)
    expect(finishes[0]?.usage?.outputTokens).toBeGreaterThan(0)
    expect(real.stats.requestsServed).toBe(servedBefore + 1)
  })

  it("keeps the app's maxTokens: the continuation gets what the lost part left, and usage counts the whole answer", async () => {
    const real = network.nodes[0]!
    const node = await startCrashingNode()
    const { text, finish } = await chatThroughCrash(node, 10)
    expect(node.dispatches).toHaveLength(1)
    expect(text.startsWith(SCRIPTED_PARTIAL)).toBe(true)
    expect(finish?.nodeId).toBe(real.nodeId)
    // 3 tokens from the lost part and 7 from the continuation (greedy lull-tiny runs to the limit).
    expect(finish?.finishReason).toBe('length')
    expect(finish?.usage.outputTokens).toBe(10)
    const alone = await client
      .chat({
        model: 'lull-tiny',
        messages: [
          { role: 'user', content: PROMPT },
          { role: 'assistant', content: SCRIPTED_PARTIAL },
        ],
        temperature: 0,
        maxTokens: 10 - SCRIPTED_PARTIAL_TOKENS,
      })
      .final()
    expect(text).toBe(SCRIPTED_PARTIAL + alone.text)
    // The prompt is reported without the resumed text: what the original prompt took.
    expect(finish?.usage.promptTokens).toBe(alone.usage.promptTokens - SCRIPTED_PARTIAL_TOKENS)
  })

  it('finishes with reason length, without another node, when the lost part used the whole budget', async () => {
    const real = network.nodes[0]!
    const servedBefore = real.stats.requestsServed
    const node = await startCrashingNode()
    const { text, finish } = await chatThroughCrash(node, SCRIPTED_PARTIAL_TOKENS)
    expect(text).toBe(SCRIPTED_PARTIAL)
    expect(finish?.finishReason).toBe('length')
    expect(finish?.usage.outputTokens).toBe(SCRIPTED_PARTIAL_TOKENS)
    expect(finish?.nodeId).toBe(node.nodeId)
    expect(real.stats.requestsServed).toBe(servedBefore)
  })

  it('fails with ResumeFailedError holding exactly the text received when no other node may resume', async () => {
    const node = await startCrashingNode()
    // Only the crashing node is trusted: once it is lost, nothing may continue the answer.
    const pinned = await LullClient.connect({ coordinator: network.address, trustedNodes: [node.nodeId] })
    try {
      let text = ''
      const error = await (async () => {
        for await (const event of pinned.chat({
          model: 'lull-tiny',
          messages: [
            { role: 'user', content: PROMPT },
            { role: 'assistant', content: 'An answer the app began: ' },
          ],
          temperature: 0,
        })) {
          if (event.type === 'text-delta') {
            text += event.text
            node.abortLink()
          }
        }
      })().catch((failure: unknown) => failure)
      expect(text).toBe(SCRIPTED_PARTIAL)
      expect(error).toBeInstanceOf(ResumeFailedError)
      // Retryable: the network may have a node for it later (a new request starts a new answer).
      expect(error).toMatchObject({ name: 'ResumeFailedError', code: 'node-lost', isRetryable: true })
      // What this request yielded, not the app's own assistant prefix.
      expect((error as ResumeFailedError).partialText).toBe(SCRIPTED_PARTIAL)
      expect((error as ResumeFailedError).requestId).toMatch(/\S/)
    } finally {
      await pinned.close()
    }
  })

  it('waits, with backoff, for a node to resume on when none is up at the moment of the loss', async () => {
    const node = await startCrashingNode()
    // The node that will take over is not running yet; its identity (and so its id) exists already.
    const laterDir = join(network.dataDir, 'later-node')
    const laterId = peerIdFromPrivateKey(await loadOrCreateIdentity(laterDir)).toString()
    const pinned = await LullClient.connect({
      coordinator: network.address,
      trustedNodes: [node.nodeId, laterId],
      maxRetries: 5,
    })
    let later: Promise<LullNode> | undefined
    try {
      // Lost after its first chunk, with no other trusted node up: the resume has to wait for one. The new node is
      // not awaited: the client reads on and finds the loss while this node is still loading its model.
      const { text, finish, dispatchedTo } = await chatThroughCrash(node, 40, {
        via: pinned,
        onCrash: () => {
          later = LullNode.start({
            coordinator: network.address,
            model: 'lull-tiny',
            dataDir: laterDir,
            slots: 1,
            threads: 1,
            logger: createLogger('silent'),
          })
        },
      })
      expect(text.startsWith(SCRIPTED_PARTIAL)).toBe(true)
      expect(text.length).toBeGreaterThan(SCRIPTED_PARTIAL.length)
      expect(finish?.finishReason).toBe('length')
      expect(dispatchedTo).toEqual([node.nodeId, laterId])
    } finally {
      await pinned.close()
      await (await later)?.stop()
    }
  })
})
