// npm run bench:rollout — a Deployment image bump rolled out in place against
// the native rollout of the same Deployment (annotated inplace-gate.dev/rollout:
// recreate), same replicas and maxUnavailable, on one real cluster in one run.
// Reports wall time (set image -> every pod running the new image and Ready,
// the Deployment released), API writes by every client during it, the most pods
// not Ready at once, and container ready -> InPlaceUpdateReady True; and, both Deployments behind a
// Service, the drain as its clients see it: False -> the EndpointSlice shows the pod not ready, and
// from there -> the image write.
// Writes by client come from the apiserver's audit log; inplace-gate's own writes on the pods
// (pods and pods/status by the watcher, and its Events about pods) are checked against
// OWN_WRITES_PER_POD: above it the run exits non-zero, so a regression shows.
// BENCH_REPLICAS (default 50), BENCH_MAX_UNAVAILABLE (default "20%,100%"),
// BENCH_NODES (default 4), BENCH_GRACE_SECONDS (default 2).

import type { Pod } from '../src/core/kube-types.ts';
import { ROLLOUT_STATE_ANNOTATION, UPDATE_ANNOTATION } from '../src/core/names.ts';
import type { Workload } from '../src/core/workload-types.ts';
import { IMAGES, type AuditedWrite, countBy, createNamespace, gate, pct, podsOf, ready, serviceFor, startBenchCluster, waitFor, watchDrains, type BenchCluster } from './harness.ts';

const replicas = Number(process.env.BENCH_REPLICAS ?? 50);
const windows = (process.env.BENCH_MAX_UNAVAILABLE ?? '20%,100%').split(',');
const nodes = Number(process.env.BENCH_NODES ?? 4);
const grace = Number(process.env.BENCH_GRACE_SECONDS ?? 2);

/** Drain (condition False with the state), the image write, done (condition True, state cleared). */
const OWN_WRITES_PER_POD = 3;

/** Writes in the bench namespace, per pod of one side: by client, and inplace-gate's own by what they wrote. */
function writeBreakdown(writes: readonly AuditedWrite[], ns: string, app: string, pods: number) {
  const mine = writes.filter((w) => w.namespace === ns);
  const per = (n: number) => (n / pods).toFixed(2);
  const count = countBy;
  // An Event's name is its object's name and a suffix: the workload's own, or one of its pods'.
  const onPods = (w: AuditedWrite) => w.resource === 'pods' || w.resource === 'pods/status' || (w.resource === 'events' && (w.name ?? '').split('.')[0] !== app);
  const own = mine.filter((w) => w.client === 'inplace-gate');
  const ownOnPods = own.filter(onPods);
  return {
    total: mine.length,
    ownOnPodsPerPod: ownOnPods.length / pods,
    ownConflicts: own.filter((w) => w.code === 409).length,
    byClient: count(mine, (w) => w.client).map(([c, n]) => `${c} ${per(n)}`).join(', '),
    byResource: count(mine, (w) => `${w.client} ${w.resource}`).map(([c, n]) => `${c} ${String(n)}`).join(', '),
    own: `${per(ownOnPods.length)} on pods (${count(ownOnPods, (w) => w.resource).map(([r, n]) => `${r} ${per(n)}`).join(', ')}), ${String(own.length - ownOnPods.length)} on the workload`,
  };
}

/**
 * One line on where an in-place rollout's time went: the phases of a pod (False -> image write is
 * the drain; write -> container ready the kubelet; ready -> True the proof), how fast a freed slot
 * is taken again (a pod's True -> the next False), the widest the window got (False..True), and
 * the start (set image -> first False) and the end (last True -> released).
 */
function timeline(t0: number, end: number, falseAt: Map<string, number>, writeAt: Map<string, number>, readyAt: Map<string, number>, trueAt: Map<string, number>, widest: number): string {
  const span = (a: Map<string, number>, b: Map<string, number>) => [...a].flatMap(([n, x]) => { const y = b.get(n); return y === undefined ? [] : [y - x]; });
  const writeToReady = span(writeAt, readyAt);
  const trues = [...trueAt.values()].sort((a, b) => a - b);
  const falses = [...falseAt.values()].sort((a, b) => a - b);
  const refill: number[] = [];
  for (const f of falses) {
    let last: number | undefined;
    for (const t of trues) if (t <= f) last = t; else break;
    if (last !== undefined) refill.push(f - last);
  }
  const both = (xs: number[]) => `${String(pct(xs, 50))} / ${String(pct(xs, 99))}`;
  return `False -> write ${both(span(falseAt, writeAt))}, write -> True ${both(span(writeAt, trueAt))}` +
    (writeToReady.length > 0 ? ` (write -> container ready ${both(writeToReady)})` : '') +
    `, True -> next False ${both(refill)}; pod False -> True ${both(span(falseAt, trueAt))}; widest ${String(widest)} in flight; ` +
    `set image -> first False ${String((falses[0] ?? NaN) - t0)}, last True -> released ${String(end - (trues.at(-1) ?? NaN))}`;
}

