// The webhook over real TLS with real AdmissionReview bodies, good and bad.

import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect } from 'node:tls';
import { X509Certificate } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { defaultAdmissionConfig } from '../../src/core/config.ts';
import { ensureCertificates, readKeyPair } from '../../src/webhook/certs.ts';
import { createWebhookMetrics } from '../../src/webhook/metrics.ts';
import { BODY_LIMIT_BYTES, buildWebhookServer, KEEP_ALIVE_TIMEOUT_MS, type WebhookServer } from '../../src/webhook/server.ts';
import { createLogger } from '../../src/log.ts';
import { buildPod, createRequest, review, updateRequest, withSpecImages } from '../support/pods.ts';
import { httpsClient } from '../support/https.ts';

let dir: string;
let server: WebhookServer;
let base: string;
let ca: string;
let client: ReturnType<typeof httpsClient>;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'inplace-gate-server-'));
  const { files } = await ensureCertificates(dir, []);
  ca = await readFile(files.caFile, 'utf8');
  server = buildWebhookServer({
    tls: await readKeyPair(files),
    admission: defaultAdmissionConfig,
    metrics: createWebhookMetrics(),
    logger: createLogger('webhook-test', 'silent'),
    clock: () => new Date('2026-11-28T12:00:00Z'),
  });
  base = await server.app.listen({ port: 0, host: '127.0.0.1' });
  client = httpsClient(base, ca);
});

afterAll(async () => {
  client.close();
  await server.app.close();
  await rm(dir, { recursive: true, force: true });
});

interface ReviewReply {
  apiVersion: string;
  kind: string;
  response: { uid: string; allowed: boolean; patch?: string; patchType?: string; warnings?: string[]; status?: { code: number; message: string } };
}

