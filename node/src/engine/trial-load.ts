/**
 * Trial loads: before the node loads an untrusted model in its own process, a short-lived child process loads it
 * with the same settings, evaluates one token and exits. llama.cpp reacts to some malformed files by failing an
 * assertion (abort) or throwing from a thread (terminate), which no JavaScript can catch; in the child that costs
 * only the child. Only a file whose trial succeeds is loaded by the node.
 */
import { spawn } from 'node:child_process'
import { createRequire } from 'node:module'
import { pathToFileURL } from 'node:url'
import { ModelRejectedError } from '../model/errors.js'

/** Trial-load time limit when none is given: generous, since a large model on a slow disk takes a while. */
export const DEFAULT_TRIAL_LOAD_TIMEOUT_MS = 120_000
/** The child's V8 heap limit: node-llama-cpp parses metadata in JavaScript; a bomb there ends quickly. */
const CHILD_HEAP_LIMIT_MB = 2_048
/** Context the child creates to evaluate a token (some malformed models only abort when computing). */
const TRIAL_CONTEXT_SIZE_TOKENS = 256
/** How much of the child's stderr is kept to explain a failure. */
const STDERR_TAIL_BYTES = 16 * 1024
const REQUEST_ENV = 'LULL_TRIAL_LOAD_REQUEST'

export interface TrialLoadOptions {
  /** CPU threads, as the engine will use them (getLlama's maxThreads and the context's threads). */
  threads: number
  /** GPU backend, as the engine will use it. @default 'auto' */
  gpu?: 'auto' | false
  /** @default DEFAULT_TRIAL_LOAD_TIMEOUT_MS */
  timeoutMs?: number
  signal?: AbortSignal | undefined
  /**
   * A JavaScript module file the child runs instead of the built-in trial script (tests). It gets the request as
   * JSON in `LULL_TRIAL_LOAD_REQUEST` and reports with `process.send({ ok: true })` or `{ ok: false, message }`.
   */
  script?: string
}

/** What the child is asked to do. */
interface TrialRequest {
  llamaModule: string
  modelPath: string
  gpu: 'auto' | false
  threads: number
  contextSize: number
}

type TrialReport = { ok: true } | { ok: false; message: string }

/**
 * The child's program (plain JavaScript, so it runs the same from the TypeScript sources and from the build).
 * It imports node-llama-cpp by URL, loads the model, creates a small context and evaluates one token.
 */
const CHILD_SOURCE = `
// node-llama-cpp forks helper processes with process.execArgv, which holds this --eval program: keep it out of them.
const kept = process.execArgv.filter((arg) => arg.startsWith('--max-old-space-size='))
process.execArgv.splice(0, process.execArgv.length, ...kept)
const report = (message, code) => {
  if (process.send) process.send(message, () => process.exit(code))
  else { process.stdout.write(JSON.stringify(message) + '\\n'); process.exit(code) }
}
try {
  const request = JSON.parse(process.env.${REQUEST_ENV})
  const { getLlama, LlamaLogLevel } = await import(request.llamaModule)
  const llama = await getLlama({
    gpu: request.gpu, build: 'never', maxThreads: request.threads, logLevel: LlamaLogLevel.warn,
    logger: (level, message) => process.stderr.write(String(message) + '\\n'),
  })
  const model = await llama.loadModel({ modelPath: request.modelPath })
  const context = await model.createContext({ contextSize: request.contextSize, sequences: 1, threads: request.threads })
  const sequence = context.getSequence()
  let tokens = model.tokenize('Hello')
  if (tokens.length === 0) tokens = [model.tokens.bos ?? 0]
  const generation = sequence.evaluate(tokens.slice(0, 8), { temperature: 0 })
  await generation.next()
  await generation.return()
  report({ ok: true }, 0)
} catch (error) {
  // llama.cpp's log lines (the actual reason) reach the logger asynchronously, after the error.
  await new Promise((resolve) => setTimeout(resolve, 200))
  report({ ok: false, message: String(error && error.message ? error.message : error) }, 1)
}
`

/** Printable text only, at most `max` characters: the child's output can echo strings from the model file. */
function sanitize(text: string, max: number): string {
  // biome-ignore lint/suspicious/noControlCharactersInRegex: removing control characters is the point
  const clean = text.replace(/[\u0000-\u0008\u000b-\u001f\u007f-\u009f]/g, '').trim()
  return clean.length > max ? `${clean.slice(0, max)}…` : clean
}

