export { ModelRejectedError, type ModelRejectionReason } from './errors.js'
export { sha256File } from './file-digest.js'
export {
  DEFAULT_MAX_HEADER_BYTES,
  type GgufHeader,
  type GgufMetadataEntry,
  type GgufTensorInfo,
  readGgufHeader,
} from './gguf-reader.js'
export { checkGgufMetadata, type GgufSummary, validateGgufFile } from './gguf-validator.js'
export { buildLullTinyGguf, ensureLullTinyModel, LULL_TINY_MODEL_ID, type ResolvedModel } from './lull-tiny.js'
export { type ModelPin, pinsFilePath, readPins } from './model-pins.js'
export { modelStoreDirectory } from './model-store.js'
export {
  type PinStatus,
  type PreparedModel,
  type PrepareModelOptions,
  prepareModel,
  TRIAL_LOAD_TIMEOUT_PER_GIB_MS,
} from './prepare-model.js'
export { type ModelSpec, parseModelSpec, resolveModel } from './resolve-model.js'
