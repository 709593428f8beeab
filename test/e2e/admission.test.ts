// The webhook through a real kube-apiserver: what gets stored, what gets refused.

import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Pod } from '../../src/core/kube-types.ts';
import { MANAGED_LABEL, READINESS_GATE, UPDATE_ANNOTATION } from '../../src/core/names.ts';
import { parseUpdateState } from '../../src/core/state.ts';
import { httpsClient } from '../support/https.ts';
import { startCapture, type Capture } from './support/capture.ts';
import { applyManifest, context, createNamespace, eventually, kubectl, kubectlFails, kubectlJson } from './support/kube.ts';

const run = Date.now().toString(36);
const OPTED_IN = `e2e-admission-${run}`;
const PLAIN = `e2e-plain-${run}`;
const IMAGE = 'registry.k8s.io/pause:3.10';
const IMAGE_NEXT = 'registry.k8s.io/pause:3.10.1';
const fixtures = join(import.meta.dirname, '..', 'fixtures');

function podManifest(name: string, namespace: string, extra: Record<string, unknown> = {}) {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name, namespace, labels: { app: 'web' } },
    spec: {
      terminationGracePeriodSeconds: 1,
      containers: [
        { name: 'app', image: IMAGE, env: [{ name: 'LOG_LEVEL', value: 'info' }], readinessProbe: { exec: { command: ['true'] }, periodSeconds: 2 } },
        { name: 'proxy', image: IMAGE },
      ],
      ...extra,
    },
  };
}

const getPod = (name: string, namespace = OPTED_IN) => kubectlJson<Pod>(['-n', namespace, 'get', 'pod', name]);
const condition = (pod: Pod, type: string) => pod.status?.conditions?.find((c) => c.type === type)?.status;

let capture: Capture;

beforeAll(async () => {
  await createNamespace(OPTED_IN, { 'inplace-gate.dev/enabled': 'true' });
  await createNamespace(PLAIN);
  capture = await startCapture(OPTED_IN);
});

afterAll(async () => {
  await capture.stop();
  await kubectl(['delete', 'namespace', OPTED_IN, PLAIN, '--wait=false', '--ignore-not-found']);
});

