// npm run bench:realistic — one Deployment shape rolled out on real nodes (the real kubelet over
// containerd, test/cluster/lab.sh), side by side in one run: natively (a namespace that did not opt
// in: new pods scheduled, sandboxes and networks created, both containers started), in place with
// the watcher's --pre-pull=false, and in place with pre-pull (the default). Each rollout goes to a
// tag whose top layer no node has; the base layer is on both nodes from the first deploy, as it
// would be on nodes that ran the workload before.
//
// Workload: BENCH_REPLICAS pods (30) of an app container and a log/metrics sidecar, each with a
// readiness probe (HTTP, every 1 s) and a start-up time (BENCH_APP_START_SECONDS 3,
// BENCH_SIDECAR_START_SECONDS 1), sharing an emptyDir; maxUnavailable 25%, maxSurge 25% (the
// Deployment defaults); grace BENCH_GRACE_SECONDS (2). Images (bench/realistic-images.sh): a base
// layer of BENCH_BASE_MB (150) incompressible MiB and a top layer of BENCH_TOP_MB (16); the
// registry's answers limited to BENCH_MBIT (300) Mbit/s by tc inside the lab network namespace.
//
// Figures per rollout: wall time (set image -> every pod on the new image, Ready, the Deployment
// done), per-pod time out of the EndpointSlice's ready endpoints (in place: the same pod leaves and
// comes back), capacity lost (pod-seconds below the replica count, from the slices), requests failed
// under live traffic (support/traffic-client.ts in the lab), API writes by client (audit log), node
// CPU (the nodes' cgroups and their kubelet, containerd and shims). Ends with the line
// `ratio in-place/native: X.XX` (wall time, in place with pre-pull over native).

import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readFile, readdir, readlink } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import type { Pod } from '../src/core/kube-types.ts';
import { ROLLOUT_STATE_ANNOTATION, UPDATE_ANNOTATION } from '../src/core/names.ts';
import type { Workload } from '../src/core/workload-types.ts';
import { spawnTraffic, type Traffic } from '../test/e2e/support/traffic.ts';
import { countBy, createNamespace, gate, pct, podsOf, ready, sleep, startBenchCluster, waitFor, type BenchCluster } from './harness.ts';

const run = promisify(execFile);
const repo = resolve(import.meta.dirname, '..');
const env = (name: string, fallback: number) => Number(process.env[name] ?? fallback);
const replicas = env('BENCH_REPLICAS', 30);
const grace = env('BENCH_GRACE_SECONDS', 2);
const mbit = env('BENCH_MBIT', 300);
const appStart = env('BENCH_APP_START_SECONDS', 3);
const sidecarStart = env('BENCH_SIDECAR_START_SECONDS', 1);
const REAL_NODES = 2;
const APP = 'web';

type Mode = 'native' | 'in place, no pre-pull' | 'in place, pre-pull';

/** The lab's registry (127.0.0.1:5000 in the netns) answers at `mbit`; everything else on lo unlimited. */
async function limitRegistry(netns: string): Promise<void> {
  const tc = (args: string) => run('ip', ['netns', 'exec', netns, 'tc', ...args.split(' ')]);
  await tc('qdisc del dev lo root').catch(() => undefined); // a kept cluster's from before
  await tc('qdisc add dev lo root handle 1: htb default 10');
  await tc('class add dev lo parent 1: classid 1:10 htb rate 10gbit quantum 65536');
  await tc(`class add dev lo parent 1: classid 1:20 htb rate ${String(mbit)}mbit ceil ${String(mbit)}mbit burst 256k cburst 256k quantum 65536`);
  await tc('filter add dev lo parent 1: protocol ip prio 1 u32 match ip sport 5000 0xffff flowid 1:20');
}

