// Which cluster `npm start` and the end-to-end suite act on. Pure: decided from
// flags and environment only, so that an exported KUBECONFIG (or running inside
// a pod) never by itself makes either command act on a cluster nobody named for it.

export type ClusterTarget =
  /** Start (or reuse) the local control plane of test/cluster/cluster.sh. */
  | { kind: 'local'; ignored: string | undefined }
  /** Act on a cluster the user named: a kubeconfig file, or (npm start only) the in-cluster configuration. */
  | { kind: 'existing'; kubeconfig: string | undefined; reason: string };

export class ClusterTargetError extends Error {}

type Env = Record<string, string | undefined>;

function ignoredByDefault(env: Env): string | undefined {
  if (env.KUBECONFIG) return `KUBECONFIG=${env.KUBECONFIG}`;
  if (env.KUBERNETES_SERVICE_HOST) return 'the in-cluster configuration';
  return undefined;
}

/**
 * `npm start`: the local cluster, unless `--attach` was given; attached, the
 * `--kubeconfig` flag (or INPLACE_GATE_KUBECONFIG), else KUBECONFIG, else in-cluster.
 */
export function startTarget(attach: boolean, kubeconfigSetting: string | undefined, env: Env): ClusterTarget {
  if (!attach) {
    if (kubeconfigSetting) {
      throw new ClusterTargetError(`start: --kubeconfig (or INPLACE_GATE_KUBECONFIG) names a cluster; add --attach to run against it`);
    }
    return { kind: 'local', ignored: ignoredByDefault(env) };
  }
  if (kubeconfigSetting) return { kind: 'existing', kubeconfig: kubeconfigSetting, reason: '--attach with --kubeconfig' };
  if (env.KUBECONFIG) return { kind: 'existing', kubeconfig: env.KUBECONFIG, reason: '--attach with KUBECONFIG' };
  if (env.KUBERNETES_SERVICE_HOST) return { kind: 'existing', kubeconfig: undefined, reason: '--attach in a cluster' };
  throw new ClusterTargetError('start --attach: no cluster to attach to: give --kubeconfig, set KUBECONFIG, or run inside a cluster');
}

/**
 * The end-to-end suite: its own local cluster, unless USE_EXISTING_CLUSTER=true
 * (envtest's convention), then the cluster KUBECONFIG names.
 */
export function e2eTarget(env: Env): ClusterTarget {
  const use = (env.USE_EXISTING_CLUSTER ?? '').trim().toLowerCase();
  if (use === '' || use === 'false') return { kind: 'local', ignored: env.KUBECONFIG ? `KUBECONFIG=${env.KUBECONFIG}` : undefined };
  if (use !== 'true') throw new ClusterTargetError(`USE_EXISTING_CLUSTER must be true or false, not "${env.USE_EXISTING_CLUSTER}"`);
  if (!env.KUBECONFIG) throw new ClusterTargetError('USE_EXISTING_CLUSTER=true needs KUBECONFIG naming the cluster to test on');
  return { kind: 'existing', kubeconfig: env.KUBECONFIG, reason: 'USE_EXISTING_CLUSTER=true with KUBECONFIG' };
}