describe('through a real kube-apiserver', () => {
  it('stores a pod created in an opted-in namespace with the gate and the label', async () => {
    await applyManifest(podManifest('web-0', OPTED_IN));
    const pod = await getPod('web-0');
    expect(pod.spec.readinessGates).toEqual([{ conditionType: READINESS_GATE }]);
    expect(pod.metadata.labels?.[MANAGED_LABEL]).toBe('true');
  });

  it('leaves a pod in a namespace that did not opt in untouched', async () => {
    await applyManifest(podManifest('web-0', PLAIN));
    const pod = await getPod('web-0', PLAIN);
    expect(pod.spec.readinessGates).toBeUndefined();
    expect(pod.metadata.labels?.[MANAGED_LABEL]).toBeUndefined();
  });

  it('answers a dry run the same and stores nothing', async () => {
    const out = await kubectl(['create', '--dry-run=server', '-o', 'json', '-f', '-'], JSON.stringify(podManifest('web-dry', OPTED_IN)));
    expect((JSON.parse(out) as Pod).spec.readinessGates).toEqual([{ conditionType: READINESS_GATE }]);
    expect(await kubectlFails(['-n', OPTED_IN, 'get', 'pod', 'web-dry'])).toMatch(/not found/);
  });

  it('keeps the pod NotReady while the gate condition is missing (the hollow kubelet honours the gate)', async () => {
    const pod = await eventually('containers ready on web-0', async () => {
      const p = await getPod('web-0');
      return condition(p, 'ContainersReady') === 'True' ? p : undefined;
    }, 60_000);
    expect(condition(pod, 'Ready')).toBe('False');
    expect(condition(pod, READINESS_GATE)).toBeUndefined();
  });

  it('lets through what Kubernetes allows on a running pod: a toleration added, activeDeadlineSeconds set', async () => {
    const toleration = { key: 'example.com/maintenance', operator: 'Exists', effect: 'NoSchedule' };
    await kubectl(['-n', OPTED_IN, 'patch', 'pod', 'web-0', '--type=json', '-p',
      JSON.stringify([{ op: 'add', path: '/spec/tolerations/-', value: toleration }, { op: 'add', path: '/spec/activeDeadlineSeconds', value: 86_400 }])]);
    const pod = await getPod('web-0');
    expect(pod.spec.activeDeadlineSeconds).toBe(86_400);
    expect(pod.spec.tolerations).toContainEqual(toleration);
  });

  it('anything else in the spec is refused as before (by the apiserver, whose validation runs first)', async () => {
    const stderr = await kubectlFails(['-n', OPTED_IN, 'patch', 'pod', 'web-0', '--type=json', '-p',
      JSON.stringify([{ op: 'add', path: '/spec/hostname', value: 'renamed' }])]);
    expect(stderr).toMatch(/pod updates may not change fields other than/);
  });

  it('defers an image change: the spec keeps the running image, Pending is stored', async () => {
    const out = await kubectl(['-n', OPTED_IN, 'set', 'image', 'pod/web-0', `app=${IMAGE_NEXT}`]);
    expect(out).toContain('image updated');
    const pod = await getPod('web-0');
    expect(pod.spec.containers[0]?.image).toBe(IMAGE);
    const state = parseUpdateState(pod.metadata.annotations?.[UPDATE_ANNOTATION]);
    expect(state).toMatchObject({ ok: true, state: { phase: 'Pending', images: { app: IMAGE_NEXT }, requestedBy: 'admin', fieldManager: 'kubectl-set' } });
  });

  it("records a server-side apply's field manager", async () => {
    await applyManifest(podManifest('web-ssa', OPTED_IN));
    const bumped = podManifest('web-ssa', OPTED_IN);
    bumped.spec.containers[1]!.image = IMAGE_NEXT;
    await applyManifest(bumped, ['--server-side', '--force-conflicts', '--field-manager=argocd-controller']);
    const pod = await getPod('web-ssa');
    expect(pod.spec.containers[1]?.image).toBe(IMAGE);
    expect(parseUpdateState(pod.metadata.annotations?.[UPDATE_ANNOTATION])).toMatchObject({
      ok: true,
      state: { phase: 'Pending', images: { proxy: IMAGE_NEXT }, fieldManager: 'argocd-controller' },
    });
  });

  it('refuses a hand edit of the state annotation', async () => {
    const stderr = await kubectlFails(['-n', OPTED_IN, 'annotate', '--overwrite', 'pod', 'web-0', `${UPDATE_ANNOTATION}={}`]);
    expect(stderr).toContain(UPDATE_ANNOTATION);
  });

  it('lets labels change freely', async () => {
    await kubectl(['-n', OPTED_IN, 'label', 'pod', 'web-0', 'team=shop']);
    expect((await getPod('web-0')).metadata.labels?.team).toBe('shop');
  });
});

