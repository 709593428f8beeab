// npm run bench:webhook — the webhook against a bare Node HTTPS server, side
// by side in one run. Both run in their own process on the same pinned Node;
// wrk (10 kept-alive connections, as the issue sets) sends the
// same reviews to each, in alternating rounds so machine noise hits both.
// The reviews are real ones captured from kube-apiserver (test/fixtures).
// Reports req/s and p50/p99 per scenario and the ratios to the baseline.
//
// BENCH_SUSTAINED=1 (npm run bench:webhook:sustained): both servers at once,
// BENCH_CONCURRENCY (25, the apiserver's idle pool) connections each, for
// BENCH_MINUTES (10) one-minute wrk runs back to back, every captured review
// in turn; then BENCH_BURSTS (20) bursts of BENCH_BURST_CONNECTIONS (250) new
// connections for 2 s with 3 s idle between. Per minute: req/s, p99, errors
// and each server's RSS (sampled every 5 s from /proc), side by side.

import { execFile, execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { promisify } from 'node:util';
import { once } from 'node:events';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { ensureCertificates } from '../src/webhook/certs.ts';
import { benchReviews } from './reviews.ts';

const SUSTAINED = process.env.BENCH_SUSTAINED === '1';
const CONCURRENCY = Number(process.env.BENCH_CONCURRENCY ?? (SUSTAINED ? 25 : 10));
const ROUND_MS = Number(process.env.BENCH_ROUND_MS ?? 4000);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const WARMUP_MS = 1000;
const LUA = join(import.meta.dirname, 'post-review.lua');
const run = promisify(execFile);

interface Sample { rps: number; p50: number; p99: number; errors: number; requests: number }

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
async function load(port: number, path: string, bodyFile: string, ms: number, opts: { concurrency?: number; bodies?: string } = {}): Promise<Sample> {
  const url = `https://127.0.0.1:${port}${path}?timeout=10s`;
  const { stdout } = await run('wrk', ['-t1', `-c${opts.concurrency ?? CONCURRENCY}`, `-d${Math.round(ms / 1000)}s`, '--latency', '-s', LUA, url], {
    env: { ...process.env, BENCH_BODY_FILE: bodyFile, ...(opts.bodies === undefined ? {} : { BENCH_BODIES: opts.bodies }) },
  });
  const rps = Number(/Requests\/sec:\s+([\d.]+)/.exec(stdout)?.[1]);
  const latency = (p: string) => toMs(new RegExp(`^\\s+${p}%\\s+([\\d.]+)(us|ms|s)`, 'm').exec(stdout));
  const errors = Number(/Non-2xx or 3xx responses: (\d+)/.exec(stdout)?.[1] ?? 0) +
    (/Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(stdout)?.slice(1).reduce((n, v) => n + Number(v), 0) ?? 0);
  if (!Number.isFinite(rps)) throw new Error(`could not read wrk's output:\n${stdout}`);
  return { rps, p50: latency('50'), p99: latency('99'), errors, requests: Number(/(\d+) requests in/.exec(stdout)?.[1] ?? NaN) };
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

if (SUSTAINED) {
  try {
    await sustained();
  } finally {
    for (const srv of Object.values(servers)) srv.child.kill();
    await rm(dir, { recursive: true, force: true });
  }
} else {
  await alternating();
}

async function alternating(): Promise<void> {
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
}

/** RSS in MiB of a process, from /proc (Linux). */
async function rssMiB(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  return Number(/VmRSS:\s+(\d+) kB/.exec(status)?.[1]) / 1024;
}

async function sustained(): Promise<void> {
  const minutes = Number(process.env.BENCH_MINUTES ?? 10);
  const bursts = Number(process.env.BENCH_BURSTS ?? 20);
  // Shorter "minutes" only to try the bench out.
  const MINUTE_MS = Number(process.env.BENCH_MINUTE_MS ?? 60_000);
  const burstConnections = Number(process.env.BENCH_BURST_CONNECTIONS ?? 250);
  const scenarios = await benchReviews();
  const bodies = await Promise.all(scenarios.map(async (sc, i) => {
    const file = join(dir, `body-${i}.json`);
    await writeFile(file, JSON.stringify(sc.review));
    return `${sc.path}?timeout=10s=${file}`;
  }));
  const cycle = bodies.join(';');
  const names = ['baseline', 'inplace-gate'] as const;
  const rss: Record<(typeof names)[number], { t: number; mib: number }[]> = { baseline: [], 'inplace-gate': [] };
  const started = Date.now();
  const sample = async () => {
    for (const n of names) rss[n].push({ t: Date.now() - started, mib: await rssMiB(servers[n].child.pid!) });
  };
  await sample();
  const sampler = setInterval(() => { void sample(); }, 5000);
  const both = (ms: number, concurrency?: number) =>
    Promise.all(names.map((n) => load(servers[n].port, '/mutate', '', ms, { bodies: cycle, ...(concurrency === undefined ? {} : { concurrency }) })));
  const perMinute: { base: Sample; gate: Sample; rssBase: number; rssGate: number }[] = [];
  let errors = 0;
  try {
    await both(WARMUP_MS * 5);
    for (let m = 0; m < minutes; m++) {
      const [base, gate] = await both(MINUTE_MS) as [Sample, Sample];
      errors += base.errors + gate.errors;
      perMinute.push({ base, gate, rssBase: rss.baseline.at(-1)!.mib, rssGate: rss['inplace-gate'].at(-1)!.mib });
      console.error(`minute ${m + 1}: baseline ${base.rps.toFixed(0)} req/s p99 ${base.p99.toFixed(2)} ms, inplace-gate ${gate.rps.toFixed(0)} req/s p99 ${gate.p99.toFixed(2)} ms, RSS ${perMinute.at(-1)!.rssGate.toFixed(0)} MiB`);
    }
    const burstSamples: [Sample, Sample][] = [];
    for (let b = 0; b < bursts; b++) {
      burstSamples.push(await both(2000, burstConnections) as [Sample, Sample]);
      await new Promise((r) => setTimeout(r, 3000));
    }
    await sample();
    const burstErrors = burstSamples.reduce((n, [x, y]) => n + x.errors + y.errors, 0);
    errors += burstErrors;

    console.log(`sustained: wrk, ${CONCURRENCY} connections per server, both servers at once, ${minutes} one-minute runs, reviews ${scenarios.map((s) => s.name).join(', ')} in turn; Node ${process.version}, ${new Date().toISOString()}`);
    console.log('| minute | baseline req/s | baseline p99 ms | inplace-gate req/s | inplace-gate p99 ms | throughput ratio | p99 ratio | baseline RSS MiB | inplace-gate RSS MiB | errors |');
    console.log('| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |');
    perMinute.forEach(({ base, gate, rssBase, rssGate }, i) => {
      console.log(`| ${i + 1} | ${base.rps.toFixed(0)} | ${base.p99.toFixed(2)} | ${gate.rps.toFixed(0)} | ${gate.p99.toFixed(2)} | ${(gate.rps / base.rps).toFixed(2)}x | ${(gate.p99 / base.p99).toFixed(2)}x | ${rssBase.toFixed(0)} | ${rssGate.toFixed(0)} | ${base.errors + gate.errors} |`);
    });
    const total = (k: 'base' | 'gate') => perMinute.reduce((n, x) => n + x[k].requests, 0);
    const range = (xs: number[]) => `${Math.min(...xs).toFixed(2)}-${Math.max(...xs).toFixed(2)}`;
    const rssRange = (n: (typeof names)[number]) => { const xs = rss[n].map((x) => x.mib); return `${Math.min(...xs).toFixed(0)}-${Math.max(...xs).toFixed(0)} MiB (first ${xs[0]!.toFixed(0)}, last ${xs.at(-1)!.toFixed(0)}, ${xs.length} samples)`; };
    console.log(`requests: baseline ${total('base')}, inplace-gate ${total('gate')}; p99 per minute: baseline ${range(perMinute.map((x) => x.base.p99))} ms, inplace-gate ${range(perMinute.map((x) => x.gate.p99))} ms`);
    console.log(`RSS: baseline ${rssRange('baseline')}; inplace-gate ${rssRange('inplace-gate')}`);
    const burstGate = burstSamples.map(([, g]) => g);
    const burstBase = burstSamples.map(([x]) => x);
    console.log(`bursts: ${bursts} x ${burstConnections} new connections per server for 2 s, 3 s idle: requests baseline ${burstBase.reduce((n, x) => n + x.requests, 0)}, inplace-gate ${burstGate.reduce((n, x) => n + x.requests, 0)}; ` +
      `p99 per burst baseline ${range(burstBase.map((x) => x.p99))} ms, inplace-gate ${range(burstGate.map((x) => x.p99))} ms; errors ${burstErrors}`);
  } finally {
    clearInterval(sampler);
  }
  if (errors > 0) {
    console.error(`${errors} failed requests: see the errors column and the bursts line`);
    process.exitCode = 1;
  }
}
