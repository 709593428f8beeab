// `npm start | tee start.log`, then Ctrl-C: the terminal signals the whole
// pipeline, tee goes first, and `npm start` must still stop everything it
// started, the local cluster included (its daemons each lead their own
// process group, so only `cluster.sh down` stops them). Runs on a cluster of
// its own, in a folder of its own, beside the suite's.

import { execFile, spawn } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { freePort } from '../support/ports.ts';
import { eventually } from './support/kube.ts';

const run = promisify(execFile);
const repo = resolve(import.meta.dirname, '../..');
let dir: string | undefined;

afterAll(async () => {
  if (dir === undefined) return;
  await run('bash', [join(repo, 'test/cluster/cluster.sh'), 'down'], { env: { ...process.env, CLUSTER_DIR: join(dir, 'cluster') } }).catch(() => undefined);
  await rm(dir, { recursive: true, force: true });
});

/** Running, not a zombie: the daemons' parent has exited, and nothing here may reap them. */
const alive = (pid: number) => {
  try {
    return readFileSync(`/proc/${pid}/stat`, 'utf8').replace(/^.*\) /s, '')[0] !== 'Z';
  } catch {
    return false;
  }
};

describe('npm start | tee', () => {
  it('Ctrl-C (SIGINT to the whole pipeline, tee gone first) still stops the cluster it started', async () => {
    dir = await mkdtemp(join(tmpdir(), 'inplace-gate-start-'));
    const clusterDir = join(dir, 'cluster');
    const log = join(dir, 'start.log');
    const port = await freePort();
    const env: Record<string, string | undefined> = { ...process.env, CLUSTER_DIR: clusterDir };
    delete env.KUBECONFIG;
    // As a shell runs a pipeline in the foreground: one process group, which Ctrl-C signals.
    const pipeline = spawn('bash', ['-c', `${JSON.stringify(process.execPath)} src/cli.ts start --port ${port} --health-port 0 | tee ${JSON.stringify(log)} >/dev/null`], {
      cwd: repo, env, detached: true, stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    pipeline.stderr.on('data', (c: Buffer) => { stderr += c.toString(); });
    const exited = new Promise<number | null>((ok) => pipeline.once('exit', ok));
    await eventually('npm start ready', async () => ((await readFile(log, 'utf8').catch(() => '')).includes('Ctrl-C stops everything') ? true : undefined), 300_000, 500);
    expect(readFileSync(log, 'utf8')).toContain('the cluster included');
    const daemons = readdirSync(join(clusterDir, 'pids')).map((f) => Number(readFileSync(join(clusterDir, 'pids', f), 'utf8').trim()));
    expect(daemons.length).toBeGreaterThanOrEqual(5);
    expect(daemons.every(alive)).toBe(true);

    const before = stderr.length;
    process.kill(-(pipeline.pid ?? 0), 'SIGINT');
    const signalled = Date.now();
    const code = await Promise.race([exited, new Promise<never>((_, fail) => setTimeout(() => { fail(new Error(`npm start still running 90 s after Ctrl-C: ${stderr}`)); }, 90_000))]);
    const what = `exit ${code} after ${Date.now() - signalled} ms; stderr since Ctrl-C: ${stderr.slice(before)}\nstart.log: ${readFileSync(log, 'utf8').slice(-600)}`;
    expect(stderr.slice(before), what).not.toMatch(/EPIPE|Error/);
    expect(daemons.filter(alive), what).toEqual([]);
    // The product's JSON logs went to the file, not into what tee saw.
    expect(readFileSync(log, 'utf8')).not.toContain('"level"');
    expect(readFileSync(join(clusterDir, 'logs', 'inplace-gate.log'), 'utf8')).toMatch(/"level":"info".*"component":"watcher"/);
  }, 420_000);
});
