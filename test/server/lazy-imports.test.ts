// The webhook never calls the Kubernetes API, so `inplace-gate webhook` must not load
// @kubernetes/client-node (or the watcher): that import alone cost ~50 MiB of RSS and ~1 s of start-up
// in the pod whose memory limit the manifests set.

import { spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:http';
import { get } from 'node:https';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../support/ports.ts';

const cli = resolve(import.meta.dirname, '../../src/cli.ts');
// A resolve hook that names every module a process asks for on stderr, so the test sees what was loaded.
const hook = `data:text/javascript,${encodeURIComponent(
  "import { registerHooks } from 'node:module';" +
    "registerHooks({ resolve(specifier, context, next) { process.stderr.write('resolve ' + specifier + '\\n'); return next(specifier, context); } });",
)}`;
let dir: string;

beforeAll(async () => { dir = await mkdtemp(join(tmpdir(), 'inplace-gate-lazy-')); });
afterAll(async () => { await rm(dir, { recursive: true, force: true }); });

function healthy(port: number): Promise<boolean> {
  return new Promise((ok) => {
    get({ host: '127.0.0.1', port, path: '/healthz', rejectUnauthorized: false }, (res) => { res.resume(); ok(res.statusCode === 200); })
      .on('error', () => { ok(false); });
  });
}

/** Runs `node --import <hook> args` until `ready()` holds (or it exits), and returns what it resolved. */
async function resolvedBy(args: string[], ready: () => Promise<boolean>): Promise<string[]> {
  const child = spawn(process.execPath, ['--import', hook, ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => { stderr += chunk.toString(); });
  const exited = new Promise((ok) => child.once('exit', ok));
  const deadline = Date.now() + 20_000;
  while (child.exitCode === null && Date.now() < deadline && !(await ready())) await new Promise((ok) => setTimeout(ok, 100));
  child.kill('SIGTERM');
  await exited;
  return stderr.split('\n').filter((l) => l.startsWith('resolve ')).map((l) => l.slice('resolve '.length));
}

describe('inplace-gate webhook', () => {
  it('the hook sees a process load @kubernetes/client-node (so its absence below means something)', async () => {
    const loaded = await resolvedBy(['--input-type=module', '-e', "await import('@kubernetes/client-node')"], () => Promise.resolve(false));
    expect(loaded).toContain('@kubernetes/client-node');
    // Loading client-node takes ~3 s alone and more on a loaded machine (seen past the 5 s default).
  }, 30_000);

  it('serves without loading @kubernetes/client-node or the watcher', async () => {
    const port = await freePort();
    let served = false;
    const loaded = await resolvedBy([cli, 'webhook', '--host', '127.0.0.1', '--port', String(port), '--cert-dir', dir, '--log-level', 'silent'], async () => {
      served = await healthy(port);
      return served;
    });
    expect(served).toBe(true);
    expect(loaded.some((s) => s.includes('webhook/run'))).toBe(true);
    expect(loaded.filter((s) => s.includes('@kubernetes/client-node') || s.includes('watcher/'))).toEqual([]);
  }, 30_000);
});

describe('inplace-gate watcher', () => {
  it('loads @kubernetes/client-node\'s KubeConfig without the library\'s generated API (its models and API classes)', async () => {
    // A loopback apiserver enough for the watcher to sync: every list empty, every watch held open.
    const api = createServer((req, res) => {
      res.setHeader('content-type', 'application/json');
      if (req.url?.includes('watch=true')) { res.writeHead(200); res.flushHeaders(); return; }
      res.end('{"kind":"List","apiVersion":"v1","metadata":{"resourceVersion":"1"},"items":[]}');
    });
    await new Promise<void>((ok) => { api.listen(0, '127.0.0.1', ok); });
    const address = api.address();
    const kubeconfig = join(dir, 'kubeconfig');
    await writeFile(kubeconfig, JSON.stringify({
      apiVersion: 'v1', kind: 'Config', 'current-context': 'c',
      clusters: [{ name: 'fake', cluster: { server: `http://127.0.0.1:${typeof address === 'object' && address ? address.port : 0}`, 'insecure-skip-tls-verify': true } }],
      users: [{ name: 'u', user: { token: 'fake' } }], contexts: [{ name: 'c', context: { cluster: 'fake', user: 'u' } }],
    }));
    const port = await freePort();
    let synced = false;
    try {
      const loaded = await resolvedBy([cli, 'watcher', '--kubeconfig', kubeconfig, '--leader-elect=false', '--health-port', String(port), '--log-level', 'silent'], async () => {
        synced = await fetch(`http://127.0.0.1:${port}/readyz`).then((r) => r.ok, () => false);
        return synced;
      });
      expect(synced).toBe(true);
      expect(loaded).toContain('@kubernetes/client-node/dist/config.js');
      expect(loaded.filter((s) => /gen\/index\.js|models\/all\.js|^\.\/apis\//.test(s))).toEqual([]);
    } finally {
      api.closeAllConnections();
      api.close();
    }
  }, 30_000);
});
