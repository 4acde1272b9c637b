/**
 * Progress for long CLI steps (downloading, loading, measuring), always on stderr so stdout stays for results and
 * `--json`. On a terminal: an ora spinner whose text updates in place. Elsewhere (a pipe, a log file, a test): no
 * animation and no escape codes, only plain lines: one per step, and download progress at every quarter.
 */
import ora, { type Ora } from 'ora'
import { type DownloadProgress, formatBytes } from '../model/index.js'

/** Characters in the download bar on a terminal. */
const BAR_WIDTH = 24

export interface ProgressDisplayOptions {
  /** @default process.stderr */
  stream?: NodeJS.WriteStream
}

export class ProgressDisplay {
  readonly #spinner: Ora
  readonly #stream: NodeJS.WriteStream
  readonly interactive: boolean
  #lastQuarter = -1

  constructor(options: ProgressDisplayOptions = {}) {
    this.#stream = options.stream ?? process.stderr
    // A pseudo-terminal with no size (0 columns, as under `script` without a terminal) would make ora's line
    // counting divide by zero: treat it as a pipe.
    this.interactive = this.#stream.isTTY === true && (this.#stream.columns ?? 0) > 0 && process.env.CI === undefined
    this.#spinner = ora({ stream: this.#stream, isEnabled: this.interactive, discardStdin: false })
  }

  /** Starts a step: the spinner's text on a terminal, a plain line elsewhere. */
  step(text: string): void {
    this.#lastQuarter = -1
    if (this.interactive) this.#spinner.start(text)
    else this.#stream.write(`${text}\n`)
  }

  /** Changes the current step's text (terminal only: elsewhere it would flood the output). */
  update(text: string): void {
    if (this.interactive) this.#spinner.text = text
  }

  /** Download progress: live on a terminal; elsewhere a line at the start, at each quarter and at the end. */
  download(label: string, progress: DownloadProgress): void {
    const { downloadedBytes, totalBytes, resumedFromBytes } = progress
    const resumed = resumedFromBytes > 0 ? `, resumed at ${formatBytes(resumedFromBytes)}` : ''
    const fraction = totalBytes === undefined || totalBytes === 0 ? undefined : downloadedBytes / totalBytes
    const amount =
      totalBytes === undefined
        ? formatBytes(downloadedBytes)
        : `${formatBytes(downloadedBytes)} of ${formatBytes(totalBytes)} (${Math.floor((fraction ?? 0) * 100)}%)`
    const text = `${label}: ${amount}${resumed}`
    if (this.interactive) {
      const filled = Math.round((fraction ?? 0) * BAR_WIDTH)
      const bar = fraction === undefined ? '' : ` ${'█'.repeat(filled)}${'░'.repeat(BAR_WIDTH - filled)}`
      this.update(`${label}:${bar} ${amount}${resumed}`)
      return
    }
    const quarter = fraction === undefined ? 0 : Math.floor(fraction * 4)
    if (quarter > this.#lastQuarter) {
      this.#lastQuarter = quarter
      this.#stream.write(`${text}\n`)
    }
  }

  /** Ends the current step as done, leaving `text` (when given) as its line. */
  succeed(text?: string): void {
    if (this.interactive) this.#spinner.succeed(text)
    else if (text !== undefined) this.#stream.write(`${text}\n`)
  }

  /** Ends the current step silently (the caller prints the error). */
  stop(): void {
    if (this.interactive) this.#spinner.stop()
  }
}

/**
 * A download progress callback for commands that otherwise log (like `start`): shows the download of `label` on
 * stderr while it runs, and a last line when it completes.
 */
export function downloadProgressReporter(label: string): (progress: DownloadProgress) => void {
  let display: ProgressDisplay | undefined
  return (progress) => {
    if (display === undefined) {
      display = new ProgressDisplay()
      display.step(`Downloading ${label}`)
    }
    display.download(`Downloading ${label}`, progress)
    if (progress.totalBytes !== undefined && progress.downloadedBytes === progress.totalBytes) {
      display.succeed(`Downloaded ${label} (${formatBytes(progress.totalBytes)})`)
    }
  }
}