function deployment(name: string, ns: string, maxUnavailable: string, native: boolean) {
  const labels = { app: name };
  return {
    apiVersion: 'apps/v1', kind: 'Deployment',
    metadata: { name, namespace: ns, ...(native ? { annotations: { 'inplace-gate.dev/rollout': 'recreate' } } : {}) },
    spec: {
      replicas, selector: { matchLabels: labels },
      strategy: { type: 'RollingUpdate', rollingUpdate: { maxUnavailable, maxSurge: 0 } },
      template: {
        metadata: { labels, annotations: { 'inplace-gate.dev/grace-period-seconds': String(grace) } },
        spec: { terminationGracePeriodSeconds: 0, containers: [{ name: 'app', image: IMAGES[0], readinessProbe: { exec: { command: ['true'] }, periodSeconds: 1 } }] },
      },
    },
  };
}

async function settled(b: BenchCluster, ns: string, app: string, image: string, uids?: Set<string>): Promise<boolean> {
  const pods = (await podsOf(b.client, ns, app)).filter((p) => p.metadata.deletionTimestamp === undefined);
  const d = await b.client.get<Workload>(`/apis/apps/v1/namespaces/${ns}/deployments/${app}`);
  return pods.length === replicas && !d.spec.paused && d.metadata.annotations?.[ROLLOUT_STATE_ANNOTATION] === undefined &&
    pods.every((p) => ready(p) && gate(p) === 'True' && p.metadata.annotations?.[UPDATE_ANNOTATION] === undefined &&
      p.spec.containers[0]?.image === image && p.status?.containerStatuses?.[0]?.image === image && p.status.containerStatuses[0].state?.running !== undefined &&
      (uids === undefined || uids.has(p.metadata.uid ?? '')));
}

