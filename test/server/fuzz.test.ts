// Hostile input over real TLS: AdmissionReviews mutated from the fixtures the
// apiserver really sent, and bytes that are no review at all. Every answer is a
// valid AdmissionReview identical to the pure core's decision, or a clear 4xx;
// never a 5xx, never a dropped connection.

import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mutate, validate } from '../../src/core/admission/index.ts';
import type { AdmissionRequest } from '../../src/core/admission/request.ts';
import { defaultAdmissionConfig } from '../../src/core/config.ts';
import { createLogger } from '../../src/log.ts';
import { ensureCertificates, readKeyPair } from '../../src/webhook/certs.ts';
import { createWebhookMetrics } from '../../src/webhook/metrics.ts';
import { completeResponse } from '../../src/webhook/review.ts';
import { buildWebhookServer, type WebhookServer } from '../../src/webhook/server.ts';
import { httpsClient, type Reply } from '../support/https.ts';

const NOW = new Date('2026-11-28T12:00:00Z');
/** Inputs per property; FUZZ_RUNS raises it for a longer run. */
const RUNS = Number(process.env.FUZZ_RUNS ?? 1500);

let dir: string;
let server: WebhookServer;
let client: ReturnType<typeof httpsClient>;
const fixtures: Record<string, unknown> = {};

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'inplace-gate-fuzz-'));
  const { files } = await ensureCertificates(dir, []);
  server = buildWebhookServer({
    tls: await readKeyPair(files),
    admission: defaultAdmissionConfig,
    metrics: createWebhookMetrics(),
    logger: createLogger('webhook-fuzz', 'silent'),
    clock: () => NOW,
  });
  const base = await server.app.listen({ port: 0, host: '127.0.0.1' });
  client = httpsClient(base, await readFile(files.caFile, 'utf8'));
  for (const name of ['create-pod', 'update-pod-env', 'update-pod-image']) {
    fixtures[name] = JSON.parse(await readFile(new URL(`../fixtures/${name}.json`, import.meta.url), 'utf8')) as unknown;
  }
});

afterAll(async () => {
  client.close();
  await server.app.close();
  await rm(dir, { recursive: true, force: true });
});

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };
type Path = (string | number)[];

/** Every path in a JSON value, the root included. */
function pathsOf(value: Json, at: Path = []): Path[] {
  const out: Path[] = [at];
  if (Array.isArray(value)) value.forEach((v, i) => out.push(...pathsOf(v, [...at, i])));
  else if (value !== null && typeof value === 'object') for (const [k, v] of Object.entries(value)) out.push(...pathsOf(v, [...at, k]));
  return out;
}

interface Edit {
  pick: number;
  op: 'replace' | 'delete' | 'add';
  key: string;
  value: Json;
}

/** Applies edits to a copy: replace a value, delete it, or add a key (or element) beside it. */
function edited(doc: Json, edits: Edit[]): Json {
  let root = structuredClone(doc);
  for (const e of edits) {
    const paths = pathsOf(root);
    const path = paths[e.pick % paths.length] ?? [];
    if (path.length === 0) {
      if (e.op === 'replace') root = e.value;
      continue;
    }
    const parent = path.slice(0, -1).reduce<Json>((node, seg) => (node as Record<string | number, Json>)[seg] as Json, root) as Record<string | number, Json> | Json[];
    const last = path[path.length - 1] as string | number;
    if (e.op === 'replace') (parent as Record<string | number, Json>)[last] = e.value;
    else if (e.op === 'delete') {
      if (Array.isArray(parent)) parent.splice(last as number, 1);
      else delete parent[last];
    } else if (Array.isArray(parent)) parent.push(e.value);
    else parent[e.key] = e.value;
  }
  return root;
}

