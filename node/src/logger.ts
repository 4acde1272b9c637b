import { type Logger, pino } from 'pino'

export type { Logger }

/**
 * Structured JSON logs on stderr. Fields are ids, sizes, counts and times only: no log line at any level carries
 * a prompt or an output.
 */
export function createLogger(level = process.env.LULL_LOG_LEVEL ?? 'info'): Logger {
  return pino({ name: 'lull-node', level }, pino.destination(2))
}
