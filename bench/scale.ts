// npm run bench:scale — one watcher over BENCH_PODS (10,000) managed pods, on a control plane of
// its own (its own CLUSTER_DIR, no hollow nodes): Node objects that no kubelet runs, their Leases
// renewed by the bench, pods bound with spec.nodeName, and the bench playing the kubelet for every
// pod through pods/status (Running, container statuses with imageID, observedGeneration, Ready from
// the containers and the readiness gates; a changed spec image restarts the container: new
// containerID and imageID, restartCount + 1). Measures, on the watcher as a real process:
//   - start -> caches synced (its log) and -> the startup reconcile done (its /metrics);
//   - RSS (/proc/PID/status) once settled, and the heap split (its /metrics);
//   - CPU at rest over BENCH_REST_SECONDS (60), from /proc/PID/stat;
//   - BENCH_CHANGES (1000) image changes asked at once: request -> drained (condition False) ->
//     image written -> proven (condition True, state cleared) per pod, against the grace period.
// Baselines in the same run: the watcher at BENCH_SMALL (1000) pods, and a bare client-node
// informer (bench/scale-informer.ts) holding the same 10,000 pods untrimmed.
// Pods are created through the webhook (BENCH_GATE_PRESET=1: with the gate and label already set).

import { spawn, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import type { ContainerStatus, Pod, PodCondition } from '../src/core/kube-types.ts';
import { ENABLED_LABEL, GRACE_PERIOD_ANNOTATION, MANAGED_LABEL, READINESS_GATE, UPDATE_ANNOTATION } from '../src/core/names.ts';
import { KubeClient, loadKubeConfig } from '../src/kube/client.ts';
import { freePort } from '../test/support/ports.ts';
import { IMAGES, createNamespace, gate, pct, sleep, startBenchCluster, waitFor, type BenchCluster } from './harness.ts';

process.env.CLUSTER_REAL_NODES ??= '0';
const PODS = Number(process.env.BENCH_PODS ?? 10_000);
const SMALL = Number(process.env.BENCH_SMALL ?? 1000);
const CHANGES = Number(process.env.BENCH_CHANGES ?? 1000);
const NODES = Number(process.env.BENCH_FAKE_NODES ?? 50);
const REST_S = Number(process.env.BENCH_REST_SECONDS ?? 60);
const PRESET = process.env.BENCH_GATE_PRESET === '1';
const CREATORS = 32;
const GRACE_S = 2;
const NS = 'scale';
const MiB = 1024 * 1024;
const repo = join(import.meta.dirname, '..');
const log = (msg: string) => { console.error(`bench:scale ${new Date().toISOString().slice(11, 19)} ${msg}`); };

const micro = (d = new Date()) => d.toISOString().replace('Z', '000Z');
const imageID = (image: string) => `${image.split(':')[0] ?? image}@sha256:${createHash('sha256').update(image).digest('hex')}`;
const rv = (o: { metadata: { resourceVersion?: string } } | undefined) => Number(o?.metadata.resourceVersion ?? 0);

// ---- Nodes no kubelet runs: the Node, Ready, and a Lease renewed as a kubelet would (every 10 s). ----

async function fakeNodes(client: KubeClient, signal: AbortSignal): Promise<string[]> {
  const names = Array.from({ length: NODES }, (_, i) => `scale-node-${i}`);
  for (const name of names) {
    await client.post('/api/v1/nodes', { apiVersion: 'v1', kind: 'Node', metadata: { name, labels: { 'kubernetes.io/hostname': name, 'topology.kubernetes.io/zone': `zone-${names.indexOf(name) % 3}` } } });
    const now = new Date().toISOString();
    const capacity = { cpu: '64', memory: '256Gi', pods: '1000' };
    await client.patch(`/api/v1/nodes/${name}/status`, { status: { capacity, allocatable: capacity, conditions: [{ type: 'Ready', status: 'True', reason: 'KubeletReady', message: 'bench', lastHeartbeatTime: now, lastTransitionTime: now }] } }, 'strategic');
    await client.post('/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases', { apiVersion: 'coordination.k8s.io/v1', kind: 'Lease', metadata: { name }, spec: { holderIdentity: name, leaseDurationSeconds: 40, renewTime: micro() } });
  }
  void (async () => {
    while (!signal.aborted) {
      await sleep(10_000);
      await Promise.all(names.map((name) => client.patch(`/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/${name}`, { spec: { renewTime: micro() } }, 'merge').catch(() => undefined)));
    }
  })();
  return names;
}

// ---- The kubelet's part, for every pod of the namespace: one pod watch, status patches from it. ----

/** The status a kubelet would publish for `p` now, as a strategic patch; undefined when it already does. */
function kubeletStatus(p: Pod, now: string): object | undefined {
  const st = p.status ?? {};
  let changed = st.phase !== 'Running' || st.observedGeneration !== p.metadata.generation;
  const statuses: ContainerStatus[] = p.spec.containers.map((c) => {
    const old = st.containerStatuses?.find((s) => s.name === c.name);
    if (old && old.image === c.image) return old;
    changed = true;
    // A spec image that differs from the running one: the kubelet restarts the container on it.
    const started = old?.state?.running?.startedAt;
    return {
      name: c.name, image: c.image ?? '', imageID: imageID(c.image ?? ''), containerID: `containerd://${randomBytes(16).toString('hex')}`,
      ready: true, started: true, restartCount: old ? old.restartCount + 1 : 0, state: { running: { startedAt: now } },
      lastState: old ? { terminated: { exitCode: 0, reason: 'Completed', ...(started ? { startedAt: started } : {}), finishedAt: now, ...(old.containerID ? { containerID: old.containerID } : {}) } } : {},
    };
  });
  const conditions = st.conditions ?? [];
  const gatesOk = (p.spec.readinessGates ?? []).every((g) => conditions.some((c) => c.type === g.conditionType && c.status === 'True'));
  const cond = (type: string, status: PodCondition['status']) => {
    const old = conditions.find((c) => c.type === type);
    if (old?.status !== status) changed = true;
    return { type, status, lastProbeTime: null, lastTransitionTime: old?.status === status ? old.lastTransitionTime : now, observedGeneration: p.metadata.generation };
  };
  const ready = statuses.every((s) => s.ready) && gatesOk ? 'True' : 'False';
  const patchConditions = [cond('PodScheduled', 'True'), cond('Initialized', 'True'), cond('ContainersReady', 'True'), cond('Ready', ready)];
  if (!changed) return undefined;
  return { status: { phase: 'Running', observedGeneration: p.metadata.generation, hostIP: '127.0.0.1', startTime: (st.startTime as string | undefined) ?? now, conditions: patchConditions, containerStatuses: statuses } };
}

interface Kubelet {
  pods: Map<string, Pod>;
  /** Called for every pod version seen (watch or write response). */
  onPod: ((p: Pod) => void) | undefined;
  idle: () => boolean;
}

function fakeKubelet(client: KubeClient, signal: AbortSignal): Kubelet {
  const pods = new Map<string, Pod>();
  const dirty = new Set<string>();
  let active = 0;
  const k: Kubelet = { pods, onPod: undefined, idle: () => dirty.size === 0 && active === 0 };
  const seen = (p: Pod) => {
    const name = p.metadata.name ?? '';
    if (rv(p) < rv(pods.get(name))) return;
    pods.set(name, p);
    k.onPod?.(p);
    if (kubeletStatus(p, new Date().toISOString()) !== undefined) { dirty.add(name); pump(); }
  };
  const pump = () => {
    while (active < 16 && dirty.size > 0) {
      const name = dirty.values().next().value as string;
      dirty.delete(name);
      const p = pods.get(name);
      const patch = p && kubeletStatus(p, new Date().toISOString());
      if (!patch) continue;
      active++;
      client.patch<Pod>(`/api/v1/namespaces/${NS}/pods/${name}/status`, patch, 'strategic')
        .then(seen, (err: unknown) => { if (!String(err).includes('not found')) { log(`kubelet: ${String(err)}`); dirty.add(name); } })
        .finally(() => { active--; pump(); });
    }
  };
  void (async () => {
    // Listed again after a watch that failed (a 410 after a long run, say); pods seen go through `seen` either way.
    const list = async () => {
      const l = await client.get<{ metadata: { resourceVersion: string }; items: Pod[] }>(`/api/v1/namespaces/${NS}/pods`);
      for (const p of l.items) seen(p);
      return l.metadata.resourceVersion;
    };
    let from = await list();
    while (!signal.aborted) {
      const ok = await client.watch<Pod>(`/api/v1/namespaces/${NS}/pods?watch=true&allowWatchBookmarks=true&resourceVersion=${from}`, (e) => {
        from = e.object.metadata.resourceVersion ?? from;
        if (e.type === 'ADDED' || e.type === 'MODIFIED') seen(e.object);
      }, signal).then(() => true, (err: unknown) => { log(`kubelet watch: ${String(err)}`); return false; });
      if (!ok) from = await list().catch(() => from);
    }
  })();
  return k;
}

// ---- The watcher process: RSS and CPU from /proc, the heap split and the queue from /metrics. ----

async function procStatus(pid: number) {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  const kib = (key: string) => Number(new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? 0);
  return { rssMiB: kib('VmRSS') / 1024, hwmMiB: kib('VmHWM') / 1024 };
}
/** User + system CPU seconds of the process so far (clock ticks of 1/100 s). */
async function cpuSeconds(pid: number): Promise<number> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

interface Watcher { child: ChildProcess; port: number; spawnedAt: number; syncedAt: number; idleAt: number }

async function scrape(port: number): Promise<Map<string, number>> {
  const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (line.startsWith('#') || line === '') continue;
    const at = line.lastIndexOf(' ');
    out.set(line.slice(0, at), Number(line.slice(at + 1)));
  }
  return out;
}

