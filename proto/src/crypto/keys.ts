/** X25519 key pairs for HPKE (a node's rotating request key). Raw 32-byte keys, RFC 7748 encoding. */
import { x25519 } from '@noble/curves/ed25519.js'
import { assertBytes } from './bytes.js'

export interface X25519KeyPair {
  secretKey: Uint8Array
  publicKey: Uint8Array
}

/** A fresh random X25519 key pair (secret key from the platform CSPRNG). */
export function generateX25519KeyPair(): X25519KeyPair {
  const { secretKey, publicKey } = x25519.keygen()
  return { secretKey, publicKey }
}

/** The X25519 public key of a 32-byte secret key. */
export function x25519PublicKey(secretKey: Uint8Array): Uint8Array {
  assertBytes(secretKey, 'x25519PublicKey: secretKey', 32)
  return x25519.getPublicKey(secretKey)
}
