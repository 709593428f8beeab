// npm run bench:storm — a pod-creation storm through a real kube-apiserver,
// with the product's webhooks registered against the same storm with none
// registered, on one cluster of its own (.cluster-storm) in one run.
//
// The cluster has one hollow node (cluster.sh's least) and no real nodes; the
// bench creates STORM_NODES Node objects of its own, with no kubelet, and binds
// every pod to one of them (spec.nodeName), so pods stay Pending and no kubelet
// works for them: only the apiserver, etcd, the controllers and the webhook. The webhook runs as shipped
// (`node src/cli.ts webhook`, log level info, the container's NODE_OPTIONS and
// MALLOC_ARENA_MAX); the watcher does not run (nothing here is its work).
//
// Each phase creates pods open-loop at STORM_RATE per second (default 100) for
// STORM_SECONDS (60), at most STORM_IN_FLIGHT (16) at once, in a namespace
// opted in to inplace-gate: first with no webhook configuration, then with
// the product's registered (a probe pod checks each state is in force).
// Reported per phase: the rate reached, the client's create latency, and from
// the apiserver's /metrics the deltas of
// apiserver_admission_webhook_admission_duration_seconds (the webhook call as
// the apiserver times it), the webhook rejections and fail-open calls; the
// webhook's own latency histogram; CPU seconds of kube-apiserver and webhook.

import { readFile } from 'node:fs/promises';
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { Pod } from '../src/core/kube-types.ts';
import { ENABLED_LABEL, READINESS_GATE } from '../src/core/names.ts';
import { ApiError } from '../src/kube/client.ts';
import { IMAGES, createNamespace, pct, sleep, startBenchCluster, waitFor, type BenchCluster } from './harness.ts';

const RATE = Number(process.env.STORM_RATE ?? 100);
const SECONDS = Number(process.env.STORM_SECONDS ?? 60);
const IN_FLIGHT = Number(process.env.STORM_IN_FLIGHT ?? 16);
const NODES = Number(process.env.STORM_NODES ?? 10);
const run = promisify(execFile);

/** A small two-container pod as the e2e suite's captured CREATE review has, bound to a kubelet-less Node. */
function stormPod(name: string, node: string): Pod {
  return {
    apiVersion: 'v1', kind: 'Pod',
    metadata: { name, labels: { app: 'storm' } },
    spec: {
      nodeName: node,
      // The Nodes never post a status: the node lifecycle controller taints them; the pods stay.
      tolerations: [{ operator: 'Exists' }],
      terminationGracePeriodSeconds: 0,
      containers: [
        { name: 'app', image: IMAGES[0], env: [{ name: 'LOG_LEVEL', value: 'info' }], ports: [{ containerPort: 8080 }], readinessProbe: { exec: { command: ['true'] }, periodSeconds: 2 } },
        { name: 'proxy', image: IMAGES[0] },
      ],
    },
  };
}

interface Series { count: number; sum: number; buckets: Map<number, number> }

/** Sums every series of a histogram whose labels match, from Prometheus text. */
function histogram(text: string, metric: string, match: (labels: string) => boolean): Series {
  const out: Series = { count: 0, sum: 0, buckets: new Map() };
  for (const line of text.split('\n')) {
    if (!line.startsWith(metric)) continue;
    const m = /^(\w+)\{(.*)\} (\S+)$/.exec(line);
    if (!m || !match(m[2]!)) continue;
    const value = Number(m[3]);
    if (m[1] === `${metric}_count`) out.count += value;
    else if (m[1] === `${metric}_sum`) out.sum += value;
    else if (m[1] === `${metric}_bucket`) {
      const le = /le="([^"]+)"/.exec(m[2]!)?.[1] ?? '';
      const bound = le === '+Inf' ? Infinity : Number(le);
      out.buckets.set(bound, (out.buckets.get(bound) ?? 0) + value);
    }
  }
  return out;
}

function counter(text: string, metric: string, match: (labels: string) => boolean): number {
  let total = 0;
  for (const line of text.split('\n')) {
    const m = /^(\w+)\{(.*)\} (\S+)$/.exec(line);
    if (m && m[1] === metric && match(m[2]!)) total += Number(m[3]);
  }
  return total;
}

function minus(a: Series, b: Series): Series {
  return { count: a.count - b.count, sum: a.sum - b.sum, buckets: new Map([...a.buckets].map(([k, v]) => [k, v - (b.buckets.get(k) ?? 0)])) };
}

