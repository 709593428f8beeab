// Denial of service over real TLS: a client that sends slowly or not at all is cut off, a body larger
// than any review the apiserver sends is refused with a 413 that says so before it is read, connections
// past the cap are closed at once; and a normal review still works after each. The server here has short
// timeouts (the same code, other numbers); the shipped numbers are checked apart.

import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { connect as connectTcp, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect, type TLSSocket } from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { defaultAdmissionConfig } from '../../src/core/config.ts';
import { createLogger } from '../../src/log.ts';
import { ensureCertificates, readKeyPair, type KeyPair } from '../../src/webhook/certs.ts';
import { createWebhookMetrics } from '../../src/webhook/metrics.ts';
import {
  BODY_LIMIT_BYTES, buildWebhookServer, HANDSHAKE_TIMEOUT_MS, IN_FLIGHT_BYTES, MAX_CONNECTIONS, REQUEST_TIMEOUT_MS, type WebhookServer,
} from '../../src/webhook/server.ts';
import { httpsClient } from '../support/https.ts';
import { buildPod, createRequest, review } from '../support/pods.ts';

const MAX = 4;
let dir: string;
let tls: KeyPair;
let server: WebhookServer;
let port: number;
let ca: string;

const build = (extra: Partial<Parameters<typeof buildWebhookServer>[0]> = {}) => buildWebhookServer({
  tls, admission: defaultAdmissionConfig, metrics: createWebhookMetrics(), logger: createLogger('webhook-test', 'silent'), ...extra,
});

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'inplace-gate-limits-'));
  const { files } = await ensureCertificates(dir, []);
  ca = await readFile(files.caFile, 'utf8');
  tls = await readKeyPair(files);
  server = build({ timeouts: { requestMs: 1_000, handshakeMs: 1_000, checkEveryMs: 100 }, maxConnections: MAX });
  port = Number(new URL(await server.app.listen({ port: 0, host: '127.0.0.1' })).port);
});

afterAll(async () => {
  await server.app.close();
  await rm(dir, { recursive: true, force: true });
});

/** A TLS connection to the server, connected. */
const open = () => new Promise<TLSSocket>((ok, fail) => {
  const socket = connect({ host: '127.0.0.1', port, ca, servername: 'localhost' }, () => { ok(socket); });
  socket.once('error', fail);
});

/** Resolves with what the server wrote once it closed the connection (the socket is never closed by us). */
const closedByServer = (socket: Socket) => new Promise<string>((ok) => {
  let got = '';
  socket.on('data', (d: Buffer) => { got += d.toString(); });
  socket.on('error', () => undefined);
  socket.once('close', () => { ok(got); });
});

/** Writes one byte of `text` at a time, every `everyMs`, until the socket closes. */
function dribble(socket: Socket, text: string, everyMs: number): void {
  let i = 0;
  const timer = setInterval(() => {
    if (socket.destroyed || i >= text.length) { clearInterval(timer); return; }
    socket.write(text[i++]!);
  }, everyMs);
  socket.once('close', () => { clearInterval(timer); });
}

async function normalReviewWorks(): Promise<void> {
  const client = httpsClient(`https://127.0.0.1:${port}`, ca);
  try {
    const reply = await client.post('/mutate', review(createRequest(buildPod({ managed: false, running: false }))));
    expect(reply.status).toBe(200);
    expect(reply.json<{ response: { allowed: boolean } }>().response.allowed).toBe(true);
  } finally {
    client.close();
  }
}

describe('slow clients', () => {
  it('headers sent a byte at a time are cut off', async () => {
    const socket = await open();
    const closed = closedByServer(socket);
    dribble(socket, `POST /mutate HTTP/1.1\r\nHost: localhost\r\n${'X-Slow: y\r\n'.repeat(1000)}`, 50);
    expect(await closed).toMatch(/^HTTP\/1\.1 408 /);
    await normalReviewWorks();
  });

  it('a body sent a byte at a time is cut off', async () => {
    const socket = await open();
    const closed = closedByServer(socket);
    const body = JSON.stringify(review(createRequest(buildPod())));
    socket.write(`POST /mutate HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n`);
    dribble(socket, body, 50);
    expect(await closed).toMatch(/^HTTP\/1\.1 408 /);
    await normalReviewWorks();
  });

  it('a connection that never starts its TLS handshake is closed', async () => {
    const socket = connectTcp({ host: '127.0.0.1', port });
    await new Promise((ok) => socket.once('connect', ok));
    expect(await closedByServer(socket)).toBe('');
    await normalReviewWorks();
  });
});

