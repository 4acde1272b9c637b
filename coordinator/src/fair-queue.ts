import { DEFAULT_CLIENT_WEIGHT, HIGHEST_PRIORITY } from './constants.js'

/** A queued item's place: its priority, its client and its start-time fair-queuing tag. */
interface Slot<T> {
  item: T
  clientId: string
  priority: number
  /** Virtual start time: when, in the queue's virtual time, this item's turn begins. */
  start: number
  /** Virtual finish time: `start + 1 / weight`; the client's next item starts no earlier. */
  finish: number
  /** Arrival order, breaking ties between equal start tags. */
  sequence: number
}

export interface FairQueueOptions {
  /** A client's share when the queue is contended: twice the weight, twice the turns. @default () => 1 */
  clientWeight?: (clientId: string) => number
}

/**
 * One model's waiting requests, served by priority (highest first) and, within a priority, fairly between clients:
 * start-time fair queuing (SFQ). Each item gets a virtual start tag `max(V, the client's last finish tag)` and a
 * finish tag `start + 1 / weight`; items are served in start-tag order, and serving one moves the virtual time `V`
 * to its start tag. A client that floods the queue spreads its own items far along the virtual clock, so another
 * client's item, tagged at the current `V`, is served within a turn or two instead of after the whole flood.
 *
 * An item that comes back (its node failed it before the first token) keeps its tag: it goes ahead of everything
 * that arrived after it, without charging its client again.
 */
export class FairQueue<T extends object> {
  readonly #levels: Slot<T>[][] = Array.from({ length: HIGHEST_PRIORITY + 1 }, () => [])
  readonly #slots = new Map<T, Slot<T>>()
  /** Tags of items served once, for when they come back. */
  readonly #served = new WeakMap<T, Slot<T>>()
  readonly #lastFinish = new Map<string, number>()
  readonly #queuedPerClient = new Map<string, number>()
  readonly #clientWeight: (clientId: string) => number
  #virtualTime = 0
  #sequence = 0

  constructor(options: FairQueueOptions = {}) {
    this.#clientWeight = options.clientWeight ?? (() => DEFAULT_CLIENT_WEIGHT)
  }

  get size(): number {
    return this.#slots.size
  }

  has(item: T): boolean {
    return this.#slots.has(item)
  }

  /** Queues `item` for `clientId` at `priority` (0 lowest … 9 highest; out-of-range values are clamped). */
  push(item: T, clientId: string, priority: number): void {
    if (this.#slots.has(item)) return
    const level = Math.min(HIGHEST_PRIORITY, Math.max(0, Math.trunc(priority)))
    const previous = this.#served.get(item)
    let slot: Slot<T>
    if (previous !== undefined) {
      slot = { ...previous, priority: level }
    } else {
      const weight = this.#clientWeight(clientId)
      const start = Math.max(this.#virtualTime, this.#lastFinish.get(clientId) ?? 0)
      const finish = start + 1 / (Number.isFinite(weight) && weight > 0 ? weight : DEFAULT_CLIENT_WEIGHT)
      this.#lastFinish.set(clientId, finish)
      slot = { item, clientId, priority: level, start, finish, sequence: this.#sequence++ }
    }
    const list = this.#levels[level] as Slot<T>[]
    list.splice(insertionIndex(list, slot), 0, slot)
    if (this.#lastFinish.size > 4 * this.#queuedPerClient.size + 64) this.#sweepIdleClients()
    this.#slots.set(item, slot)
    this.#queuedPerClient.set(clientId, (this.#queuedPerClient.get(clientId) ?? 0) + 1)
  }

  /**
   * Takes `item` out for service: the virtual time advances to its start tag. Returns false if it was not queued.
   */
  take(item: T): boolean {
    const slot = this.#unlink(item)
    if (slot === undefined) return false
    this.#virtualTime = Math.max(this.#virtualTime, slot.start)
    this.#served.set(item, slot)
    this.#forgetIdleClient(slot.clientId)
    return true
  }

  /** Drops `item` without serving it (cancelled, expired). Returns false if it was not queued. */
  remove(item: T): boolean {
    const slot = this.#unlink(item)
    if (slot === undefined) return false
    // A client's turn it gave up is not charged to it.
    if (this.#served.get(item) === undefined && this.#lastFinish.get(slot.clientId) === slot.finish) {
      this.#lastFinish.set(slot.clientId, slot.start)
    }
    this.#forgetIdleClient(slot.clientId)
    return true
  }

  /** Every queued item in service order: highest priority first, then by start tag, then by arrival. */
  *ordered(): IterableIterator<T> {
    for (let level = HIGHEST_PRIORITY; level >= 0; level--) {
      // A copy: the caller may take items while iterating.
      for (const slot of [...(this.#levels[level] as Slot<T>[])]) {
        if (this.#slots.get(slot.item) === slot) yield slot.item
      }
    }
  }

  #unlink(item: T): Slot<T> | undefined {
    const slot = this.#slots.get(item)
    if (slot === undefined) return undefined
    this.#slots.delete(item)
    const list = this.#levels[slot.priority] as Slot<T>[]
    const index = insertionIndex(list, slot) - 1
    if (list[index] === slot) list.splice(index, 1)
    else list.splice(list.indexOf(slot), 1)
    const left = (this.#queuedPerClient.get(slot.clientId) ?? 1) - 1
    if (left > 0) this.#queuedPerClient.set(slot.clientId, left)
    else this.#queuedPerClient.delete(slot.clientId)
    return slot
  }

  #sweepIdleClients(): void {
    for (const clientId of [...this.#lastFinish.keys()]) this.#forgetIdleClient(clientId)
  }

  /** A client with nothing queued whose last finish tag the virtual time has passed needs no memory. */
  #forgetIdleClient(clientId: string): void {
    if (this.#queuedPerClient.has(clientId)) return
    if ((this.#lastFinish.get(clientId) ?? 0) <= this.#virtualTime) this.#lastFinish.delete(clientId)
  }
}

/** Where `slot` goes in `list` (sorted by start tag, then sequence): after every slot that precedes or equals it. */
function insertionIndex<T>(list: Slot<T>[], slot: Slot<T>): number {
  let low = 0
  let high = list.length
  while (low < high) {
    const middle = (low + high) >>> 1
    const other = list[middle] as Slot<T>
    if (other.start < slot.start || (other.start === slot.start && other.sequence <= slot.sequence)) low = middle + 1
    else high = middle
  }
  return low
}
