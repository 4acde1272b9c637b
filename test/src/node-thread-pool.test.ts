import { threadPoolSizeFor } from '@lull/node/thread-pool'
import { describe, expect, it } from 'vitest'

describe('threadPoolSizeFor', () => {
  it("leaves one CPU to the main thread, keeps at least one pool thread and never more than libuv's 4", () => {
    expect([1, 2, 3, 4, 5, 6, 16, 128].map(threadPoolSizeFor)).toEqual([1, 1, 2, 3, 4, 4, 4, 4])
  })
})
