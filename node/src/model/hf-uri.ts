/**
 * `hf:` model URIs, as node-llama-cpp and llama.cpp write them:
 *
 * - `hf:<user>/<repo>/<path/to/file.gguf>` (optionally `#<branch>`): one file in a Hugging Face repository;
 * - `hf:<user>/<repo>:<quant>` or `hf:<user>/<repo>`: the repository's GGUF file for that quantisation (or its
 *   default), looked up in the Hub's manifest API as llama.cpp does.
 *
 * The endpoint is `https://huggingface.co/` unless `MODEL_ENDPOINT` or `HF_ENDPOINT` names another (a mirror, or
 * a local server in tests), the same convention as llama.cpp, node-llama-cpp and the `huggingface_hub` library.
 */
import { ModelDownloadError } from './errors.js'

export const DEFAULT_HF_ENDPOINT = 'https://huggingface.co/'
const DEFAULT_BRANCH = 'main'
/** What llama.cpp and node-llama-cpp send; the Hub only adds the `ggufFile` field to manifests for it. */
const MANIFEST_USER_AGENT = 'llama-cpp'
const MANIFEST_TIMEOUT_MS = 30_000
const NAME_PART = /^[A-Za-z0-9][A-Za-z0-9._-]*$/

export type HfModelUri =
  | { kind: 'file'; canonical: string; user: string; repo: string; path: string; branch: string }
  | { kind: 'tag'; canonical: string; user: string; repo: string; tag: string }

export function isHfUri(spec: string): boolean {
  return spec.startsWith('hf:')
}

function invalid(spec: string, problem: string): ModelDownloadError {
  return new ModelDownloadError(
    'invalid-uri',
    `${JSON.stringify(spec.slice(0, 200))} is not a model URI this node understands (${problem}). Write hf:<user>/<repo>/<file>.gguf (optionally #<branch>) or hf:<user>/<repo>:<quantisation>, for example hf:bartowski/Llama-3.2-1B-Instruct-GGUF:Q4_K_M.`,
  )
}

