// A client-side load balancer, run inside the lab network namespace (where
// pod IPs route): it follows a Service's EndpointSlices as an ingress or a
// service mesh would, and sends one GET every ~10 ms to the next endpoint
// that is ready, each on a new connection (a dead container shows as a
// refused or reset connection, never hidden by a pooled socket).
//
//   node traffic-client.ts KUBECONFIG NAMESPACE SERVICE PORT MAX_SECONDS
//
// One JSON line per request on stdout: {t, pod, ip, ok, version | error, ms},
// and {t, endpoints} whenever the ready set changes. Stops when stdin closes
// or after MAX_SECONDS, whichever comes first.

import { request } from 'node:http';
import { KubeClient, loadKubeConfig } from '../../../src/kube/client.ts';

interface Endpoint { addresses: string[]; conditions?: { ready?: boolean | null }; targetRef?: { name?: string } }
interface Slice { metadata: { name: string; resourceVersion: string }; endpoints?: Endpoint[] | null }

const [kubeconfig, namespace, service, portArg, maxArg] = process.argv.slice(2);
if (!kubeconfig || !namespace || !service || !portArg || !maxArg) {
  console.error('usage: traffic-client.ts KUBECONFIG NAMESPACE SERVICE PORT MAX_SECONDS');
  process.exit(2);
}
const port = Number(portArg);
const deadline = Date.now() + Number(maxArg) * 1000;
const INTERVAL_MS = 10;
const TIMEOUT_MS = 1000;

const out = (line: object) => process.stdout.write(`${JSON.stringify({ t: Date.now(), ...line })}\n`);

const slices = new Map<string, Endpoint[]>();
let ready: { pod: string; ip: string }[] = [];
function refresh() {
  const next = [...slices.values()].flat()
    .filter((e) => e.conditions?.ready === true && e.addresses[0] !== undefined)
    .map((e) => ({ pod: e.targetRef?.name ?? '', ip: e.addresses[0]! }))
    .sort((a, b) => a.pod.localeCompare(b.pod));
  if (next.map((e) => e.pod).join() !== ready.map((e) => e.pod).join()) out({ endpoints: next.map((e) => e.pod) });
  ready = next;
}

const abort = new AbortController();
const client = await KubeClient.create(loadKubeConfig(kubeconfig), 'inplace-gate-e2e-traffic');
const path = `/apis/discovery.k8s.io/v1/namespaces/${namespace}/endpointslices?labelSelector=${encodeURIComponent(`kubernetes.io/service-name=${service}`)}`;

async function follow() {
  while (!abort.signal.aborted) {
    const list = await client.get<{ metadata: { resourceVersion: string }; items: Slice[] }>(path);
    slices.clear();
    for (const s of list.items) slices.set(s.metadata.name, s.endpoints ?? []);
    refresh();
    await client.watch<Slice>(`${path}&watch=true&resourceVersion=${list.metadata.resourceVersion}`, (event) => {
      if (event.type === 'ADDED' || event.type === 'MODIFIED') slices.set(event.object.metadata.name, event.object.endpoints ?? []);
      else if (event.type === 'DELETED') slices.delete(event.object.metadata.name);
      else return;
      refresh();
    }, abort.signal).catch(() => undefined);
  }
}

function get(target: { pod: string; ip: string }): Promise<void> {
  const started = Date.now();
  return new Promise((done) => {
    const finish = (result: { ok: true; version: string } | { ok: false; error: string }) => {
      out({ pod: target.pod, ip: target.ip, ...result, ms: Date.now() - started });
      done();
    };
    const req = request({ host: target.ip, port, path: '/', agent: false, timeout: TIMEOUT_MS, headers: { connection: 'close' } }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => { body += chunk; });
      res.on('end', () => {
        if (res.statusCode === 200) finish({ ok: true, version: body.trim() });
        else finish({ ok: false, error: `HTTP ${res.statusCode}` });
      });
      res.on('error', (err) => { finish({ ok: false, error: (err as NodeJS.ErrnoException).code ?? err.message }); });
    });
    req.on('timeout', () => { req.destroy(new Error('timeout')); });
    req.on('error', (err) => { finish({ ok: false, error: (err as NodeJS.ErrnoException).code ?? err.message }); });
    req.end();
  });
}

process.stdin.on('end', () => { abort.abort(); });
process.stdin.resume();
void follow();

const inflight = new Set<Promise<void>>();
let next = 0;
while (!abort.signal.aborted && Date.now() < deadline) {
  if (ready.length > 0) {
    const target = ready[next++ % ready.length]!;
    const p = get(target);
    inflight.add(p);
    void p.then(() => inflight.delete(p));
  }
  await new Promise((r) => setTimeout(r, INTERVAL_MS));
}
abort.abort();
await Promise.all(inflight);
out({ done: true });
process.exit(0);