/** histogram_quantile's estimate (linear within a bucket), and the share of observations at or under `le`. */
function quantile(s: Series, q: number): number {
  const bounds = [...s.buckets.keys()].sort((x, y) => x - y);
  const rank = q * s.count;
  let prevBound = 0;
  let prevCount = 0;
  for (const b of bounds) {
    const c = s.buckets.get(b)!;
    if (c >= rank) {
      if (b === Infinity) return prevBound;
      return prevBound + ((b - prevBound) * (rank - prevCount)) / Math.max(1, c - prevCount);
    }
    prevBound = b;
    prevCount = c;
  }
  return NaN;
}
const shareUnder = (s: Series, le: number) => (s.count === 0 ? NaN : (s.buckets.get(le) ?? NaN) / s.count);

/** CPU seconds (user + system) a process has used, from /proc. */
async function cpuSeconds(pid: number): Promise<number> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100; // utime, stime in clock ticks (100 Hz)
}

async function webhookMetrics(b: BenchCluster): Promise<string> {
  const { stdout } = await run('curl', ['-sf', '--cacert', join(b.clusterDir, 'bench-certs', 'ca.crt'), `${b.webhookUrl}/metrics`]);
  return stdout;
}

interface PhaseResult {
  name: string;
  created: number;
  failed: number;
  seconds: number;
  latencies: number[];
  apiserverCpu: number;
  webhookCpu: number;
  admission: Series;
  rejections: number;
  failOpen: number;
  webhookCalls: number;
  ownLatency: Series;
}

const IS_OURS = (labels: string) => labels.includes('name="pod-create.inplace-gate.dev"');

/** Open loop: pod i is due at i / RATE seconds; at most IN_FLIGHT at once, so a slow apiserver shows as a lower rate. */
async function storm(b: BenchCluster, ns: string, name: string): Promise<PhaseResult> {
  const [metricsBefore, ownBefore, apiCpu0, hookCpu0] = await Promise.all([b.apiserverMetrics(), webhookMetrics(b), cpuSeconds(b.pids.apiserver), cpuSeconds(b.pids.webhook)]);
  const latencies: number[] = [];
  let failed = 0;
  let inFlight = 0;
  let issued = 0;
  const firstErrors: string[] = [];
  const started = performance.now();
  const total = Math.round(RATE * SECONDS);
  const pending = new Set<Promise<void>>();
  while (issued < total) {
    const due = Math.min(total, Math.floor(((performance.now() - started) / 1000) * RATE) + 1);
    while (issued < due && inFlight < IN_FLIGHT) {
      const i = issued++;
      inFlight++;
      const t0 = performance.now();
      const p = b.client.post(`/api/v1/namespaces/${ns}/pods`, stormPod(`${name}-${i}`, `storm-node-${i % NODES}`)).then(
        () => { latencies.push(performance.now() - t0); },
        (err: unknown) => { failed++; if (firstErrors.length < 3) firstErrors.push(err instanceof ApiError ? `${err.status} ${err.message}` : String(err)); },
      ).finally(() => { inFlight--; pending.delete(p); });
      pending.add(p);
    }
    await sleep(inFlight >= IN_FLIGHT ? 1 : 5);
  }
  await Promise.all(pending);
  const seconds = (performance.now() - started) / 1000;
  const [metricsAfter, ownAfter, apiCpu1, hookCpu1] = await Promise.all([b.apiserverMetrics(), webhookMetrics(b), cpuSeconds(b.pids.apiserver), cpuSeconds(b.pids.webhook)]);
  if (firstErrors.length > 0) console.error(`${name}: failed creates, first ones: ${firstErrors.join('; ')}`);
  const admissionMetric = 'apiserver_admission_webhook_admission_duration_seconds';
  const ownMetric = 'controller_runtime_webhook_latency_seconds';
  const isMutate = (l: string) => l.includes('webhook="/mutate"');
  return {
    name, created: latencies.length, failed, seconds, latencies,
    apiserverCpu: apiCpu1 - apiCpu0, webhookCpu: hookCpu1 - hookCpu0,
    admission: minus(histogram(metricsAfter, admissionMetric, IS_OURS), histogram(metricsBefore, admissionMetric, IS_OURS)),
    rejections: counter(metricsAfter, 'apiserver_admission_webhook_rejection_count', IS_OURS) - counter(metricsBefore, 'apiserver_admission_webhook_rejection_count', IS_OURS),
    failOpen: counter(metricsAfter, 'apiserver_admission_webhook_fail_open_count', IS_OURS) - counter(metricsBefore, 'apiserver_admission_webhook_fail_open_count', IS_OURS),
    webhookCalls: counter(metricsAfter, 'apiserver_admission_webhook_request_total', IS_OURS) - counter(metricsBefore, 'apiserver_admission_webhook_request_total', IS_OURS),
    ownLatency: minus(histogram(ownAfter, ownMetric, isMutate), histogram(ownBefore, ownMetric, isMutate)),
  };
}