/** Parses an `hf:` URI; throws {@link ModelDownloadError} (`invalid-uri`) with an example of what to write. */
export function parseHfUri(spec: string): HfModelUri {
  if (!isHfUri(spec)) throw invalid(spec, 'it does not start with hf:')
  const body = spec.slice('hf:'.length).replace(/^\/\//, '')
  const [user = '', repoPart = '', ...rest] = body.split('/')
  if (!NAME_PART.test(user)) throw invalid(spec, 'the user or organisation name is missing or has odd characters')
  if (rest.length === 0) {
    const [repo = '', tag = '', ...extra] = repoPart.split(':')
    if (!NAME_PART.test(repo)) throw invalid(spec, 'the repository name is missing or has odd characters')
    if (extra.length > 0 || (repoPart.includes(':') && !NAME_PART.test(tag))) throw invalid(spec, 'the tag is empty')
    const resolvedTag = tag === '' ? 'latest' : tag
    return {
      kind: 'tag',
      canonical: `hf:${user}/${repo}${tag === '' ? '' : `:${tag}`}`,
      user,
      repo,
      tag: resolvedTag,
    }
  }
  if (!NAME_PART.test(repoPart)) throw invalid(spec, 'the repository name is missing or has odd characters')
  const joined = rest.join('/')
  const hash = joined.indexOf('#')
  const path = hash === -1 ? joined : joined.slice(0, hash)
  const branch = hash === -1 || hash === joined.length - 1 ? DEFAULT_BRANCH : joined.slice(hash + 1)
  const segments = path.split('/')
  if (segments.some((segment) => !NAME_PART.test(segment)))
    throw invalid(spec, 'the file path has an empty or odd part')
  if (!path.toLowerCase().endsWith('.gguf')) throw invalid(spec, 'the file is not a .gguf file')
  return {
    kind: 'file',
    canonical: `hf:${user}/${repoPart}/${path}${branch === DEFAULT_BRANCH ? '' : `#${branch}`}`,
    user,
    repo: repoPart,
    path,
    branch,
  }
}

/** The Hub endpoint to use, with a trailing slash: `MODEL_ENDPOINT`, then `HF_ENDPOINT`, then huggingface.co. */
export function hfEndpoint(env: NodeJS.ProcessEnv = process.env): string {
  for (const value of [env.MODEL_ENDPOINT, env.HF_ENDPOINT]) {
    if (value === undefined || value === '') continue
    try {
      const url = new URL(value)
      if (url.protocol === 'http:' || url.protocol === 'https:')
        return url.href.endsWith('/') ? url.href : `${url.href}/`
    } catch {}
  }
  return DEFAULT_HF_ENDPOINT
}

/** `Authorization` for gated or private repositories, from `HF_TOKEN` (as the Hub's own tools read it). */
export function hfHeaders(env: NodeJS.ProcessEnv = process.env): Record<string, string> {
  const token = env.HF_TOKEN
  return token === undefined || token === '' ? {} : { authorization: `Bearer ${token}` }
}

function encodePath(path: string): string {
  return path
    .split('/')
    .map((segment) => encodeURIComponent(segment))
    .join('/')
}

export function hfFileUrl(endpoint: string, user: string, repo: string, branch: string, path: string): string {
  return `${endpoint}${encodeURIComponent(user)}/${encodeURIComponent(repo)}/resolve/${encodeURIComponent(branch)}/${encodePath(path)}?download=true`
}

/** The network failure behind a fetch error, as a short phrase (`ECONNREFUSED`, `ENOTFOUND`, …). */
export function networkCause(error: unknown): string {
  let current: unknown = error
  let message = error instanceof Error ? error.message : String(error)
  for (let depth = 0; depth < 4 && current instanceof Error; depth++) {
    const code = (current as NodeJS.ErrnoException).code
    if (typeof code === 'string') return code
    message = current.message
    current = current.cause
  }
  return message
}

export function unreachable(url: string, error: unknown): ModelDownloadError {
  const { host } = new URL(url)
  return new ModelDownloadError(
    'unreachable',
    `Could not reach ${host} (${networkCause(error)}). Pull the model on a machine with network access ('lull-node models pull <uri>', or any browser) and copy the .gguf file here, then pass its path (--model /path/to/file.gguf); or set HF_ENDPOINT to a mirror this machine can reach.`,
    { cause: error },
  )
}

/** Where an `hf:` URI's file is: the file URL and its name. A tag is looked up in the Hub's manifest API. */
const SPLIT_PART = /-\d{5}-of-\d{5}\.gguf$/i

function refuseSplit(uri: HfModelUri, fileName: string): void {
  if (SPLIT_PART.test(fileName)) {
    throw new ModelDownloadError(
      'unsupported',
      `${uri.canonical} is split over several files (${fileName}); the node serves single-file models only. Merge the parts with llama.cpp's llama-gguf-split --merge and pass the merged file's path, or choose a quantisation that comes as one file.`,
    )
  }
}

export async function resolveHfUri(
  uri: HfModelUri,
  options: { env?: NodeJS.ProcessEnv; signal?: AbortSignal | undefined } = {},
): Promise<{ url: string; fileName: string }> {
  const env = options.env ?? process.env
  const endpoint = hfEndpoint(env)
  if (uri.kind === 'file') {
    refuseSplit(uri, uri.path)
    return {
      url: hfFileUrl(endpoint, uri.user, uri.repo, uri.branch, uri.path),
      fileName: uri.path.split('/').at(-1) ?? uri.path,
    }
  }
  const manifestUrl = `${endpoint}v2/${encodeURIComponent(uri.user)}/${encodeURIComponent(uri.repo)}/manifests/${encodeURIComponent(uri.tag)}`
  const signals = [AbortSignal.timeout(MANIFEST_TIMEOUT_MS), ...(options.signal === undefined ? [] : [options.signal])]
  let response: Response
  try {
    response = await fetch(manifestUrl, {
      headers: { 'user-agent': MANIFEST_USER_AGENT, accept: 'application/json', ...hfHeaders(env) },
      signal: AbortSignal.any(signals),
    })
  } catch (error) {
    options.signal?.throwIfAborted()
    throw unreachable(manifestUrl, error)
  }
  if (response.status === 401 || response.status === 403) {
    throw new ModelDownloadError(
      'http-error',
      `${uri.canonical} needs access (HTTP ${response.status}): accept the model's terms on the Hub and set HF_TOKEN to an access token.`,
    )
  }
  if (response.status === 400 || response.status === 404) {
    throw new ModelDownloadError(
      'not-found',
      `${uri.canonical}: no GGUF file with the tag '${uri.tag}' (HTTP ${response.status}). Check the repository name and the quantisation (for example :Q4_K_M), or name the file: hf:${uri.user}/${uri.repo}/<file>.gguf.`,
    )
  }
  if (!response.ok) {
    throw new ModelDownloadError('http-error', `${manifestUrl} answered HTTP ${response.status}; try again later.`)
  }
  const manifest = (await response.json().catch(() => undefined)) as { ggufFile?: { rfilename?: unknown } } | undefined
  const fileName = manifest?.ggufFile?.rfilename
  if (typeof fileName !== 'string' || !fileName.toLowerCase().endsWith('.gguf') || fileName.split('/').includes('..')) {
    throw new ModelDownloadError(
      'not-found',
      `${uri.canonical}: the Hub's manifest names no GGUF file for the tag '${uri.tag}'. Name the file: hf:${uri.user}/${uri.repo}/<file>.gguf.`,
    )
  }
  refuseSplit(uri, fileName)
  return {
    url: hfFileUrl(endpoint, uri.user, uri.repo, DEFAULT_BRANCH, fileName),
    fileName: fileName.split('/').at(-1) ?? fileName,
  }
}
