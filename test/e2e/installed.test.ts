// The product installed as pods on real nodes: its image pushed to the lab's
// registry, the shipped overlay applied with `kubectl apply --server-side -k`,
// the certificate sidecar issuing the Secret and the caBundle, the watcher
// winning its Lease, and then a Deployment updated in place and a non-image
// pod update denied through the installed webhook and watcher alone (the
// suite's own webhook is unregistered meanwhile, and no watcher runs on the host).
//
// The paths this needs across the lab's edge are lab.sh's (CLUSTER_LAB_ROUTED):
// the apiserver calls the webhook Service at its pods' IPs
// (--enable-aggregator-routing) over the host's routes into the lab, and the
// pods reach the apiserver at the `kubernetes` Service's ClusterIP, which the
// lab holds.
//
// Test-only changes to the shipped overlay, in a kustomization of the test's
// own on top of it: the image (kustomize's `images:`, as README's
// `kustomize edit set image`, by digest so a node never runs a stale tag), and
// the real nodes' nodeSelector and toleration on both Deployments: the real
// nodes are tainted so that the hollow-node tests never land there, and a pod
// on a hollow node runs nothing.

import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join, relative, resolve } from 'node:path';
import { dump, loadAll } from 'js-yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Pod } from '../../src/core/kube-types.ts';
import { MANAGED_LABEL, READINESS_GATE } from '../../src/core/names.ts';
import { applyManifest, context, createNamespace, eventually, kubectl, kubectlFails, kubectlJson } from './support/kube.ts';
import { mebibytes, type Built } from './support/image.ts';
import { containerProcess, lab, onRealNodes, pushProductImage, startTraffic, versionsByPod, type Lab } from './support/lab.ts';
import { conditionOf, stateOf, statusOf } from './support/pods.ts';

const repo = resolve(import.meta.dirname, '../..');
const SYSTEM = 'inplace-gate';
const NS = `e2e-installed-${Date.now().toString(36)}`;
const SECRET = 'inplace-gate-webhook-tls';
let L: Lab;
let image: Built;
let overlay: string;
let rendered: Manifest[] | undefined;
let installSeconds: number;

interface Manifest { apiVersion: string; kind: string; metadata: { name: string; namespace?: string } }
interface WebhookConfiguration { webhooks: { name: string; clientConfig: { caBundle?: string; service?: object } }[] }
interface Limited { name: string; resources?: { limits?: { memory?: string } } }
type Placed = Pod & { spec: { nodeName?: string }; status?: { podIP?: string } };

const productPods = async (component: string) => (await kubectlJson<{ items: Placed[] }>(
  ['-n', SYSTEM, 'get', 'pods', '-l', `app.kubernetes.io/name=inplace-gate,app.kubernetes.io/component=${component}`])).items
  .filter((p) => p.metadata.deletionTimestamp === undefined);
const ready = (p: Pod) => conditionOf(p, 'Ready') === 'True';

beforeAll(async () => {
  L = lab();
  if (!L.routed) {
    throw new Error('the lab does not route its pod IPs from the host (CLUSTER_LAB_ROUTED=1 in test/cluster/lab.sh; its log says why): the apiserver cannot reach the webhook pods');
  }
  ({ image } = await pushProductImage(L));
  const { clusterDir } = context();
  overlay = join(clusterDir, 'installed-overlay');
  await mkdir(overlay, { recursive: true });
  const placement = [
    { op: 'add', path: '/spec/template/spec/nodeSelector', value: onRealNodes.nodeSelector },
    { op: 'add', path: '/spec/template/spec/tolerations', value: onRealNodes.tolerations },
  ];
  await writeFile(join(overlay, 'kustomization.yaml'), dump({
    apiVersion: 'kustomize.config.k8s.io/v1beta1', kind: 'Kustomization',
    resources: [relative(overlay, join(repo, 'manifests/overlays/namespace-opt-in'))],
    images: [{ name: 'ghcr.io/inplace-gate/inplace-gate', newName: `${L.registry}/inplace-gate`, digest: image.digest }],
    patches: [{ target: { kind: 'Deployment' }, patch: JSON.stringify(placement) }],
  }));
  rendered = loadAll(await kubectl(['kustomize', overlay])) as Manifest[];
  // A Secret left by another test would not prove that the sidecar issues one.
  await kubectl(['-n', SYSTEM, 'delete', 'secret', SECRET, '--ignore-not-found']);

  const t0 = Date.now();
  await kubectl(['apply', '--server-side', '-k', overlay]);
  await eventually('the webhook and watcher Deployments available, the Lease held', async () => {
    const [webhooks, watchers] = [await productPods('webhook'), await productPods('watcher')];
    const lease = await kubectlJson<{ spec: { holderIdentity?: string } }>(['-n', SYSTEM, 'get', 'lease', 'inplace-gate-watcher']);
    return webhooks.length === 2 && webhooks.every(ready) && watchers.length === 2 && watchers.every(ready) &&
      watchers.some((p) => p.metadata.name === lease.spec.holderIdentity) ? true : undefined;
  }, 300_000, 500);
  installSeconds = (Date.now() - t0) / 1000;
  console.log(`installed: webhook and watcher pods Ready and the Lease held ${installSeconds.toFixed(1)} s after kubectl apply`);
  await createNamespace(NS, { 'inplace-gate.dev/enabled': 'true' });
}, 900_000);

