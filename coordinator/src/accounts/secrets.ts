import { createHash, randomBytes } from 'node:crypto'
import { SECRET_BYTES } from './constants.js'

/** A new secret: `prefix` + 32 random bytes, base64url. */
export function createSecret(prefix: string): string {
  return `${prefix}${randomBytes(SECRET_BYTES).toString('base64url')}`
}

/** A new public id: `prefix` + 12 random hex digits. */
export function createPublicId(prefix: string): string {
  return `${prefix}${randomBytes(6).toString('hex')}`
}

/**
 * The stored form of a secret. A single fast SHA-256 is right here: secrets are 256 random bits, so there is
 * nothing to guess and a slow password hash (bcrypt, scrypt) would only cost time on every request.
 */
export function hashSecret(secret: string): string {
  return createHash('sha256').update(secret, 'utf8').digest('hex')
}