const json = fc.jsonValue({ maxDepth: 3 }) as fc.Arbitrary<Json>;
const interesting = fc.oneof(
  json,
  fc.constantFrom<Json>('UPDATE', 'CREATE', 'DELETE', 'pods', 'status', 'resize', 'admission.k8s.io/v1', 'admission.k8s.io/v1beta1', '', 'inplace-gate.dev/update',
    '{"phase":"Draining","images":{},"requestedBy":"x","requestedAt":"2026-11-28T12:00:00Z","drainDeadline":"2000-01-01T00:00:00Z"}', 'registry:5000/app:1 ', -1, 1e308, []),
);
const edit = fc.record<Edit>({ pick: fc.nat(), op: fc.constantFrom('replace', 'delete', 'add'), key: fc.string({ maxLength: 12 }), value: interesting });

function expectedFor(endpoint: string, review: { request: AdmissionRequest }): unknown {
  const req = review.request;
  const judgement = endpoint === '/mutate' ? mutate(req, defaultAdmissionConfig, NOW) : validate(req, defaultAdmissionConfig);
  return judgement.type === 'invalid' ? 400 : { apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', response: completeResponse(req.uid, judgement, req.object) };
}

/** A clear 4xx: JSON with a one-line message that says something. */
function expectClear4xx(reply: Reply): void {
  expect(reply.status).toBeGreaterThanOrEqual(400);
  expect(reply.status).toBeLessThan(500);
  const body = reply.json<{ message?: unknown }>();
  expect(typeof body.message).toBe('string');
  expect((body.message as string).length).toBeGreaterThan(10);
  expect(body.message as string).not.toMatch(/\n/);
}

describe('fuzzing the admission endpoints over TLS', () => {
  it('mutated fixtures: the pure core\'s answer, or a clear 4xx', async () => {
    await fc.assert(
      fc.asyncProperty(fc.constantFrom('create-pod', 'update-pod-env', 'update-pod-image'), fc.constantFrom('/mutate', '/validate'), fc.array(edit, { minLength: 1, maxLength: 4 }), async (name, endpoint, edits) => {
        const body = edited(fixtures[name] as Json, edits);
        const reply = await client.post(endpoint, body);
        if (reply.status === 200) {
          // Only a review the envelope accepted reaches the core: its answer must be the core's.
          expect(reply.json()).toEqual(expectedFor(endpoint, body as unknown as { request: AdmissionRequest }));
          return;
        }
        expectClear4xx(reply);
        if (reply.status === 400 && body !== null && typeof body === 'object' && !Array.isArray(body) && 'request' in body) {
          const expected = (() => { try { return expectedFor(endpoint, body as unknown as { request: AdmissionRequest }); } catch { return 400; } })();
          // A 400 from the core's own check agrees with the core; the envelope's schema may refuse earlier.
          if (expected !== 400) expect(reply.body).toMatch(/not an AdmissionReview/);
        }
      }),
      { numRuns: RUNS, seed: process.env.FUZZ_SEED === undefined ? undefined : Number(process.env.FUZZ_SEED) },
    );
  }, 120_000);

  it('bytes that are no review: truncated, spliced, or another content type: a clear 4xx', async () => {
    const raw = JSON.stringify(fixtures['update-pod-image']);
    await fc.assert(
      fc.asyncProperty(
        fc.nat({ max: raw.length }),
        fc.string({ maxLength: 8 }),
        fc.constantFrom('application/json', 'application/json; charset=utf-8', 'text/plain', 'application/x-yaml', ''),
        fc.constantFrom('/mutate', '/validate'),
        async (cut, splice, contentType, endpoint) => {
          const body = `${raw.slice(0, cut)}${splice}`;
          let parses = true;
          try { JSON.parse(body); } catch { parses = false; }
          fc.pre(!parses || !contentType.startsWith('application/json'));
          const reply = await client.post(endpoint, body, contentType === '' ? {} : { 'content-type': contentType });
          expectClear4xx(reply);
        },
      ),
      { numRuns: RUNS },
    );
  }, 120_000);
});
