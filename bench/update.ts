// npm run bench:update — the pod lifecycle against the native way, on one
// real cluster in one run (4 hollow nodes by default, its own CLUSTER_DIR):
//   in place: each pod's image patched as a client would; the webhook defers it, the
//             watcher drains (grace 2 s), writes, proves the restart, sets Ready again;
//   native:   the same Deployment image bump through the Deployment controller (new
//             ReplicaSet, every pod deleted and recreated), in a namespace not opted in.
// Reports wall time and API writes (apiserver_request_total, all clients, POST/PUT/
// PATCH/DELETE/APPLY) for each, and the lifecycle's own latencies from a pod watch:
// image request -> InPlaceUpdateReady False, and container ready -> InPlaceUpdateReady True.
// Sizes: BENCH_PODS (default "1,50"); nodes: BENCH_NODES (default 4).

import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { closeSync, openSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import type { Pod } from '../src/core/kube-types.ts';
import { READINESS_GATE, UPDATE_ANNOTATION } from '../src/core/names.ts';
import { KubeClient, loadKubeConfig } from '../src/kube/client.ts';
import { webhookConfigurations } from '../src/kube/webhook-configurations.ts';
import { DEFAULT_WATCHER_USER } from '../src/core/names.ts';

const run = promisify(execFile);
const repo = resolve(import.meta.dirname, '..');
const clusterDir = process.env.BENCH_CLUSTER_DIR ?? join(repo, '.cluster-bench');
const sizes = (process.env.BENCH_PODS ?? '1,50').split(',').map(Number);
const nodes = Number(process.env.BENCH_NODES ?? 4);
const IMAGES = ['registry.k8s.io/pause:3.10', 'registry.k8s.io/pause:3.10.1'];
const GRACE_S = 2;
const WEBHOOK_PORT = 9543;

const env = { ...process.env, CLUSTER_DIR: clusterDir, CLUSTER_NODES: String(nodes), CLUSTER_MAX_PODS: String(Math.ceil((Math.max(...sizes) * 1.3) / nodes) + 20) };
const sh = (args: string[]) => run('bash', [join(repo, 'test/cluster/cluster.sh'), ...args], { env, maxBuffer: 1 << 24 });
const kubeconfig = join(clusterDir, 'kubeconfig');
const kubectl = (args: string[], input?: string) => {
  const child = run(join(clusterDir, 'bin/kubectl'), ['--kubeconfig', kubeconfig, ...args], { maxBuffer: 1 << 26 });
  if (input !== undefined) child.child.stdin?.end(input);
  return child;
};

let lastBreakdown = new Map<string, number>();

/** Writes so far; BENCH_DETAIL=1 prints which resources and verbs grew since the last call. */
async function writes(): Promise<number> {
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
    const grew = [...breakdown].map(([k, v]) => [k, v - (lastBreakdown.get(k) ?? 0)] as const).filter(([, d]) => d > 0).sort((a, b) => b[1] - a[1]);
    console.error(grew.map(([k, d]) => `${k}: ${d}`).join(', '));
  }
  lastBreakdown = breakdown;
  return total;
}

const pct = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length === 0 ? NaN : s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]!;
};
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function waitFor(what: string, probe: () => Promise<boolean>, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await probe())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(250);
  }
}

function deployment(name: string, ns: string, replicas: number, image: string) {
  const labels = { app: name };
  return {
    apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name, namespace: ns },
    spec: {
      replicas, selector: { matchLabels: labels },
      strategy: { type: 'RollingUpdate', rollingUpdate: { maxUnavailable: '25%', maxSurge: '25%' } },
      template: {
        metadata: { labels, annotations: { 'inplace-gate.dev/grace-period-seconds': String(GRACE_S) } },
        spec: { terminationGracePeriodSeconds: 0, containers: [{ name: 'app', image, readinessProbe: { exec: { command: ['true'] }, periodSeconds: 1 } }] },
      },
    },
  };
}

async function podsOf(client: KubeClient, ns: string, app: string): Promise<Pod[]> {
  return (await client.get<{ items: Pod[] }>(`/api/v1/namespaces/${ns}/pods?labelSelector=app%3D${app}`)).items;
}