afterAll(async () => {
  await kubectl(['delete', 'namespace', NS, '--wait=false', '--ignore-not-found']).catch(() => undefined);
  if (rendered === undefined) return;
  const all = rendered;
  // What the suite's set-up applied stays (the namespace, the watcher's RBAC); the rest goes, and
  // the suite's own webhook configurations come back for the files after this one.
  const watcherRbac = loadAll(await readFile(join(repo, 'manifests/base/watcher-rbac.yaml'), 'utf8')) as Manifest[];
  const kept = (m: Manifest) => m.kind === 'Namespace' || /WebhookConfiguration$/.test(m.kind) ||
    watcherRbac.some((w) => w.kind === m.kind && w.metadata.name === m.metadata.name);
  const installed = all.filter((m) => !kept(m));
  await kubectl(['delete', '--ignore-not-found', '--cascade=foreground', '--wait', '-f', '-'],
    installed.map((m) => dump(m)).join('---\n')).catch(() => undefined);
  await kubectl(['-n', SYSTEM, 'delete', 'secret', SECRET, '--ignore-not-found']).catch(() => undefined);
  await kubectl(['apply', '--server-side', '--force-conflicts', '-f', join(context().clusterDir, 'e2e-webhooks.json')]);
}, 180_000);

describe('the product installed as pods on real nodes', () => {
  it('runs every replica on a real node from the pushed digest', async () => {
    for (const p of [...await productPods('webhook'), ...await productPods('watcher')]) {
      expect(p.spec.nodeName).toMatch(/^real-node-/);
      for (const s of [...p.status?.containerStatuses ?? [], ...p.status?.initContainerStatuses ?? []]) {
        expect(s.imageID).toBe(`${L.registry}/inplace-gate@${image.digest}`);
      }
    }
  });

  it('the certificate sidecar issued the Secret and set the caBundle of every webhook to its CA', async () => {
    const secret = await kubectlJson<{ data: Record<string, string> }>(['-n', SYSTEM, 'get', 'secret', SECRET]);
    expect(Object.keys(secret.data).sort()).toEqual(['ca.crt', 'ca.key', 'tls.crt', 'tls.key']);
    for (const kind of ['mutatingwebhookconfiguration', 'validatingwebhookconfiguration']) {
      const config = await kubectlJson<WebhookConfiguration>(['get', kind, 'inplace-gate']);
      for (const w of config.webhooks) {
        expect(w.clientConfig.service, w.name).toBeDefined();
        expect(w.clientConfig.caBundle, w.name).toBe(secret.data['ca.crt']);
      }
    }
  });

  it('updates a Deployment in place through the installed product: same pods and IPs, new imageID, no failed request', async () => {
    await applyManifest({ apiVersion: 'v1', kind: 'Service', metadata: { name: 'web', namespace: NS }, spec: { selector: { app: 'web' }, ports: [{ port: 8080 }] } });
    await applyManifest({
      apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name: 'web', namespace: NS },
      spec: {
        replicas: 2, selector: { matchLabels: { app: 'web' } },
        strategy: { type: 'RollingUpdate', rollingUpdate: { maxUnavailable: 1, maxSurge: 0 } },
        template: {
          metadata: { labels: { app: 'web' }, annotations: { 'inplace-gate.dev/grace-period-seconds': '0' } },
          spec: { ...onRealNodes, terminationGracePeriodSeconds: 5, containers: [{ name: 'app', image: L.image('v1'), ports: [{ containerPort: 8080 }], readinessProbe: { httpGet: { path: '/', port: 8080 }, periodSeconds: 1 } }] },
        },
      },
    });
    const webOn = (tag: string) => eventually(`2 web pods on ${tag}, Ready, the gate True`, async () => {
      const pods = (await kubectlJson<{ items: Placed[] }>(['-n', NS, 'get', 'pods', '-l', 'app=web'])).items.filter((p) => p.metadata.deletionTimestamp === undefined);
      const done = (p: Pod) => statusOf(p, 'app')?.image === L.image(tag) && statusOf(p, 'app')?.ready === true && ready(p) &&
        conditionOf(p, READINESS_GATE) === 'True' && stateOf(p) === undefined;
      return pods.length === 2 && pods.every(done) ? pods.sort((a, b) => (a.metadata.name ?? '').localeCompare(b.metadata.name ?? '')) : undefined;
    }, 150_000, 250);
    const before = await webOn('v1');
    // the installed webhook added the gate at creation (the readiness gate is its mark)
    for (const p of before) expect(p.spec.readinessGates).toEqual([{ conditionType: READINESS_GATE }]);
    const traffic = startTraffic(NS, 'web');
    let after: Placed[];
    try {
      await eventually('answers of v1 from both pods', () => Promise.resolve(before.every((p) => traffic.requests.some((r) => r.ok && r.pod === p.metadata.name)) ? true : undefined), 30_000, 100);
      await kubectl(['-n', NS, 'set', 'image', 'deployment/web', `app=${L.image('v2')}`]);
      after = await webOn('v2');
      await eventually('answers of v2 from both pods', () => Promise.resolve(after.every((p) => traffic.requests.some((r) => r.ok && r.pod === p.metadata.name && r.version === 'v2')) ? true : undefined), 30_000, 100);
    } finally {
      await traffic.stop();
    }
    const failed = traffic.requests.filter((r) => !r.ok);
    console.log(`installed, Deployment in place: ${traffic.requests.length} requests, ${failed.length} failed`);
    expect(failed).toEqual([]);
    expect(Object.fromEntries(versionsByPod(traffic.requests))).toEqual(Object.fromEntries(before.map((p) => [p.metadata.name, ['v1', 'v2']])));
    const v2 = `${L.image('v2').replace(/:v2$/, '')}@${L.digests.get(L.image('v2'))!}`;
    expect(after.map((p) => p.metadata.uid)).toEqual(before.map((p) => p.metadata.uid));
    expect(after.map((p) => p.status?.podIP)).toEqual(before.map((p) => p.status?.podIP));
    for (const [i, p] of after.entries()) {
      expect(statusOf(p, 'app')?.imageID).toBe(v2);
      expect(statusOf(p, 'app')?.imageID).not.toBe(statusOf(before[i]!, 'app')?.imageID);
      expect(statusOf(p, 'app')?.restartCount).toBe(statusOf(before[i]!, 'app')!.restartCount + 1);
    }
  }, 300_000);

  it('denies a pod update that changes a field other than an image, through the installed webhook', async () => {
    const [pod] = (await kubectlJson<{ items: Pod[] }>(['-n', NS, 'get', 'pods', '-l', 'app=web'])).items;
    // Taking a pod out by hand: the apiserver allows any label change, the product not this one
    // (what the apiserver itself refuses in the spec never reaches a webhook).
    const stderr = await kubectlFails(['-n', NS, 'label', 'pod', pod!.metadata.name!, `${MANAGED_LABEL}-`]);
    expect(stderr).toMatch(new RegExp(`admission webhook "pod-update\\.inplace-gate\\.dev" denied the request: inplace-gate: the label ${MANAGED_LABEL}`));
    expect((await kubectlJson<Pod>(['-n', NS, 'get', 'pod', pod!.metadata.name!])).metadata.labels?.[MANAGED_LABEL]).toBe('true');
  });

  // What the limit holds: the cgroup's charge (memory.usage_in_bytes; its anonymous part, rss, in
  // memory.stat). VmRSS is recorded too: it also counts the Node binary's file pages, which are
  // charged to whoever read them first (containerd unpacking the image), not to the container.
  it('keeps each container of the install below its memory limit (its cgroup, which enforces the manifest)', async () => {
    const limits = new Map<string, number>();
    for (const m of (rendered ?? []) as (Manifest & { spec?: { template?: { spec: { containers: Limited[]; initContainers?: Limited[] } } } })[]) {
      if (m.kind !== 'Deployment') continue;
      for (const c of [...m.spec?.template?.spec.containers ?? [], ...m.spec?.template?.spec.initContainers ?? []]) limits.set(c.name, mebibytes(c.resources?.limits?.memory ?? ''));
    }
    const mib = (bytes: number) => (bytes / 2 ** 20).toFixed(0);
    const lines: string[] = [];
    for (const p of [...await productPods('webhook'), ...await productPods('watcher')]) {
      for (const s of [...p.status?.initContainerStatuses ?? [], ...p.status?.containerStatuses ?? []]) {
        const { pid, memoryCgroup } = await containerProcess(s.containerID ?? '');
        const status = await readFile(`/proc/${pid}/status`, 'utf8');
        const kib = (field: string) => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status)?.[1]) * 1024;
        const cgroup = (file: string) => readFile(join(memoryCgroup, file), 'utf8');
        const rss = Number(/^total_rss (\d+)$/m.exec(await cgroup('memory.stat'))?.[1]);
        const usage = Number(await cgroup('memory.usage_in_bytes'));
        const limit = Number(await cgroup('memory.limit_in_bytes'));
        const wanted = (limits.get(s.name) ?? 0) * 2 ** 20;
        lines.push(`${p.metadata.name ?? ''}/${s.name} on ${p.spec.nodeName ?? ''}: cgroup rss ${mib(rss)} MiB, usage ${mib(usage)} MiB; ` +
          `VmRSS ${mib(kib('VmRSS'))} MiB (anon ${mib(kib('RssAnon'))}, file ${mib(kib('RssFile'))}); limit ${mib(limit)} MiB (manifest ${mib(wanted)}Mi)`);
        expect(limit, s.name).toBe(wanted);
        expect(usage, s.name).toBeLessThan(wanted);
        expect(rss, s.name).toBeLessThan(wanted);
        expect(kib('RssAnon'), s.name).toBeLessThan(wanted);
      }
    }
    console.log(`installed, memory per container:\n  ${lines.join('\n  ')}`);
    expect(lines).toHaveLength(6); // 2 webhook pods (certs, webhook), 2 watcher pods
  });
});
