import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 30_000,
    hookTimeout: 30_000,
    // Suites bind real ports and spawn processes; two cores do not like many at once.
    maxWorkers: 2,
    pool: 'forks',
  },
});
