// npm run bench:memory — the webhook's RSS under BENCH_CONCURRENT (25) concurrent reviews of the
// largest size it accepts, against the memory limit of its container in manifests/base/webhook.yaml.
// The webhook runs as shipped (`inplace-gate webhook`, its own process on the pinned Node); each
// round keeps BENCH_CONCURRENT connections busy for BENCH_SECONDS, each sending the review again as
// soon as it has its answer (a 200, or a 429 once the in-flight budget is full), and samples the
// process's VmRSS; VmHWM (the kernel's peak) is read at the end.
// Two shapes of a maximal UPDATE (object and oldObject, just under the body limit): one large
// annotation in each (a few big strings), and the same bytes as thousands of env entries (many small
// objects, the shape that costs most heap per byte).

import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { Agent, request } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadAll } from 'js-yaml';
import { BODY_LIMIT_BYTES, IN_FLIGHT_BYTES } from '../src/webhook/server.ts';
import { buildPod, review, updateRequest, withSpecImages } from '../test/support/pods.ts';
import { freePort } from '../test/support/ports.ts';
import type { Pod } from '../src/core/kube-types.ts';

const CONCURRENT = Number(process.env.BENCH_CONCURRENT ?? 25);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const SECONDS = Number(process.env.BENCH_SECONDS ?? 5);
const repo = join(import.meta.dirname, '..');

/** An UPDATE review changing one image, padded by `pad` to just under the body limit. */
function maximalReview(shape: 'annotation' | 'env'): string {
  const sized = (n: number) => {
    const old = buildPod();
    const pad = (pod: Pod) => {
      if (shape === 'annotation') (pod.metadata.annotations ??= {})['example.com/blob'] = 'x'.repeat(n);
      else pod.spec.containers[0]!.env = Array.from({ length: Math.floor(n / 40) }, (_, i) => ({ name: `E${i}`, value: 'v'.repeat(20) }));
      return pod;
    };
    return JSON.stringify(review(updateRequest(pad(old), pad(withSpecImages(old, { app: 'web:2' })))));
  };
  // Each object gets half the room; shrink until the whole review fits.
  let n = Math.floor(BODY_LIMIT_BYTES / 2);
  let body = sized(n);
  while (body.length > BODY_LIMIT_BYTES - 1024) {
    n -= Math.ceil((body.length - (BODY_LIMIT_BYTES - 1024)) / 2) + 64;
    body = sized(n);
  }
  return body;
}

async function rss(pid: number): Promise<{ rss: number; hwm: number }> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  const kib = (key: string) => Number(new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? 0);
  return { rss: kib('VmRSS') / 1024, hwm: kib('VmHWM') / 1024 };
}

function post(agent: Agent, port: number, body: string): Promise<number> {
  return new Promise((ok, fail) => {
    const req = request({ host: '127.0.0.1', port, path: '/mutate', method: 'POST', agent, servername: 'localhost',
      headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) } }, (res) => {
      res.resume();
      res.on('end', () => { ok(res.statusCode ?? 0); });
    });
    req.on('error', fail);
    req.end(body);
  });
}

interface Shipped { limit: string; env: Record<string, string> }
/** The webhook container's memory limit and its literal environment (NODE_OPTIONS and the like), as shipped. */
async function shipped(): Promise<Shipped> {
  interface Container { name: string; env?: { name: string; value?: string }[]; resources: { limits: { memory: string } } }
  interface Doc { kind: string; spec?: { template: { spec: { containers: Container[] } } } }
  const docs = loadAll(await readFile(join(repo, 'manifests/base/webhook.yaml'), 'utf8')) as Doc[];
  const c = docs.find((d) => d.kind === 'Deployment')?.spec?.template.spec.containers.find((x) => x.name === 'webhook');
  const env = Object.fromEntries((c?.env ?? []).flatMap((e) => (e.value === undefined ? [] : [[e.name, e.value]])));
  return { limit: c?.resources.limits.memory ?? '?', env };
}

// BENCH_UNSHIPPED_ENV=1 runs the webhook without the container's environment, for comparison.
const container = await shipped();
const env = process.env.BENCH_UNSHIPPED_ENV === '1' ? {} : container.env;
const dir = await mkdtemp(join(tmpdir(), 'inplace-gate-bench-memory-'));
const port = await freePort();
const child = spawn(process.execPath, [join(repo, 'src/cli.ts'), 'webhook', '--port', String(port), '--host', '127.0.0.1', '--cert-dir', dir,
  '--log-level', 'warn', '--shutdown-delay-seconds', '0'], { stdio: ['ignore', 'ignore', 'inherit'], env: { ...process.env, ...env } });
try {
  const ca = await (async () => {
    for (let i = 0; i < 300; i++) {
      const text = await readFile(join(dir, 'ca.crt'), 'utf8').catch(() => '');
      if (text !== '') {
        const probe = new Agent({ ca: text });
        const up = await post(probe, port, '{}').then(() => true, () => false);
        probe.destroy();
        if (up) return text;
      }
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error('the webhook did not come up');
  })();
  const idle = await rss(child.pid!);
  console.log(`webhook idle: VmRSS ${idle.rss.toFixed(0)} MiB; container memory limit ${container.limit}; env ${JSON.stringify(env)}; body limit ${BODY_LIMIT_BYTES / 1024 / 1024} MiB; ` +
    `in flight at most ${IN_FLIGHT_BYTES / 1024 / 1024} MiB; ${CONCURRENT} connections, ${SECONDS} s a round`);
  console.log('| shape | review KiB | round | answers (count x status; 0: connection error) | peak VmRSS sampled MiB | after MiB |');
  console.log('| --- | --- | --- | --- | --- | --- |');
  for (const shape of ['annotation', 'env'] as const) {
    const body = maximalReview(shape);
    for (let round = 1; round <= ROUNDS; round++) {
      const agent = new Agent({ ca, keepAlive: true, maxSockets: CONCURRENT });
      let peak = 0;
      const sampling = { on: true };
      const sampler = (async () => {
        while (sampling.on) {
          peak = Math.max(peak, (await rss(child.pid!)).rss);
          await new Promise((r) => setTimeout(r, 5));
        }
      })();
      const statuses: number[] = [];
      const until = Date.now() + SECONDS * 1000;
      await Promise.all(Array.from({ length: CONCURRENT }, async () => {
        while (Date.now() < until) statuses.push(await post(agent, port, body).catch(() => 0));
      }));
      sampling.on = false;
      await sampler;
      agent.destroy();
      const counts = [...new Set(statuses)].map((s) => `${statuses.filter((x) => x === s).length}x${s}`).join(' ');
      console.log(`| ${shape} | ${(body.length / 1024).toFixed(0)} | ${round} | ${counts} | ${peak.toFixed(0)} | ${(await rss(child.pid!)).rss.toFixed(0)} |`);
    }
  }
  console.log(`webhook VmHWM (peak RSS over the run): ${(await rss(child.pid!)).hwm.toFixed(0)} MiB`);
} finally {
  child.kill('SIGTERM');
  await new Promise((r) => child.once('exit', r));
  await rm(dir, { recursive: true, force: true });
}
