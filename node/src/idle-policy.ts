/**
 * The idle policy: when this machine may serve. A pure evaluation of signals (user input idle time, battery,
 * thermal pressure, CPU used by other programs, the schedule window) and a small state machine that turns its
 * decisions into the node's state: `serving`, `paused` (reason), `draining` (reason; in-flight requests finish
 * within a grace period) and `offline`. Signals come from an injectable {@link IdleSignalSource} and time from an
 * injectable {@link Clock}, so every transition is testable without touching the real machine.
 */

/** When the node may serve: `idle` (the owner is away), `always`, or a daily window in local time. */
export type IdleMode =
  | { kind: 'idle' }
  | { kind: 'always' }
  | { kind: 'window'; startMinute: number; endMinute: number; text: string }

/** One reading of the machine. `null` means the signal is not available on this system. */
export interface IdleSignals {
  /** Seconds since the last keyboard or mouse input. */
  userIdleSeconds: number | null
  /** Running from the battery (no AC power). */
  onBattery: boolean | null
  /** Battery charge, 0..100. */
  batteryPercent: number | null
  /** The OS reports thermal pressure (CPU speed limited, or the CPU at or above its hot threshold). */
  thermalPressure: boolean | null
  /** Share of the whole machine's CPU (0..1) used by processes other than this node. */
  otherCpuFraction: number | null
}

export interface IdleSignalSource {
  read(): Promise<IdleSignals>
  /** Caveats about this system's signals, e.g. that user input idle time is unavailable. */
  readonly notes: readonly string[]
}

/** Thresholds of the idle policy. Defaults in {@link DEFAULT_IDLE_THRESHOLDS}. */
export interface IdleThresholds {
  /** In `idle` mode, serve only once there has been no user input for this long. */
  userIdleSeconds: number
  /** Pause below this battery charge, even on AC power (the owner will want a charged machine). */
  lowBatteryPercent: number
  /** Pause while other programs use more than this share of the machine's CPU. */
  otherCpuFraction: number
}

export const DEFAULT_IDLE_THRESHOLDS: Readonly<IdleThresholds> = Object.freeze({
  userIdleSeconds: 120,
  lowBatteryPercent: 20,
  otherCpuFraction: 0.5,
})
/** How long in-flight requests may run on after the owner returns before they are cancelled and handed back. */
export const DEFAULT_GRACE_MS = 10_000
/** How often the signals are read. The owner returning is noticed within this. */
export const IDLE_POLL_INTERVAL_MS = 1_000

const HH_MM = /^([01]\d|2[0-3]):([0-5]\d)$/

/** Parses `--when`: `idle`, `always` or `HH:MM-HH:MM` (local time; a window may cross midnight). */
export function parseIdleMode(value: string): IdleMode {
  const text = value.trim()
  if (text === 'idle') return { kind: 'idle' }
  if (text === 'always') return { kind: 'always' }
  const [start, end, ...rest] = text.split('-')
  const startMatch = HH_MM.exec(start ?? '')
  const endMatch = HH_MM.exec(end ?? '')
  if (rest.length > 0 || startMatch === null || endMatch === null) {
    throw new Error(`expected idle, always or a window such as 22:00-07:00, got "${value}"`)
  }
  const startMinute = Number(startMatch[1]) * 60 + Number(startMatch[2])
  const endMinute = Number(endMatch[1]) * 60 + Number(endMatch[2])
  if (startMinute === endMinute) throw new Error(`the window "${value}" is empty; use --when always to serve all day`)
  return { kind: 'window', startMinute, endMinute, text }
}

/** Whether local time `at` is inside the window (start inclusive, end exclusive; may cross midnight). */
export function insideWindow(mode: { startMinute: number; endMinute: number }, at: Date): boolean {
  const minute = at.getHours() * 60 + at.getMinutes()
  return mode.startMinute < mode.endMinute
    ? minute >= mode.startMinute && minute < mode.endMinute
    : minute >= mode.startMinute || minute < mode.endMinute
}

/** Reasons are stable strings (details live in the signals), so a reason change is a real change. */
export type IdleDecision = { serve: true } | { serve: false; reason: string }