describe('bodies', () => {
  it('a Content-Length over the limit gets a 413 saying why, before the body is read', async () => {
    const socket = await open();
    const closed = closedByServer(socket);
    socket.write(`POST /mutate HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: ${BODY_LIMIT_BYTES + 1}\r\nConnection: close\r\n\r\n{`);
    const reply = await closed;
    expect(reply).toMatch(/^HTTP\/1\.1 413 /);
    expect(reply).toContain('over 7 MiB');
    await normalReviewWorks();
  });

  it('a chunked body that grows over the limit gets the same 413', async () => {
    const client = httpsClient(`https://127.0.0.1:${port}`, ca);
    const pod = buildPod();
    (pod.metadata.annotations ??= {}).big = 'x'.repeat(BODY_LIMIT_BYTES);
    const reply = await client.post('/validate', JSON.stringify(review(createRequest(pod))), { 'content-type': 'application/json', 'transfer-encoding': 'chunked' });
    client.close();
    expect(reply.status).toBe(413);
    expect(reply.json<{ message: string }>().message).toMatch(/over 7 MiB: larger than any AdmissionReview the apiserver sends/);
    await normalReviewWorks();
  });
});

describe('review bytes in flight', () => {
  it('past the budget, a review gets a 429 unread; once the one in flight is done, reviews are taken again', async () => {
    const small = build({ inFlightBytes: 1024 * 1024 });
    const smallPort = Number(new URL(await small.app.listen({ port: 0, host: '127.0.0.1' })).port);
    const client = httpsClient(`https://127.0.0.1:${smallPort}`, ca);
    try {
      // One review of 900 KiB whose body has not all arrived yet holds 900 KiB of the budget.
      const slow = await new Promise<TLSSocket>((ok, fail) => {
        const socket = connect({ host: '127.0.0.1', port: smallPort, ca, servername: 'localhost' }, () => { ok(socket); });
        socket.once('error', fail);
      });
      const slowDone = closedByServer(slow);
      const pod = buildPod({ managed: false, running: false });
      (pod.metadata.annotations ??= {}).big = 'x'.repeat(900 * 1024);
      const big = JSON.stringify(review(createRequest(pod)));
      slow.write(`POST /mutate HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: ${big.length}\r\nConnection: close\r\n\r\n${big.slice(0, 1000)}`);
      // Another 200 KiB would pass the 1 MiB: refused, and says why. Retried until the first one is counted.
      const second = buildPod({ managed: false, running: false });
      (second.metadata.annotations ??= {}).big = 'x'.repeat(200 * 1024);
      let refused: Awaited<ReturnType<typeof client.post>> | undefined;
      for (let attempt = 1; attempt <= 100 && refused?.status !== 429; attempt++) {
        refused = await client.post('/mutate', review(createRequest(second)));
      }
      expect(refused?.status).toBe(429);
      expect(refused?.json<{ message: string }>().message).toMatch(/MiB of reviews in flight, at most 1 MiB: try again/);
      // The first one completes and is answered; then the budget is free again.
      slow.write(big.slice(1000));
      expect(await slowDone).toMatch(/^HTTP\/1\.1 200 /);
      const after = await client.post('/mutate', review(createRequest(second)));
      expect(after.status).toBe(200);
    } finally {
      client.close();
      await small.app.close();
    }
  });
});

describe('connections', () => {
  it(`past ${MAX} at once, a new one is closed; once they go, connections are taken again`, async () => {
    // Node counts a connection on accept, before its handshake: these are counted once connected.
    const held = await Promise.all(Array.from({ length: MAX }, open));
    const refused = await new Promise<string>((ok) => {
      const socket = connect({ host: '127.0.0.1', port, ca, servername: 'localhost' }, () => { ok('connected'); });
      socket.once('error', (err) => { ok(err.message); });
      socket.once('close', () => { ok('closed'); });
    });
    expect(refused).not.toBe('connected');
    const gone = held.map((s) => new Promise((ok) => s.once('close', ok)));
    for (const s of held) s.destroy();
    await Promise.all(gone);
    // The server's side of each closes a moment after ours: retry until it has.
    for (let attempt = 1; ; attempt++) {
      try {
        await normalReviewWorks();
        break;
      } catch (err) {
        if (attempt === 50) throw err;
        await new Promise((ok) => setTimeout(ok, 20));
      }
    }
  });
});

describe('the shipped numbers', () => {
  it('bound each request by the apiserver\'s longest webhook timeout, the body by its largest review, and the connections', async () => {
    const shipped = build();
    const node = shipped.app.server;
    expect(REQUEST_TIMEOUT_MS).toBe(30_000);
    expect(node.requestTimeout).toBe(REQUEST_TIMEOUT_MS);
    expect(node.headersTimeout).toBe(REQUEST_TIMEOUT_MS);
    expect(node.timeout).toBe(REQUEST_TIMEOUT_MS);
    expect(HANDSHAKE_TIMEOUT_MS).toBeLessThanOrEqual(REQUEST_TIMEOUT_MS);
    expect(node.maxConnections).toBe(MAX_CONNECTIONS);
    expect(IN_FLIGHT_BYTES).toBe(2 * BODY_LIMIT_BYTES);
    expect(BODY_LIMIT_BYTES).toBe(7 * 1024 * 1024);
    expect(shipped.app.initialConfig.bodyLimit).toBe(BODY_LIMIT_BYTES);
    await shipped.app.close();
  });
});
