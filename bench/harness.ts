// What the cluster benchmarks share: a real cluster of their own (its own
// CLUSTER_DIR), the webhook and the watcher as real processes registered as
// shipped, the apiserver's write counter, and small waiting helpers.

import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { closeSync, openSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import type { Pod } from '../src/core/kube-types.ts';
import { DEFAULT_WATCHER_USER, READINESS_GATE } from '../src/core/names.ts';
import { KubeClient, loadKubeConfig } from '../src/kube/client.ts';
import { webhookConfigurations } from '../src/kube/webhook-configurations.ts';

const run = promisify(execFile);
const repo = resolve(import.meta.dirname, '..');
const WEBHOOK_PORT = Number(process.env.BENCH_WEBHOOK_PORT ?? 9543);

export const IMAGES = ['registry.k8s.io/pause:3.10', 'registry.k8s.io/pause:3.10.1'] as const;

export interface BenchCluster {
  client: KubeClient;
  kubectl: (args: string[], input?: string) => Promise<{ stdout: string }>;
  /** API writes (POST/PUT/PATCH/DELETE/APPLY, every client) so far; BENCH_DETAIL=1 prints what grew. */
  writes: () => Promise<number>;
  /** Every write the apiserver audited between two instants (ms): who wrote what (empty if the cluster runs without the audit log). */
  audited: (fromMs: number, toMs: number) => Promise<AuditedWrite[]>;
  /** Stops the watcher (SIGTERM: it releases its Lease) and starts it again with these extra flags. */
  restartWatcher: (extra: string[]) => Promise<void>;
  /** Starts another watcher process (logs to logs/<name>.log); the bench stops it, or it ends with the bench. */
  startWatcher: (name: string, args: string[]) => ChildProcess;
  /** The cluster's state dir and its env file's values (CLUSTER_NETNS, ...). */
  dir: string;
  clusterDir: string;
  env: Record<string, string>;
  /** The apiserver's /metrics text. */
  apiserverMetrics: () => Promise<string>;
  /** Apply or delete the product's webhook configurations (applied at start). */
  registerWebhooks: (on: boolean) => Promise<void>;
  /** The webhook's base URL (https://127.0.0.1:port). */
  webhookUrl: string;
  /** Pids of the webhook process and of kube-apiserver, for CPU accounting. */
  pids: { webhook: number; apiserver: number };
  stop: () => Promise<void>;
}

export interface BenchClusterOptions {
  /** Real nodes (test/cluster/lab.sh); default: none. */
  realNodes?: number;
  /** The cluster's state dir; default BENCH_CLUSTER_DIR, else .cluster-bench. */
  dir?: string;
  /** Extra flags of the first watcher. */
  watcherArgs?: string[];
  /** Start the shipped watcher at once (default true); false: the bench starts its own with startWatcher. */
  watcher?: boolean;
  /** The webhook's --log-level (default warn). */
  webhookLogLevel?: string;
  /** Extra environment of the webhook process (e.g. the shipped container's NODE_OPTIONS). */
  webhookEnv?: Record<string, string>;
  /** Audit every write (default true); off for benches that only count, since it costs the apiserver. */
  audit?: boolean;
}

/** One write as the apiserver's audit log records it. */
export interface AuditedWrite {
  /** The client: `inplace-gate` (the watcher), `kubelet` (any node), else the username, kube-system's service-account prefix cut. */
  client: string;
  /** resource, or resource/subresource. */
  resource: string;
  namespace: string | undefined;
  name: string | undefined;
  /** The answer's status code (409: a guarded write that lost). */
  code: number;
}

interface AuditEvent {
  responseStatus?: { code?: number };
  verb?: string;
  user?: { username?: string };
  objectRef?: { resource?: string; subresource?: string; namespace?: string; name?: string };
  requestReceivedTimestamp?: string;
}

export function clientOf(username: string): string {
  if (username === DEFAULT_WATCHER_USER) return 'inplace-gate';
  if (username.startsWith('system:node:')) return 'kubelet';
  return username.replace(/^system:serviceaccount:kube-system:/, '');
}

export async function startBenchCluster(nodes: number, maxPodsPerNode: number, options: BenchClusterOptions = {}): Promise<BenchCluster> {
  const clusterDir = options.dir ?? process.env.BENCH_CLUSTER_DIR ?? join(repo, '.cluster-bench');
  // Every write audited (user, verb, resource), so that writes are counted by client, not only in total.
  const auditLog = join(clusterDir, 'logs', 'audit.log');
  const env = {
    ...process.env, CLUSTER_DIR: clusterDir, CLUSTER_NODES: String(nodes), CLUSTER_MAX_PODS: String(maxPodsPerNode), CLUSTER_REAL_NODES: String(options.realNodes ?? 0),
    ...(options.audit === false ? {} : { CLUSTER_AUDIT_LOG: auditLog }),
  };
  const sh = (args: string[]) => run('bash', [join(repo, 'test/cluster/cluster.sh'), ...args], { env, maxBuffer: 1 << 24 });
  const kubeconfig = join(clusterDir, 'kubeconfig');
  const kubectl = (args: string[], input?: string) => {
    const child = run(join(clusterDir, 'bin/kubectl'), ['--kubeconfig', kubeconfig, ...args], { maxBuffer: 1 << 26 });
    if (input !== undefined) child.child.stdin?.end(input);
    return child;
  };
  console.error(`bench: cluster in ${clusterDir} with ${nodes} hollow nodes, ${options.realNodes ?? 0} real`);
  await sh(['up']);
  const children: ChildProcess[] = [];
  // A failure while starting (the webhook's port taken, say) must not leave the cluster running.
  try {
    const client = await KubeClient.create(loadKubeConfig(kubeconfig), 'inplace-gate-bench');
    await kubectl(['apply', '--server-side', '--force-conflicts', '-f', join(repo, 'manifests/base/namespace.yaml'), '-f', join(repo, 'manifests/base/watcher-rbac.yaml')]);

    // However this process ends, the webhook and watcher it started end with it.
    process.once('exit', () => {
      for (const c of children) c.kill('SIGKILL');
    });
    const spawnLogged = (name: string, args: string[], extraEnv: Record<string, string> = {}) => {
      const fd = openSync(join(clusterDir, 'logs', `${name}.log`), 'a');
      const child = spawn(process.execPath, args, { stdio: ['ignore', fd, fd], env: { ...process.env, ...extraEnv } });
      children.push(child);
      closeSync(fd); // the child has its own copy
      return child;
    };
    const certDir = join(clusterDir, 'bench-certs');
    const webhook = spawnLogged('bench-webhook', [join(repo, 'src/cli.ts'), 'webhook', '--port', String(WEBHOOK_PORT), '--host', '127.0.0.1', '--cert-dir', certDir, '--log-level', options.webhookLogLevel ?? 'warn'], options.webhookEnv);
    await waitFor('the webhook', () => run('curl', ['-sf', '--cacert', join(certDir, 'ca.crt'), `https://127.0.0.1:${WEBHOOK_PORT}/readyz`]).then(() => true, () => false), 30_000);
    const caBundle = (await readFile(join(certDir, 'ca.crt'))).toString('base64');
    const { mutating, validating } = webhookConfigurations({
      clientConfig: (p) => ({ url: `https://127.0.0.1:${WEBHOOK_PORT}${p}`, caBundle }), scope: 'opt-in', watcherUsers: [DEFAULT_WATCHER_USER],
    });
    const registration = JSON.stringify({ apiVersion: 'v1', kind: 'List', items: [mutating, validating] });
    const registerWebhooks = async (on: boolean) => {
      if (on) await kubectl(['apply', '--server-side', '--force-conflicts', '-f', '-'], registration);
      else await kubectl(['delete', '--ignore-not-found', '-f', '-'], registration);
    };
    await registerWebhooks(true);
    const watcherArgs = [join(repo, 'src/cli.ts'), 'watcher', '--kubeconfig', join(clusterDir, 'kubeconfigs/watcher.kubeconfig')];
    const startShippedWatcher = (extra: string[]) => spawnLogged('bench-watcher', [...watcherArgs, '--health-port', '0', '--log-level', 'warn', '--concurrency', '32', ...extra]);
    let watcher = options.watcher === false ? undefined : startShippedWatcher(options.watcherArgs ?? []);
    const restartWatcher = async (extra: string[]) => {
      if (watcher && watcher.exitCode === null && watcher.signalCode === null) {
        const exited = new Promise((ok) => watcher?.once('exit', ok));
        watcher.kill('SIGTERM');
        await exited;
      }
      const started = startShippedWatcher(extra);
      watcher = started;
      // Its identity is hostname_pid: wait until it holds the Lease.
      const pid = `_${String(started.pid)}`;
      await waitFor('the new watcher to lead', () => client.get<{ spec?: { holderIdentity?: string } }>('/apis/coordination.k8s.io/v1/namespaces/inplace-gate/leases/inplace-gate-watcher')
        .then((l) => l.spec?.holderIdentity?.endsWith(pid) === true, () => false), 60_000);
    };
    const envText = await readFile(join(clusterDir, 'env'), 'utf8');
    // printf %q's output; the values read here never need unquoting
    const envValues = Object.fromEntries([...envText.matchAll(/^export (\w+)=(.*)$/gm)].map((m) => [m[1] ?? '', m[2] ?? '']));

    let last = new Map<string, number>();
    const writes = async () => {
      const { stdout } = await kubectl(['get', '--raw', '/metrics']);
      let total = 0;
      const breakdown = new Map<string, number>();
      for (const line of stdout.split('\n')) {
        if (!line.startsWith('apiserver_request_total{')) continue;
        const verb = /verb="(POST|PUT|PATCH|DELETE|APPLY)"/.exec(line)?.[1];
        if (!verb) continue;
        const value = Number(line.slice(line.lastIndexOf(' ') + 1));
        total += value;
        const key = `${verb} ${/resource="([^"]*)"/.exec(line)?.[1] ?? ''}/${/subresource="([^"]*)"/.exec(line)?.[1] ?? ''}`;
        breakdown.set(key, (breakdown.get(key) ?? 0) + value);
      }
      if (process.env.BENCH_DETAIL === '1') {
        const grew = [...breakdown].map(([k, v]) => [k, v - (last.get(k) ?? 0)] as const).filter(([, d]) => d > 0).sort((a, b) => b[1] - a[1]);
        console.error(grew.map(([k, d]) => `${k}: ${d}`).join(', '));
      }
      last = breakdown;
      return total;
    };

    const audited = async (fromMs: number, toMs: number): Promise<AuditedWrite[]> => {
      const text = await readFile(auditLog, 'utf8').catch(() => '');
      const out: AuditedWrite[] = [];
      for (const line of text.split('\n')) {
        if (line === '') continue;
        const e = JSON.parse(line) as AuditEvent;
        const at = Date.parse(e.requestReceivedTimestamp ?? '');
        if (!(at >= fromMs && at <= toMs)) continue;
        const ref = e.objectRef ?? {};
        out.push({ client: clientOf(e.user?.username ?? ''), resource: `${ref.resource ?? ''}${ref.subresource ? `/${ref.subresource}` : ''}`, namespace: ref.namespace, name: ref.name, code: e.responseStatus?.code ?? 0 });
      }
      return out;
    };

    const apiserverPid = Number(await readFile(join(clusterDir, 'pids', 'kube-apiserver.pid'), 'utf8'));
    return {
      client,
      kubectl,
      writes,
      audited,
      restartWatcher,
      startWatcher: (name, args) => spawnLogged(name, [...watcherArgs, ...args]),
      dir: clusterDir,
      clusterDir,
      env: envValues,
      apiserverMetrics: async () => (await kubectl(['get', '--raw', '/metrics'])).stdout,
      registerWebhooks,
      webhookUrl: `https://127.0.0.1:${WEBHOOK_PORT}`,
      pids: { webhook: webhook.pid ?? 0, apiserver: apiserverPid },
      async stop() {
        for (const c of children) c.kill('SIGTERM');
        client.close();
        if (process.env.BENCH_KEEP_CLUSTER !== '1') await sh(['down']);
      },
    };
  } catch (err) {
    for (const c of children) c.kill('SIGKILL');
    if (process.env.BENCH_KEEP_CLUSTER !== '1') await sh(['down']).catch(() => undefined);
    throw err;
  }
}

/** How many of `items` fall under each key, most first. */
export function countBy<T>(items: readonly T[], key: (item: T) => string): [string, number][] {
  const m = new Map<string, number>();
  for (const item of items) m.set(key(item), (m.get(key(item)) ?? 0) + 1);
  return [...m].sort((a, b) => b[1] - a[1]);
}

export const pct = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length === 0 ? NaN : s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]!;
};
export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export async function waitFor(what: string, probe: () => Promise<boolean>, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await probe())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(250);
  }
}

