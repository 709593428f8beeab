import { defineConfig } from 'vitest/config';

// Two projects: `unit` (pure core and the server over real TLS, seconds) and
// `e2e` (a real control plane: etcd, kube-apiserver, controller-manager,
// scheduler and hollow kubelets). `npm test` runs both.
export default defineConfig({
  test: {
    projects: [
      {
        test: {
          name: 'unit',
          include: ['test/unit/**/*.test.ts', 'test/server/**/*.test.ts'],
        },
      },
      {
        test: {
          name: 'e2e',
          include: ['test/e2e/**/*.test.ts'],
          globalSetup: ['test/e2e/global-setup.ts'],
          testTimeout: 120_000,
          hookTimeout: 1_800_000,
          fileParallelism: false,
        },
      },
    ],
  },
});