/**
 * Decides from one reading whether the node may serve. `always` serves regardless of signals. `idle` and window
 * modes both protect the owner: battery, low battery, thermal pressure and busy CPU pause the node; `idle` also
 * waits for {@link IdleThresholds.userIdleSeconds} without input (an unavailable input signal counts as idle),
 * and a window serves only inside its hours, whether or not someone is at the keyboard.
 */
export function evaluateIdlePolicy(
  mode: IdleMode,
  signals: IdleSignals,
  at: Date,
  thresholds: IdleThresholds = DEFAULT_IDLE_THRESHOLDS,
): IdleDecision {
  if (mode.kind === 'always') return { serve: true }
  if (mode.kind === 'window' && !insideWindow(mode, at)) {
    return { serve: false, reason: `outside the schedule window ${mode.text}` }
  }
  if (signals.onBattery === true) return { serve: false, reason: 'on battery power' }
  if (signals.batteryPercent !== null && signals.batteryPercent < thresholds.lowBatteryPercent) {
    return { serve: false, reason: `battery below ${thresholds.lowBatteryPercent}%` }
  }
  if (signals.thermalPressure === true) return { serve: false, reason: 'thermal pressure' }
  if (signals.otherCpuFraction !== null && signals.otherCpuFraction > thresholds.otherCpuFraction) {
    return {
      serve: false,
      reason: `other programs are using more than ${Math.round(thresholds.otherCpuFraction * 100)}% of the CPU`,
    }
  }
  if (
    mode.kind === 'idle' &&
    signals.userIdleSeconds !== null &&
    signals.userIdleSeconds < thresholds.userIdleSeconds
  ) {
    return { serve: false, reason: `owner active (input within the last ${thresholds.userIdleSeconds} s)` }
  }
  return { serve: true }
}

export interface Clock {
  now(): number
  setTimeout(callback: () => void, ms: number): unknown
  clearTimeout(handle: unknown): void
}

export const systemClock: Clock = {
  now: () => Date.now(),
  setTimeout: (callback, ms) => {
    const timer = setTimeout(callback, ms)
    timer.unref()
    return timer
  },
  clearTimeout: (handle) => clearTimeout(handle as NodeJS.Timeout),
}

export type PolicyState = 'serving' | 'paused' | 'draining' | 'offline'

export interface PolicyStatus {
  state: PolicyState
  /** Why the node is paused or draining (absent while serving). */
  reason?: string
  /** The latest reading, or null before the first (or in `always` mode, where signals are not read). */
  signals: IdleSignals | null
  /** When the state last changed (ms since the epoch). */
  sinceMs: number
}

export interface IdlePolicyOptions {
  mode: IdleMode
  source: IdleSignalSource
  clock?: Clock
  /** @default DEFAULT_GRACE_MS */
  graceMs?: number
  /** @default IDLE_POLL_INTERVAL_MS */
  pollIntervalMs?: number
  thresholds?: IdleThresholds
  /** Requests running now. */
  inFlight: () => number
  /** The grace period ran out: cancel every request still running and hand it back. */
  cancelInFlight: (reason: string) => void
  /** Called on every state or reason change. */
  onChange: (status: PolicyStatus) => void
  /** A signal could not be read. */
  onError?: (error: unknown) => void
}

/**
 * The state machine:
 *
 * ```
 * offline ──start──► serving | paused(reason)
 * serving ──pause decision, nothing running──► paused(reason)
 * serving ──pause decision, requests running──► draining(reason) ──last one finishes──► paused(reason)
 *                                               draining ──grace period over: cancel the rest──► paused(reason)
 * paused | draining ──serve decision──► serving
 * any ──stop──► offline
 * ```
 */
export class IdlePolicy {
  readonly mode: IdleMode
  readonly graceMs: number
  readonly #options: IdlePolicyOptions
  readonly #clock: Clock
  readonly #thresholds: IdleThresholds
  #state: PolicyState = 'offline'
  #reason: string | undefined
  #signals: IdleSignals | null = null
  #sinceMs: number
  #graceTimer: unknown
  #pollTimer: unknown
  #running = false
  #polling: Promise<void> | undefined

