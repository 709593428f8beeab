// `kubectl inplace-gate`: kubectl runs bin/kubectl-inplace_gate, which runs
// this. Reads pods, workloads and the watcher's Lease; the report itself is
// core/status-report.ts. Read-only: it writes nothing to the cluster.

import { existsSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { ApiError, KubeClient, loadKubeConfig } from '../kube/client.ts';
import type { Pod } from '../core/kube-types.ts';
import { MANAGED_LABEL, ROLLOUT_STATE_ANNOTATION } from '../core/names.ts';
import { formatStatus, leaseLine, podsOfWorkload, reportPod, reportWorkload, type WorkloadKind } from '../core/status-report.ts';
import type { LeaseSpec } from '../core/leader-election.ts';
import type { Workload } from '../core/workload-types.ts';
import { SETTINGS } from '../settings.ts';
import { USAGE, UsageError, parsePluginArgs, type StatusArgs } from './args.ts';

const NAME = 'kubectl-inplace_gate';
const SERVICE_ACCOUNT_TOKEN = '/var/run/secrets/kubernetes.io/serviceaccount/token';
const WORKLOAD_PATH: Record<WorkloadKind, string> = { Deployment: 'deployments', StatefulSet: 'statefulsets' };

interface List<T> { items: T[] }

async function status(args: StatusArgs): Promise<string> {
  if (args.kubeconfig === undefined && !process.env.KUBECONFIG && !existsSync(join(homedir(), '.kube', 'config')) && !existsSync(SERVICE_ACCOUNT_TOKEN)) {
    // client-node would fall back to http://localhost:8080 and fail there with a puzzling message.
    throw new Error('no cluster configured: give --kubeconfig, set KUBECONFIG, or create ~/.kube/config');
  }
  let kc;
  try {
    kc = loadKubeConfig(args.kubeconfig);
  } catch (err) {
    const file = args.kubeconfig ?? process.env.KUBECONFIG;
    throw new Error(file === undefined ? (err as Error).message : `kubeconfig ${file}: ${(err as Error).message}`, { cause: err });
  }
  if (args.context !== undefined) {
    if (kc.getContextObject(args.context) === null) throw new Error(`context "${args.context}" is not in the kubeconfig`);
    kc.setCurrentContext(args.context);
  }
  const namespace = args.namespace ?? kc.getContextObject(kc.getCurrentContext())?.namespace ?? 'default';
  const client = await KubeClient.create(kc, NAME);
  try {
    const scope = args.allNamespaces ? '' : `/namespaces/${encodeURIComponent(namespace)}`;
    const managed = `labelSelector=${encodeURIComponent(`${MANAGED_LABEL}=true`)}`;
    const leaseName = SETTINGS.leaseName.default;
    const leaseRead = client
      .get<{ spec?: LeaseSpec }>(`/apis/coordination.k8s.io/v1/namespaces/${encodeURIComponent(args.gateNamespace)}/leases/${leaseName}`)
      .catch((err: unknown) => {
        if (err instanceof ApiError && err.status === 404) return 'absent' as const;
        if (err instanceof ApiError && err.status === 403) return 'forbidden' as const;
        throw err;
      });
    const now = new Date();
    const target = args.target;
    let pods: Pod[];
    let workloads: { kind: WorkloadKind; w: Workload; pods: Pod[] }[] = [];
    if (target?.kind === 'Pod') {
      pods = [await client.get<Pod>(`/api/v1${scope}/pods/${encodeURIComponent(target.name)}`)];
    } else {
      const podList = client.get<List<Pod>>(`/api/v1${scope}/pods?${managed}`);
      const kinds: WorkloadKind[] = target === undefined ? ['Deployment', 'StatefulSet'] : [target.kind];
      const found = await Promise.all(kinds.map(async (kind) => {
        const list = target === undefined
          ? (await client.get<List<Workload>>(`/apis/apps/v1${scope}/${WORKLOAD_PATH[kind]}`)).items
              .filter((w) => w.metadata.annotations?.[ROLLOUT_STATE_ANNOTATION] !== undefined)
          : [await client.get<Workload>(`/apis/apps/v1${scope}/${WORKLOAD_PATH[kind]}/${encodeURIComponent(target.name)}`)];
        return list.map((w) => ({ kind, w }));
      }));
      pods = (await podList).items;
      const flat = found.flat();
      const replicaSets = flat.some((f) => f.kind === 'Deployment')
        ? (await client.get<List<Workload>>(`/apis/apps/v1${scope}/replicasets`)).items
        : [];
      workloads = flat.map(({ kind, w }) => ({ kind, w, pods: podsOfWorkload(kind, w, pods, replicaSets) }));
      // A named workload shows its own pods, all of them.
      if (target !== undefined) pods = workloads.flatMap((x) => x.pods);
    }
    const byName = (a: { metadata: { namespace?: string; name?: string } }, b: typeof a) =>
      `${a.metadata.namespace ?? ''}/${a.metadata.name ?? ''}`.localeCompare(`${b.metadata.namespace ?? ''}/${b.metadata.name ?? ''}`);
    return formatStatus({
      lease: leaseLine(await leaseRead, `${args.gateNamespace}/${leaseName}`, now),
      workloads: workloads.sort((a, b) => byName(a.w, b.w)).map(({ kind, w, pods: own }) => reportWorkload(kind, w, own)),
      pods: pods.sort(byName).map((p) => reportPod(p, now)),
      allPods: target !== undefined,
      namespaceColumn: args.allNamespaces,
      now,
    });
  } finally {
    client.close();
  }
}

async function main(argv: string[]): Promise<number> {
  const args = parsePluginArgs(argv);
  if (args.command === 'help') {
    process.stdout.write(USAGE);
    return 0;
  }
  process.stdout.write(await status(args));
  return 0;
}

main(process.argv.slice(2)).then(
  (code) => { process.exitCode = code; },
  (err: unknown) => {
    // One line naming the cause: a usage error (2), or the cluster's answer or a kubeconfig problem (1).
    process.stderr.write(`${NAME}: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exitCode = err instanceof UsageError ? 2 : 1;
  },
);