function deployment(ns: string, image: string, sidecar: string) {
  const labels = { app: APP };
  const probe = (port: number) => ({ httpGet: { path: '/', port }, periodSeconds: 1 });
  const resources = { requests: { cpu: '10m', memory: '16Mi' } };
  const mounts = [{ name: 'logs', mountPath: '/logs' }];
  return {
    apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name: APP, namespace: ns },
    spec: {
      replicas, selector: { matchLabels: labels },
      strategy: { type: 'RollingUpdate', rollingUpdate: { maxUnavailable: '25%', maxSurge: '25%' } },
      template: {
        metadata: { labels, annotations: { 'inplace-gate.dev/grace-period-seconds': String(grace), 'inplace-gate.dev/serving-containers': 'app' } },
        spec: {
          // only real nodes (lab.sh's label and taint)
          nodeSelector: { 'inplace-gate.dev/test-node': 'real' },
          tolerations: [{ key: 'inplace-gate.dev/test-node', operator: 'Equal', value: 'real', effect: 'NoSchedule' }],
          topologySpreadConstraints: [{ maxSkew: 1, topologyKey: 'kubernetes.io/hostname', whenUnsatisfiable: 'ScheduleAnyway', labelSelector: { matchLabels: labels } }],
          volumes: [{ name: 'logs', emptyDir: {} }],
          containers: [
            { name: 'app', image, env: [{ name: 'START_SECONDS', value: String(appStart) }], ports: [{ containerPort: 8080 }], readinessProbe: probe(8080), resources, volumeMounts: mounts },
            { name: 'sidecar', image: sidecar, env: [{ name: 'START_SECONDS', value: String(sidecarStart) }], readinessProbe: probe(9090), resources, volumeMounts: mounts },
          ],
        },
      },
    },
  };
}

const live = (pods: Pod[]) => pods.filter((p) => p.metadata.deletionTimestamp === undefined);
const onImage = (p: Pod, image: string) => p.spec.containers[0]?.image === image && p.status?.containerStatuses?.find((c) => c.name === 'app')?.image === image;

/** Every pod on `image` and Ready, the Deployment done (natively: no old pods; in place: released, no update in flight). */
async function settled(b: BenchCluster, ns: string, image: string, inPlace: boolean): Promise<boolean> {
  const d = await b.client.get<Workload & { status?: { updatedReplicas?: number; availableReplicas?: number; replicas?: number; observedGeneration?: number } }>(`/apis/apps/v1/namespaces/${ns}/deployments/${APP}`);
  const pods = live(await podsOf(b.client, ns, APP));
  const podsDone = pods.length === replicas && pods.every((p) => ready(p) && onImage(p, image));
  if (!inPlace) return podsDone && d.status?.observedGeneration === d.metadata.generation && d.status?.updatedReplicas === replicas && d.status.availableReplicas === replicas && d.status.replicas === replicas;
  return podsDone && !d.spec.paused && d.metadata.annotations?.[ROLLOUT_STATE_ANNOTATION] === undefined &&
    pods.every((p) => gate(p) === 'True' && p.metadata.annotations?.[UPDATE_ANNOTATION] === undefined);
}

/** CPU seconds of the real nodes: their pods' cgroups, and every process in their mount namespaces (kubelet, containerd, shims). */
async function nodeCpuSeconds(b: BenchCluster): Promise<number> {
  const prefix = `inplace-gate-${createHash('sha256').update(b.env.CLUSTER_DIR ?? '').digest('hex').slice(0, 8)}-node`;
  const mounts = (await readFile('/proc/self/mounts', 'utf8')).split('\n').map((l) => l.split(' '));
  const cpuacct = mounts.find((m) => m[2] === 'cgroup' && (m[3] ?? '').split(',').includes('cpuacct'))?.[1];
  let seconds = 0;
  const namespaces = new Set<string>();
  for (let i = 0; i < REAL_NODES; i++) {
    if (cpuacct) seconds += Number(await readFile(join(cpuacct, `${prefix}-${String(i)}`, 'cpuacct.usage'), 'utf8').catch(() => '0')) / 1e9;
    const holder = (await readFile(join(b.dir, 'pids', `real-node-${String(i)}-ns.pid`), 'utf8').catch(() => '')).trim();
    if (holder) namespaces.add(await readlink(`/proc/${holder}/ns/mnt`).catch(() => ''));
  }
  namespaces.delete('');
  for (const pid of await readdir('/proc')) {
    if (!/^\d+$/.test(pid)) continue;
    if (!namespaces.has(await readlink(`/proc/${pid}/ns/mnt`).catch(() => ''))) continue;
    const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => '');
    // utime stime cutime cstime, in clock ticks (100 a second on Linux), after the command's ")"
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    seconds += [11, 12, 13, 14].reduce((s, k) => s + Number(f[k] ?? 0), 0) / 100;
  }
  return seconds;
}

interface SliceEndpoint { conditions?: { ready?: boolean | null }; targetRef?: { kind?: string; name?: string } }
interface Slice { metadata: { name: string }; endpoints?: SliceEndpoint[] | null }