async function startWatcher(b: BenchCluster, name: string, pods: number): Promise<Watcher> {
  const port = await freePort();
  const spawnedAt = Date.now();
  const child = b.startWatcher(name, ['--health-port', String(port), '--log-level', 'info']);
  const logFile = join(b.clusterDir, 'logs', `${name}.log`);
  let syncedAt = 0;
  await waitFor(`${name} synced`, async () => {
    const text = await readFile(logFile, 'utf8').catch(() => '');
    const line = text.split('\n').find((l) => l.includes('"caches synced"'));
    if (line) syncedAt = Date.parse((JSON.parse(line) as { time: string }).time);
    return line !== undefined;
  }, 600_000);
  // The startup pass: every pod decided once by the leader, the queue empty.
  await waitFor(`${name} startup reconcile`, async () => {
    const m = await scrape(port).catch(() => new Map<string, number>());
    const done = [...m].filter(([k]) => k.startsWith('controller_runtime_reconcile_total{') && k.includes('controller="pod"')).reduce((s, [, v]) => s + v, 0);
    return m.get('leader_election_master_status{name="inplace-gate-watcher"}') === 1 && done >= pods && m.get('workqueue_depth{name="pods"}') === 0;
  }, 600_000);
  return { child, port, spawnedAt, syncedAt, idleAt: Date.now() };
}

