/**
 * Every wire message, defined once: a zod schema per message (the boundary check) and the TypeScript type it
 * yields. Messages are msgpack maps with a `type` discriminator. Each protocol direction accepts only its own
 * union of messages (see the `*_INBOUND` schemas at the end).
 */
import { z } from 'zod'
import {
  MAX_CANDIDATES,
  MAX_DISPATCH_BATCH_BYTES,
  MAX_DISPATCH_BATCH_REQUESTS,
  MAX_ERROR_MESSAGE_CHARS,
  MAX_REQUEST_TIMEOUT_MS,
  MAX_SEALED_BODY_BYTES,
} from './constants.js'
import { ErrorCode } from './errors.js'

const bytes = (maxBytes: number, minBytes = 0) =>
  z.custom<Uint8Array>(
    (value) => value instanceof Uint8Array && value.byteLength >= minBytes && value.byteLength <= maxBytes,
    { message: `expected ${minBytes}..${maxBytes} bytes` },
  )
const count = (max: number) => z.number().int().min(0).max(max)
const rate = z.number().finite().min(0).max(1e9)

export const requestIdSchema = z.string().regex(/^[A-Za-z0-9_-]{8,64}$/, 'request ids are 8-64 url-safe characters')
export const nodeIdSchema = z.string().min(1).max(128)
export const modelIdSchema = z.string().min(1).max(256)

export const hardwareSummarySchema = z.object({
  os: z.string().max(64),
  arch: z.string().max(64),
  cpuModel: z.string().max(256),
  cpuCores: count(4096),
  ramTotalBytes: z.number().int().min(0),
  gpu: z.enum(['metal', 'cuda', 'vulkan', 'none']),
  vramTotalBytes: z.number().int().min(0),
})

/** Shape of a node certificate; its signature and validity are checked by `verifyNodeCertificate`. */
export const nodeCertificateSchema = z.object({
  version: z.literal(1),
  nodeId: nodeIdSchema,
  hpkePublicKey: bytes(32, 32),
  modelId: modelIdSchema,
  modelDigest: z.string().regex(/^[0-9a-f]{64}$/),
  hardware: hardwareSummarySchema,
  notBeforeMs: z.number().int(),
  notAfterMs: z.number().int(),
  signature: bytes(64, 64),
})

export const benchmarkSchema = z.object({ prefillTokensPerSecond: rate, decodeTokensPerSecond: rate })
export type Benchmark = z.infer<typeof benchmarkSchema>

/** The clear part of a request: only what routing needs. It is bound to the ciphertext as associated data. */
export const requestHeaderSchema = z.object({
  model: modelIdSchema,
  maxTokens: z.number().int().min(1).max(1_000_000),
  /** Sealed body size rounded up to its bucket, in bytes. */
  sizeBucket: z.number().int().min(0).max(MAX_SEALED_BODY_BYTES),
  candidates: z.array(nodeIdSchema).min(1).max(MAX_CANDIDATES),
  /** 0 (the default, lowest) to 9 (highest): waiting requests are served highest priority first, fairly within one. */
  priority: z.number().int().min(0).max(9),
  /**
   * The request is of no use this many ms after the coordinator receives it (relative, so client and coordinator
   * clocks need not agree). Past it, a queued request ends with `deadline-exceeded` and is never dispatched, and a
   * running one is cancelled on its node. No deadline when absent.
   */
  timeoutMs: z.number().int().min(1).max(MAX_REQUEST_TIMEOUT_MS).optional(),
})
export type RequestHeader = z.infer<typeof requestHeaderSchema>

export const wrappedKeySchema = z.object({ nodeId: nodeIdSchema, enc: bytes(64, 1), wrappedKey: bytes(128, 1) })
export const sealedRequestSchema = z.object({
  ciphertext: bytes(MAX_SEALED_BODY_BYTES, 1),
  keys: z.array(wrappedKeySchema).min(1).max(MAX_CANDIDATES),
})

const usageSchema = z.object({ promptTokens: count(10_000_000), outputTokens: count(10_000_000) })
export type Usage = z.infer<typeof usageSchema>
export const nodeStateSchema = z.enum(['serving', 'paused', 'draining'])

const errorCodeSchema = z.enum(Object.values(ErrorCode) as [ErrorCode, ...ErrorCode[]])