/** The Service's ready endpoints over time, from its EndpointSlices: per-pod time out, capacity below `replicas`. */
async function watchEndpoints(b: BenchCluster, ns: string) {
  const path = `/apis/discovery.k8s.io/v1/namespaces/${ns}/endpointslices?labelSelector=kubernetes.io%2Fservice-name%3D${APP}`;
  const list = await b.client.get<{ metadata: { resourceVersion: string }; items: Slice[] }>(path);
  const slices = new Map<string, SliceEndpoint[]>();
  for (const s of list.items) slices.set(s.metadata.name, s.endpoints ?? []);
  const readySet = () => new Set([...slices.values()].flat().filter((e) => e.conditions?.ready === true).map((e) => e.targetRef?.name ?? ''));
  let current = readySet();
  const timeline: { t: number; ready: number }[] = [{ t: Date.now(), ready: current.size }];
  const leftAt = new Map<string, number>();
  const windows: number[] = [];
  const abort = new AbortController();
  const watching = b.client.watch<Slice>(`${path}&watch=true&resourceVersion=${list.metadata.resourceVersion}`, ({ type, object }) => {
    if (type === 'DELETED') slices.delete(object.metadata.name);
    else slices.set(object.metadata.name, object.endpoints ?? []);
    const now = Date.now();
    const next = readySet();
    for (const pod of current) if (!next.has(pod)) leftAt.set(pod, now);
    for (const pod of next) {
      const left = leftAt.get(pod);
      if (!current.has(pod) && left !== undefined) { windows.push(now - left); leftAt.delete(pod); }
    }
    current = next;
    timeline.push({ t: now, ready: next.size });
  }, abort.signal).catch(() => undefined);
  return {
    async stop(from: number, to: number) {
      abort.abort();
      await watching;
      let lost = 0;
      let least = replicas;
      for (let i = 0; i < timeline.length; i++) {
        const { t, ready: n } = timeline[i]!;
        const until = Math.min(timeline[i + 1]?.t ?? to, to);
        if (until <= from) continue;
        least = Math.min(least, n);
        lost += Math.max(0, replicas - n) * (until - Math.max(t, from)) / 1000;
      }
      // Pods that left and never came back (natively: every replaced pod).
      return { windows, neverBack: leftAt.size, lostPodSeconds: lost, least };
    },
  };
}

/** When each pod of the rollout reached its steps (pod watch): in place False, image write, app ready, True; natively created, ready. */
async function watchPods(b: BenchCluster, ns: string, image: string) {
  const path = `/api/v1/namespaces/${ns}/pods?labelSelector=app%3D${APP}`;
  const list = await b.client.get<{ metadata: { resourceVersion: string } }>(path);
  const at = { askedAt: new Map<string, number>(), falseAt: new Map<string, number>(), writeAt: new Map<string, number>(), appReadyAt: new Map<string, number>(), trueAt: new Map<string, number>(), createdAt: new Map<string, number>(), readyAt: new Map<string, number>() };
  const abort = new AbortController();
  const mark = (m: Map<string, number>, name: string, now: number) => { if (!m.has(name)) m.set(name, now); };
  const watching = b.client.watch<Pod>(`${path}&watch=true&resourceVersion=${list.metadata.resourceVersion}`, ({ type, object: p }) => {
    const name = p.metadata.name ?? '';
    const now = Date.now();
    const app = p.status?.containerStatuses?.find((c) => c.name === 'app');
    if (type === 'ADDED' && p.spec.containers[0]?.image === image) mark(at.createdAt, name, now);
    if (at.createdAt.has(name) && ready(p)) mark(at.readyAt, name, now);
    if (p.metadata.annotations?.[UPDATE_ANNOTATION] !== undefined && p.spec.containers[0]?.image !== image) mark(at.askedAt, name, now);
    if (gate(p) === 'False' && p.spec.containers[0]?.image !== image) mark(at.falseAt, name, now);
    if (at.falseAt.has(name) && p.spec.containers[0]?.image === image) mark(at.writeAt, name, now);
    if (at.writeAt.has(name) && app?.ready === true && app.image === image) mark(at.appReadyAt, name, now);
    if (at.appReadyAt.has(name) && gate(p) === 'True') mark(at.trueAt, name, now);
  }, abort.signal).catch(() => undefined);
  const span = (a: Map<string, number>, z: Map<string, number>) => [...a].flatMap(([n, x]) => { const y = z.get(n); return y === undefined ? [] : [(y - x) / 1000]; });
  const both = (xs: number[]) => `${pct(xs, 50).toFixed(1)} / ${pct(xs, 99).toFixed(1)}`;
  return {
    async stop(inPlace: boolean): Promise<string> {
      abort.abort();
      await watching;
      if (!inPlace) return `pod created -> Ready ${both(span(at.createdAt, at.readyAt))} s`;
      return `asked -> False (the pull, with pre-pull) ${both(span(at.askedAt, at.falseAt))} s, False -> image write ${both(span(at.falseAt, at.writeAt))} s, write -> app ready ${both(span(at.writeAt, at.appReadyAt))} s, app ready -> True ${both(span(at.appReadyAt, at.trueAt))} s`;
    },
  };
}