async function stopProcess(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null) return;
  const exited = new Promise((r) => child.once('exit', r));
  child.kill('SIGTERM');
  await exited;
}

interface Figures { pods: number; syncS: number; idleS: number; rssMiB: number; heapUsedMiB: number; heapTotalMiB: number; externalMiB: number; restCpuPct: number }

/** Settled figures of a running watcher: RSS after `settleMs`, the heap split, CPU over `restS`. */
async function measure(w: Watcher, pods: number, restS: number): Promise<Figures> {
  const pid = w.child.pid ?? 0;
  await sleep(10_000);
  const c0 = await cpuSeconds(pid);
  const t0 = performance.now();
  await sleep(restS * 1000);
  const cpu = (await cpuSeconds(pid)) - c0;
  const restCpuPct = (100 * cpu) / ((performance.now() - t0) / 1000);
  const { rssMiB } = await procStatus(pid);
  const m = await scrape(w.port);
  const get = (k: string) => (m.get(k) ?? NaN) / MiB;
  return { pods, syncS: (w.syncedAt - w.spawnedAt) / 1000, idleS: (w.idleAt - w.spawnedAt) / 1000, rssMiB, heapUsedMiB: get('nodejs_heap_size_used_bytes'), heapTotalMiB: get('nodejs_heap_size_total_bytes'), externalMiB: get('nodejs_external_memory_bytes'), restCpuPct };
}

async function createPods(client: KubeClient[], from: number, to: number, nodes: string[]): Promise<void> {
  let next = from;
  let done = 0;
  const t0 = Date.now();
  const progress = setInterval(() => { log(`created ${from + done}/${to} (${(done / ((Date.now() - t0) / 1000)).toFixed(0)}/s)`); }, 10_000);
  try {
    await Promise.all(Array.from({ length: CREATORS }, async (_, worker) => {
      const c = client[worker % client.length]!;
      for (let i = next++; i < to; i = next++) {
        const pod = {
          apiVersion: 'v1', kind: 'Pod',
          metadata: { name: `pod-${String(i).padStart(5, '0')}`, labels: { app: 'scale', ...(PRESET ? { [MANAGED_LABEL]: 'true' } : {}) } },
          spec: {
            nodeName: nodes[i % nodes.length], terminationGracePeriodSeconds: 0,
            containers: [{ name: 'app', image: IMAGES[0], ports: [{ containerPort: 8080 }], resources: { requests: { cpu: '10m', memory: '16Mi' } } }],
            ...(PRESET ? { readinessGates: [{ conditionType: READINESS_GATE }] } : {}),
          },
        };
        for (let attempt = 0; ; attempt++) {
          try { await c.post(`/api/v1/namespaces/${NS}/pods`, pod); break; } catch (err) {
            if (String(err).includes('already exists')) break;
            if (attempt > 20) throw err;
            await sleep(200 * (attempt + 1));
          }
        }
        done++;
      }
    }));
  } finally {
    clearInterval(progress);
  }
  log(`created ${to - from} pods in ${((Date.now() - t0) / 1000).toFixed(1)} s (${((to - from) / ((Date.now() - t0) / 1000)).toFixed(0)}/s)`);
}

