/** Parsers for command-line option values, shared by the commands that take `start`'s options. */
import { InvalidArgumentError } from 'commander'
import { type IdleMode, parseIdleMode } from '../idle-policy.js'

export function positiveInteger(value: string): number {
  const parsed = Number(value)
  if (!Number.isInteger(parsed) || parsed < 1) throw new InvalidArgumentError('expected a whole number of at least 1')
  return parsed
}

export function nonNegativeInteger(value: string): number {
  const parsed = Number(value)
  if (!Number.isInteger(parsed) || parsed < 0) throw new InvalidArgumentError('expected a whole number of at least 0')
  return parsed
}

export function idleMode(value: string): IdleMode {
  try {
    return parseIdleMode(value)
  } catch (error) {
    throw new InvalidArgumentError((error as Error).message)
  }
}
