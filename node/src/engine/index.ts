export { type DirectGenerationOptions, generateDirectly } from './direct-reference.js'
export { DEFAULT_CONTEXT_SIZE_TOKENS, Engine } from './engine.js'
export { EngineBusyError, EngineDisposedError, InvalidParamsError } from './errors.js'
export { MAX_STOP_STRINGS, MAX_TEMPERATURE } from './sampling-params.js'
export { DEFAULT_TRIAL_LOAD_TIMEOUT_MS, type TrialLoadOptions, trialLoadModel } from './trial-load.js'
export type {
  BenchmarkResult,
  ChatMessage,
  EngineOptions,
  FinishReason,
  GenerateParams,
  GenerateResult,
} from './types.js'
