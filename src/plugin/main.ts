// `kubectl inplace-gate`: kubectl runs bin/kubectl-inplace_gate, which runs
// this. `status` and `rollout status` read pods, workloads, events and the
// watcher's Lease (what they say is decided in core/status-report.ts) and write
// nothing; `cancel` and `release` write what core/hand-back.ts plans.

import { existsSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { ApiError, KubeClient, loadKubeConfig } from '../kube/client.ts';
import type { Pod } from '../core/kube-types.ts';
import { MANAGED_LABEL, ROLLOUT_STATE_ANNOTATION } from '../core/names.ts';
import {
  formatStatus, leaseLine, podsOfWorkload, reportPod, reportWorkload, rolloutVerdict, type WorkloadKind,
} from '../core/status-report.ts';
import type { LeaseSpec } from '../core/leader-election.ts';
import type { Workload } from '../core/workload-types.ts';
import { SETTINGS } from '../settings.ts';
import { USAGE, UsageError, parsePluginArgs, type HandBackArgs, type RolloutStatusArgs, type StatusArgs } from './args.ts';

const NAME = 'kubectl-inplace_gate';
const SERVICE_ACCOUNT_TOKEN = '/var/run/secrets/kubernetes.io/serviceaccount/token';
const WORKLOAD_PATH: Record<WorkloadKind, string> = { Deployment: 'deployments', StatefulSet: 'statefulsets' };
const POLL_MS = 2000;

interface List<T> { items: T[] }

/** The cluster of --kubeconfig/--context (else KUBECONFIG, ~/.kube/config, in-cluster), and the namespace to read. */
async function connect(args: Pick<StatusArgs, 'kubeconfig' | 'context' | 'namespace'>): Promise<{ client: KubeClient; namespace: string }> {
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
  return { client: await KubeClient.create(kc, NAME), namespace };
}

const managedPods = (client: KubeClient, scope: string) =>
  client.get<List<Pod>>(`/api/v1${scope}/pods?labelSelector=${encodeURIComponent(`${MANAGED_LABEL}=true`)}`).then((l) => l.items);
const replicaSetsFor = (client: KubeClient, scope: string, kinds: WorkloadKind[]) =>
  kinds.includes('Deployment') ? client.get<List<Workload>>(`/apis/apps/v1${scope}/replicasets`).then((l) => l.items) : Promise.resolve([]);

async function status(args: StatusArgs, client: KubeClient, namespace: string): Promise<string> {
  const scope = args.allNamespaces ? '' : `/namespaces/${encodeURIComponent(namespace)}`;
  const leaseName = SETTINGS.leaseName.default;
  const leaseRead = client
    .get<{ spec?: LeaseSpec }>(`/apis/coordination.k8s.io/v1/namespaces/${encodeURIComponent(args.gateNamespace)}/leases/${leaseName}`)
    .catch((err: unknown) => {
      if (err instanceof ApiError && err.status === 404) return 'absent' as const;
      if (err instanceof ApiError && err.status === 403) return 'forbidden' as const;
      throw err;
    });
  // Should a read below fail first, the connections close under this one: its error is not news.
  leaseRead.catch(() => undefined);
  const now = new Date();
  const target = args.target;
  let pods: Pod[];
  let workloads: { kind: WorkloadKind; w: Workload; pods: Pod[] }[] = [];
  if (target?.kind === 'Pod') {
    pods = [await client.get<Pod>(`/api/v1${scope}/pods/${encodeURIComponent(target.name)}`)];
  } else {
    const podList = managedPods(client, scope);
    const kinds: WorkloadKind[] = target === undefined ? ['Deployment', 'StatefulSet'] : [target.kind];
    const found = await Promise.all(kinds.map(async (kind) => {
      const list = target === undefined
        ? (await client.get<List<Workload>>(`/apis/apps/v1${scope}/${WORKLOAD_PATH[kind]}`)).items
            .filter((w) => w.metadata.annotations?.[ROLLOUT_STATE_ANNOTATION] !== undefined)
        : [await client.get<Workload>(`/apis/apps/v1${scope}/${WORKLOAD_PATH[kind]}/${encodeURIComponent(target.name)}`)];
      return list.map((w) => ({ kind, w }));
    }));
    pods = await podList;
    const flat = found.flat();
    const replicaSets = await replicaSetsFor(client, scope, flat.map((f) => f.kind));
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
}

interface EventLike { reason?: string; note?: string; eventTime?: string; metadata: { creationTimestamp?: string }; regarding?: { kind?: string } }

/** Polls until the verdict is done or failed, printing each new waiting line; 0 done, 1 failed or timed out. */
async function rolloutStatus(args: RolloutStatusArgs, client: KubeClient, namespace: string): Promise<number> {
  const scope = `/namespaces/${encodeURIComponent(namespace)}`;
  const { kind, name } = args.target;
  const started = Date.now();
  // A fallback is reported as a Warning on the workload; only one from now on counts.
  const since = started - 1000;
  let last = '';
  for (;;) {
    const [w, pods, replicaSets, events] = await Promise.all([
      client.get<Workload>(`/apis/apps/v1${scope}/${WORKLOAD_PATH[kind]}/${encodeURIComponent(name)}`),
      managedPods(client, scope),
      replicaSetsFor(client, scope, [kind]),
      client.get<List<EventLike>>(`/apis/events.k8s.io/v1${scope}/events?fieldSelector=${encodeURIComponent(`regarding.name=${name}`)}`).then((l) => l.items),
    ]);
    const fallback = events.find((e) => e.reason === 'InPlaceRolloutFallback' && e.regarding?.kind === kind &&
      Date.parse(e.eventTime ?? e.metadata.creationTimestamp ?? '') >= since);
    const verdict = rolloutVerdict(kind, w, podsOfWorkload(kind, w, pods, replicaSets), new Date(), fallback === undefined ? undefined : (fallback.note ?? 'InPlaceRolloutFallback'));
    if (verdict.state === 'failed') {
      process.stderr.write(`error: ${verdict.message}\n`);
      return 1;
    }
    if (verdict.message !== last) process.stdout.write(`${verdict.message}\n`);
    last = verdict.message;
    if (verdict.state === 'done') return 0;
    if (args.timeoutSeconds > 0 && Date.now() - started >= args.timeoutSeconds * 1000) {
      process.stderr.write('error: timed out waiting for the condition\n');
      return 1;
    }
    await new Promise((r) => setTimeout(r, POLL_MS));
  }
}

/** `cancel` and `release`: one line per object on stdout; a refused cancel is one line on stderr, exit 1. */
async function handBack(args: HandBackArgs, client: KubeClient, namespace: string): Promise<number> {
  const { CancelRefused, cancelPod, releaseWorkload } = await import('../kube/hand-back.ts');
  const opts = {
    client,
    config: { defaultGraceSeconds: Number(SETTINGS.gracePeriodSeconds.default), progressDeadlineSeconds: Number(SETTINGS.progressDeadlineSeconds.default) },
    out: (line: string) => { process.stdout.write(`${line}\n`); },
    waitSeconds: args.timeoutSeconds,
  };
  const target = args.target;
  if (target.kind !== 'Pod') return releaseWorkload(opts, namespace, target.kind, target.name);
  try {
    return await cancelPod(opts, namespace, target.name);
  } catch (err) {
    if (!(err instanceof CancelRefused)) throw err;
    process.stderr.write(`error: ${err.message}\n`);
    return 1;
  }
}

async function main(argv: string[]): Promise<number> {
  const args = parsePluginArgs(argv);
  if (args.command === 'help') {
    process.stdout.write(USAGE);
    return 0;
  }
  const { client, namespace } = await connect(args);
  try {
    if (args.command === 'rollout-status') return await rolloutStatus(args, client, namespace);
    if (args.command !== 'status') return await handBack(args, client, namespace);
    process.stdout.write(await status(args, client, namespace));
    return 0;
  } finally {
    client.close();
  }
}

main(process.argv.slice(2)).then(
  (code) => { process.exitCode = code; },
  (err: unknown) => {
    // One line naming the cause: a usage error (2), or the cluster's answer or a kubeconfig problem (1).
    process.stderr.write(`${NAME}: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exitCode = err instanceof UsageError ? 2 : 1;
  },
);
