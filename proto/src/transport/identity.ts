import { mkdir, readFile, rename, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { generateKeyPair, privateKeyFromProtobuf, privateKeyToProtobuf } from '@libp2p/crypto/keys'
import type { PrivateKey } from '@libp2p/interface'

/** File in a data dir that holds the host's Ed25519 identity key (libp2p protobuf form, mode 0600). */
export const IDENTITY_FILE = 'identity.key'

/**
 * Loads the persistent identity key from `dataDir`, creating it on first use, so a node or coordinator keeps its
 * peer id (and so its address) across restarts.
 */
export async function loadOrCreateIdentity(dataDir: string): Promise<PrivateKey> {
  const path = join(dataDir, IDENTITY_FILE)
  try {
    return privateKeyFromProtobuf(await readFile(path))
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') {
      throw new Error(
        `cannot read the identity key ${path}: ${(error as Error).message}. Move the file away to create a new identity.`,
        {
          cause: error,
        },
      )
    }
  }
  const key = await generateKeyPair('Ed25519')
  await mkdir(dataDir, { recursive: true, mode: 0o700 })
  const temporary = `${path}.${process.pid}.tmp`
  await writeFile(temporary, privateKeyToProtobuf(key), { mode: 0o600 })
  await rename(temporary, path)
  return key
}
