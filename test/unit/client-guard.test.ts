import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { KubeConfig } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { ApiError, KubeClient } from '../../src/kube/client.ts';

// A real HTTP server on loopback standing in for the apiserver: it answers GETs,
// and holds PATCHes open (a hung write) until the client gives up.
let base: KubeClient;
const received: string[] = [];
const server = createServer((req: IncomingMessage, res: ServerResponse) => {
  received.push(`${req.method ?? ''} ${req.url ?? ''}`);
  if (req.method === 'GET') {
    res.setHeader('content-type', 'application/json');
    res.end('{"kind":"Pod"}');
  }
  // PATCH: never answered.
});

beforeAll(async () => {
  await new Promise<void>((ok) => server.listen(0, '127.0.0.1', ok));
  const { port } = server.address() as AddressInfo;
  const kc = new KubeConfig();
  kc.loadFromOptions({
    clusters: [{ name: 'c', server: `http://127.0.0.1:${port}`, skipTLSVerify: true }],
    users: [{ name: 'u', token: 't' }],
    contexts: [{ name: 'x', cluster: 'c', user: 'u' }],
    currentContext: 'x',
  });
  base = await KubeClient.create(kc, 'test');
});

afterAll(async () => {
  base.close();
  server.closeAllConnections();
  await new Promise<void>((ok) => server.close(() => { ok(); }));
});

describe('KubeClient.guarded: writes stop when leadership is lost', () => {
  it('a write in flight is cut off when the signal aborts', async () => {
    const term = new AbortController();
    const work = base.guarded(() => term.signal);
    const hung = work.patch('/api/v1/namespaces/shop/pods/web', { metadata: {} }, 'strategic', 'inplace-gate');
    // In flight once the server has it (a fixed wait was too short on a loaded machine).
    await vi.waitFor(() => { expect(received).toContain('PATCH /api/v1/namespaces/shop/pods/web?fieldManager=inplace-gate'); }, { timeout: 10_000, interval: 10 });
    term.abort(new Error('no longer leading'));
    const err = await hung.then(() => undefined, (e: unknown) => e);
    expect(err).toBeInstanceOf(ApiError);
    expect(err).toMatchObject({ reason: 'Aborted', message: expect.stringContaining('no longer leading') as unknown });
  });

  it('nothing is sent once the signal has aborted; the base client and a new term still work', async () => {
    let term = new AbortController();
    const work = base.guarded(() => term.signal);
    term.abort(new Error('no longer leading'));
    const before = received.length;
    await expect(work.get('/api/v1/namespaces/shop/pods/late')).rejects.toMatchObject({ reason: 'Aborted' });
    expect(received.length).toBe(before);
    await expect(base.get('/api/v1/namespaces/shop/pods/web')).resolves.toEqual({ kind: 'Pod' });
    term = new AbortController(); // leading again: the view follows the current term
    await expect(work.get('/api/v1/namespaces/shop/pods/web')).resolves.toEqual({ kind: 'Pod' });
  });
});
