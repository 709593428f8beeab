// npm run bench:scale:local — what one watcher process holds and costs at rest over N managed pods,
// without a cluster (no heavy lock needed): a loopback HTTP server in this process answers the
// watcher's lists (pages of `limit`, as the apiserver does) with N copies of a pod captured from
// kube-apiserver v1.37.2 (test/fixtures/update-pod-image.json: two containers, managedFields of
// three managers, 6.5 KiB), settled (gate True, Ready), and holds its watches open without events.
// The watcher runs as shipped (`inplace-gate watcher`, own process, the literal env of its container in
// manifests/base/watcher.yaml unless BENCH_UNSHIPPED_ENV=1, --leader-elect=false); measured:
// start -> caches synced (its log), -> the startup pass done (/metrics), RSS (/proc) after 10 s, the
// heap split (/metrics), CPU over BENCH_REST_SECONDS (30). Baseline in the same run: a bare
// @kubernetes/client-node informer (bench/scale-informer.ts) over the same pods from the same server.
// Sizes: BENCH_PODS (default "1000,10000,50000"). bench:scale measures on a real control plane.

import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer, type ServerResponse } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { loadAll } from 'js-yaml';
import type { Pod } from '../src/core/kube-types.ts';
import { MANAGED_LABEL, READINESS_GATE, UPDATE_ANNOTATION } from '../src/core/names.ts';
import { freePort } from '../test/support/ports.ts';
import { sleep, waitFor } from './harness.ts';

const sizes = (process.env.BENCH_PODS ?? '1000,10000,50000').split(',').map(Number);
const REST_S = Number(process.env.BENCH_REST_SECONDS ?? 30);
const repo = join(import.meta.dirname, '..');
const MiB = 1024 * 1024;

/** The captured pod, settled, as a JSON template whose identity fields are filled per copy. */
async function podTemplate(): Promise<string> {
  const review = JSON.parse(await readFile(join(repo, 'test/fixtures/update-pod-image.json'), 'utf8')) as { request: { oldObject: Pod } };
  const pod = review.request.oldObject;
  delete pod.metadata.annotations?.[UPDATE_ANNOTATION];
  const now = pod.status?.startTime as string | undefined ?? '2026-11-28T22:22:32Z';
  const conditions = (pod.status?.conditions ?? []).map((c) => (c.type === 'Ready' ? { ...c, status: 'True' as const, reason: undefined, message: undefined } : c));
  conditions.push({ type: READINESS_GATE, status: 'True', reason: 'PodAdmitted', message: 'managed by inplace-gate', lastTransitionTime: now, lastProbeTime: null });
  pod.status = { ...pod.status, conditions };
  pod.metadata.name = '__NAME__';
  pod.metadata.namespace = 'scale';
  pod.metadata.uid = '__UID__';
  pod.metadata.resourceVersion = '__RV__';
  pod.spec.nodeName = '__NODE__';
  for (const s of pod.status.containerStatuses ?? []) s.containerID = `containerd://__UID__${s.name}`;
  return JSON.stringify(pod);
}

