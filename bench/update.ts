// npm run bench:update — the pod lifecycle against the native way, on one
// real cluster in one run (4 hollow nodes by default, its own CLUSTER_DIR):
//   in place: each pod's image patched as a client would; the webhook defers it, the
//             watcher drains (grace 2 s), writes, proves the restart, sets Ready again;
//   native:   the same Deployment image bump through the Deployment controller (new
//             ReplicaSet, every pod deleted and recreated), in a namespace not opted in.
// Reports wall time and API writes (apiserver_request_total, all clients, POST/PUT/
// PATCH/DELETE/APPLY) for each, and the lifecycle's own latencies from a pod watch:
// image request -> InPlaceUpdateReady False, and container ready -> InPlaceUpdateReady True; and the
// drain as the Service's clients see it (both Deployments are behind a Service): False -> the
// EndpointSlice shows the pod not ready, and from there -> the image write (never negative: the
// watcher writes only once the slice shows it).
// Sizes: BENCH_PODS (default "1,50"); nodes: BENCH_NODES (default 4).

import type { Pod } from '../src/core/kube-types.ts';
import { UPDATE_ANNOTATION } from '../src/core/names.ts';
import { IMAGES, createNamespace, gate, pct, podsOf, ready, serviceFor, sleep, startBenchCluster, waitFor, watchDrains } from './harness.ts';

const sizes = (process.env.BENCH_PODS ?? '1,50').split(',').map(Number);
const nodes = Number(process.env.BENCH_NODES ?? 4);
const GRACE_S = 2;

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

async function main() {
  // Both Deployments (in place and native) exist at once, plus surge during the native rollout.
  const b = await startBenchCluster(nodes, Math.ceil((Math.max(...sizes) * 2.5) / nodes) + 20);
  const { client, kubectl, writes } = b;
  const rows: string[] = [];
  try {
    for (const n of sizes) {
      const tag = Date.now().toString(36);
      const inNs = `bench-inplace-${n}-${tag}`;
      const natNs = `bench-native-${n}-${tag}`;
      await createNamespace(b, inNs, { 'inplace-gate.dev/enabled': 'true' });
      await createNamespace(b, natNs, {});
      for (const ns of [inNs, natNs]) {
        await kubectl(['apply', '-f', '-'], JSON.stringify(serviceFor('web', ns)));
        await kubectl(['apply', '-f', '-'], JSON.stringify(deployment('web', ns, n, IMAGES[0])));
      }
      const allReady = async (ns: string, image: string) => {
        const pods = await podsOf(client, ns, 'web');
        return pods.length === n && pods.every((p) => ready(p) && p.metadata.deletionTimestamp === undefined && p.spec.containers[0]?.image === image && p.status?.containerStatuses?.[0]?.image === image && p.metadata.annotations?.[UPDATE_ANNOTATION] === undefined && gateOk(p, ns === inNs));
      };
      const gateOk = (p: Pod, managed: boolean) => !managed || gate(p) === 'True';
      await waitFor(`${n} pods ready`, () => Promise.all([allReady(inNs, IMAGES[0]), allReady(natNs, IMAGES[0])]).then((r) => r.every(Boolean)), 600_000);
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
      const drains = await watchDrains(client, inNs, 'web', IMAGES[1]);
      const w0 = await writes();
      const t0 = Date.now();
      const queue = [...list.items];
      await Promise.all(Array.from({ length: 16 }, async () => {
        for (let p = queue.shift(); p; p = queue.shift()) {
          seen.get(p.metadata.name ?? '')!.requested = Date.now();
          await client.patch(`/api/v1/namespaces/${inNs}/pods/${p.metadata.name ?? ''}`, { spec: { containers: [{ name: 'app', image: IMAGES[1] }] } }, 'strategic', 'bench');
        }
      }));
      await waitFor('in-place update done', () => allReady(inNs, IMAGES[1]), 1_800_000);
      const inplaceMs = Date.now() - t0;
      const inplaceWrites = (await writes()) - w0;
      abort.abort();
      await watching;
      const drain = await drains.stop();
      const toFalse = [...seen.values()].flatMap((s) => (s.falseAt && s.requested ? [s.falseAt - s.requested] : []));
      const toTrue = [...seen.values()].flatMap((s) => (s.trueAt && s.readyAt ? [s.trueAt - s.readyAt] : []));

      // Native: the same bump through the Deployment controller.
      const n0 = await writes();
      const t1 = Date.now();
      await kubectl(['-n', natNs, 'set', 'image', 'deployment/web', `app=${IMAGES[1]}`]);
      await waitFor('native rollout done', () => allReady(natNs, IMAGES[1]), 1_800_000);
      const nativeMs = Date.now() - t1;
      const nativeWrites = (await writes()) - n0;

      rows.push(
        `| ${n} | ${(inplaceMs / 1000).toFixed(1)} | ${inplaceWrites} (${(inplaceWrites / n).toFixed(1)}/pod) | ${(nativeMs / 1000).toFixed(1)} | ${nativeWrites} (${(nativeWrites / n).toFixed(1)}/pod) | ` +
          `${(inplaceMs / nativeMs).toFixed(2)}x | ${(inplaceWrites / nativeWrites).toFixed(2)}x | ${pct(toFalse, 50)} / ${pct(toFalse, 99)} | ${pct(toTrue, 50)} / ${pct(toTrue, 99)} | ` +
          `${pct(drain.endpoints, 50)} / ${pct(drain.endpoints, 99)} | ${pct(drain.margin, 50)} / ${pct(drain.margin, 99)} (min ${Math.min(...drain.margin)}) |`,
      );
      console.error(rows.at(-1));
      await kubectl(['delete', 'namespace', inNs, natNs, '--wait=false']);
    }
  } finally {
    await b.stop();
  }
  console.log(`bench:update, ${nodes} hollow nodes, grace ${GRACE_S}s, ${new Date().toISOString()}; writes = apiserver_request_total POST/PUT/PATCH/DELETE/APPLY by every client during the rollout`);
  console.log('| pods | in place s | in place writes | native s | native writes | time ratio | writes ratio | request -> False p50 / p99 ms | container ready -> True p50 / p99 ms | False -> endpoint not ready p50 / p99 ms | endpoint not ready -> image write p50 / p99 ms |');
  console.log('| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |');
  for (const r of rows) console.log(r);
}

await main();
