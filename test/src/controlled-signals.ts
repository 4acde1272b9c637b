import type { IdleSignalSource, IdleSignals } from '@lull/node'

/** The owner is away: no input for an hour, on mains power, cool, nothing else busy. */
export const AWAY: IdleSignals = {
  userIdleSeconds: 3_600,
  onBattery: false,
  batteryPercent: null,
  thermalPressure: false,
  otherCpuFraction: 0,
}
/** The owner is back at the keyboard. */
export const OWNER_BACK: IdleSignals = { ...AWAY, userIdleSeconds: 0 }

/** Idle signals the test sets by hand: no real machine is read. */
export class ControlledSignals implements IdleSignalSource {
  current: IdleSignals = AWAY
  readonly notes: string[] = []
  async read(): Promise<IdleSignals> {
    return this.current
  }
}