function fakeApiserver(template: string, pods: number) {
  const parts = template.split(/(__NAME__|__UID__|__RV__|__NODE__)/);
  const podJson = (i: number) => parts.map((p) => (p === '__NAME__' ? `pod-${i}` : p === '__UID__' ? `00000000-0000-4000-8000-${String(i).padStart(12, '0')}` : p === '__RV__' ? String(1000 + i) : p === '__NODE__' ? `node-${i % 50}` : p)).join('');
  const rv = String(1000 + pods);
  const watches = new Set<ServerResponse>();
  const server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    res.setHeader('content-type', 'application/json');
    if (url.searchParams.get('watch') === 'true') {
      // Headers at once, as the apiserver sends them: a client may wait for them before it calls itself synced.
      res.writeHead(200);
      res.flushHeaders();
      watches.add(res);
      res.on('close', () => watches.delete(res));
      return;
    }
    const isPods = url.pathname === '/api/v1/pods' && (url.searchParams.get('labelSelector') ?? '').includes(`${MANAGED_LABEL}=true`);
    const total = isPods ? pods : 0;
    const from = Number(url.searchParams.get('continue') ?? 0);
    const limit = Number(url.searchParams.get('limit') ?? 0) || total;
    const to = Math.min(total, from + limit);
    const items: string[] = [];
    for (let i = from; i < to; i++) items.push(podJson(i));
    res.end(`{"kind":"List","apiVersion":"v1","metadata":{"resourceVersion":"${rv}"${to < total ? `,"continue":"${to}"` : ''}},"items":[${items.join(',')}]}`);
  });
  return {
    listen: () => new Promise<number>((ok) => { server.listen(0, '127.0.0.1', () => { const a = server.address(); ok(typeof a === 'object' && a ? a.port : 0); }); }),
    close: () => { for (const w of watches) w.destroy(); server.closeAllConnections(); server.close(); },
  };
}

/** The watcher container's literal environment in manifests/base/watcher.yaml (NODE_OPTIONS); BENCH_UNSHIPPED_ENV=1: none. */
async function shippedEnv(): Promise<Record<string, string>> {
  if (process.env.BENCH_UNSHIPPED_ENV === '1') return {};
  interface Doc { kind: string; spec?: { template: { spec: { containers: { name: string; env?: { name: string; value?: string }[] }[] } } } }
  const docs = loadAll(await readFile(join(repo, 'manifests/base/watcher.yaml'), 'utf8')) as Doc[];
  const c = docs.find((d) => d.kind === 'Deployment')?.spec?.template.spec.containers.find((x) => x.name === 'watcher');
  return Object.fromEntries((c?.env ?? []).flatMap((e) => (e.value === undefined ? [] : [[e.name, e.value]])));
}

async function procStatus(pid: number) {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  return Number(/^VmRSS:\s+(\d+) kB/m.exec(status)?.[1] ?? 0) / 1024;
}
async function cpuSeconds(pid: number): Promise<number> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(f[11]) + Number(f[12])) / 100;
}
async function metrics(port: number): Promise<Map<string, number>> {
  const out = new Map<string, number>();
  for (const line of (await (await fetch(`http://127.0.0.1:${port}/metrics`)).text()).split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const at = line.lastIndexOf(' ');
    out.set(line.slice(0, at), Number(line.slice(at + 1)));
  }
  return out;
}
async function stop(child: ChildProcess) {
  if (child.exitCode !== null) return;
  const exited = new Promise((r) => child.once('exit', r));
  child.kill('SIGTERM');
  await exited;
}

async function watcherAt(kubeconfig: string, dir: string, pods: number, env: Record<string, string>) {
  const port = await freePort();
  const logFile = join(dir, `watcher-${pods}.log`);
  const t0 = Date.now();
  const child = spawn('sh', ['-c', `exec "${process.execPath}" "${join(repo, 'src/cli.ts')}" watcher --kubeconfig "${kubeconfig}" --leader-elect=false --health-port ${port} --log-level info >"${logFile}" 2>&1`], { env: { ...process.env, ...env } });
  try {
    let syncedAt = 0;
    await waitFor('caches synced', async () => {
      if (child.exitCode !== null) throw new Error(`the watcher exited: ${await readFile(logFile, 'utf8')}`);
      const line = (await readFile(logFile, 'utf8').catch(() => '')).split('\n').find((l) => l.includes('"caches synced"'));
      if (line) syncedAt = Date.parse((JSON.parse(line) as { time: string }).time);
      return line !== undefined;
    }, 600_000);
    await waitFor('the startup pass', async () => {
      const m = await metrics(port).catch(() => new Map<string, number>());
      const done = [...m].filter(([k]) => k.startsWith('controller_runtime_reconcile_total{controller="pod"')).reduce((s, [, v]) => s + v, 0);
      return done >= pods && m.get('workqueue_depth{name="pods"}') === 0;
    }, 600_000);
    const passAt = Date.now();
    await sleep(10_000);
    const pid = child.pid ?? 0;
    const rss = await procStatus(pid);
    const c0 = await cpuSeconds(pid);
    const r0 = performance.now();
    await sleep(REST_S * 1000);
    const cpuPct = (100 * ((await cpuSeconds(pid)) - c0)) / ((performance.now() - r0) / 1000);
    const m = await metrics(port);
    const get = (k: string) => (m.get(k) ?? NaN) / MiB;
    return { syncS: (syncedAt - t0) / 1000, passS: (passAt - t0) / 1000, rss, rssAfterRest: await procStatus(pid), heapUsed: get('nodejs_heap_size_used_bytes'), heapTotal: get('nodejs_heap_size_total_bytes'), external: get('nodejs_external_memory_bytes'), cpuPct };
  } finally {
    await stop(child);
  }
}

