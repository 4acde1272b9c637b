/** The LMDB environment (a file and its `-lock` file) in the coordinator's data dir. */
export const ACCOUNTS_DB_FILE = 'accounts.lmdb'
/**
 * Credits a client pays (and the node that served it earns) per output token. Prompt tokens are free: the client
 * cannot know them before the node counts them, and prefill is cheap next to decoding.
 */
export const CREDITS_PER_OUTPUT_TOKEN = 1
/** Credits per prompt token (free; see {@link CREDITS_PER_OUTPUT_TOKEN}). */
export const CREDITS_PER_PROMPT_TOKEN = 0
/** Default request rate of an API key, requests per second. */
export const DEFAULT_RATE_PER_SECOND = 20
/** Default burst of an API key: requests that may arrive at once after a quiet spell. */
export const DEFAULT_RATE_BURST = 40
/** Length of a quota period. Quotas renew at 00:00 UTC. */
export const QUOTA_PERIOD_MS = 86_400_000
/** Random bytes in an API key or join token secret (base64url after the prefix). */
export const SECRET_BYTES = 32
/** API key secrets start with this, so they are recognisable (and findable by secret scanners). */
export const API_KEY_PREFIX = 'lull_sk_'
/** Join token secrets start with this. */
export const JOIN_TOKEN_PREFIX = 'lull_jt_'
/**
 * Prompt tokens a node may report beyond one per byte of the request's size bucket: chat templates add control
 * tokens the client never sent. More than that is implausible and the record is disputed.
 */
export const PROMPT_TEMPLATE_ALLOWANCE_TOKENS = 512
/** Account a ledger record names when the coordinator runs in open mode (no keys). */
export const OPEN_CLIENT_ID = 'open'
