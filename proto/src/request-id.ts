import { randomBytes } from 'node:crypto'

/**
 * A fresh opaque request id: 16 random bytes, base64url. Says nothing about who asked or what. Never starts with
 * `-`, so `lull-coordinator explain ID` cannot take it for an option (1 id in 64 did): such draws are redrawn.
 */
export function createRequestId(): string {
  for (;;) {
    const id = randomBytes(16).toString('base64url')
    if (!id.startsWith('-')) return id
  }
}