export async function podsOf(client: KubeClient, ns: string, app: string): Promise<Pod[]> {
  return (await client.get<{ items: Pod[] }>(`/api/v1/namespaces/${ns}/pods?labelSelector=app%3D${app}`)).items;
}

export const ready = (p: Pod) => p.status?.conditions?.find((c) => c.type === 'Ready')?.status === 'True';
export const gate = (p: Pod) => p.status?.conditions?.find((c) => c.type === READINESS_GATE)?.status;

export async function createNamespace(b: BenchCluster, name: string, labels: Record<string, string>): Promise<void> {
  await b.kubectl(['apply', '-f', '-'], JSON.stringify({ apiVersion: 'v1', kind: 'Namespace', metadata: { name, labels } }));
  await waitFor(`serviceaccount in ${name}`, () => b.kubectl(['-n', name, 'get', 'sa', 'default']).then(() => true, () => false), 60_000);
}

/** A ClusterIP Service selecting `app=<name>`, so the pods are in an EndpointSlice the drain must wait for. */
export function serviceFor(name: string, ns: string) {
  return { apiVersion: 'v1', kind: 'Service', metadata: { name, namespace: ns }, spec: { selector: { app: name }, ports: [{ port: 80 }] } };
}

interface SliceEvent { endpoints?: { conditions?: { ready?: boolean }; targetRef?: { kind?: string; name?: string } }[] | null }

