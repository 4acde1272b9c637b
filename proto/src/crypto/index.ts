/** Lull's crypto envelope: HPKE key wrapping, sealed requests and response streams, node key certificates. */
export {
  HPKE_KEY_BYTES,
  HPKE_MAX_EXPORT_BYTES,
  HPKE_TAG_BYTES,
  type HpkeKeyPair,
  type HpkeOptions,
  type HpkeRecipient,
  type HpkeSender,
  type HpkeSenderOptions,
  hpkeDeriveKeyPair,
  hpkeOpen,
  hpkeSeal,
  hpkeSetupRecipient,
  hpkeSetupSender,
} from './hpke.js'
export { generateX25519KeyPair, type X25519KeyPair, x25519PublicKey } from './keys.js'
export {
  isNodeCertificate,
  MAX_CERTIFICATE_STRING_LENGTH,
  MAX_NODE_ID_LENGTH,
  NODE_CERTIFICATE_DOMAIN,
  NODE_CERTIFICATE_SIGNATURE_BYTES,
  NODE_CERTIFICATE_VERSION,
  type NodeCertificate,
  type NodeCertificateFields,
  nodeCertificateSigningBytes,
  signNodeCertificate,
  type VerifyNodeCertificateOptions,
  verifyNodeCertificate,
} from './node-certificate.js'
export {
  CONTENT_KEY_BYTES,
  createRequestSenderPool,
  openRequest,
  REQUEST_HPKE_INFO,
  REQUEST_NONCE_BYTES,
  REQUEST_TAG_BYTES,
  type RequestRecipient,
  type SealedRequest,
  sealRequest,
  type WrappedKey,
} from './request-envelope.js'
export {
  RESPONSE_CHUNK_OVERHEAD,
  RESPONSE_HKDF_INFO,
  RESPONSE_SALT_BYTES,
  ResponseOpener,
  ResponseSealer,
} from './response-stream.js'
export { DEFAULT_SENDER_POOL_KEYS, HpkeSenderPool } from './sender-pool.js'
export {
  type SignedUsageFields,
  signUsage,
  USAGE_SIGNATURE_BYTES,
  USAGE_SIGNATURE_DOMAIN,
  usageSigningBytes,
  verifyUsageSignature,
} from './usage-signature.js'
