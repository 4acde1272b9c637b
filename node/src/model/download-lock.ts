/**
 * One download of a model at a time per data dir: two `lull-node` processes appending to the same partial file would
 * corrupt it. The lock is a file created exclusively beside the partial file, holding the owner's pid; a lock whose
 * process is gone (killed mid-download) is taken over.
 */
import { open, readFile, rm } from 'node:fs/promises'
import { ModelDownloadError } from './errors.js'

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM'
  }
}

/** Takes the lock at `lockPath` for downloading `key`; returns its release. Throws `busy` if a live process holds it. */
export async function acquireDownloadLock(lockPath: string, key: string): Promise<() => Promise<void>> {
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const handle = await open(lockPath, 'wx', 0o600)
      try {
        await handle.writeFile(String(process.pid))
      } finally {
        await handle.close()
      }
      return () => rm(lockPath, { force: true })
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error
      const pid = Number((await readFile(lockPath, 'utf8').catch(() => '')).trim())
      if (Number.isSafeInteger(pid) && pid > 0 && processAlive(pid)) {
        throw new ModelDownloadError(
          'busy',
          `Another process (pid ${pid}) is downloading ${key} into this data dir. Wait for it to finish (the model is then ready here), or stop it and run this again to resume its download.`,
        )
      }
      await rm(lockPath, { force: true })
    }
  }
  throw new ModelDownloadError('busy', `Could not take the download lock ${lockPath}; remove it if no download runs.`)
}
