import { describe, expect, it } from 'vitest'
import { requestIdSchema } from './messages.js'
import { createRequestId } from './request-id.js'

describe('createRequestId', () => {
  it('makes distinct url-safe ids that never start with a dash (a CLI would read one as an option)', () => {
    // With base64url, 1 id in 64 would start with '-': among 5,000 about 78 would, so the check has teeth.
    const ids = Array.from({ length: 5_000 }, () => createRequestId())
    expect(new Set(ids).size).toBe(ids.length)
    for (const id of ids) {
      expect(id).toMatch(/^[A-Za-z0-9_][A-Za-z0-9_-]{21}$/)
      expect(requestIdSchema.safeParse(id).success).toBe(true)
    }
  })
})