const settled = (p: Pod) => gate(p) === 'True' && p.status?.conditions?.find((c) => c.type === 'Ready')?.status === 'True' && p.metadata.annotations?.[UPDATE_ANNOTATION] === undefined;
async function waitSettled(k: Kubelet, n: number): Promise<void> {
  await waitFor(`${n} pods Ready with the gate True`, () => Promise.resolve(k.idle() && [...k.pods.values()].filter(settled).length >= n), 1_200_000);
}

/** The bare client-node informer over the same pods, in its own process: its time to fill and RSS after 10 s. */
async function bareInformer(b: BenchCluster): Promise<{ syncS: number; rssMiB: number }> {
  const child = spawn(process.execPath, [join(repo, 'bench/scale-informer.ts'), join(b.clusterDir, 'kubeconfig'), `${MANAGED_LABEL}=true`], { stdio: ['ignore', 'pipe', 'inherit'] });
  try {
    const line = await new Promise<string>((ok, fail) => {
      createInterface({ input: child.stdout }).once('line', ok);
      child.once('exit', (code) => { fail(new Error(`scale-informer exited ${String(code)}`)); });
    });
    const { ms } = JSON.parse(line) as { ms: number };
    await sleep(10_000);
    return { syncS: ms / 1000, rssMiB: (await procStatus(child.pid ?? 0)).rssMiB };
  } finally {
    await stopProcess(child);
  }
}