describe('good reviews', () => {
  it('CREATE on /mutate: the gate and label patch, uid echoed', async () => {
    const pod = buildPod({ managed: false, running: false });
    const reply = await client.post('/mutate', review(createRequest(pod)));
    expect(reply.status).toBe(200);
    const { apiVersion, kind, response } = reply.json<ReviewReply>();
    expect({ apiVersion, kind }).toEqual({ apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview' });
    expect(response.uid).toBe('705ab4f5-6393-11e8-b7cc-42010a800002');
    expect(response.allowed).toBe(true);
    expect(response.patchType).toBe('JSONPatch');
    expect(JSON.parse(Buffer.from(response.patch ?? '', 'base64').toString())).toEqual([
      { op: 'add', path: '/spec/readinessGates', value: [{ conditionType: 'InPlaceUpdateReady' }] },
      { op: 'add', path: '/metadata/labels/inplace-gate.dev~1managed', value: 'true' },
    ]);
  });

  it('an image UPDATE on /mutate is deferred, with a short warning', async () => {
    const old = buildPod();
    const reply = await client.post('/mutate', review(updateRequest(old, withSpecImages(old, { app: 'web:2' }))));
    const { response } = reply.json<ReviewReply>();
    expect(response.allowed).toBe(true);
    const ops = JSON.parse(Buffer.from(response.patch ?? '', 'base64').toString()) as { path: string }[];
    expect(ops.map((o) => o.path).sort()).toEqual(['/metadata/annotations', '/spec/containers/0/image']);
    expect(response.warnings?.[0]).toMatch(/deferred/);
    expect(response.warnings?.every((w) => w.length <= 256)).toBe(true);
  });

  it('a non-image UPDATE on /validate is denied with the field path in its message', async () => {
    const old = buildPod();
    const pod = structuredClone(old);
    pod.spec.containers[0]!.resources = { limits: { cpu: '2' } };
    const reply = await client.post('/validate', review(updateRequest(old, pod)));
    expect(reply.status).toBe(200);
    const { response } = reply.json<ReviewReply>();
    expect(response.allowed).toBe(false);
    expect(response.status?.code).toBe(403);
    expect(response.status?.message).toContain('spec.containers[0].resources.limits.cpu');
  });

  it('a DELETE review is allowed without a patch', async () => {
    const pod = buildPod();
    const reply = await client.post('/validate', review(createRequest(pod, { operation: 'DELETE', object: null, oldObject: pod })));
    expect(reply.json<ReviewReply>().response).toEqual({ uid: '705ab4f5-6393-11e8-b7cc-42010a800002', allowed: true });
  });

  it('takes the query the apiserver appends and a gzip accept-encoding', async () => {
    const reply = await client.post('/mutate?timeout=10s', review(createRequest(buildPod({ managed: false }))), {
      'content-type': 'application/json',
      'accept-encoding': 'gzip',
    });
    expect(reply.status).toBe(200);
  });
});

describe('bad input gets a clear 4xx and the server stays up', () => {
  const valid = review(createRequest(buildPod()));
  const cases: [string, unknown, Record<string, string> | undefined, number, RegExp][] = [
    ['malformed JSON', '{"apiVersion": "admission.k8s.io/v1", ', undefined, 400, /JSON/i],
    ['an empty body', '', undefined, 400, /empty/i],
    ['a v1beta1 review', { ...valid, apiVersion: 'admission.k8s.io/v1beta1' }, undefined, 400, /apiVersion.*admission\.k8s\.io\/v1/],
    ['a wrong kind of envelope', { ...valid, kind: 'Pod' }, undefined, 400, /kind/],
    ['a missing request', { apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview' }, undefined, 400, /request/],
    ['a missing uid', { ...valid, request: { ...valid.request, uid: undefined } }, undefined, 400, /uid/],
    ['an empty uid', { ...valid, request: { ...valid.request, uid: '' } }, undefined, 400, /uid/],
    ['a missing object', { ...valid, request: { ...valid.request, object: undefined } }, undefined, 400, /request\.object/],
    ['an object that is not a pod', { ...valid, request: { ...valid.request, object: { metadata: {} } } }, undefined, 400, /not a Pod/],
    ['an UPDATE without oldObject', { ...valid, request: { ...valid.request, operation: 'UPDATE' } }, undefined, 400, /oldObject/],
    ['a JSON array', [valid], undefined, 400, /object/],
    ['a kind that is not a Pod', { ...valid, request: { ...valid.request, kind: { group: '', version: 'v1', kind: 'ConfigMap' } } }, undefined, 400, /judges Pods/],
    ['an unknown operation', { ...valid, request: { ...valid.request, operation: 'PATCH' } }, undefined, 400, /operation/],
    ['a wrong content type', JSON.stringify(valid), { 'content-type': 'text/plain' }, 415, /content-type/i],
    // Found by fuzzing (test/server/fuzz.test.ts): these crashed the decision with a 500.
    ['userInfo.groups that is no list', { ...valid, request: { ...valid.request, userInfo: { username: 'jane', groups: 'system:masters' } } }, undefined, 400, /userInfo\/groups must be array/],
    ['readinessGates that is no list', { ...valid, request: { ...valid.request, object: { ...valid.request.object as object, spec: { containers: [{ name: 'app', image: 'web:1' }], readinessGates: false } } } }, undefined, 400, /spec\.readinessGates must be a list/],
    ['a label that is no string', { ...valid, request: { ...valid.request, object: { metadata: { labels: { app: 7 } }, spec: { containers: [{ name: 'app' }] } } } }, undefined, 400, /metadata\.labels\.app must be a string/],
    ['a container with no name', { ...valid, request: { ...valid.request, object: { metadata: {}, spec: { containers: [{ image: 'web:1' }] } } } }, undefined, 400, /containers\[0\]\.name is required/],
  ];

  it.each(cases)('%s', async (_what, body, headers, status, message) => {
    for (const path of ['/mutate', '/validate']) {
      const reply = await client.post(path, body, headers);
      expect(reply.status, reply.body).toBe(status);
      expect(reply.json<{ message: string }>().message).toMatch(message);
    }
    expect((await client.get('/healthz')).status).toBe(200);
  });

  it('a body over the limit gets a 413', async () => {
    const pod = buildPod();
    (pod.metadata.annotations ??= {}).big = 'x'.repeat(BODY_LIMIT_BYTES);
    const reply = await client.post('/mutate', review(createRequest(pod)));
    expect(reply.status).toBe(413);
    expect((await client.get('/healthz')).status).toBe(200);
  });

  it('counts requests by code in controller-runtime metrics', async () => {
    const text = (await client.get('/metrics')).body;
    expect(text).toMatch(/controller_runtime_webhook_requests_total\{webhook="\/mutate",code="200"\} \d+/);
    expect(text).toMatch(/controller_runtime_webhook_requests_total\{webhook="\/mutate",code="400"\} \d+/);
    expect(text).toMatch(/controller_runtime_webhook_requests_total\{webhook="\/mutate",code="413"\} \d+/);
    expect(text).toContain('controller_runtime_webhook_latency_seconds_bucket');
    expect(text).toContain('controller_runtime_webhook_requests_in_flight');
    expect(text).toMatch(/inplace_gate_admission_decisions_total\{webhook="\/validate",decision="deny",reason="spec-change-denied"\} 1/);
  });
});

describe('the server', () => {
  it('refuses TLS below 1.2', async () => {
    const { port } = new URL(base);
    const error = await new Promise<Error | undefined>((resolve) => {
      const socket = connect({ host: '127.0.0.1', port: Number(port), ca, maxVersion: 'TLSv1.1', minVersion: 'TLSv1' }, () => {
        socket.end();
        resolve(undefined);
      });
      socket.on('error', resolve);
    });
    expect(error).toBeInstanceOf(Error);
  });

  it('keeps idle connections longer than the apiserver does (90 s)', () => {
    expect(server.app.server.keepAliveTimeout).toBe(KEEP_ALIVE_TIMEOUT_MS);
    expect(KEEP_ALIVE_TIMEOUT_MS).toBeGreaterThan(90_000);
  });

  it('answers /healthz and /readyz', async () => {
    expect((await client.get('/healthz')).body).toBe('ok');
    expect((await client.get('/readyz')).status).toBe(200);
  });
});

function peerFingerprint(url: string, trust: string): Promise<string> {
  const { port } = new URL(url);
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port: Number(port), ca: trust, servername: 'localhost' }, () => {
      const fp = socket.getPeerX509Certificate()?.fingerprint256 ?? '';
      socket.end();
      resolve(fp);
    });
    socket.on('error', reject);
  });
}

