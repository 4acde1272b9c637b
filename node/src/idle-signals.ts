import { execFile } from 'node:child_process'
import { readdir, readFile } from 'node:fs/promises'
import { cpus } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import si from 'systeminformation'
import type { IdleSignalSource, IdleSignals } from './idle-policy.js'

const run = promisify(execFile)

/** Battery and temperature change slowly and cost more to read: they are re-read at most this often. */
export const SLOW_SIGNAL_CACHE_MS = 15_000
/** On Linux, the CPU counts as under thermal pressure at or above this temperature. */
export const THERMAL_HOT_CELSIUS = 90
const COMMAND_TIMEOUT_MS = 2_000

/** Parses `ioreg -c IOHIDSystem` output: HIDIdleTime is in nanoseconds. */
export function parseHidIdleSeconds(output: string): number | null {
  const match = /"HIDIdleTime"\s*=\s*(\d+)/.exec(output)
  return match === null ? null : Number(match[1]) / 1e9
}

/** Parses `pmset -g therm`: a CPU speed limit below 100 means the OS is throttling for heat. */
export function parsePmsetThermalPressure(output: string): boolean | null {
  const match = /CPU_Speed_Limit\s*=\s*(\d+)/.exec(output)
  if (match !== null) return Number(match[1]) < 100
  return /No thermal warning level has been recorded/i.test(output) ? false : null
}

/** Readings outside this range (°C) are a sensor's dummy value or a fault, not a temperature. */
const PLAUSIBLE_CELSIUS = { above: 0, below: 150 }

/**
 * The hottest temperature Linux reports, in °C, read from sysfs: every thermal zone (`thermal/thermal_zoneN/temp`)
 * and hwmon sensor (`hwmon/hwmonN/tempM_input`), in millidegrees. Null when there is none (virtual machines
 * often have none). No process is started: systeminformation's `cpuTemperature()` runs four shell commands with
 * `spawnSync` on Linux, which held the node's event loop (and so its streaming answers) for ~20 ms each time.
 */
export async function readSysfsMaxCelsius(classRoot = '/sys/class'): Promise<number | null> {
  const files: string[] = []
  const listed = async (dir: string): Promise<string[]> => await readdir(dir).catch(() => [])
  for (const zone of await listed(join(classRoot, 'thermal'))) {
    if (zone.startsWith('thermal_zone')) files.push(join(classRoot, 'thermal', zone, 'temp'))
  }
  for (const monitor of await listed(join(classRoot, 'hwmon'))) {
    for (const file of await listed(join(classRoot, 'hwmon', monitor))) {
      if (/^temp\d+_input$/.test(file)) files.push(join(classRoot, 'hwmon', monitor, file))
    }
  }
  const readings = await Promise.all(
    files.map(async (file) => Number((await readFile(file, 'utf8').catch(() => '')).trim()) / 1000),
  )
  const plausible = readings.filter(
    (celsius) => Number.isFinite(celsius) && celsius > PLAUSIBLE_CELSIUS.above && celsius < PLAUSIBLE_CELSIUS.below,
  )
  return plausible.length === 0 ? null : Math.max(...plausible)
}

interface CpuSample {
  busyMs: number
  totalMs: number
  ownMicros: number
}

function sampleCpu(): CpuSample {
  let busyMs = 0
  let totalMs = 0
  for (const { times } of cpus()) {
    const total = times.user + times.nice + times.sys + times.idle + times.irq
    totalMs += total
    busyMs += total - times.idle
  }
  const own = process.cpuUsage()
  return { busyMs, totalMs, ownMicros: own.user + own.system }
}

/**
 * Reads this machine's idle signals: user input idle time (macOS `ioreg` HIDIdleTime; Linux `xprintidle` when
 * installed), battery (systeminformation), thermal pressure (macOS `pmset -g therm`; Linux the hottest sysfs
 * sensor; elsewhere systeminformation's CPU temperature), and the CPU used by processes other than this one (all cores' busy time minus this process's).
 */