async function main() {
  // cluster.sh wants one hollow node at least; the pods are all on the bench's kubelet-less Nodes.
  const b = await startBenchCluster(1, 110, { watcher: false, audit: false });
  const abort = new AbortController();
  const adminKc = join(b.clusterDir, 'kubeconfig');
  const clients = await Promise.all([0, 1].map(() => KubeClient.create(loadKubeConfig(adminKc), 'bench-scale')));
  const kubeletClient = await KubeClient.create(loadKubeConfig(adminKc), 'bench-kubelet');
  const rows: string[] = [];
  try {
    await createNamespace(b, NS, { [ENABLED_LABEL]: 'true' });
    await b.kubectl(['annotate', 'namespace', NS, `${GRACE_PERIOD_ANNOTATION}=${GRACE_S}`]);
    const nodes = await fakeNodes(clients[0]!, abort.signal);
    const kubelet = fakeKubelet(kubeletClient, abort.signal);
    let w = await startWatcher(b, 'scale-watcher-0', 0);

    // Baseline: the watcher restarted over SMALL settled pods.
    await createPods(clients, 0, SMALL, nodes);
    await waitSettled(kubelet, SMALL);
    await stopProcess(w.child);
    w = await startWatcher(b, 'scale-watcher-small', SMALL);
    const small = await measure(w, SMALL, Math.min(REST_S, 30));
    log(`at ${SMALL}: ${JSON.stringify(small)}`);

    await createPods(clients, SMALL, PODS, nodes);
    await waitSettled(kubelet, PODS);
    await stopProcess(w.child);
    w = await startWatcher(b, 'scale-watcher-large', PODS);
    const large = await measure(w, PODS, REST_S);
    log(`at ${PODS}: ${JSON.stringify(large)}`);
    const bare = await bareInformer(b);
    log(`bare client-node informer at ${PODS}: ${JSON.stringify(bare)}`);

    // CHANGES image changes asked at once (64 requests in flight), each pod's way seen by the bench's watch.
    const targets = [...kubelet.pods.keys()].sort().slice(0, CHANGES);
    const t = new Map(targets.map((n) => [n, { requested: 0, falseAt: 0, writtenAt: 0, provenAt: 0 }]));
    kubelet.onPod = (p) => {
      const s = t.get(p.metadata.name ?? '');
      if (!s || s.requested === 0) return;
      const now = Date.now();
      const image = p.spec.containers[0]?.image;
      if (!s.falseAt && gate(p) === 'False') s.falseAt = now;
      if (!s.writtenAt && image === IMAGES[1]) s.writtenAt = now;
      if (!s.provenAt && image === IMAGES[1] && p.status?.containerStatuses?.[0]?.image === IMAGES[1] && gate(p) === 'True' && p.metadata.annotations?.[UPDATE_ANNOTATION] === undefined) s.provenAt = now;
    };
    const pid = w.child.pid ?? 0;
    let peak = 0;
    const sampler = setInterval(() => { void procStatus(pid).then((s) => { peak = Math.max(peak, s.rssMiB); }, () => undefined); }, 200);
    const cpu0 = await cpuSeconds(pid);
    const t0 = Date.now();
    const queue = [...targets];
    const extra = await Promise.all([0, 1].map(() => KubeClient.create(loadKubeConfig(adminKc), 'bench-client')));
    const askers = [...clients, ...extra];
    await Promise.all(Array.from({ length: 64 }, async (_, i) => {
      for (let name = queue.shift(); name; name = queue.shift()) {
        t.get(name)!.requested = Date.now();
        await askers[i % askers.length]!.patch(`/api/v1/namespaces/${NS}/pods/${name}`, { spec: { containers: [{ name: 'app', image: IMAGES[1] }] } }, 'strategic', 'bench');
      }
    }));
    const askedS = (Date.now() - t0) / 1000;
    await waitFor(`${CHANGES} changes proven`, () => Promise.resolve([...t.values()].every((s) => s.provenAt > 0)), 1_200_000);
    const wallS = (Date.now() - t0) / 1000;
    const changeCpu = (await cpuSeconds(pid)) - cpu0;
    clearInterval(sampler);
    for (const c of extra) c.close();
    const after = await procStatus(pid);
    const all = [...t.values()];
    const drain = all.map((s) => s.writtenAt - s.requested);
    const falseMs = all.map((s) => s.falseAt - s.requested);
    const proof = all.map((s) => s.provenAt - s.writtenAt);

    const f = (x: number, d = 0) => x.toFixed(d);
    rows.push(
      `| ${PODS} | ${f(large.rssMiB)} | ${f(large.heapUsedMiB)} / ${f(large.heapTotalMiB)} / ${f(large.externalMiB)} | ${f(large.syncS, 1)} | ${f(large.idleS, 1)} | ${f(large.restCpuPct, 2)} | ${f(bare.rssMiB)} | ${f(bare.syncS, 1)} | ${f(large.rssMiB / bare.rssMiB, 2)}x |`,
      `| ${SMALL} | ${f(small.rssMiB)} | ${f(small.heapUsedMiB)} / ${f(small.heapTotalMiB)} / ${f(small.externalMiB)} | ${f(small.syncS, 1)} | ${f(small.idleS, 1)} | ${f(small.restCpuPct, 2)} | | | ${f(large.rssMiB / small.rssMiB, 2)}x of ${SMALL} |`,
    );
    const changes = `| ${CHANGES} of ${PODS} | ${GRACE_S} | ${f(askedS, 1)} | ${f(wallS, 1)} | ${f(wallS / GRACE_S, 1)}x | ${pct(falseMs, 50)} / ${pct(falseMs, 99)} | ${pct(drain, 50)} / ${pct(drain, 99)} (min ${Math.min(...drain)}) | ${pct(proof, 50)} / ${pct(proof, 99)} | ${f(changeCpu, 1)} | ${f(peak)} / ${f(after.hwmMiB)} |`;
    console.log(`bench:scale, ${new Date().toISOString()}, ${NODES} kubelet-less Nodes, pods created ${PRESET ? 'with the gate already set' : 'through the webhook'}, grace ${GRACE_S}s`);
    console.log('| pods | watcher RSS MiB | heap used / total / external MiB | start -> synced s | start -> startup pass done s | CPU at rest % of a core | bare client-node informer RSS MiB | its list s | RSS ratio |');
    console.log('| --- | --- | --- | --- | --- | --- | --- | --- | --- |');
    for (const r of rows) console.log(r);
    console.log('');
    console.log('| changes | grace s | all asked in s | all proven in s | wall / grace | request -> False p50 / p99 ms | request -> image write p50 / p99 ms | image write -> proven p50 / p99 ms | watcher CPU s | RSS peak / VmHWM MiB |');
    console.log('| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |');
    console.log(changes);
    await stopProcess(w.child);
  } finally {
    abort.abort();
    for (const c of [...clients, kubeletClient]) c.close();
    await b.stop();
  }
}

await main();
