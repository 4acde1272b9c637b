import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import {
  type Clock,
  DEFAULT_IDLE_THRESHOLDS,
  evaluateIdlePolicy,
  IdlePolicy,
  type IdleSignalSource,
  type IdleSignals,
  insideWindow,
  type PolicyStatus,
  parseIdleMode,
} from './idle-policy.js'
import { parseHidIdleSeconds, parsePmsetThermalPressure, readSysfsMaxCelsius } from './idle-signals.js'

const AWAY: IdleSignals = {
  userIdleSeconds: 3_600,
  onBattery: false,
  batteryPercent: null,
  thermalPressure: false,
  otherCpuFraction: 0.05,
}
const OWNER_BACK: IdleSignals = { ...AWAY, userIdleSeconds: 1 }

class FakeClock implements Clock {
  nowMs = Date.UTC(2025, 0, 1, 12)
  readonly #timers = new Map<number, { atMs: number; callback: () => void }>()
  #next = 1
  now(): number {
    return this.nowMs
  }
  setTimeout(callback: () => void, ms: number): unknown {
    const id = this.#next++
    this.#timers.set(id, { atMs: this.nowMs + ms, callback })
    return id
  }
  clearTimeout(handle: unknown): void {
    this.#timers.delete(handle as number)
  }
  advance(ms: number): void {
    const until = this.nowMs + ms
    for (;;) {
      const due = [...this.#timers.entries()].filter(([, t]) => t.atMs <= until).sort((a, b) => a[1].atMs - b[1].atMs)
      const first = due[0]
      if (first === undefined) break
      this.#timers.delete(first[0])
      this.nowMs = first[1].atMs
      first[1].callback()
    }
    this.nowMs = until
  }
  get pending(): number {
    return this.#timers.size
  }
}

class FakeSignals implements IdleSignalSource {
  current: IdleSignals = AWAY
  readonly notes: string[] = []
  async read(): Promise<IdleSignals> {
    return this.current
  }
}

function harness(options: { graceMs?: number } = {}) {
  const clock = new FakeClock()
  const source = new FakeSignals()
  const changes: PolicyStatus[] = []
  const cancelled: string[] = []
  const running = { count: 0 }
  const policy = new IdlePolicy({
    mode: { kind: 'idle' },
    source,
    clock,
    graceMs: options.graceMs ?? 10_000,
    // Polls are driven by the test.
    pollIntervalMs: 1e12,
    inFlight: () => running.count,
    cancelInFlight: (reason) => {
      cancelled.push(reason)
    },
    onChange: (status) => changes.push(status),
  })
  return { clock, source, changes, cancelled, running, policy, states: () => changes.map((c) => c.state) }
}

describe('parseIdleMode', () => {
  it('accepts idle, always and HH:MM-HH:MM windows', () => {
    expect(parseIdleMode('idle')).toEqual({ kind: 'idle' })
    expect(parseIdleMode('always')).toEqual({ kind: 'always' })
    expect(parseIdleMode('22:00-07:30')).toEqual({
      kind: 'window',
      startMinute: 22 * 60,
      endMinute: 7 * 60 + 30,
      text: '22:00-07:30',
    })
  })

  it.each(['', 'sometimes', '24:00-01:00', '9:00-17:00', '09:00', '09:00-09:00', '09:00-10:00-11:00', '09:60-10:00'])(
    'refuses %j',
    (value) => {
      expect(() => parseIdleMode(value)).toThrow()
    },
  )

  it('treats windows as start-inclusive, end-exclusive, crossing midnight', () => {
    const night = { startMinute: 22 * 60, endMinute: 7 * 60 }
    const at = (h: number, m = 0) => new Date(2025, 0, 1, h, m)
    expect(insideWindow(night, at(22))).toBe(true)
    expect(insideWindow(night, at(3))).toBe(true)
    expect(insideWindow(night, at(6, 59))).toBe(true)
    expect(insideWindow(night, at(7))).toBe(false)
    expect(insideWindow(night, at(12))).toBe(false)
    const day = { startMinute: 9 * 60, endMinute: 17 * 60 }
    expect(insideWindow(day, at(9))).toBe(true)
    expect(insideWindow(day, at(17))).toBe(false)
    expect(insideWindow(day, at(8, 59))).toBe(false)
  })
})

describe('evaluateIdlePolicy', () => {
  const idle = { kind: 'idle' } as const
  const noon = new Date(2025, 0, 1, 12)

  it('serves when the owner is away, and pauses the moment input is recent', () => {
    expect(evaluateIdlePolicy(idle, AWAY, noon)).toEqual({ serve: true })
    const decision = evaluateIdlePolicy(idle, OWNER_BACK, noon)
    expect(decision.serve).toBe(false)
    expect(decision).toMatchObject({ reason: expect.stringContaining('owner active') })
    const atThreshold = { ...AWAY, userIdleSeconds: DEFAULT_IDLE_THRESHOLDS.userIdleSeconds }
    expect(evaluateIdlePolicy(idle, atThreshold, noon)).toEqual({ serve: true })
  })

  it('counts an unavailable input signal as idle', () => {
    expect(evaluateIdlePolicy(idle, { ...AWAY, userIdleSeconds: null }, noon)).toEqual({ serve: true })
  })

  it.each([
    [{ onBattery: true }, 'on battery power'],
    [{ batteryPercent: 10 }, 'battery below 20%'],
    [{ thermalPressure: true }, 'thermal pressure'],
    [{ otherCpuFraction: 0.8 }, 'other programs are using more than 50% of the CPU'],
  ] as const)('pauses for %j', (change, reason) => {
    expect(evaluateIdlePolicy(idle, { ...AWAY, ...change }, noon)).toEqual({ serve: false, reason })
    // A window protects the owner the same way.
    expect(evaluateIdlePolicy(parseIdleMode('09:00-17:00'), { ...AWAY, ...change }, noon)).toEqual({
      serve: false,
      reason,
    })
  })

  it('serves a charged battery on AC power', () => {
    expect(evaluateIdlePolicy(idle, { ...AWAY, onBattery: false, batteryPercent: 80 }, noon)).toEqual({ serve: true })
  })

  it('serves in a window whether or not the owner is at the keyboard, and never outside it', () => {
    const window = parseIdleMode('09:00-17:00')
    expect(evaluateIdlePolicy(window, OWNER_BACK, noon)).toEqual({ serve: true })
    expect(evaluateIdlePolicy(window, AWAY, new Date(2025, 0, 1, 20))).toEqual({
      serve: false,
      reason: 'outside the schedule window 09:00-17:00',
    })
  })

  it('always serves with --when always', () => {
    const worst: IdleSignals = {
      userIdleSeconds: 0,
      onBattery: true,
      batteryPercent: 1,
      thermalPressure: true,
      otherCpuFraction: 1,
    }
    expect(evaluateIdlePolicy({ kind: 'always' }, worst, noon)).toEqual({ serve: true })
  })
})

describe('IdlePolicy state machine', () => {
  it('starts serving when the owner is away, paused (with reason) when not', async () => {
    const away = harness()
    await away.policy.start()
    expect(away.policy.state).toBe('serving')
    expect(away.policy.accepting).toBe(true)

    const present = harness()
    present.source.current = OWNER_BACK
    await present.policy.start()
    expect(present.policy.state).toBe('paused')
    expect(present.policy.accepting).toBe(false)
    expect(present.policy.status.reason).toContain('owner active')
    expect(present.changes).toHaveLength(1)
  })

  it('pauses at once when the owner returns with nothing running', async () => {
    const h = harness()
    await h.policy.start()
    h.source.current = OWNER_BACK
    await h.policy.poll()
    expect(h.policy.state).toBe('paused')
    expect(h.states()).toEqual(['serving', 'paused'])
    expect(h.cancelled).toEqual([])
  })

  it('owner returns mid-request: drains, takes no new work, and pauses when the request finishes in the grace period', async () => {
    const h = harness({ graceMs: 10_000 })
    await h.policy.start()
    h.running.count = 1
    h.source.current = OWNER_BACK
    await h.policy.poll()
    expect(h.policy.state).toBe('draining')
    expect(h.policy.accepting).toBe(false)
    expect(h.changes.at(-1)?.reason).toContain('owner active')

    h.clock.advance(4_000)
    expect(h.policy.state).toBe('draining')
    h.running.count = 0
    h.policy.requestFinished()
    expect(h.policy.state).toBe('paused')
    h.clock.advance(60_000)
    expect(h.cancelled).toEqual([])
    expect(h.states()).toEqual(['serving', 'draining', 'paused'])
  })

  it('owner returns mid-request: cancels what still runs when the grace period ends', async () => {
    const h = harness({ graceMs: 10_000 })
    await h.policy.start()
    h.running.count = 2
    h.source.current = OWNER_BACK
    await h.policy.poll()
    h.clock.advance(9_999)
    expect(h.cancelled).toEqual([])
    expect(h.policy.state).toBe('draining')
    h.clock.advance(1)
    expect(h.cancelled).toHaveLength(1)
    expect(h.cancelled[0]).toContain('owner active')
    expect(h.policy.state).toBe('paused')
    // The cancelled requests finishing later change nothing.
    h.running.count = 0
    h.policy.requestFinished()
    expect(h.states()).toEqual(['serving', 'draining', 'paused'])
  })

  it('a draining node whose owner leaves again serves on, and the grace timer no longer fires', async () => {
    const h = harness()
    await h.policy.start()
    h.running.count = 1
    h.source.current = OWNER_BACK
    await h.policy.poll()
    expect(h.policy.state).toBe('draining')
    h.source.current = AWAY
    await h.policy.poll()
    expect(h.policy.state).toBe('serving')
    h.clock.advance(60_000)
    expect(h.cancelled).toEqual([])
    expect(h.policy.state).toBe('serving')
  })

  it('returns to serving once the machine is idle again, and reports only real changes', async () => {
    const h = harness()
    await h.policy.start()
    h.source.current = OWNER_BACK
    await h.policy.poll()
    await h.policy.poll()
    await h.policy.poll()
    h.source.current = { ...OWNER_BACK, onBattery: true }
    await h.policy.poll()
    expect(h.policy.status.reason).toBe('on battery power')
    h.source.current = AWAY
    await h.policy.poll()
    expect(h.policy.state).toBe('serving')
    expect(h.policy.status.reason).toBeUndefined()
    expect(h.changes.map((c) => [c.state, c.reason])).toEqual([
      ['serving', undefined],
      ['paused', expect.stringContaining('owner active')],
      ['paused', 'on battery power'],
      ['serving', undefined],
    ])
  })

  it('polls on its own clock and goes offline on stop', async () => {
    const clock = new FakeClock()
    const source = new FakeSignals()
    const states: string[] = []
    const policy = new IdlePolicy({
      mode: { kind: 'idle' },
      source,
      clock,
      pollIntervalMs: 1_000,
      inFlight: () => 0,
      cancelInFlight: () => {},
      onChange: (status) => states.push(status.state),
    })
    await policy.start()
    source.current = OWNER_BACK
    clock.advance(1_000)
    await new Promise((resolve) => setImmediate(resolve))
    expect(policy.state).toBe('paused')
    policy.stop()
    expect(policy.state).toBe('offline')
    expect(states).toEqual(['serving', 'paused', 'offline'])
    await new Promise((resolve) => setImmediate(resolve))
    clock.advance(10_000)
    await new Promise((resolve) => setImmediate(resolve))
    expect(policy.state).toBe('offline')
  })

  it('a failing signal source counts as unavailable signals, not as a crash', async () => {
    const errors: unknown[] = []
    const policy = new IdlePolicy({
      mode: { kind: 'idle' },
      source: {
        notes: [],
        read: () => Promise.reject(new Error('boom')),
      },
      clock: new FakeClock(),
      pollIntervalMs: 1e12,
      inFlight: () => 0,
      cancelInFlight: () => {},
      onChange: () => {},
      onError: (error) => errors.push(error),
    })
    await policy.start()
    expect(policy.state).toBe('serving')
    expect(errors).toHaveLength(1)
  })
})

describe('system signal parsers', () => {
  it('reads HIDIdleTime (nanoseconds) from ioreg', () => {
    const output = '  | |   "HIDIdleTime" = 5123456789\n  | |   "HIDParameters" = {}\n'
    expect(parseHidIdleSeconds(output)).toBeCloseTo(5.123456789)
    expect(parseHidIdleSeconds('nothing here')).toBeNull()
  })

  it('reads thermal pressure from pmset -g therm', () => {
    expect(
      parsePmsetThermalPressure('CPU_Scheduler_Limit \t= 100\nCPU_Available_CPUs \t= 8\nCPU_Speed_Limit \t= 100'),
    ).toBe(false)
    expect(parsePmsetThermalPressure('CPU_Speed_Limit \t= 70')).toBe(true)
    expect(parsePmsetThermalPressure('Note: No thermal warning level has been recorded')).toBe(false)
    expect(parsePmsetThermalPressure('')).toBeNull()
  })
})

describe('Linux temperatures from sysfs', () => {
  it('reads the hottest plausible thermal zone or hwmon sensor, without starting a process', async () => {
    const root = await mkdtemp(join(tmpdir(), 'lull-sysfs-'))
    try {
      const write = async (path: string, text: string) => {
        await mkdir(join(root, path, '..'), { recursive: true })
        await writeFile(join(root, path), text)
      }
      expect(await readSysfsMaxCelsius(root)).toBeNull()
      await write('thermal/thermal_zone0/temp', '45000\n')
      await write('thermal/thermal_zone1/temp', '-40000\n') // a placeholder, not a temperature
      await write('thermal/cooling_device0/temp', '99000\n') // not a zone
      await write('hwmon/hwmon0/temp1_input', '71500\n')
      await write('hwmon/hwmon0/temp1_label', 'Package id 0\n')
      await write('hwmon/hwmon1/temp2_input', 'garbage')
      expect(await readSysfsMaxCelsius(root)).toBe(71.5)
      await write('thermal/thermal_zone2/temp', '93000')
      expect(await readSysfsMaxCelsius(root)).toBe(93)
    } finally {
      await rm(root, { recursive: true, force: true })
    }
  })
})
