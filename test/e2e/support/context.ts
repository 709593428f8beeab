// What the end-to-end global setup hands to every test file.

export interface E2EContext {
  /** Admin kubeconfig of the cluster under test. */
  kubeconfig: string;
  /** kubectl of the same version as the cluster. */
  kubectl: string;
  /** Folder of the cluster's state (kubeconfigs for other identities, logs). */
  clusterDir: string;
  /** The webhook process's base URL and the CA its certificate chains to. */
  webhookUrl: string;
  caFile: string;
}

declare module 'vitest' {
  export interface ProvidedContext {
    e2e: E2EContext;
  }
}