describe('certificates and shutdown', () => {
  it('swaps the serving certificate without a restart', async () => {
    const before = await peerFingerprint(base, ca);
    const other = await mkdtemp(join(tmpdir(), 'inplace-gate-rotate-'));
    // Same CA, new serving certificate: what a renewal looks like.
    await writeFile(join(other, 'ca.crt'), ca);
    await writeFile(join(other, 'ca.key'), await readFile(join(dir, 'ca.key'), 'utf8'));
    const { files } = await ensureCertificates(other, ['webhook.inplace-gate.svc']);
    const pair = await readKeyPair(files);
    server.setCertificate(pair);
    const after = await peerFingerprint(base, ca);
    expect(after).not.toBe(before);
    expect(after).toBe(new X509Certificate(pair.cert).fingerprint256);
    await rm(other, { recursive: true, force: true });
  });

  it('drops readiness first, then finishes in-flight requests and closes', async () => {
    const { files } = await ensureCertificates(dir, []);
    const own = buildWebhookServer({
      tls: await readKeyPair(files),
      admission: defaultAdmissionConfig,
      metrics: createWebhookMetrics(),
      logger: createLogger('webhook-test', 'silent'),
    });
    const url = await own.app.listen({ port: 0, host: '127.0.0.1' });
    const c = httpsClient(url, ca);
    expect((await c.get('/readyz')).status).toBe(200);
    const stopping = own.shutdown(300);
    expect((await c.get('/readyz')).status).toBe(503);
    const during = await c.post('/mutate', review(createRequest(buildPod({ managed: false }))));
    expect(during.status).toBe(200);
    await stopping;
    await expect(c.get('/healthz')).rejects.toThrow();
    c.close();
  });
});
