import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { LullNode } from '../lull-node.js'
import { InsufficientMemoryError } from './errors.js'
import { ensureLullTinyModel } from './lull-tiny.js'
import { checkModelFitsInMemory, estimateModelMemory, MEMORY_HEADROOM_BYTES, upperBoundMemory } from './memory-fit.js'

const MIB = 1024 ** 2

describe('memory fit before loading', () => {
  let dataDir: string
  let modelPath: string
  beforeAll(async () => {
    dataDir = await mkdtemp(join(tmpdir(), 'lull-memory-fit-'))
    modelPath = (await ensureLullTinyModel(dataDir)).path
  })
  afterAll(async () => {
    await rm(dataDir, { recursive: true, force: true })
  })

  it('estimates the weights near the file size and a context that grows with slots', async () => {
    const estimate = await estimateModelMemory(modelPath, { slots: 4, contextSize: 2048 })
    expect(estimate.modelBytes).toBeGreaterThan(4 * MIB)
    expect(estimate.modelBytes).toBeLessThan(6 * MIB)
    expect(estimate.contextBytes(8, 2048)).toBeGreaterThan(estimate.contextBytes(4, 2048))
    expect(estimate.contextBytes(4, 1024)).toBeLessThan(estimate.contextBytes(4, 2048))
  })

  it('lets lull-tiny load with the memory this machine has free', async () => {
    const fit = await checkModelFitsInMemory(modelPath, { slots: 4, contextSize: 2048, gpu: false })
    expect(fit.requiredBytes).toBeLessThan(fit.availableBytes)
    expect(fit.method).toBe('upper-bound')
  })

  it("decides quickly only when the header's generous bound fits; the bound is above node-llama-cpp's estimate", async () => {
    const estimate = await estimateModelMemory(modelPath, { slots: 4, contextSize: 2048 })
    const bound = await upperBoundMemory(modelPath, { slots: 4, contextSize: 2048 })
    expect(bound).toBeDefined()
    expect(bound!.modelBytes).toBeGreaterThanOrEqual(estimate.modelBytes)
    expect(bound!.contextBytes).toBeGreaterThan(estimate.contextBytes(4, 2048))
    // Room for the precise need but not for the bound: the precise estimate decides, and it fits.
    const precise = estimate.modelBytes + estimate.contextBytes(4, 2048) + MEMORY_HEADROOM_BYTES
    const fit = await checkModelFitsInMemory(modelPath, {
      slots: 4,
      contextSize: 2048,
      gpu: false,
      freeRamBytes: precise,
    })
    expect(fit.method).toBe('insights')
    expect(fit.requiredBytes).toBe(precise)
  })

  it('refuses when free memory is too small, saying which fewer slots or smaller context would fit', async () => {
    const estimate = await estimateModelMemory(modelPath, { slots: 8, contextSize: 2048 })
    // Room for exactly 2 slots of 2048 tokens (and, so, for 8 slots of a smaller context).
    const free = estimate.modelBytes + estimate.contextBytes(2, 2048) + MEMORY_HEADROOM_BYTES
    const error = await checkModelFitsInMemory(modelPath, {
      slots: 8,
      contextSize: 2048,
      gpu: false,
      freeRamBytes: free,
    }).catch((e: unknown) => e)
    expect(error).toBeInstanceOf(InsufficientMemoryError)
    const refusal = error as InsufficientMemoryError
    expect(refusal.reason).toBe('insufficient-memory')
    expect(refusal.availableBytes).toBe(free)
    expect(refusal.requiredBytes).toBeGreaterThan(free)
    expect(refusal.suggestion.slots).toBe(2)
    expect(refusal.suggestion.contextSize).toBeLessThanOrEqual(512)
    expect(refusal.message).toMatch(/needs about .* but only .* is free\. Fewer slots would fit: --slots 2\./)
    // And the suggestion holds.
    await expect(
      checkModelFitsInMemory(modelPath, { slots: 2, contextSize: 2048, gpu: false, freeRamBytes: free }),
    ).resolves.toBeDefined()
  })

  it('suggests a smaller model file when not even one slot fits', async () => {
    const error = await checkModelFitsInMemory(modelPath, {
      slots: 1,
      contextSize: 256,
      gpu: false,
      freeRamBytes: MEMORY_HEADROOM_BYTES + 4 * MIB,
    }).catch((e: unknown) => e)
    expect(error).toBeInstanceOf(InsufficientMemoryError)
    expect((error as InsufficientMemoryError).suggestion.slots).toBeUndefined()
    expect((error as Error).message).toMatch(/smaller model file: one of at most [\d.]+ MiB fits/)
  })

  it('counts free VRAM when a GPU may hold part of the model', async () => {
    const tight = { slots: 4, contextSize: 2048, freeRamBytes: 8 * MIB }
    await expect(
      checkModelFitsInMemory(modelPath, { ...tight, gpu: false, freeVramBytes: 8 * 1024 * MIB }),
    ).rejects.toThrow(InsufficientMemoryError)
    await expect(
      checkModelFitsInMemory(modelPath, { ...tight, gpu: 'auto', freeVramBytes: 8 * 1024 * MIB }),
    ).resolves.toBeDefined()
  })

  it('a node refuses to start with a model that does not fit, before it loads anything', async () => {
    const estimate = await estimateModelMemory(modelPath, { slots: 1, contextSize: 2048 })
    const free = estimate.modelBytes + estimate.contextBytes(1, 2048) + MEMORY_HEADROOM_BYTES
    const start = LullNode.start({
      coordinator: '/ip4/127.0.0.1/tcp/9/p2p/12D3KooWDpJ7As7BWAwRMfu1VU2WCqNjvq387JEYKDBj4kx6nXTN',
      model: 'lull-tiny',
      dataDir: join(dataDir, 'node'),
      threads: 1,
      slots: 4,
      memory: { freeRamBytes: free, freeVramBytes: 0 },
      statusFile: false,
    })
    await expect(start).rejects.toThrow(InsufficientMemoryError)
    await expect(start).rejects.toThrow(/Fewer slots would fit: --slots 1\./)
  })
})