export class SystemIdleSignals implements IdleSignalSource {
  readonly #notes: string[] = []
  #idleUnavailable = false
  #previousCpu: CpuSample = sampleCpu()
  #battery: { atMs: number; onBattery: boolean | null; percent: number | null } | undefined
  #thermal: { atMs: number; pressure: boolean | null } | undefined

  get notes(): readonly string[] {
    return this.#notes
  }

  async read(): Promise<IdleSignals> {
    const [userIdleSeconds, battery, thermalPressure] = await Promise.all([
      this.#userIdleSeconds(),
      this.#readBattery(),
      this.#readThermal(),
    ])
    return {
      userIdleSeconds,
      onBattery: battery.onBattery,
      batteryPercent: battery.percent,
      thermalPressure,
      otherCpuFraction: this.#otherCpuFraction(),
    }
  }

  async #userIdleSeconds(): Promise<number | null> {
    if (this.#idleUnavailable) return null
    try {
      if (process.platform === 'darwin') {
        const { stdout } = await run('ioreg', ['-c', 'IOHIDSystem', '-d', '4'], {
          timeout: COMMAND_TIMEOUT_MS,
          maxBuffer: 8 * 1024 * 1024,
        })
        const seconds = parseHidIdleSeconds(stdout)
        if (seconds !== null) return seconds
        throw new Error('no HIDIdleTime in ioreg output')
      }
      if (process.platform === 'linux') {
        const { stdout } = await run('xprintidle', [], { timeout: COMMAND_TIMEOUT_MS })
        const ms = Number(stdout.trim())
        if (Number.isFinite(ms) && ms >= 0) return ms / 1000
        throw new Error('unexpected xprintidle output')
      }
      throw new Error(`not supported on ${process.platform}`)
    } catch {
      this.#idleUnavailable = true
      this.#notes.push(
        process.platform === 'linux'
          ? 'user input idle time is unavailable (install xprintidle under X11; Wayland and headless machines have none): the machine counts as idle whenever the other signals allow; use --when HH:MM-HH:MM to serve only at set hours'
          : 'user input idle time is unavailable on this system: the machine counts as idle whenever the other signals allow; use --when HH:MM-HH:MM to serve only at set hours',
      )
      return null
    }
  }

  async #readBattery(): Promise<{ onBattery: boolean | null; percent: number | null }> {
    const now = Date.now()
    if (this.#battery === undefined || now - this.#battery.atMs >= SLOW_SIGNAL_CACHE_MS) {
      try {
        const battery = await si.battery()
        this.#battery = battery.hasBattery
          ? { atMs: now, onBattery: !battery.acConnected && !battery.isCharging, percent: battery.percent }
          : { atMs: now, onBattery: false, percent: null }
      } catch {
        this.#battery = { atMs: now, onBattery: null, percent: null }
      }
    }
    return this.#battery
  }

  async #readThermal(): Promise<boolean | null> {
    const now = Date.now()
    if (this.#thermal === undefined || now - this.#thermal.atMs >= SLOW_SIGNAL_CACHE_MS) {
      let pressure: boolean | null = null
      try {
        if (process.platform === 'darwin') {
          const { stdout } = await run('pmset', ['-g', 'therm'], { timeout: COMMAND_TIMEOUT_MS })
          pressure = parsePmsetThermalPressure(stdout)
        } else if (process.platform === 'linux') {
          const celsius = await readSysfsMaxCelsius()
          pressure = celsius === null ? null : celsius >= THERMAL_HOT_CELSIUS
        } else {
          const { main } = await si.cpuTemperature()
          pressure = typeof main === 'number' && main > 0 ? main >= THERMAL_HOT_CELSIUS : null
        }
      } catch {
        pressure = null
      }
      this.#thermal = { atMs: now, pressure }
    }
    return this.#thermal.pressure
  }

  #otherCpuFraction(): number | null {
    const current = sampleCpu()
    const previous = this.#previousCpu
    this.#previousCpu = current
    const totalMs = current.totalMs - previous.totalMs
    if (totalMs <= 0) return null
    const busy = (current.busyMs - previous.busyMs) / totalMs
    const own = (current.ownMicros - previous.ownMicros) / 1000 / totalMs
    return Math.min(1, Math.max(0, busy - own))
  }
}