async function informerAt(kubeconfig: string) {
  const child = spawn(process.execPath, [join(repo, 'bench/scale-informer.ts'), kubeconfig, `${MANAGED_LABEL}=true`], { stdio: ['ignore', 'pipe', 'inherit'] });
  try {
    const line = await new Promise<string>((ok, fail) => {
      createInterface({ input: child.stdout }).once('line', ok);
      child.once('exit', (code) => { fail(new Error(`scale-informer exited ${String(code)}`)); });
    });
    await sleep(10_000);
    return { syncS: (JSON.parse(line) as { ms: number }).ms / 1000, rss: await procStatus(child.pid ?? 0) };
  } finally {
    await stop(child);
  }
}

const template = await podTemplate();
const env = await shippedEnv();
const dir = await mkdtemp(join(tmpdir(), 'inplace-gate-scale-'));
const rows: string[] = [];
try {
  for (const n of sizes) {
    const api = fakeApiserver(template, n);
    const port = await api.listen();
    const kubeconfig = join(dir, 'kubeconfig');
    await writeFile(kubeconfig, JSON.stringify({ apiVersion: 'v1', kind: 'Config', clusters: [{ name: 'fake', cluster: { server: `http://127.0.0.1:${port}`, 'insecure-skip-tls-verify': true } }], users: [{ name: 'u', user: { token: 'fake' } }], contexts: [{ name: 'c', context: { cluster: 'fake', user: 'u' } }], 'current-context': 'c' }));
    try {
      const w = await watcherAt(kubeconfig, dir, n, env);
      const b = await informerAt(kubeconfig);
      const f = (x: number, d = 0) => x.toFixed(d);
      rows.push(`| ${n} | ${f(w.rss)} (${f(w.rssAfterRest)}) | ${f(w.heapUsed)} / ${f(w.heapTotal)} / ${f(w.external)} | ${f(w.syncS, 1)} | ${f(w.passS, 1)} | ${f(w.cpuPct, 2)} | ${f(b.rss)} | ${f(b.syncS, 1)} | ${f(w.rss / b.rss, 2)}x |`);
      console.error(rows.at(-1));
    } finally {
      api.close();
    }
  }
} finally {
  await rm(dir, { recursive: true, force: true });
}
console.log(`bench:scale:local, ${new Date().toISOString()}, Node ${process.version}, pods of ${template.length} bytes, rest ${REST_S}s, watcher env ${JSON.stringify(env)}`);
console.log('| pods | watcher RSS MiB (after the rest) | heap used / total / external MiB | start -> synced s | start -> startup pass done s | CPU at rest % of a core | bare client-node informer RSS MiB | its list s | RSS ratio |');
console.log('| --- | --- | --- | --- | --- | --- | --- | --- | --- |');
for (const r of rows) console.log(r);