/**
 * The drain as a client of the Service sees it, per pod of `app`: InPlaceUpdateReady False (pod
 * watch), the EndpointSlice showing the pod not ready (slice watch), the image write (pod watch).
 * Independent of the watcher's own metrics. stop() gives False -> endpoint not ready (the real
 * drain) and endpoint not ready -> image write (the margin), in ms.
 */
export async function watchDrains(client: KubeClient, ns: string, app: string, image: string) {
  const falseAt = new Map<string, number>();
  const goneAt = new Map<string, number>();
  const writtenAt = new Map<string, number>();
  const abort = new AbortController();
  const from = async (path: string) => (await client.get<{ metadata: { resourceVersion: string } }>(path)).metadata.resourceVersion;
  const podsPath = `/api/v1/namespaces/${ns}/pods?labelSelector=app%3D${app}`;
  const slicesPath = `/apis/discovery.k8s.io/v1/namespaces/${ns}/endpointslices?labelSelector=kubernetes.io%2Fservice-name%3D${app}`;
  const [podsRv, slicesRv] = await Promise.all([from(podsPath), from(slicesPath)]);
  const watches = [
    client.watch<Pod>(`${podsPath}&watch=true&resourceVersion=${podsRv}`, ({ object: p }) => {
      const name = p.metadata.name ?? '';
      const now = Date.now();
      if (!falseAt.has(name) && gate(p) === 'False' && p.spec.containers[0]?.image !== image) falseAt.set(name, now);
      if (falseAt.has(name) && !writtenAt.has(name) && p.spec.containers[0]?.image === image) writtenAt.set(name, now);
    }, abort.signal).catch(() => undefined),
    client.watch<SliceEvent>(`${slicesPath}&watch=true&resourceVersion=${slicesRv}`, ({ object: s }) => {
      const now = Date.now();
      for (const e of s.endpoints ?? []) {
        const name = e.targetRef?.kind === 'Pod' ? e.targetRef.name : undefined;
        if (name !== undefined && falseAt.has(name) && !goneAt.has(name) && e.conditions?.ready === false) goneAt.set(name, now);
      }
    }, abort.signal).catch(() => undefined),
  ];
  return {
    async stop() {
      abort.abort();
      await Promise.all(watches);
      const endpoints: number[] = [];
      const margin: number[] = [];
      for (const [name, f] of falseAt) {
        const g = goneAt.get(name);
        const w = writtenAt.get(name);
        if (g === undefined || w === undefined) continue;
        endpoints.push(g - f);
        margin.push(w - g);
      }
      return { endpoints, margin };
    },
  };
}
