import {
  type Benchmark,
  type CatalogueMessage,
  type HardwareSummary,
  type NodeCertificate,
  verifyNodeCertificate,
} from '@lull/proto'

/** A node serving a model, with a certificate the client has verified. */
export interface NodeInfo {
  nodeId: string
  modelDigest: string
  hardware: HardwareSummary
  slots: number
  busySlots: number
  benchmark: Benchmark
  /** When the node's current key certificate expires (ms since the epoch). */
  certificateExpiresAtMs: number
  certificate: NodeCertificate
}

export interface ModelInfo {
  id: string
  nodes: NodeInfo[]
}

/**
 * Keeps only nodes whose certificate is signed by their own identity key, names the model they are listed under,
 * and is valid now. A coordinator cannot slip in a key of its own: it cannot sign for a node's peer id.
 */
export async function verifiedModels(catalogue: CatalogueMessage, nowMs: number): Promise<ModelInfo[]> {
  const models: ModelInfo[] = []
  for (const model of catalogue.models) {
    const nodes: NodeInfo[] = []
    for (const node of model.nodes) {
      const valid = await verifyNodeCertificate(node.certificate, {
        nowMs,
        nodeId: node.nodeId,
        modelId: model.modelId,
      })
      if (!valid) continue
      nodes.push({
        nodeId: node.nodeId,
        modelDigest: node.certificate.modelDigest,
        hardware: node.certificate.hardware,
        slots: node.slots,
        busySlots: node.busySlots,
        benchmark: node.benchmark,
        certificateExpiresAtMs: node.certificate.notAfterMs,
        certificate: node.certificate,
      })
    }
    if (nodes.length > 0) models.push({ id: model.modelId, nodes })
  }
  return models
}

/** Up to `count` candidates: nodes with free slots first, in random order within each group. */
export function chooseCandidates(
  nodes: readonly NodeInfo[],
  count: number,
  random: () => number = Math.random,
): NodeInfo[] {
  const shuffled = nodes
    .map((node) => ({ node, key: random() }))
    .sort((a, b) => a.key - b.key)
    .map(({ node }) => node)
  const free = shuffled.filter((node) => node.busySlots < node.slots)
  const busy = shuffled.filter((node) => node.busySlots >= node.slots)
  return [...free, ...busy].slice(0, count)
}
