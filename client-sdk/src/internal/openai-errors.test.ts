import { ErrorCode, LullError, RemoteError } from '@lull/proto'
import { describe, expect, it } from 'vitest'
import { httpErrorFrom } from './openai-errors.js'

describe('account errors as OpenAI HTTP errors', () => {
  it('maps each code to the status OpenAI clients expect, with Retry-After where the error says when', () => {
    const unauthorized = httpErrorFrom(new RemoteError(ErrorCode.Unauthorized, 'the API key is unknown or revoked'))
    expect(unauthorized.status).toBe(401)
    expect(unauthorized.body.error).toMatchObject({ type: 'authentication_error', code: 'unauthorized' })
    expect(httpErrorFrom(new RemoteError(ErrorCode.Forbidden, 'not an admin key')).status).toBe(403)
    const credits = httpErrorFrom(new RemoteError(ErrorCode.InsufficientCredits, 'no credits'))
    expect(credits.status).toBe(402)
    expect(credits.retryAfterSeconds).toBeUndefined()

    const limited = httpErrorFrom(new LullError(ErrorCode.RateLimited, 'slow down', { retryAfterMs: 1_500 }))
    expect(limited).toMatchObject({ status: 429, retryAfterSeconds: 2 })
    expect(limited.body.error.code).toBe('rate_limited')
    const quota = httpErrorFrom(new LullError(ErrorCode.QuotaExceeded, 'used up', { retryAfterMs: 3_600_000 }))
    expect(quota).toMatchObject({ status: 429, retryAfterSeconds: 3_600 })
    expect(quota.body.error).toMatchObject({ type: 'insufficient_quota', code: 'quota_exceeded' })
  })
})
