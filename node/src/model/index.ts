export {
  InsufficientMemoryError,
  type MemoryFitSuggestion,
  ModelDownloadError,
  type ModelDownloadFailure,
  ModelRejectedError,
  type ModelRejectionReason,
} from './errors.js'
export { sha256File } from './file-digest.js'
export {
  DEFAULT_MAX_HEADER_BYTES,
  type GgufHeader,
  type GgufMetadataEntry,
  type GgufTensorInfo,
  readGgufHeader,
} from './gguf-reader.js'
export { checkGgufMetadata, type GgufSummary, validateGgufFile } from './gguf-validator.js'
export {
  DEFAULT_HF_ENDPOINT,
  type HfModelUri,
  hfEndpoint,
  isHfUri,
  parseHfUri,
  resolveHfUri,
} from './hf-uri.js'
export { buildLullTinyGguf, ensureLullTinyModel, LULL_TINY_MODEL_ID, type ResolvedModel } from './lull-tiny.js'
export {
  checkModelFitsInMemory,
  estimateModelMemory,
  formatBytes,
  MEMORY_HEADROOM_BYTES,
  type MemoryEstimate,
  type MemoryFitOptions,
} from './memory-fit.js'
export {
  DEFAULT_DOWNLOAD_RETRIES,
  type DownloadedFile,
  type DownloadOptions,
  type DownloadProgress,
  downloadModelFile,
} from './model-download.js'
export {
  listModels,
  type ModelEntry,
  ModelInUseError,
  ModelNotFoundError,
  type RemoveResult,
  removeModel,
} from './model-inventory.js'
export { type ModelPin, pinsFilePath, readPins } from './model-pins.js'
export { modelStoreDirectory } from './model-store.js'
export {
  type DownloadSummary,
  type PinStatus,
  type PreparedModel,
  type PrepareModelOptions,
  prepareModel,
  TRIAL_LOAD_TIMEOUT_PER_GIB_MS,
} from './prepare-model.js'
export { type ModelSpec, parseModelSpec, resolveModel } from './resolve-model.js'
