// A fatal start-up error stops what was started and exits with one line, never hangs.

import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer as createHttpServer } from 'node:http';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { loadSettings } from '../../src/settings.ts';
import { StartupError } from '../../src/startup-error.ts';
import { runWebhook } from '../../src/webhook/run.ts';
import { runWatcher } from '../../src/watcher/run.ts';
import { writeFile } from 'node:fs/promises';

const cli = resolve(import.meta.dirname, '../../src/cli.ts');
let dir: string;
let busy: Server;
let port: number;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'inplace-gate-startup-'));
  busy = createServer();
  await new Promise<void>((ok) => busy.listen(0, '127.0.0.1', ok));
  const address = busy.address();
  port = typeof address === 'object' && address ? address.port : 0;
});

afterAll(async () => {
  await new Promise((ok) => busy.close(ok));
  await rm(dir, { recursive: true, force: true });
});

// Handles that keep a process alive: a directory watch, a listening server, a file poll.
const LONG_LIVED = new Set(['FSEventWrap', 'TCPServerWrap', 'StatWatcher']);
const handles = () => process.getActiveResourcesInfo().filter((r) => LONG_LIVED.has(r)).sort();

describe('the webhook on a busy port', () => {
  it('rejects with the cause and leaves nothing running', async () => {
    const settings = loadSettings(['--port', String(port), '--host', '127.0.0.1', '--cert-dir', dir, '--log-level', 'silent'], {});
    const before = handles();
    const started = runWebhook(settings);
    await expect(started).rejects.toThrow(StartupError);
    await expect(started).rejects.toThrow(`webhook cannot listen on 127.0.0.1:${port}: address already in use (EADDRINUSE)`);
    // Closed handles leave the list on a later tick: looked for until they are gone (a loaded machine).
    await vi.waitFor(() => { expect(handles()).toEqual(before); }, { timeout: 5_000, interval: 20 });
    // The serving certificate is generated first: seconds on a loaded machine.
  }, 30_000);

  it('`inplace-gate webhook` exits non-zero within seconds with one line naming the cause', async () => {
    const [code, signal, stderr] = await runCli(['webhook', '--port', String(port), '--host', '127.0.0.1', '--cert-dir', dir]);
    expect(signal).toBeNull();
    expect(code).toBe(1);
    expect(stderr).toBe(`inplace-gate: webhook cannot listen on 127.0.0.1:${port}: address already in use (EADDRINUSE)\n`);
  }, 20_000);
});

describe('the watcher with its health port busy', () => {
  it('rejects with the cause after stopping what it started', async () => {
    const { api, kubeconfig } = await standInApiserver(true);
    try {
      const settings = loadSettings(['--kubeconfig', kubeconfig, '--no-leader-elect', '--health-port', String(port), '--log-level', 'silent'], {});
      const started = runWatcher(settings);
      await expect(started).rejects.toThrow(StartupError);
      await expect(started).rejects.toThrow(`watcher health endpoint cannot listen on *:${port}: address already in use (EADDRINUSE)`);
    } finally {
      api.closeAllConnections();
      await new Promise((ok) => api.close(ok));
    }
  });

  it('`inplace-gate watcher` exits non-zero within seconds with one line naming the cause', async () => {
    const { api, kubeconfig } = await standInApiserver(true);
    try {
      const [code, signal, stderr] = await runCli(['watcher', '--kubeconfig', kubeconfig, '--no-leader-elect', '--health-port', String(port)]);
      expect(signal).toBeNull();
      expect(code).toBe(1);
      expect(stderr).toBe(`inplace-gate: watcher health endpoint cannot listen on *:${port}: address already in use (EADDRINUSE)\n`);
    } finally {
      api.closeAllConnections();
      await new Promise((ok) => api.close(ok));
    }
  }, 20_000);
});

describe('the watcher with a kubeconfig it cannot use', () => {
  it('a plain-HTTP server without insecure-skip-tls-verify: exit 1, one line naming the server and the cause', async () => {
    const { api, kubeconfig, server } = await standInApiserver(false);
    try {
      const [code, signal, stderr] = await runCli(['watcher', '--kubeconfig', kubeconfig, '--no-leader-elect', '--health-port', '0']);
      expect(signal).toBeNull();
      expect(code).toBe(1);
      expect(stderr.split('\n').filter(Boolean)).toHaveLength(1);
      expect(stderr).toContain(`inplace-gate: cannot use the kubeconfig's cluster ${server} (context "c"): HTTP protocol is not allowed`);
    } finally {
      api.closeAllConnections();
      await new Promise((ok) => api.close(ok));
    }
  }, 20_000);
});

/** `inplace-gate args` as a child process: its exit code, signal and stderr (killed after 12 s). */
async function runCli(args: string[]): Promise<[number | null, NodeJS.Signals | null, string]> {
  const child = spawn(process.execPath, [cli, ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => { stderr += chunk.toString(); });
  const timer = setTimeout(() => { child.kill('SIGKILL'); }, 12_000);
  const [code, signal] = await new Promise<[number | null, NodeJS.Signals | null]>((ok) => child.once('exit', (c, s) => { ok([c, s]); }));
  clearTimeout(timer);
  return [code, signal, stderr];
}

/** A stand-in apiserver on plain HTTP (empty lists, watches that stay open) and a kubeconfig naming it. */
async function standInApiserver(skipTlsVerify: boolean) {
  const api = createHttpServer((req, res) => {
    res.writeHead(200, { 'content-type': 'application/json' });
    if (req.url?.includes('watch=') === true) return;
    res.end(JSON.stringify({ kind: 'List', apiVersion: 'v1', metadata: { resourceVersion: '1' }, items: [] }));
  });
  await new Promise<void>((ok) => api.listen(0, '127.0.0.1', ok));
  const address = api.address();
  const server = `http://127.0.0.1:${typeof address === 'object' && address ? address.port : 0}`;
  const kubeconfig = join(dir, `kubeconfig-${String(skipTlsVerify)}`);
  await writeFile(kubeconfig, JSON.stringify({
    apiVersion: 'v1', kind: 'Config', 'current-context': 'c',
    clusters: [{ name: 'c', cluster: { server, ...(skipTlsVerify ? { 'insecure-skip-tls-verify': true } : {}) } }],
    users: [{ name: 'u', user: { token: 't' } }],
    contexts: [{ name: 'c', context: { cluster: 'c', user: 'u' } }],
  }));
  return { api, kubeconfig, server };
}
