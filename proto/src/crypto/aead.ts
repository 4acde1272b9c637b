/**
 * ChaCha20-Poly1305 (RFC 8439), SHA-256 and HKDF-SHA256 (RFC 5869) from `node:crypto` (OpenSSL), for the request
 * body and the response stream. The pure-JavaScript versions they replace cost 0.1-1 ms per kilobyte on a cold path
 * (a request after an idle spell, the usual case); OpenSSL's take a tenth of that. The formats are the standard
 * ones, so sealed bytes are the same whichever implementation made them (the RFC 8439 vector in aead.test.ts pins it).
 */
import { createCipheriv, createDecipheriv, createHash, hkdfSync, randomBytes as osRandomBytes } from 'node:crypto'

export const AEAD_KEY_BYTES = 32
export const AEAD_NONCE_BYTES = 12
export const AEAD_TAG_BYTES = 16

function view(buffer: Buffer): Uint8Array {
  return new Uint8Array(buffer.buffer, buffer.byteOffset, buffer.byteLength)
}

/** `ciphertext ‖ tag` of `plaintext` under `key` and `nonce`, authenticating `aad` too. */
export function aeadSeal(key: Uint8Array, nonce: Uint8Array, plaintext: Uint8Array, aad?: Uint8Array): Uint8Array {
  const cipher = createCipheriv('chacha20-poly1305', key, nonce, { authTagLength: AEAD_TAG_BYTES })
  if (aad !== undefined) cipher.setAAD(aad, { plaintextLength: plaintext.length })
  return view(Buffer.concat([cipher.update(plaintext), cipher.final(), cipher.getAuthTag()]))
}

/**
 * The plaintext of `sealed` (`ciphertext ‖ tag`). Throws an Error when it is too short or fails authentication
 * (wrong key, nonce or aad, or any changed byte); callers turn that into their typed error.
 */
export function aeadOpen(key: Uint8Array, nonce: Uint8Array, sealed: Uint8Array, aad?: Uint8Array): Uint8Array {
  if (sealed.length < AEAD_TAG_BYTES) throw new Error('sealed data is shorter than its tag')
  const ciphertextLength = sealed.length - AEAD_TAG_BYTES
  const decipher = createDecipheriv('chacha20-poly1305', key, nonce, { authTagLength: AEAD_TAG_BYTES })
  decipher.setAuthTag(sealed.subarray(ciphertextLength))
  if (aad !== undefined) decipher.setAAD(aad, { plaintextLength: ciphertextLength })
  return view(Buffer.concat([decipher.update(sealed.subarray(0, ciphertextLength)), decipher.final()]))
}

export function sha256(data: Uint8Array): Uint8Array {
  return view(createHash('sha256').update(data).digest())
}

export function hkdfSha256(ikm: Uint8Array, salt: Uint8Array, info: Uint8Array, length: number): Uint8Array {
  return new Uint8Array(hkdfSync('sha256', ikm, salt, info, length))
}

/** Cryptographically secure random bytes (a plain Uint8Array). */
export function randomBytes(length: number): Uint8Array {
  return view(osRandomBytes(length))
}
