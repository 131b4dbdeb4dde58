import { defineConfig } from 'vitest/config';

// Two projects: fast unprivileged unit tests, and network tests that need root
// (network namespaces, TUN, wireguard-go). The README's test command runs both.
export default defineConfig({
  test: {
    projects: [
      {
        test: {
          name: 'unit',
          include: ['test/unit/**/*.test.ts', 'test/pair/**/*.test.ts', 'test/controller/**/*.test.ts'],
          testTimeout: 30_000,
        },
      },
      {
        test: {
          name: 'netns',
          include: ['test/netns/**/*.test.ts'],
          testTimeout: 180_000,
          hookTimeout: 120_000,
          // network tests share the host's namespaces list, TUN names and CPU; run files one at a time
          fileParallelism: false,
          pool: 'forks',
        },
      },
    ],
  },
});
