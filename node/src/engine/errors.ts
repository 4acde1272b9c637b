/** Every slot of the engine is running a request; try again later or elsewhere. */
export class EngineBusyError extends Error {
  readonly code = 'engine_busy'

  constructor(readonly slots: number) {
    super(`All ${slots} engine slots are busy`)
    this.name = 'EngineBusyError'
  }
}

/** A request's parameters are malformed or out of range; `field` names the offending one. */
export class InvalidParamsError extends Error {
  readonly code = 'invalid_params'

  constructor(
    readonly field: string,
    message: string,
  ) {
    super(`Invalid ${field}: ${message}`)
    this.name = 'InvalidParamsError'
  }
}

/** The engine was disposed; load a new one. */
export class EngineDisposedError extends Error {
  readonly code = 'engine_disposed'

  constructor() {
    super('The engine has been disposed')
    this.name = 'EngineDisposedError'
  }
}
