export { sha256File } from './file-digest.js'
export { buildLullTinyGguf, ensureLullTinyModel, LULL_TINY_MODEL_ID, type ResolvedModel } from './lull-tiny.js'
export { resolveModel } from './resolve-model.js'