/** The lines of the child's stderr that explain a failure (llama.cpp's assertion or error), shortened. */
function explain(stderr: string): string {
  const lines = sanitize(stderr, STDERR_TAIL_BYTES)
    .split('\n')
    .map((line) =>
      line
        .replace(/\S*\/llama\.cpp\//g, '')
        .replace(/\s+/g, ' ')
        .trim(),
    )
    .filter((line) => line.length > 0)
  const telling = lines.filter((line) => /assert|error|terminate|what\(\)|fault|exception|failed/i.test(line))
  const chosen = (telling.length > 0 ? telling : lines).slice(-3)
  return chosen.map((line) => sanitize(line, 300)).join(' / ')
}

function llamaModuleUrl(): string {
  return pathToFileURL(createRequire(import.meta.url).resolve('node-llama-cpp')).href
}

/**
 * Loads `modelPath` in a separate Node process with the engine's gpu/threads settings and evaluates one token.
 * Resolves if that worked; rejects with {@link ModelRejectedError} (`trial-load-crashed`, `trial-load-failed`,
 * `trial-load-timeout`) if the child died, reported an error or ran out of time, and with the signal's reason if
 * aborted. The calling process never loads the file.
 */
export async function trialLoadModel(modelPath: string, options: TrialLoadOptions): Promise<{ durationMs: number }> {
  const { signal } = options
  signal?.throwIfAborted()
  if (!Number.isInteger(options.threads) || options.threads < 1) {
    throw new RangeError(`threads must be a positive integer, got ${String(options.threads)}`)
  }
  const timeoutMs = options.timeoutMs ?? DEFAULT_TRIAL_LOAD_TIMEOUT_MS
  const request: TrialRequest = {
    llamaModule: llamaModuleUrl(),
    modelPath,
    gpu: options.gpu ?? 'auto',
    threads: options.threads,
    contextSize: TRIAL_CONTEXT_SIZE_TOKENS,
  }
  const program = options.script === undefined ? ['--input-type=module', '--eval', CHILD_SOURCE] : [options.script]
  const started = performance.now()
  const child = spawn(process.execPath, [`--max-old-space-size=${CHILD_HEAP_LIMIT_MB}`, ...program], {
    stdio: ['ignore', 'ignore', 'pipe', 'ipc'],
    // GGML_NO_BACKTRACE: on an assertion ggml would otherwise spend a second or two attaching a debugger for a trace.
    env: { GGML_NO_BACKTRACE: '1', ...process.env, [REQUEST_ENV]: JSON.stringify(request) },
  })

  return new Promise((resolve, reject) => {
    let stderr = ''
    let report: TrialReport | undefined
    let stoppedBy: 'timeout' | 'abort' | undefined
    child.stderr?.setEncoding('utf8')
    child.stderr?.on('data', (chunk: string) => {
      stderr = (stderr + chunk).slice(-STDERR_TAIL_BYTES)
    })
    child.on('message', (message: unknown) => {
      const candidate = message as Partial<TrialReport> | null
      if (candidate?.ok === true) report = { ok: true }
      else if (candidate?.ok === false) report = { ok: false, message: String(candidate.message) }
    })
    const stop = (why: 'timeout' | 'abort'): void => {
      stoppedBy ??= why
      child.kill('SIGKILL')
    }
    const timer = setTimeout(() => stop('timeout'), timeoutMs)
    const onAbort = (): void => stop('abort')
    signal?.addEventListener('abort', onAbort, { once: true })
    const cleanUp = (): void => {
      clearTimeout(timer)
      signal?.removeEventListener('abort', onAbort)
    }

    child.on('error', (error) => {
      cleanUp()
      child.kill('SIGKILL')
      reject(new Error(`Could not start the trial-load process for ${modelPath}: ${error.message}`, { cause: error }))
    })
    child.on('close', (code, exitSignal) => {
      cleanUp()
      const detail = explain(stderr)
      const said = detail.length > 0 ? ` llama.cpp said: ${detail}.` : ''
      if (stoppedBy === 'abort') {
        reject(signal?.reason ?? new Error('aborted'))
      } else if (stoppedBy === 'timeout') {
        reject(
          new ModelRejectedError(
            'trial-load-timeout',
            `Loading the model file ${modelPath} did not finish within ${Math.round(timeoutMs / 1000)} s in a trial process, which was stopped.${said} If the model is very large or the disk slow, allow more time (trialLoadTimeoutMs); otherwise the file may be broken.`,
          ),
        )
      } else if (report?.ok === true && code === 0) {
        resolve({ durationMs: performance.now() - started })
      } else if (report?.ok === false) {
        reject(
          new ModelRejectedError(
            'trial-load-failed',
            `llama.cpp could not load the model file ${modelPath} (in a trial process): ${sanitize(report.message, 500)}.${said} Use a GGUF file made for llama.cpp, or re-convert this one with a current llama.cpp.`,
          ),
        )
      } else {
        const how = exitSignal !== null ? `was killed by ${exitSignal}` : `exited with code ${code}`
        const memory = exitSignal === 'SIGKILL' ? ' (SIGKILL often means the machine ran out of memory)' : ''
        reject(
          new ModelRejectedError(
            'trial-load-crashed',
            `The model file ${modelPath} crashed llama.cpp: a trial load in a separate process ${how}${memory}.${said} Loading it in the node would have taken the node down, so it was refused. The file is malformed or needs a different llama.cpp: use another GGUF file.`,
          ),
        )
      }
    })
  })
}