/** An API key as the client presents it (`lull_…`); the coordinator stores only its hash. */
export const apiKeySchema = z.string().min(1).max(128)
/** A join token as a node presents it; the coordinator stores only its hash. */
export const joinTokenSchema = z.string().min(1).max(128)

export const registerMessage = z.object({
  type: z.literal('register'),
  /** Required unless the coordinator runs in open mode. */
  joinToken: joinTokenSchema.optional(),
  certificate: nodeCertificateSchema,
  slots: z.number().int().min(1).max(1024),
  benchmark: benchmarkSchema,
  agent: z.string().max(128),
})
/** A node's new certificate after it rotated its HPKE key. Same node, model and digest; a new key and window. */
export const certificateMessage = z.object({ type: z.literal('certificate'), certificate: nodeCertificateSchema })
export const registeredMessage = z.object({ type: z.literal('registered'), nodeId: nodeIdSchema })
export const heartbeatMessage = z.object({
  type: z.literal('heartbeat'),
  busySlots: count(1024),
  state: nodeStateSchema,
  /** Why the node is not serving (`paused` or `draining`), for the operator; never request content. */
  reason: z.string().max(256).optional(),
  /** Live memory the machine has free, in bytes (the certificate holds the static total). */
  ramFreeBytes: z.number().int().min(0).optional(),
  /** One-minute load average of the whole machine. */
  loadAverage: z.number().finite().min(0).max(1e6).optional(),
})
export const dispatchMessage = z.object({
  type: z.literal('dispatch'),
  requestId: requestIdSchema,
  header: requestHeaderSchema,
  sealed: sealedRequestSchema,
})
/** Several requests for one node, sent together; the node handles each entry exactly as a single `dispatch`. */
export const dispatchBatchMessage = z.object({
  type: z.literal('dispatch-batch'),
  requests: z
    .array(z.object({ requestId: requestIdSchema, header: requestHeaderSchema, sealed: sealedRequestSchema }))
    .min(1)
    .max(MAX_DISPATCH_BATCH_REQUESTS)
    .refine(
      (requests) =>
        requests.reduce((total, request) => total + request.sealed.ciphertext.byteLength, 0) <=
        MAX_DISPATCH_BATCH_BYTES,
      { message: `a dispatch batch carries at most ${MAX_DISPATCH_BATCH_BYTES} sealed bytes` },
    ),
})
export const chunkMessage = z.object({
  type: z.literal('chunk'),
  requestId: requestIdSchema,
  data: bytes(64 * 1024, 1),
  /**
   * Node to coordinator: this is the answer's last sealed chunk (the coordinator learns as much from the `end` that
   * follows). A coordinator with a ledger relays it only once the request's usage record is on disk, so no client
   * holds a whole answer whose usage a crash could still lose. Not relayed to the client.
   */
  final: z.literal(true).optional(),
})
export const endMessage = z.object({
  type: z.literal('end'),
  requestId: requestIdSchema,
  usage: usageSchema,
  /**
   * The node's Ed25519 signature over the usage (see `usageSigningBytes`): node to coordinator only; required
   * unless the coordinator runs in open mode. The coordinator does not relay it to the client.
   */
  usageSignature: bytes(64, 64).optional(),
})
export const cancelMessage = z.object({ type: z.literal('cancel'), requestId: requestIdSchema })
export const errorMessage = z.object({
  type: z.literal('error'),
  requestId: requestIdSchema.optional(),
  code: errorCodeSchema,
  message: z.string().max(MAX_ERROR_MESSAGE_CHARS),
  /**
   * How long the sender suggests waiting before retrying (`overloaded`, `rate-limited`; up to a day for
   * `quota-exceeded`, whose quota renews daily).
   */
  retryAfterMs: z.number().int().min(0).max(86_400_000).optional(),
})
export const catalogueRequestMessage = z.object({
  type: z.literal('catalogue-request'),
  /** Required unless the coordinator runs in open mode. */
  apiKey: apiKeySchema.optional(),
})
export const catalogueNodeSchema = z.object({
  nodeId: nodeIdSchema,
  certificate: nodeCertificateSchema,
  slots: count(1024),
  busySlots: count(1024),
  benchmark: benchmarkSchema,
})
export const catalogueMessage = z.object({
  type: z.literal('catalogue'),
  models: z.array(z.object({ modelId: modelIdSchema, nodes: z.array(catalogueNodeSchema).max(10_000) })).max(1_000),
})
export const submitMessage = z.object({
  type: z.literal('submit'),
  /** Required unless the coordinator runs in open mode. */
  apiKey: apiKeySchema.optional(),
  requestId: requestIdSchema,
  header: requestHeaderSchema,
  sealed: sealedRequestSchema,
})
export const dispatchedMessage = z.object({
  type: z.literal('dispatched'),
  requestId: requestIdSchema,
  nodeId: nodeIdSchema,
})

