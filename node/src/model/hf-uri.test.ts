import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { describe, expect, it } from 'vitest'
import { ModelDownloadError } from './errors.js'
import { hfEndpoint, parseHfUri, resolveHfUri } from './hf-uri.js'

describe('hf: model URIs', () => {
  it('parses a file URI, with and without a branch, into the URL layout of the Hub', async () => {
    const file = parseHfUri('hf:lull/tiny-GGUF/sub/lull-tiny.Q8_0.gguf')
    expect(file).toMatchObject({ kind: 'file', user: 'lull', repo: 'tiny-GGUF', path: 'sub/lull-tiny.Q8_0.gguf' })
    expect(file.canonical).toBe('hf:lull/tiny-GGUF/sub/lull-tiny.Q8_0.gguf')
    const env = { HF_ENDPOINT: 'http://127.0.0.1:9' }
    expect(await resolveHfUri(file, { env })).toEqual({
      url: 'http://127.0.0.1:9/lull/tiny-GGUF/resolve/main/sub/lull-tiny.Q8_0.gguf?download=true',
      fileName: 'lull-tiny.Q8_0.gguf',
    })
    const branch = parseHfUri('hf:lull/tiny-GGUF/lull-tiny.gguf#v2')
    expect(branch.canonical).toBe('hf:lull/tiny-GGUF/lull-tiny.gguf#v2')
    expect((await resolveHfUri(branch, { env })).url).toContain('/resolve/v2/lull-tiny.gguf')
  })

  it('parses a tag URI', () => {
    expect(parseHfUri('hf:lull/tiny-GGUF:Q8_0')).toMatchObject({
      kind: 'tag',
      tag: 'Q8_0',
      canonical: 'hf:lull/tiny-GGUF:Q8_0',
    })
    expect(parseHfUri('hf:lull/tiny-GGUF')).toMatchObject({
      kind: 'tag',
      tag: 'latest',
      canonical: 'hf:lull/tiny-GGUF',
    })
  })

  it.each([
    'hf:',
    'hf:lull',
    'hf:lull/',
    'hf:lull/tiny/../../etc/passwd.gguf',
    'hf:lull/tiny/model.bin',
    'hf:lull/tiny:',
    'hf:lu ll/tiny/x.gguf',
  ])('refuses %s with an example of what to write', (spec) => {
    expect(() => parseHfUri(spec)).toThrow(ModelDownloadError)
    expect(() => parseHfUri(spec)).toThrow(/hf:<user>\/<repo>\/<file>\.gguf/)
  })

  it('refuses a model split over several files, saying how to merge it', async () => {
    const uri = parseHfUri('hf:lull/big-GGUF/big.Q8_0-00001-of-00003.gguf')
    await expect(resolveHfUri(uri, { env: {} })).rejects.toThrow(/split over several files.*llama-gguf-split --merge/)
  })

  it('takes the endpoint from MODEL_ENDPOINT or HF_ENDPOINT, else huggingface.co', () => {
    expect(hfEndpoint({})).toBe('https://huggingface.co/')
    expect(hfEndpoint({ HF_ENDPOINT: 'http://127.0.0.1:8080' })).toBe('http://127.0.0.1:8080/')
    expect(hfEndpoint({ HF_ENDPOINT: 'http://a/', MODEL_ENDPOINT: 'http://b/' })).toBe('http://b/')
    expect(hfEndpoint({ HF_ENDPOINT: 'not a url' })).toBe('https://huggingface.co/')
  })

  it('says the endpoint could not be reached and what to do instead', async () => {
    const uri = parseHfUri('hf:lull/tiny-GGUF:Q8_0')
    const server = createServer()
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
    const { port } = server.address() as AddressInfo
    await new Promise((resolve) => server.close(resolve))
    const error = await resolveHfUri(uri, { env: { HF_ENDPOINT: `http://127.0.0.1:${port}` } }).catch((e: unknown) => e)
    expect(error).toBeInstanceOf(ModelDownloadError)
    expect((error as ModelDownloadError).reason).toBe('unreachable')
    expect((error as Error).message).toMatch(
      new RegExp(`Could not reach 127\\.0\\.0\\.1:${port} \\(ECONNREFUSED\\).*pass its path`),
    )
  })
})