  constructor(options: IdlePolicyOptions) {
    this.#options = options
    this.mode = options.mode
    this.#clock = options.clock ?? systemClock
    this.graceMs = options.graceMs ?? DEFAULT_GRACE_MS
    this.#thresholds = options.thresholds ?? DEFAULT_IDLE_THRESHOLDS
    this.#sinceMs = this.#clock.now()
  }

  get state(): PolicyState {
    return this.#state
  }

  /** Whether a new request may start now. */
  get accepting(): boolean {
    return this.#state === 'serving'
  }

  get status(): PolicyStatus {
    return {
      state: this.#state,
      ...(this.#reason === undefined ? {} : { reason: this.#reason }),
      signals: this.#signals,
      sinceMs: this.#sinceMs,
    }
  }

  get notes(): readonly string[] {
    return this.#options.source.notes
  }

  /** Reads the signals once, enters `serving` or `paused`, and keeps polling until {@link stop}. */
  async start(): Promise<void> {
    this.#running = true
    await this.poll()
    this.#schedulePoll()
  }

  /** Reads the signals and applies the decision. Polls never overlap. */
  poll(): Promise<void> {
    this.#polling ??= this.#pollOnce().finally(() => {
      this.#polling = undefined
    })
    return this.#polling
  }

  /** Tells the policy that a request finished: a draining node with nothing left running is paused. */
  requestFinished(): void {
    if (this.#state === 'draining' && this.#options.inFlight() === 0) this.#enter('paused', this.#reason)
  }

  /** Goes offline and stops polling. */
  stop(): void {
    this.#running = false
    this.#clock.clearTimeout(this.#pollTimer)
    this.#clearGrace()
    this.#enter('offline', undefined)
  }

  /** Applies one decision (exposed for tests and for callers that evaluate themselves). */
  apply(decision: IdleDecision): void {
    if (!this.#running) return
    if (decision.serve) {
      this.#clearGrace()
      this.#enter('serving', undefined)
      return
    }
    const { reason } = decision
    switch (this.#state) {
      case 'offline':
      case 'paused':
        this.#enter('paused', reason)
        break
      case 'draining':
        this.#enter('draining', reason)
        break
      case 'serving':
        if (this.#options.inFlight() === 0) {
          this.#enter('paused', reason)
        } else {
          this.#enter('draining', reason)
          this.#graceTimer = this.#clock.setTimeout(() => this.#graceOver(), this.graceMs)
        }
        break
    }
  }

  async #pollOnce(): Promise<void> {
    let signals: IdleSignals | null = null
    if (this.mode.kind !== 'always') {
      try {
        signals = await this.#options.source.read()
      } catch (error) {
        this.#options.onError?.(error)
        signals = {
          userIdleSeconds: null,
          onBattery: null,
          batteryPercent: null,
          thermalPressure: null,
          otherCpuFraction: null,
        }
      }
    }
    this.#signals = signals
    const empty: IdleSignals = {
      userIdleSeconds: null,
      onBattery: null,
      batteryPercent: null,
      thermalPressure: null,
      otherCpuFraction: null,
    }
    this.apply(evaluateIdlePolicy(this.mode, signals ?? empty, new Date(this.#clock.now()), this.#thresholds))
  }

  #schedulePoll(): void {
    if (!this.#running) return
    this.#pollTimer = this.#clock.setTimeout(() => {
      this.poll()
        .catch((error: unknown) => this.#options.onError?.(error))
        .finally(() => this.#schedulePoll())
    }, this.#options.pollIntervalMs ?? IDLE_POLL_INTERVAL_MS)
  }

  #graceOver(): void {
    this.#graceTimer = undefined
    if (this.#state !== 'draining') return
    const reason = this.#reason ?? 'paused'
    this.#enter('paused', reason)
    if (this.#options.inFlight() > 0) this.#options.cancelInFlight(reason)
  }

  #clearGrace(): void {
    if (this.#graceTimer !== undefined) this.#clock.clearTimeout(this.#graceTimer)
    this.#graceTimer = undefined
  }

  #enter(state: PolicyState, reason: string | undefined): void {
    if (state === this.#state && reason === this.#reason) return
    if (state !== this.#state) this.#sinceMs = this.#clock.now()
    if (state !== 'draining') this.#clearGrace()
    this.#state = state
    this.#reason = reason
    this.#options.onChange(this.status)
  }
}