export type RegisterMessage = z.infer<typeof registerMessage>
export type CertificateMessage = z.infer<typeof certificateMessage>
export type RegisteredMessage = z.infer<typeof registeredMessage>
export type HeartbeatMessage = z.infer<typeof heartbeatMessage>
export type DispatchMessage = z.infer<typeof dispatchMessage>
export type DispatchBatchMessage = z.infer<typeof dispatchBatchMessage>
export type ChunkMessage = z.infer<typeof chunkMessage>
export type EndMessage = z.infer<typeof endMessage>
export type CancelMessage = z.infer<typeof cancelMessage>
export type ErrorMessage = z.infer<typeof errorMessage>
export type CatalogueRequestMessage = z.infer<typeof catalogueRequestMessage>
export type CatalogueMessage = z.infer<typeof catalogueMessage>
export type CatalogueNode = z.infer<typeof catalogueNodeSchema>
export type SubmitMessage = z.infer<typeof submitMessage>
export type DispatchedMessage = z.infer<typeof dispatchedMessage>
export type NodeState = z.infer<typeof nodeStateSchema>

/** What a coordinator accepts from a node on {@link NODE_PROTOCOL}. */
export const NODE_TO_COORDINATOR = z.discriminatedUnion('type', [
  registerMessage,
  certificateMessage,
  heartbeatMessage,
  chunkMessage,
  endMessage,
  errorMessage,
])
/** What a node accepts from the coordinator. */
export const COORDINATOR_TO_NODE = z.discriminatedUnion('type', [
  registeredMessage,
  dispatchMessage,
  dispatchBatchMessage,
  cancelMessage,
  errorMessage,
])
/** What a coordinator accepts from a client on {@link CLIENT_PROTOCOL}. */
export const CLIENT_TO_COORDINATOR = z.discriminatedUnion('type', [
  catalogueRequestMessage,
  submitMessage,
  cancelMessage,
])
/** What a client accepts from the coordinator. */
export const COORDINATOR_TO_CLIENT = z.discriminatedUnion('type', [
  catalogueMessage,
  dispatchedMessage,
  chunkMessage,
  endMessage,
  errorMessage,
])

export type NodeToCoordinator = z.infer<typeof NODE_TO_COORDINATOR>
export type CoordinatorToNode = z.infer<typeof COORDINATOR_TO_NODE>
export type ClientToCoordinator = z.infer<typeof CLIENT_TO_COORDINATOR>
export type CoordinatorToClient = z.infer<typeof COORDINATOR_TO_CLIENT>
export type AnyMessage =
  | NodeToCoordinator
  | CoordinatorToNode
  | ClientToCoordinator
  | CoordinatorToClient
  | AdminToCoordinator
  | CoordinatorToAdmin

// Admin protocol: what `lull-coordinator status` and `explain` speak. Routing metadata and counters only: never a
// payload, never ciphertext.

