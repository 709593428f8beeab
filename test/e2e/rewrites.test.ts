// Another mutating webhook that pins image digests, as enterprises run: the
// image the watcher writes is not the one the pod stores. The rollout must
// still converge, each pod drained once, not again and again.

import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { Pod } from '../../src/core/kube-types.ts';
import { READINESS_GATE } from '../../src/core/names.ts';
import { generatePair } from '../../src/webhook/certs.ts';
import { applyManifest, createNamespace, eventually, kubectl, kubectlJson } from './support/kube.ts';
import { IMAGE, IMAGE_2, conditionOf } from './support/pods.ts';
import { record, type Recorder } from './support/recorder.ts';
import { startLeadingWatcher, type WatcherProcess } from './support/watcher.ts';

const NS = `e2e-rewrites-${Date.now().toString(36)}`;
const PINNER = `e2e-digest-pinner-${NS}`;
const DIGEST = `sha256:${'5'.repeat(64)}`;
const PINNED = `${IMAGE_2}@${DIGEST}`;
let watcher: WatcherProcess;
let pods: Recorder<Pod>;
let server: Server;

interface Review { request: { uid: string; object: Pod } }

/** The pinning webhook: every container image equal to IMAGE_2 gets its digest appended. */
function pinner(review: Review): unknown {
  const ops = review.request.object.spec.containers.flatMap((c, i) => (c.image === IMAGE_2 ? [{ op: 'replace', path: `/spec/containers/${String(i)}/image`, value: PINNED }] : []));
  return {
    apiVersion: 'admission.k8s.io/v1',
    kind: 'AdmissionReview',
    response: { uid: review.request.uid, allowed: true, ...(ops.length > 0 ? { patchType: 'JSONPatch', patch: Buffer.from(JSON.stringify(ops)).toString('base64') } : {}) },
  };
}

beforeAll(async () => {
  await createNamespace(NS, { 'inplace-gate.dev/enabled': 'true' });
  const tls = await generatePair([]);
  server = createServer({ cert: tls.cert, key: tls.key }, (req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify(pinner(JSON.parse(Buffer.concat(chunks).toString()) as Review)));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  await applyManifest({
    apiVersion: 'admissionregistration.k8s.io/v1',
    kind: 'MutatingWebhookConfiguration',
    metadata: { name: PINNER },
    webhooks: [{
      name: 'pin.e2e.inplace-gate.dev',
      clientConfig: { url: `https://127.0.0.1:${String(port)}/`, caBundle: Buffer.from(tls.ca).toString('base64') },
      rules: [{ apiGroups: [''], apiVersions: ['v1'], operations: ['CREATE', 'UPDATE'], resources: ['pods'], scope: 'Namespaced' }],
      namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': NS } },
      reinvocationPolicy: 'IfNeeded',
      failurePolicy: 'Fail',
      sideEffects: 'None',
      admissionReviewVersions: ['v1'],
      timeoutSeconds: 5,
    }],
  });
  watcher = await startLeadingWatcher();
  pods = await record(`/api/v1/namespaces/${NS}/pods`);
});

afterAll(async () => {
  pods.stop();
  await watcher.stop();
  await kubectl(['delete', 'mutatingwebhookconfiguration', PINNER, '--ignore-not-found']);
  await kubectl(['delete', 'namespace', NS, '--wait=false']);
  server.close();
});

/** How often each pod's gate went False, from the watch: one drain each, or more. */
function drains(): Map<string, number> {
  const last = new Map<string, string | undefined>();
  const count = new Map<string, number>();
  for (const s of pods.seen) {
    const name = s.object.metadata.name ?? '';
    const gate = conditionOf(s.object, READINESS_GATE);
    if (gate === 'False' && last.get(name) !== 'False') count.set(name, (count.get(name) ?? 0) + 1);
    last.set(name, gate);
  }
  return count;
}

it('a Deployment whose new image another webhook pins to a digest rolls out in place once: each pod drained once, the rollout ends', async () => {
  const probe = { exec: { command: ['true'] }, periodSeconds: 1 };
  await applyManifest({
    apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name: 'pinned', namespace: NS },
    spec: {
      replicas: 3, selector: { matchLabels: { app: 'pinned' } },
      strategy: { type: 'RollingUpdate', rollingUpdate: { maxUnavailable: 1, maxSurge: 1 } },
      template: {
        metadata: { labels: { app: 'pinned' }, annotations: { 'inplace-gate.dev/grace-period-seconds': '1' } },
        spec: { terminationGracePeriodSeconds: 1, containers: [{ name: 'app', image: IMAGE, readinessProbe: probe }] },
      },
    },
  });
  const list = async () => (await kubectlJson<{ items: Pod[] }>(['-n', NS, 'get', 'pods', '-l', 'app=pinned'])).items.filter((p) => p.metadata.deletionTimestamp === undefined);
  const before = await eventually('3 pods ready', async () => {
    const ps = await list();
    return ps.length === 3 && ps.every((p) => conditionOf(p, 'Ready') === 'True') ? ps : undefined;
  }, 90_000, 500);

  await kubectl(['-n', NS, 'set', 'image', 'deployment/pinned', `app=${IMAGE_2}`]);
  await kubectl(['-n', NS, 'rollout', 'status', 'deployment/pinned', '--timeout=120s']);
  const after = await eventually('3 pods on the pinned image, ready', async () => {
    const ps = await list();
    return ps.length === 3 && ps.every((p) => p.spec.containers[0]?.image === PINNED && conditionOf(p, 'Ready') === 'True' && p.metadata.annotations?.['inplace-gate.dev/update'] === undefined) ? ps : undefined;
  }, 60_000, 500);
  expect(after.map((p) => p.metadata.uid).sort()).toEqual(before.map((p) => p.metadata.uid).sort());
  // Settled: a few seconds later still no second drain of any pod.
  await new Promise((r) => setTimeout(r, 5000));
  expect([...drains().values()]).toEqual([1, 1, 1]);
  const d = await kubectlJson<{ spec: { paused?: boolean }; metadata: { annotations?: Record<string, string> } }>(['-n', NS, 'get', 'deployment', 'pinned']);
  expect(d.spec.paused ?? false).toBe(false);
  expect(d.metadata.annotations?.['inplace-gate.dev/rollout-state']).toBeUndefined();
});
