import { getLlama, LlamaChatSession } from 'node-llama-cpp'

export interface DirectGenerationOptions {
  modelPath: string
  prompt: string
  temperature: number
  seed?: number
  maxTokens: number
}

/**
 * Generates a reply with plain node-llama-cpp (a fresh `LlamaChatSession` on CPU, one thread, 2048-token
 * context) and none of the Engine's code: the reference that Engine output is compared against.
 */
export async function generateDirectly(options: DirectGenerationOptions): Promise<string> {
  const llama = await getLlama({ gpu: false, build: 'never', maxThreads: 1 })
  try {
    const model = await llama.loadModel({ modelPath: options.modelPath })
    const context = await model.createContext({ contextSize: 2048, threads: 1 })
    const session = new LlamaChatSession({ contextSequence: context.getSequence() })
    return await session.prompt(options.prompt, {
      temperature: options.temperature,
      seed: options.seed,
      maxTokens: options.maxTokens,
    })
  } finally {
    await llama.dispose()
  }
}