describe('reviews captured from this apiserver', () => {
  type Review = { request: { operation: string; uid: string; dryRun?: boolean; name?: string; object?: Pod; oldObject?: Pod } };
  const find = (pred: (r: Review) => boolean) => capture.reviews.map((r) => r.body as unknown as Review).find(pred);

  it('of a Deployment and a StatefulSet image bump are answered with the hold, and kept as fixtures', async () => {
    const workloads = await startCapture(OPTED_IN, { workloads: true });
    try {
      const template = { metadata: { labels: { app: 'shop' } }, spec: podManifest('unused', OPTED_IN).spec };
      const selector = { matchLabels: { app: 'shop' } };
      await applyManifest({ apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name: 'shop', namespace: OPTED_IN }, spec: { replicas: 2, selector, template } });
      await applyManifest({ apiVersion: 'apps/v1', kind: 'StatefulSet', metadata: { name: 'shop-db', namespace: OPTED_IN }, spec: { replicas: 2, serviceName: 'shop-db', selector, template } });
      for (const w of ['deployment/shop', 'statefulset/shop-db']) await kubectl(['-n', OPTED_IN, 'set', 'image', w, `proxy=${IMAGE_NEXT}`]);
      type WorkloadReview = { request: { kind: { kind: string }; operation: string; object?: { spec: { template: { spec: Pod['spec'] } } } } };
      const bump = (kind: string) => workloads.reviews.map((r) => r.body as unknown as WorkloadReview)
        .find((r) => r.request.kind.kind === kind && r.request.operation === 'UPDATE' && r.request.object?.spec.template.spec.containers[1]?.image === IMAGE_NEXT);
      const deployment = await eventually('the Deployment review', () => Promise.resolve(bump('Deployment')));
      const statefulSet = await eventually('the StatefulSet review', () => Promise.resolve(bump('StatefulSet')));

      const { webhookUrl, caFile } = context();
      const client = httpsClient(webhookUrl, await readFile(caFile, 'utf8'));
      try {
        const held = async (review: unknown) => {
          const answer = (await client.post('/mutate', review)).json<{ response: { allowed: boolean; patch: string } }>();
          expect(answer.response.allowed).toBe(true);
          return Buffer.from(answer.response.patch, 'base64').toString();
        };
        expect(await held(deployment)).toContain('"/spec/paused"');
        expect(await held(statefulSet)).toContain('partition');
      } finally {
        client.close();
      }
      if (process.env.CAPTURE_FIXTURES === '1') {
        await writeFile(join(fixtures, 'update-deployment-image.json'), `${JSON.stringify(deployment, null, 2)}\n`);
        await writeFile(join(fixtures, 'update-statefulset-image.json'), `${JSON.stringify(statefulSet, null, 2)}\n`);
      }
    } finally {
      await workloads.stop();
    }
  });

  it('are answered as the apiserver needs, and kept as fixtures', async () => {
    const create = find((r) => r.request.operation === 'CREATE' && r.request.object?.metadata.name === 'web-0' && !r.request.dryRun);
    const update = find((r) => r.request.operation === 'UPDATE' && r.request.object?.spec.containers[0]?.image === IMAGE_NEXT);
    expect(create).toBeDefined();
    expect(update).toBeDefined();
    // Facts the server relies on.
    const first = capture.reviews[0]!;
    expect(first.path).toMatch(/^\/capture\?timeout=\d+s$/);
    expect(first.headers['content-type']).toBe('application/json');

    const { webhookUrl, caFile } = context();
    const client = httpsClient(webhookUrl, await readFile(caFile, 'utf8'));
    try {
      const created = (await client.post('/mutate', create)).json<{ response: { uid: string; patch: string } }>();
      expect(created.response.uid).toBe(create!.request.uid);
      expect(Buffer.from(created.response.patch, 'base64').toString()).toContain(READINESS_GATE);

      // The captured UPDATE is of a pod created before the product saw it: make it managed as stored pods are.
      const managed = structuredClone(update!);
      for (const pod of [managed.request.object!, managed.request.oldObject!]) {
        pod.metadata.labels = { ...pod.metadata.labels, [MANAGED_LABEL]: 'true' };
        pod.spec.readinessGates = [{ conditionType: READINESS_GATE }];
      }
      const deferred = (await client.post('/mutate', managed)).json<{ response: { patch: string; warnings: string[] } }>();
      expect(Buffer.from(deferred.response.patch, 'base64').toString()).toContain(UPDATE_ANNOTATION.replace('/', '~1'));

      if (process.env.CAPTURE_FIXTURES === '1') {
        await writeFile(join(fixtures, 'create-pod.json'), `${JSON.stringify(create, null, 2)}\n`);
        await writeFile(join(fixtures, 'update-pod-image.json'), `${JSON.stringify(managed, null, 2)}\n`);
        const env = structuredClone(managed);
        (env.request.object!.spec.containers[0] as unknown as { env: { value: string }[] }).env[0]!.value = 'debug';
        env.request.object!.spec.containers[0]!.image = env.request.oldObject!.spec.containers[0]!.image;
        await writeFile(join(fixtures, 'update-pod-env.json'), `${JSON.stringify(env, null, 2)}\n`);
      }
    } finally {
      client.close();
    }
  });
});