const ready = (p: Pod) => p.status?.conditions?.find((c) => c.type === 'Ready')?.status === 'True';
const gate = (p: Pod) => p.status?.conditions?.find((c) => c.type === READINESS_GATE)?.status;

async function main() {
  console.error(`bench:update: cluster in ${clusterDir} with ${nodes} hollow nodes`);
  await sh(['up']);
  const client = await KubeClient.create(loadKubeConfig(kubeconfig), 'inplace-gate-bench');
  await kubectl(['apply', '--server-side', '--force-conflicts', '-f', join(repo, 'manifests/base/namespace.yaml'), '-f', join(repo, 'manifests/base/watcher-rbac.yaml')]);

  const logs = join(clusterDir, 'logs');
  const certDir = join(clusterDir, 'bench-certs');
  const children: ChildProcess[] = [];
  // However this process ends, the webhook and watcher it started end with it.
  process.once('exit', () => {
    for (const c of children) c.kill('SIGKILL');
  });
  const spawnLogged = (name: string, args: string[]) => {
    const fd = openSync(join(logs, `${name}.log`), 'w');
    const child = spawn(process.execPath, args, { stdio: ['ignore', fd, fd] });
    closeSync(fd); // the child has its own copy
    children.push(child);
    return child;
  };
  spawnLogged('bench-webhook', [join(repo, 'src/cli.ts'), 'webhook', '--port', String(WEBHOOK_PORT), '--host', '127.0.0.1', '--cert-dir', certDir, '--log-level', 'warn']);
  await waitFor('the webhook', async () => run('curl', ['-sf', '--cacert', join(certDir, 'ca.crt'), `https://127.0.0.1:${WEBHOOK_PORT}/readyz`]).then(() => true, () => false), 30_000);
  const caBundle = (await readFile(join(certDir, 'ca.crt'))).toString('base64');
  const { mutating, validating } = webhookConfigurations({
    clientConfig: (p) => ({ url: `https://127.0.0.1:${WEBHOOK_PORT}${p}`, caBundle }), scope: 'opt-in', ownNamespace: 'inplace-gate', watcherUsers: [DEFAULT_WATCHER_USER],
  });
  await kubectl(['apply', '--server-side', '--force-conflicts', '-f', '-'], JSON.stringify({ apiVersion: 'v1', kind: 'List', items: [mutating, validating] }));
  spawnLogged('bench-watcher', [join(repo, 'src/cli.ts'), 'watcher', '--kubeconfig', join(clusterDir, 'kubeconfigs/watcher.kubeconfig'), '--health-port', '0', '--log-level', 'warn', '--concurrency', '32']);

  const rows: string[] = [];
  try {
    for (const n of sizes) {
      const tag = Date.now().toString(36);
      const inNs = `bench-inplace-${n}-${tag}`;
      const natNs = `bench-native-${n}-${tag}`;
      await kubectl(['create', 'namespace', inNs]);
      await kubectl(['label', 'namespace', inNs, 'inplace-gate.dev/enabled=true']);
      await kubectl(['create', 'namespace', natNs]);
      for (const ns of [inNs, natNs]) {
        await waitFor(`serviceaccount in ${ns}`, async () => kubectl(['-n', ns, 'get', 'sa', 'default']).then(() => true, () => false), 60_000);
        await kubectl(['apply', '-f', '-'], JSON.stringify(deployment('web', ns, n, IMAGES[0]!)));
      }
      const allReady = async (ns: string, image: string) => {
        const pods = await podsOf(client, ns, 'web');
        return pods.length === n && pods.every((p) => ready(p) && p.metadata.deletionTimestamp === undefined && p.spec.containers[0]?.image === image && p.status?.containerStatuses?.[0]?.image === image && p.metadata.annotations?.[UPDATE_ANNOTATION] === undefined && gateOk(p, ns === inNs));
      };
      const gateOk = (p: Pod, managed: boolean) => !managed || gate(p) === 'True';
      await waitFor(`${n} pods ready`, () => Promise.all([allReady(inNs, IMAGES[0]!), allReady(natNs, IMAGES[0]!)]).then((r) => r.every(Boolean)), 600_000);
      await sleep(3000);

      // In place: patch every pod's image, as a client would, watching what happens.
      const seen = new Map<string, { requested?: number; falseAt?: number; readyAt?: number; trueAt?: number; oldID?: string }>();
      const abort = new AbortController();
      const list = await client.get<{ metadata: { resourceVersion: string }; items: Pod[] }>(`/api/v1/namespaces/${inNs}/pods`);
      for (const p of list.items) seen.set(p.metadata.name ?? '', { oldID: p.status?.containerStatuses?.[0]?.containerID });
      const watching = client.watch<Pod>(`/api/v1/namespaces/${inNs}/pods?watch=true&resourceVersion=${list.metadata.resourceVersion}`, ({ object: p }) => {
        const s = seen.get(p.metadata.name ?? '');
        if (!s) return;
        const now = Date.now();
        if (s.requested !== undefined && s.falseAt === undefined && gate(p) === 'False') s.falseAt = now;
        const c = p.status?.containerStatuses?.[0];
        if (s.falseAt !== undefined && s.readyAt === undefined && c?.ready && c.containerID !== s.oldID && c.image === IMAGES[1]) s.readyAt = now;
        if (s.readyAt !== undefined && s.trueAt === undefined && gate(p) === 'True') s.trueAt = now;
      }, abort.signal).catch(() => undefined);
      const w0 = await writes();
      const t0 = Date.now();
      const queue = [...list.items];
      await Promise.all(Array.from({ length: 16 }, async () => {
        for (let p = queue.shift(); p; p = queue.shift()) {
          seen.get(p.metadata.name ?? '')!.requested = Date.now();
          await client.patch(`/api/v1/namespaces/${inNs}/pods/${p.metadata.name ?? ''}`, { spec: { containers: [{ name: 'app', image: IMAGES[1] }] } }, 'strategic', 'bench');
        }
      }));
      await waitFor('in-place update done', () => allReady(inNs, IMAGES[1]!), 1_800_000);
      const inplaceMs = Date.now() - t0;
      const inplaceWrites = (await writes()) - w0;
      abort.abort();
      await watching;
      const toFalse = [...seen.values()].flatMap((s) => (s.falseAt && s.requested ? [s.falseAt - s.requested] : []));
      const toTrue = [...seen.values()].flatMap((s) => (s.trueAt && s.readyAt ? [s.trueAt - s.readyAt] : []));

      // Native: the same bump through the Deployment controller.
      const n0 = await writes();
      const t1 = Date.now();
      await kubectl(['-n', natNs, 'set', 'image', 'deployment/web', `app=${IMAGES[1]}`]);
      await waitFor('native rollout done', () => allReady(natNs, IMAGES[1]!), 1_800_000);
      const nativeMs = Date.now() - t1;
      const nativeWrites = (await writes()) - n0;

      rows.push(
        `| ${n} | ${(inplaceMs / 1000).toFixed(1)} | ${inplaceWrites} (${(inplaceWrites / n).toFixed(1)}/pod) | ${(nativeMs / 1000).toFixed(1)} | ${nativeWrites} (${(nativeWrites / n).toFixed(1)}/pod) | ` +
          `${(inplaceMs / nativeMs).toFixed(2)}x | ${(inplaceWrites / nativeWrites).toFixed(2)}x | ${pct(toFalse, 50)} / ${pct(toFalse, 99)} | ${pct(toTrue, 50)} / ${pct(toTrue, 99)} |`,
      );
      console.error(rows.at(-1));
      await kubectl(['delete', 'namespace', inNs, natNs, '--wait=false']);
    }
  } finally {
    for (const c of children) c.kill('SIGTERM');
    client.close();
    if (process.env.BENCH_KEEP_CLUSTER !== '1') await sh(['down']);
  }
  console.log(`bench:update, ${nodes} hollow nodes, grace ${GRACE_S}s, ${new Date().toISOString()}; writes = apiserver_request_total POST/PUT/PATCH/DELETE/APPLY by every client during the rollout`);
  console.log('| pods | in place s | in place writes | native s | native writes | time ratio | writes ratio | request -> False p50 / p99 ms | container ready -> True p50 / p99 ms |');
  console.log('| --- | --- | --- | --- | --- | --- | --- | --- | --- |');
  for (const r of rows) console.log(r);
}

await main();
