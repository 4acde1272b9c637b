import { defineConfig } from 'vitest/config'

const shared = { setupFiles: ['./vitest.setup.ts'] }

export default defineConfig({
  test: {
    projects: [
      { test: { ...shared, name: 'proto', include: ['proto/src/**/*.test.ts'] } },
      { test: { ...shared, name: 'client-sdk', include: ['client-sdk/src/**/*.test.ts'] } },
      { test: { ...shared, name: 'coordinator', include: ['coordinator/src/**/*.test.ts'] } },
      // Tests that load a model run one file at a time: the machine has two cores.
      {
        test: {
          ...shared,
          name: 'node',
          include: ['node/src/**/*.test.ts'],
          fileParallelism: false,
          testTimeout: 60_000,
        },
      },
      {
        test: {
          ...shared,
          name: 'test',
          include: ['test/src/**/*.test.ts'],
          fileParallelism: false,
          testTimeout: 120_000,
          hookTimeout: 120_000,
        },
      },
    ],
  },
})