/** Waits until a new pod in `ns` shows the webhook in force (gate added) or not, as `on` says. */
async function probe(b: BenchCluster, ns: string, on: boolean): Promise<void> {
  let n = 0;
  await waitFor(`the webhook ${on ? 'registered' : 'gone'}`, async () => {
    const pod = await b.client.post<Pod>(`/api/v1/namespaces/${ns}/pods`, stormPod(`probe-${on ? 'on' : 'off'}-${n++}`, 'storm-node-0'));
    return (pod.spec.readinessGates ?? []).some((g) => g.conditionType === READINESS_GATE) === on;
  }, 60_000);
}

const ms = (s: number) => (s * 1000).toFixed(1);

async function main() {
  const b = await startBenchCluster(1, 110, {
    realNodes: 0, watcher: false, webhookLogLevel: 'info', dir: join(import.meta.dirname, '..', '.cluster-storm'), audit: false,
    webhookEnv: { NODE_OPTIONS: '--max-old-space-size=64', MALLOC_ARENA_MAX: '2' },
  });
  const results: PhaseResult[] = [];
  try {
    for (let i = 0; i < NODES; i++) {
      await b.client.post('/api/v1/nodes', { apiVersion: 'v1', kind: 'Node', metadata: { name: `storm-node-${i}`, labels: { 'kubernetes.io/hostname': `storm-node-${i}` } } });
    }
    for (const [phase, on] of [['no-webhook', false], ['webhook', true]] as const) {
      const ns = `storm-${phase}`;
      await createNamespace(b, ns, { [ENABLED_LABEL]: 'true' });
      await b.registerWebhooks(on);
      await probe(b, ns, on);
      console.error(`storm: ${phase}: ${RATE} pods/s for ${SECONDS} s`);
      const r = await storm(b, ns, phase);
      results.push(r);
      console.error(`storm: ${phase}: ${r.created} created, ${r.failed} failed in ${r.seconds.toFixed(1)} s`);
    }
  } finally {
    await b.stop();
  }

  console.log(`storm: ${RATE} pods/s asked for ${SECONDS} s per phase, at most ${IN_FLIGHT} in flight, ${NODES} kubelet-less Nodes, no kubelet; Node ${process.version}, ${new Date().toISOString()}`);
  console.log('| phase | pods created | failed | pods/s | create p50 / p99 ms | webhook calls | admission_duration p50 / p99 ms (interpolated) | <= 5 ms / <= 25 ms | rejections | fail-open | webhook own p50 / p99 ms | kube-apiserver CPU s | webhook CPU s |');
  console.log('| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |');
  for (const r of results) {
    const hooked = r.admission.count > 0;
    console.log(
      `| ${r.name} | ${r.created} | ${r.failed} | ${(r.created / r.seconds).toFixed(1)} | ${pct(r.latencies, 50).toFixed(1)} / ${pct(r.latencies, 99).toFixed(1)} | ${r.webhookCalls} | ` +
        `${hooked ? `${ms(quantile(r.admission, 0.5))} / ${ms(quantile(r.admission, 0.99))}` : '-'} | ` +
        `${hooked ? `${(shareUnder(r.admission, 0.005) * 100).toFixed(1)}% / ${(shareUnder(r.admission, 0.025) * 100).toFixed(2)}%` : '-'} | ${r.rejections} | ${r.failOpen} | ` +
        `${r.ownLatency.count > 0 ? `${ms(quantile(r.ownLatency, 0.5))} / ${ms(quantile(r.ownLatency, 0.99))}` : '-'} | ${r.apiserverCpu.toFixed(1)} | ${r.webhookCpu.toFixed(1)} |`,
    );
  }
  const [base, hook] = results;
  if (base && hook) {
    console.log(`rate ratio (webhook / no webhook): ${((hook.created / hook.seconds) / (base.created / base.seconds)).toFixed(2)}x; create p99 ratio ${(pct(hook.latencies, 99) / pct(base.latencies, 99)).toFixed(2)}x`);
    const p99 = quantile(hook.admission, 0.99);
    const ok = hook.rejections === 0 && hook.failOpen === 0 && shareUnder(hook.admission, 0.025) >= 0.99 && hook.failed === 0;
    console.log(`target (admission_duration p99 <= 25 ms, zero rejections and fail-open calls): ${ok ? 'met' : 'NOT met'} (p99 ~${ms(p99)} ms)`);
  }
}

await main();
