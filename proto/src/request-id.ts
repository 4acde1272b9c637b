import { randomBytes } from 'node:crypto'

/** A fresh opaque request id: 16 random bytes, base64url. Says nothing about who asked or what. */
export function createRequestId(): string {
  return randomBytes(16).toString('base64url')
}