/** Waits until the client sends to every replica. */
async function trafficFlowing(t: Traffic): Promise<void> {
  await waitFor('traffic to every replica', () => Promise.resolve((t.endpoints.at(-1)?.endpoints.length ?? 0) === replicas && t.requests.length >= 100), 120_000);
}

interface Row { mode: Mode; from: string; to: string; wallS: number; windows: string; lost: string; requests: string; writes: string; cpuS: number; phases: string }

async function rollout(b: BenchCluster, mode: Mode, ns: string, from: string, to: string): Promise<Row> {
  const inPlace = mode !== 'native';
  const nodes = await b.client.get<{ items: { metadata: { name?: string }; status?: { images?: { names?: string[] }[] } }[] }>('/api/v1/nodes?labelSelector=inplace-gate.dev%2Ftest-node%3Dreal');
  const having = nodes.items.filter((n) => (n.status?.images ?? []).some((i) => (i.names ?? []).includes(to))).map((n) => n.metadata.name);
  if (having.length > 0) throw new Error(`${to} is on ${having.join(', ')} already: the rollout would not pull`);
  const traffic = spawnTraffic(b.env.CLUSTER_NETNS ?? '', join(b.dir, 'kubeconfig'), ns, APP, 8080, 1800);
  await trafficFlowing(traffic);
  const endpoints = await watchEndpoints(b, ns);
  const pods = await watchPods(b, ns, to);
  const cpu0 = await nodeCpuSeconds(b);
  const sent0 = traffic.requests.length;
  const t0 = Date.now();
  await b.kubectl(['-n', ns, 'set', 'image', `deployment/${APP}`, `app=${to}`]);
  await waitFor(`${mode} rollout`, () => settled(b, ns, to, inPlace), 900_000);
  const t1 = Date.now();
  const cpuS = (await nodeCpuSeconds(b)) - cpu0;
  const requests = traffic.requests.slice(sent0).filter((r) => r.t <= t1);
  await traffic.stop();
  const e = await endpoints.stop(t0, t1);
  const phases = await pods.stop(inPlace);
  const failed = requests.filter((r): r is Extract<typeof r, { ok: false }> => !r.ok);
  const errors = countBy(failed, (r) => r.error).map(([k, n]) => `${k} ${String(n)}`).join(', ');
  // The audit log is written a moment after the request.
  await sleep(1000);
  const writes = (await b.audited(t0, t1)).filter((w) => w.namespace === ns);
  const byClient = countBy(writes, (w) => w.client).map(([c, n]) => `${c} ${String(n)}`).join(', ');
  const w = e.windows.map((ms) => ms / 1000);
  return {
    mode, from, to, wallS: (t1 - t0) / 1000, cpuS, phases,
    windows: w.length === 0 ? `none came back (${String(e.neverBack)} replaced)` : `${pct(w, 50).toFixed(1)} / ${pct(w, 99).toFixed(1)} / ${Math.max(...w).toFixed(1)} (${String(w.length)} pods)`,
    lost: `${e.lostPodSeconds.toFixed(0)} (least ready ${String(e.least)})`,
    requests: `${String(requests.length)} / ${String(failed.length)}${errors ? ` (${errors})` : ''}`,
    writes: `${String(writes.length)}: ${byClient}`,
  };
}