export const statusRequestMessage = z.object({
  type: z.literal('status-request'),
  /** An API key with the admin role; required unless the coordinator runs in open mode. */
  apiKey: apiKeySchema.optional(),
})
export const statusNodeSchema = z.object({
  nodeId: nodeIdSchema,
  modelId: modelIdSchema,
  hardware: hardwareSummarySchema,
  benchmark: benchmarkSchema,
  state: nodeStateSchema,
  /** Why the node is not serving, from its last heartbeat. */
  stateReason: z.string().max(256).optional(),
  slots: count(1024),
  busySlots: count(1_000_000),
  requestsServed: count(Number.MAX_SAFE_INTEGER),
  errors: count(Number.MAX_SAFE_INTEGER),
  failovers: count(Number.MAX_SAFE_INTEGER),
  /** Recent time from dispatch to first chunk on this node (moving average), as the scheduler scores it. */
  ttftMs: z.number().finite().min(0).optional(),
  /** Output tokens of requests this node finished in the last minute, per second. */
  recentTokensPerSecond: z.number().finite().min(0).optional(),
  /** Output tokens of every request this node finished (as it signed them). */
  outputTokensServed: count(Number.MAX_SAFE_INTEGER).optional(),
  /** Free memory as the node's last heartbeat reported it (the hardware summary holds the static total). */
  ramFreeBytes: z.number().int().min(0).optional(),
  /** The node machine's one-minute load average, from its last heartbeat. */
  loadAverage: z.number().finite().min(0).max(1e6).optional(),
  lastSeenMs: z.number().int().min(0),
  registeredAtMs: z.number().int().min(0),
})
export const statusMessage = z.object({
  type: z.literal('status'),
  nowMs: z.number().int().min(0),
  coordinatorId: nodeIdSchema,
  nodes: z.array(statusNodeSchema).max(10_000),
  totals: z.object({
    nodes: count(1_000_000),
    servingNodes: count(1_000_000),
    slots: count(Number.MAX_SAFE_INTEGER),
    busySlots: count(Number.MAX_SAFE_INTEGER),
    queued: z.array(z.object({ modelId: modelIdSchema, depth: count(Number.MAX_SAFE_INTEGER) })).max(1_000),
    requestsPerMinute: count(Number.MAX_SAFE_INTEGER),
    requestsServed: count(Number.MAX_SAFE_INTEGER),
    requestsFailed: count(Number.MAX_SAFE_INTEGER),
    failovers: count(Number.MAX_SAFE_INTEGER),
    /** Time from submit to the first relayed chunk over recent requests; absent before any. */
    ttftP50Ms: z.number().finite().min(0).optional(),
    ttftP95Ms: z.number().finite().min(0).optional(),
    /** Output tokens of requests finished in the last minute, per second, over every node. */
    tokensPerSecond: z.number().finite().min(0).optional(),
    /** Output tokens of every request finished since the coordinator started. */
    outputTokensServed: count(Number.MAX_SAFE_INTEGER).optional(),
  }),
})
export const explainRequestMessage = z.object({
  type: z.literal('explain-request'),
  requestId: requestIdSchema,
  /** An API key with the admin role; required unless the coordinator runs in open mode. */
  apiKey: apiKeySchema.optional(),
})
export const decisionSchema = z.object({
  atMs: z.number().int().min(0),
  /** `placed`, `queued`, `failover`, `refused`, `finished`, `failed`, `cancelled`, … */
  event: z.string().max(32),
  nodeId: nodeIdSchema.optional(),
  reason: z.string().max(MAX_ERROR_MESSAGE_CHARS),
})
export const explainMessage = z.object({
  type: z.literal('explain'),
  requestId: requestIdSchema,
  /** The coordinator's id for the request (what nodes see), when the client's id was asked. */
  nodeRequestId: requestIdSchema.optional(),
  model: modelIdSchema,
  decisions: z.array(decisionSchema).max(256),
})

export type StatusRequestMessage = z.infer<typeof statusRequestMessage>
export type StatusNode = z.infer<typeof statusNodeSchema>
export type StatusMessage = z.infer<typeof statusMessage>
export type ExplainRequestMessage = z.infer<typeof explainRequestMessage>
export type Decision = z.infer<typeof decisionSchema>
export type ExplainMessage = z.infer<typeof explainMessage>

/** What a coordinator accepts on {@link ADMIN_PROTOCOL}. */
export const ADMIN_TO_COORDINATOR = z.discriminatedUnion('type', [statusRequestMessage, explainRequestMessage])
/** What an admin client accepts from the coordinator. */
export const COORDINATOR_TO_ADMIN = z.discriminatedUnion('type', [statusMessage, explainMessage, errorMessage])
export type AdminToCoordinator = z.infer<typeof ADMIN_TO_COORDINATOR>
export type CoordinatorToAdmin = z.infer<typeof COORDINATOR_TO_ADMIN>
