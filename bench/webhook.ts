// npm run bench:webhook — the webhook against a bare Node HTTPS server, side
// by side in one run. Both run in their own process on the same pinned Node;
// wrk (10 kept-alive connections, as the issue sets) sends the
// same reviews to each, in alternating rounds so machine noise hits both.
// The reviews are real ones captured from kube-apiserver (test/fixtures).
// Reports req/s and p50/p99 per scenario and the ratios to the baseline.

import { execFile, execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { promisify } from 'node:util';
import { once } from 'node:events';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { ensureCertificates } from '../src/webhook/certs.ts';
import { benchReviews } from './reviews.ts';

const CONCURRENCY = Number(process.env.BENCH_CONCURRENCY ?? 10);
const ROUND_MS = Number(process.env.BENCH_ROUND_MS ?? 4000);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const WARMUP_MS = 1000;
const LUA = join(import.meta.dirname, 'post-review.lua');
const run = promisify(execFile);

interface Sample { rps: number; p50: number; p99: number; errors: number }

async function startServer(which: string, certFile: string, keyFile: string): Promise<{ child: ChildProcess; port: number }> {
  // BENCH_NODE_FLAGS (e.g. --cpu-prof) go to the server processes, for profiling.
  const flags = (process.env.BENCH_NODE_FLAGS ?? '').split(' ').filter(Boolean);
  const child = spawn(process.execPath, [...flags, join(import.meta.dirname, 'servers.ts'), which, certFile, keyFile], { stdio: ['ignore', 'pipe', 'inherit'] });
  const lines = createInterface({ input: child.stdout });
  const [line] = (await once(lines, 'line')) as [string];
  return { child, port: Number(line) };
}

/** wrk itself: Debian's package, installed on first use (the bench runs as root on these machines). */
function ensureWrk(): void {
  try {
    execFileSync('wrk', ['--version'], { stdio: 'ignore' });
  } catch (err) {
    // wrk prints its version and exits 1; only a missing binary throws ENOENT.
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') return;
    console.error('installing wrk (apt-get install wrk)');
    execFileSync('apt-get', ['install', '-y', '-qq', 'wrk'], { stdio: 'inherit' });
  }
}

/**
 * Closed-loop load from wrk (C, one thread, so it needs less of the machine
 * than the server does): CONCURRENCY kept-alive TLS connections with one
 * request in flight on each, as the apiserver sends them.
 */
async function load(port: number, path: string, bodyFile: string, ms: number): Promise<Sample> {
  const url = `https://127.0.0.1:${port}${path}?timeout=10s`;
  const { stdout } = await run('wrk', ['-t1', `-c${CONCURRENCY}`, `-d${Math.round(ms / 1000)}s`, '--latency', '-s', LUA, url], {
    env: { ...process.env, BENCH_BODY_FILE: bodyFile },
  });
  const rps = Number(/Requests\/sec:\s+([\d.]+)/.exec(stdout)?.[1]);
  const latency = (p: string) => toMs(new RegExp(`^\\s+${p}%\\s+([\\d.]+)(us|ms|s)`, 'm').exec(stdout));
  const errors = Number(/Non-2xx or 3xx responses: (\d+)/.exec(stdout)?.[1] ?? 0) +
    (/Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(stdout)?.slice(1).reduce((n, v) => n + Number(v), 0) ?? 0);
  if (!Number.isFinite(rps)) throw new Error(`could not read wrk's output:\n${stdout}`);
  return { rps, p50: latency('50'), p99: latency('99'), errors };
}

function toMs(match: RegExpExecArray | null): number {
  if (!match) return NaN;
  const value = Number(match[1]);
  return match[2] === 'us' ? value / 1000 : match[2] === 's' ? value * 1000 : value;
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] ?? NaN;
}

function summarise(samples: Sample[]) {
  return {
    rps: median(samples.map((s) => s.rps)),
    p50: median(samples.map((s) => s.p50)),
    p99: median(samples.map((s) => s.p99)),
    errors: samples.reduce((n, s) => n + s.errors, 0),
  };
}

ensureWrk();
const dir = await mkdtemp(join(tmpdir(), 'inplace-gate-bench-'));
const { files } = await ensureCertificates(dir, []);
const servers = {
  baseline: await startServer('bare', files.certFile, files.keyFile),
  'inplace-gate': await startServer('inplace-gate', files.certFile, files.keyFile),
};

const rows: string[] = [];
let failed = false;
try {
  // BENCH_ONLY=CREATE (a substring of the scenario name) runs one scenario, for profiling.
  for (const scenario of (await benchReviews()).filter((s) => s.name.includes(process.env.BENCH_ONLY ?? ''))) {
    const body = Buffer.from(JSON.stringify(scenario.review));
    const bodyFile = join(dir, 'body.json');
    await writeFile(bodyFile, body);
    const results: Record<string, Sample[]> = { baseline: [], 'inplace-gate': [] };
    for (const s of Object.values(servers)) await load(s.port, scenario.path, bodyFile, WARMUP_MS);
    for (let round = 0; round < ROUNDS; round++) {
      for (const [name, s] of Object.entries(servers)) results[name]!.push(await load(s.port, scenario.path, bodyFile, ROUND_MS));
    }
    const base = summarise(results.baseline!);
    const gate = summarise(results['inplace-gate']!);
    if (gate.errors > 0 || base.errors > 0) failed = true;
    rows.push(
      `| ${scenario.name} (${(body.length / 1024).toFixed(1)} KiB) | ${base.rps.toFixed(0)} | ${base.p50.toFixed(2)} / ${base.p99.toFixed(2)} | ` +
        `${gate.rps.toFixed(0)} | ${gate.p50.toFixed(2)} / ${gate.p99.toFixed(2)} | ${(gate.rps / base.rps).toFixed(2)}x | ${(gate.p99 / base.p99).toFixed(2)}x | ${base.errors + gate.errors} |`,
    );
  }
} finally {
  for (const s of Object.values(servers)) s.child.kill();
  await rm(dir, { recursive: true, force: true });
}

console.log(`wrk, ${CONCURRENCY} connections, ${ROUNDS} alternating rounds of ${ROUND_MS} ms per server (medians), Node ${process.version}, ${new Date().toISOString()}`);
console.log('| scenario | baseline req/s | baseline p50 / p99 ms | inplace-gate req/s | inplace-gate p50 / p99 ms | throughput ratio | p99 ratio | errors |');
console.log('| --- | --- | --- | --- | --- | --- | --- | --- |');
for (const row of rows) console.log(row);
if (failed) {
  console.error('errors during the run: see the errors column');
  process.exitCode = 1;
}