async function main() {
  const b = await startBenchCluster(nodes, Math.ceil((replicas * 2.5) / nodes) + 20);
  const rows: string[] = [];
  const clientRows: string[] = [];
  const detail: string[] = [];
  const timelines: string[] = [];
  let regression = false;
  try {
    for (const window of windows) {
      const ns = `bench-rollout-${window.replace('%', 'pct')}-${Date.now().toString(36)}`;
      await createNamespace(b, ns, { 'inplace-gate.dev/enabled': 'true' });
      for (const [name, native] of [['inplace', false], ['native', true]] as const) {
        await b.kubectl(['apply', '-f', '-'], JSON.stringify(serviceFor(name, ns)));
        await b.kubectl(['apply', '-f', '-'], JSON.stringify(deployment(name, ns, window, native)));
      }
      for (const name of ['inplace', 'native']) await waitFor(`${name} ready`, () => settled(b, ns, name, IMAGES[0]), 600_000);
      const uids = new Set((await podsOf(b.client, ns, 'inplace')).map((p) => p.metadata.uid ?? ''));

      // Watch the in-place pods: the most not Ready at once, and container ready -> gate True.
      const abort = new AbortController();
      const list = await b.client.get<{ metadata: { resourceVersion: string } }>(`/api/v1/namespaces/${ns}/pods?labelSelector=app%3Dinplace`);
      const notReady = new Set<string>();
      let worst = 0;
      const readyAt = new Map<string, number>();
      const toTrue: number[] = [];
      // Per pod, for the timeline: condition False (the drain), image written, condition True again.
      const falseAt = new Map<string, number>();
      const writeAt = new Map<string, number>();
      const trueAt = new Map<string, number>();
      const containerReadyAt = new Map<string, number>();
      let inFlight = 0;
      let widest = 0;
      const watching = b.client.watch<Pod>(`/api/v1/namespaces/${ns}/pods?labelSelector=app%3Dinplace&watch=true&resourceVersion=${list.metadata.resourceVersion}`, ({ object: p }) => {
        const name = p.metadata.name ?? '';
        if (ready(p)) notReady.delete(name); else notReady.add(name);
        worst = Math.max(worst, notReady.size);
        const c = p.status?.containerStatuses?.[0];
        if (c?.ready && c.image === IMAGES[1] && (c.restartCount > 0) && !readyAt.has(name)) {
          readyAt.set(name, Date.now());
          containerReadyAt.set(name, Date.now());
        }
        const at = Date.now();
        if (!falseAt.has(name) && gate(p) === 'False' && p.spec.containers[0]?.image !== IMAGES[1]) {
          falseAt.set(name, at);
          widest = Math.max(widest, ++inFlight);
        }
        if (falseAt.has(name) && !writeAt.has(name) && p.spec.containers[0]?.image === IMAGES[1]) writeAt.set(name, at);
        if (writeAt.has(name) && !trueAt.has(name) && gate(p) === 'True') {
          trueAt.set(name, at);
          inFlight--;
        }
        const t = readyAt.get(name);
        if (t !== undefined && t > 0 && gate(p) === 'True') {
          toTrue.push(Date.now() - t);
          readyAt.set(name, -1);
        }
      }, abort.signal).catch(() => undefined);

      const drains = await watchDrains(b.client, ns, 'inplace', IMAGES[1]);
      const w0 = await b.writes();
      const t0 = Date.now();
      await b.kubectl(['-n', ns, 'set', 'image', 'deployment/inplace', `app=${IMAGES[1]}`]);
      await waitFor('in-place rollout', () => settled(b, ns, 'inplace', IMAGES[1], uids), 3_600_000);
      const t0End = Date.now();
      const inplaceS = (t0End - t0) / 1000;
      const inplaceW = (await b.writes()) - w0;
      abort.abort();
      await watching;
      const drain = await drains.stop();
      timelines.push(`${replicas} at ${window}: ${timeline(t0, t0End, falseAt, writeAt, containerReadyAt, trueAt, widest)}`);

      const n0 = await b.writes();
      const t1 = Date.now();
      await b.kubectl(['-n', ns, 'set', 'image', 'deployment/native', `app=${IMAGES[1]}`]);
      await waitFor('native rollout', () => settled(b, ns, 'native', IMAGES[1]), 3_600_000);
      const t1End = Date.now();
      const nativeS = (t1End - t1) / 1000;
      const nativeW = (await b.writes()) - n0;
      const inAudit = writeBreakdown(await b.audited(t0, t0End), ns, 'inplace', replicas);
      const natAudit = writeBreakdown(await b.audited(t1, t1End), ns, 'native', replicas);
      if (inAudit.total === 0) console.error('bench: no audit log (a cluster started without CLUSTER_AUDIT_LOG?): no writes by client');
      else {
        clientRows.push(`| ${replicas} | ${window} | ${inAudit.own} | ${inAudit.ownConflicts} | ${(inAudit.total / replicas).toFixed(2)}: ${inAudit.byClient} | ${(natAudit.total / replicas).toFixed(2)}: ${natAudit.byClient} |`);
        detail.push(`${replicas} at ${window}, in place: ${inAudit.byResource}`, `${replicas} at ${window}, native: ${natAudit.byResource}`);
        if (inAudit.ownOnPodsPerPod > OWN_WRITES_PER_POD) {
          regression = true;
          console.error(`bench: inplace-gate wrote ${inAudit.ownOnPodsPerPod.toFixed(2)} times per pod, above ${String(OWN_WRITES_PER_POD)}`);
        }
      }

      rows.push(`| ${replicas} | ${window} | ${inplaceS.toFixed(1)} | ${inplaceW} (${(inplaceW / replicas).toFixed(1)}/pod) | ${nativeS.toFixed(1)} | ${nativeW} (${(nativeW / replicas).toFixed(1)}/pod) | ` +
        `${(inplaceS / nativeS).toFixed(2)}x | ${(inplaceW / nativeW).toFixed(2)}x | ${worst} | ${pct(toTrue, 50)} / ${pct(toTrue, 99)} | ` +
        `${pct(drain.endpoints, 50)} / ${pct(drain.endpoints, 99)} | ${pct(drain.margin, 50)} / ${pct(drain.margin, 99)} (min ${Math.min(...drain.margin)}) |`);
      console.error(rows.at(-1));
      await b.kubectl(['delete', 'namespace', ns, '--wait=false']);
    }
  } finally {
    await b.stop();
  }
  console.log(`bench:rollout, ${nodes} hollow nodes, grace ${grace}s, maxSurge 0, ${new Date().toISOString()}; writes = apiserver_request_total POST/PUT/PATCH/DELETE/APPLY by every client`);
  console.log('| replicas | maxUnavailable | in place s | in place writes | native s | native writes | time ratio | writes ratio | most not Ready at once (in place) | container ready -> True p50 / p99 ms | False -> endpoint not ready p50 / p99 ms | endpoint not ready -> image write p50 / p99 ms |');
  console.log('| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |');
  for (const r of rows) console.log(r);
  if (clientRows.length > 0) {
    console.log('');
    console.log('Writes in the bench namespace per pod, from the audit log (inplace-gate = the watcher; a pod\'s Events count as on pods):');
    console.log('| replicas | maxUnavailable | inplace-gate own writes per pod | its 409s | in place, by client | native, by client |');
    console.log('| --- | --- | --- | --- | --- | --- |');
    for (const r of clientRows) console.log(r);
    console.log('');
    for (const d of detail) console.log(d);
  }
  console.log('');
  console.log('Where the in-place time went (per pod p50 / p99 ms, from a pod watch):');
  for (const t of timelines) console.log(t);
  if (regression) process.exitCode = 1;
}

await main();
