/**
 * Model pins: the SHA-256 a node saw the first time it served a model file, kept in `<dataDir>/models/pins.json`
 * by absolute path. On later starts a file whose digest differs is refused until the operator confirms the new
 * digest. Written atomically (temporary file + rename).
 */
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { writeFileAtomically } from './atomic-write-file.js'
import { ModelRejectedError } from './errors.js'

const PINS_FILE_VERSION = 1
const SHA256_HEX = /^[0-9a-f]{64}$/

export interface ModelPin {
  /** Lowercase hex. */
  sha256: string
  sizeBytes: number
  /** ISO 8601 time the pin was recorded. */
  pinnedAt: string
}

export function pinsFilePath(dataDir: string): string {
  return join(dataDir, 'models', 'pins.json')
}

function isPin(value: unknown): value is ModelPin {
  const pin = value as Partial<ModelPin> | null
  return (
    typeof pin === 'object' &&
    pin !== null &&
    typeof pin.sha256 === 'string' &&
    SHA256_HEX.test(pin.sha256) &&
    typeof pin.sizeBytes === 'number' &&
    Number.isSafeInteger(pin.sizeBytes) &&
    pin.sizeBytes >= 0 &&
    typeof pin.pinnedAt === 'string'
  )
}

/** The pins recorded in `dataDir`, by absolute model path; empty if there is no pins file yet. */
export async function readPins(dataDir: string): Promise<Map<string, ModelPin>> {
  const path = pinsFilePath(dataDir)
  let text: string
  try {
    text = await readFile(path, 'utf8')
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return new Map()
    throw error
  }
  const refuse = (problem: string): ModelRejectedError =>
    new ModelRejectedError(
      'invalid-pins-file',
      `The model pins file ${path} ${problem}. Restore it, or delete it to forget all pins (the next start then pins the model files as they are).`,
    )
  let parsed: unknown
  try {
    parsed = JSON.parse(text)
  } catch {
    throw refuse('is not valid JSON')
  }
  const file = parsed as { version?: unknown; pins?: unknown } | null
  if (typeof file !== 'object' || file === null || file.version !== PINS_FILE_VERSION) {
    throw refuse(`is not a version ${PINS_FILE_VERSION} pins file`)
  }
  if (typeof file.pins !== 'object' || file.pins === null || Array.isArray(file.pins)) throw refuse('has no pins')
  const pins = new Map<string, ModelPin>()
  for (const [modelPath, pin] of Object.entries(file.pins)) {
    if (!isPin(pin)) throw refuse(`has an unreadable pin for ${modelPath}`)
    pins.set(modelPath, { sha256: pin.sha256, sizeBytes: pin.sizeBytes, pinnedAt: pin.pinnedAt })
  }
  return pins
}

/** Replaces the pins file with `pins`. */
export async function writePins(dataDir: string, pins: ReadonlyMap<string, ModelPin>): Promise<void> {
  const sorted = Object.fromEntries([...pins].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)))
  const text = `${JSON.stringify({ version: PINS_FILE_VERSION, pins: sorted }, null, 2)}\n`
  await writeFileAtomically(pinsFilePath(dataDir), Buffer.from(text, 'utf8'))
}