async function main() {
  const dir = process.env.BENCH_CLUSTER_DIR ?? join(repo, '.cluster-realistic');
  const b = await startBenchCluster(1, 110, { realNodes: REAL_NODES, dir, watcherArgs: ['--pre-pull=false'] });
  const rows: Row[] = [];
  try {
    const netns = b.env.CLUSTER_NETNS ?? '';
    await limitRegistry(netns);
    const t = Date.now();
    const id = Date.now().toString(36);
    const { stdout } = await run('bash', [join(repo, 'bench/realistic-images.sh')], { env: { ...process.env, CLUSTER_DIR: b.env.CLUSTER_DIR ?? dir, BENCH_IMAGE_RUN: id }, maxBuffer: 1 << 20 });
    const images = new Map(stdout.trim().split('\n').map((l) => l.split(' ') as [string, string]));
    console.error(`bench: images pushed in ${String((Date.now() - t) / 1000)} s: ${[...images.keys()].join(', ')}`);
    const ref = (repoTag: string) => [...images.keys()].find((k) => k.endsWith(`/${repoTag}`)) ?? '';
    const [v1, v2, v3, v4, sidecar] = [`bench-app:v1-${id}`, `bench-app:v2-${id}`, `bench-app:v3-${id}`, `bench-app:v4-${id}`, 'bench-sidecar:1'].map(ref) as [string, string, string, string, string];

    // Natively first: its first deploy puts the base layer and the sidecar on both nodes.
    const nativeNs = `realistic-native-${id}`;
    await createNamespace(b, nativeNs, {});
    await b.kubectl(['apply', '-f', '-'], JSON.stringify({ apiVersion: 'v1', kind: 'Service', metadata: { name: APP, namespace: nativeNs }, spec: { selector: { app: APP }, ports: [{ port: 8080 }] } }));
    const t2 = Date.now();
    await b.kubectl(['apply', '-f', '-'], JSON.stringify(deployment(nativeNs, v1, sidecar)));
    await waitFor('the native Deployment on v1', () => settled(b, nativeNs, v1, false), 900_000);
    const spread = countBy(live(await podsOf(b.client, nativeNs, APP)), (p) => p.spec.nodeName ?? '');
    console.error(`bench: first deploy (base layer pulled) in ${String((Date.now() - t2) / 1000)} s; pods per node: ${spread.map(([n, c]) => `${n} ${String(c)}`).join(', ')}`);
    rows.push(await rollout(b, 'native', nativeNs, v1, v2));
    console.error(rows.at(-1));
    await b.kubectl(['delete', 'namespace', nativeNs, '--wait=true', '--timeout=300s']);

    const ns = `realistic-inplace-${id}`;
    await createNamespace(b, ns, { 'inplace-gate.dev/enabled': 'true' });
    await b.kubectl(['apply', '-f', '-'], JSON.stringify({ apiVersion: 'v1', kind: 'Service', metadata: { name: APP, namespace: ns }, spec: { selector: { app: APP }, ports: [{ port: 8080 }] } }));
    await b.kubectl(['apply', '-f', '-'], JSON.stringify(deployment(ns, v1, sidecar)));
    await waitFor('the in-place Deployment on v1', () => settled(b, ns, v1, true), 900_000);
    rows.push(await rollout(b, 'in place, no pre-pull', ns, v1, v3));
    console.error(rows.at(-1));
    await b.restartWatcher([]);
    // Leading is not yet watching: give its caches a moment to fill before the rollout is timed.
    await sleep(5000);
    rows.push(await rollout(b, 'in place, pre-pull', ns, v3, v4));
    console.error(rows.at(-1));
    await b.kubectl(['delete', 'namespace', ns, '--wait=false']);
  } finally {
    await b.stop();
  }
  console.log(`bench:realistic, ${String(REAL_NODES)} real nodes (kubelet v1.37.2, containerd), ${String(replicas)} replicas (app + sidecar, readiness every 1 s, start-up ${String(appStart)} s / ${String(sidecarStart)} s), ` +
    `maxUnavailable 25%, maxSurge 25%, grace ${String(grace)} s; images ${process.env.BENCH_BASE_MB ?? '150'} MiB base (on the nodes) + ${process.env.BENCH_TOP_MB ?? '16'} MiB top layer (new each rollout), registry at ${String(mbit)} Mbit/s; ${new Date().toISOString()}`);
  console.log('| rollout | images | wall s | per-pod out of endpoints p50 / p99 / max s | capacity lost pod-s | requests / failed | API writes in the namespace, by client | node CPU s |');
  console.log('| --- | --- | --- | --- | --- | --- | --- | --- |');
  for (const r of rows) console.log(`| ${r.mode} | ${r.from.split(':').at(-1) ?? ''} -> ${r.to.split(':').at(-1) ?? ''} | ${r.wallS.toFixed(1)} | ${r.windows} | ${r.lost} | ${r.requests} | ${r.writes} | ${r.cpuS.toFixed(1)} |`);
  console.log('');
  for (const r of rows) console.log(`${r.mode}, per pod p50 / p99: ${r.phases}`);
  const native = rows.find((r) => r.mode === 'native');
  const noPull = rows.find((r) => r.mode === 'in place, no pre-pull');
  const prePull = rows.find((r) => r.mode === 'in place, pre-pull');
  if (!native || !noPull || !prePull) throw new Error('a rollout is missing');
  console.log(`ratio in-place without pre-pull/native: ${(noPull.wallS / native.wallS).toFixed(2)}`);
  console.log(`ratio in-place/native: ${(prePull.wallS / native.wallS).toFixed(2)}`);
}

// A timeout's SIGTERM: exit, so that the webhook, watcher and traffic client end with this process.
process.once('SIGTERM', () => process.exit(143));
await main();
