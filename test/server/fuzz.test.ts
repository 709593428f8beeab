// Hostile input over real TLS: AdmissionReviews mutated from the fixtures the
// apiserver really sent (pods, and the Deployment and StatefulSet image bumps
// the workload webhook holds), workload reviews generated around the fields
// the workload rules read, and bytes that are no review at all. Every answer is a
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
/** Inputs per property; FUZZ_RUNS raises it for a longer run (npm run bench:fuzz: 4 properties x 25,000). */
const RUNS = Number(process.env.FUZZ_RUNS ?? 1500);
/** Each property's time limit grows with its runs: about 3 ms an input on the 2-core machine, with room. */
const PROPERTY_TIMEOUT_MS = Math.max(120_000, RUNS * 20);
const SEED = process.env.FUZZ_SEED === undefined ? undefined : Number(process.env.FUZZ_SEED);
const WORKLOAD_FIXTURES = ['update-deployment-image', 'update-statefulset-image'] as const;

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
  for (const name of ['create-pod', 'update-pod-env', 'update-pod-image', ...WORKLOAD_FIXTURES]) {
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

/** The property every input must have: a 200 is the pure core's review, anything else a clear 4xx. */
async function expectCoreOr4xx(endpoint: string, body: Json): Promise<void> {
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
}

const maybe = <T,>(arb: fc.Arbitrary<T>) => fc.option(arb, { nil: undefined });
/** Mostly a value the apiserver could send, sometimes one it never would: each bad field alone is a 400. */
const mostly = <T extends Json | undefined>(valid: fc.Arbitrary<T>, bad: readonly Json[]) => fc.oneof({ weight: 40, arbitrary: valid }, { weight: 1, arbitrary: fc.constantFrom(...bad) });
const image = mostly(fc.constantFrom('registry.k8s.io/pause:3.10', 'registry.k8s.io/pause:3.10.1', 'registry.k8s.io/pause:3.9', ' registry.k8s.io/pause:3.10 ', ''), [7, null, {}]);
const intOrString = mostly(maybe(fc.oneof(fc.integer({ min: 0, max: 12 }), fc.constantFrom('0%', '25%', '100%', '150%', '3', 'x%', '-5%'))), [-1, 2.5, true, []]);
const rolloutState = mostly(
  fc.record({ images: fc.dictionary(fc.constantFrom('app', 'proxy', 'other'), fc.constantFrom('registry.k8s.io/pause:3.10', 'registry.k8s.io/pause:3.10.1')), requestedBy: fc.constantFrom('admin', ''), startedAt: fc.constant('2026-11-28T11:00:00Z'), partition: maybe(fc.integer({ min: -1, max: 5 })) })
    .map((s) => JSON.stringify(s)),
  ['', '{}', 'null', '[]', '{"images":5,"startedAt":"x"}', 'not json', '{"images":{"app":7},"startedAt":"2026-11-28T11:00:00Z","partition":"2"}'],
);

/** What the workload rules read, generated: set on a copy of a captured review (undefined deletes). */
const workloadChange = fc.record({
  kind: fc.constantFrom('Deployment', 'StatefulSet'),
  operation: mostly(fc.constant('UPDATE'), ['CREATE', 'DELETE']),
  subResource: mostly(fc.constant(undefined), ['status', 'scale']),
  username: mostly(fc.constant('admin'), ['system:serviceaccount:inplace-gate:inplace-gate-watcher', '']),
  namespace: mostly(fc.constant(undefined), ['kube-system', 'inplace-gate']),
  images: fc.array(fc.tuple(image, image), { minLength: 1, maxLength: 3 }),
  names: fc.oneof({ weight: 40, arbitrary: fc.constant<Json[]>(['app', 'proxy', 'third']) }, { weight: 1, arbitrary: fc.constantFrom<Json[]>(['app', 'app', 'app'], ['', 'proxy'], [5, 'proxy'], [null, 'x']) }),
  initImages: maybe(fc.tuple(image, image)),
  replicas: mostly(maybe(fc.integer({ min: 0, max: 40 })), ['3', null, 2.5, -1]),
  paused: fc.tuple(mostly(maybe(fc.boolean()), ['true', 0]), mostly(maybe(fc.boolean()), ['true', 0])),
  strategyType: mostly(maybe(fc.constantFrom('RollingUpdate', 'Recreate', 'OnDelete')), ['Other', 3]),
  maxUnavailable: intOrString,
  maxSurge: intOrString,
  partition: fc.tuple(mostly(maybe(fc.integer({ min: 0, max: 5 })), [-1, '2']), mostly(maybe(fc.integer({ min: 0, max: 5 })), [-1, '2'])),
  state: fc.tuple(maybe(rolloutState), maybe(rolloutState)),
  rolloutAnnotation: maybe(fc.constantFrom<Json>('recreate', 'in-place', '')),
  enabledLabel: maybe(fc.constantFrom<Json>('false', 'true')),
  templateChange: mostly(fc.constantFrom('none', 'none', 'none', 'label', 'env', 'restartedAt'), ['containers-object', 'template-string', 'containers-null-element']),
  fieldManager: maybe(fc.constantFrom<Json>('kubectl-set', 'argocd-controller')),
});

type WorkloadChange = typeof workloadChange extends fc.Arbitrary<infer T> ? T : never;
type Obj = Record<string, Json>;

function setOrDelete(o: Obj, key: string, v: Json | undefined): void {
  if (v === undefined) delete o[key];
  else o[key] = v;
}

/** A captured workload review with the generated fields set on object and oldObject. */
function generatedWorkload(fixture: Json, g: WorkloadChange): Json {
  const review = structuredClone(fixture) as Obj;
  const req = review.request as Obj;
  req.kind = { group: 'apps', version: 'v1', kind: g.kind };
  req.operation = g.operation;
  setOrDelete(req, 'subResource', g.subResource);
  (req.userInfo as Obj).username = g.username;
  if (g.namespace !== undefined) req.namespace = g.namespace;
  setOrDelete(req.options as Obj, 'fieldManager', g.fieldManager);
  const objects = [req.oldObject as Obj, req.object as Obj];
  objects.forEach((o, which) => {
    const metadata = o.metadata as Obj;
    const spec = o.spec as Obj;
    const template = spec.template as Obj;
    const podSpec = template.spec as Obj;
    const annotations = { ...(metadata.annotations as Obj | undefined) };
    setOrDelete(annotations, 'inplace-gate.dev/rollout-state', g.state[which]);
    setOrDelete(annotations, 'inplace-gate.dev/rollout', which === 1 ? g.rolloutAnnotation : undefined);
    metadata.annotations = annotations;
    setOrDelete(spec, 'replicas', g.replicas);
    setOrDelete(spec, 'paused', g.paused[which]);
    const rollingUpdate: Obj = {};
    setOrDelete(rollingUpdate, 'maxUnavailable', g.maxUnavailable);
    if (g.kind === 'Deployment') {
      setOrDelete(rollingUpdate, 'maxSurge', g.maxSurge);
      spec.strategy = { ...(g.strategyType === undefined ? {} : { type: g.strategyType }), rollingUpdate };
    } else {
      setOrDelete(rollingUpdate, 'partition', g.partition[which]);
      spec.updateStrategy = { ...(g.strategyType === undefined ? {} : { type: g.strategyType }), rollingUpdate };
    }
    const labels = { ...((template.metadata as Obj | undefined)?.labels as Obj | undefined) };
    setOrDelete(labels, 'inplace-gate.dev/enabled', g.enabledLabel);
    template.metadata = { ...(template.metadata as Obj | undefined), labels };
    const base = (podSpec.containers as Obj[])[0] ?? {};
    podSpec.containers = g.images.map(([before, after], i) => ({ ...base, name: g.names[i] ?? `c${i}`, image: which === 0 ? before : after }));
    if (g.initImages === undefined) delete podSpec.initContainers;
    else podSpec.initContainers = [{ name: 'init', image: g.initImages[which] ?? null, restartPolicy: 'Always' }];
    if (which === 1) {
      if (g.templateChange === 'label') labels.tier = 'web';
      if (g.templateChange === 'env') (podSpec.containers as Obj[])[0]!.env = [{ name: 'MODE', value: 'fast' }];
      if (g.templateChange === 'restartedAt') template.metadata = { ...(template.metadata), annotations: { 'kubectl.kubernetes.io/restartedAt': '2026-11-28T12:00:00Z' } };
      if (g.templateChange === 'containers-object') podSpec.containers = { app: 'registry.k8s.io/pause:3.10' };
      if (g.templateChange === 'template-string') spec.template = 'pod';
      if (g.templateChange === 'containers-null-element') (podSpec.containers as Json[]).push(null);
    }
  });
  return review;
}

describe('fuzzing the admission endpoints over TLS', () => {
  it('mutated fixtures: the pure core\'s answer, or a clear 4xx', async () => {
    await fc.assert(
      fc.asyncProperty(fc.constantFrom('create-pod', 'update-pod-env', 'update-pod-image'), fc.constantFrom('/mutate', '/validate'), fc.array(edit, { minLength: 1, maxLength: 4 }), async (name, endpoint, edits) => {
        await expectCoreOr4xx(endpoint, edited(fixtures[name] as Json, edits));
      }),
      { numRuns: RUNS, seed: SEED },
    );
  }, PROPERTY_TIMEOUT_MS);

  it('mutated Deployment and StatefulSet reviews: the pure core\'s answer, or a clear 4xx', async () => {
    await fc.assert(
      fc.asyncProperty(fc.constantFrom(...WORKLOAD_FIXTURES), fc.constantFrom('/mutate', '/mutate', '/validate'), fc.array(edit, { minLength: 1, maxLength: 4 }), async (name, endpoint, edits) => {
        await expectCoreOr4xx(endpoint, edited(fixtures[name] as Json, edits));
      }),
      { numRuns: RUNS, seed: SEED },
    );
  }, PROPERTY_TIMEOUT_MS);

  it('generated Deployment and StatefulSet reviews (strategies, partitions, pauses, rollout states, images): the pure core\'s answer, or a clear 4xx', async () => {
    await fc.assert(
      fc.asyncProperty(fc.constantFrom(...WORKLOAD_FIXTURES), workloadChange, fc.array(edit, { maxLength: 1 }), async (name, change, edits) => {
        await expectCoreOr4xx('/mutate', edited(generatedWorkload(fixtures[name] as Json, change), edits));
      }),
      { numRuns: RUNS, seed: SEED },
    );
  }, PROPERTY_TIMEOUT_MS);

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
  }, PROPERTY_TIMEOUT_MS);
});
