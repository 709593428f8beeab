// On real nodes (the real kubelet over containerd and runc, in the lab network
// namespace of test/cluster/lab.sh): live traffic through the drain, counted,
// against the same traffic through a plain image change; and the lifecycle on a
// real runtime, where images are pulled, imageIDs are digests, pulls fail and
// containers crash.
//
// The client follows the Service's EndpointSlices (ready endpoints only) as a
// client-side load balancer would. Grace 0: the watcher writes the image only
// once no EndpointSlice lists the pod ready (issue 17), so nothing relies on a
// guessed grace period (before that, at 0 s a Deployment rollout lost 3 of 693
// requests here).

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Pod } from '../../src/core/kube-types.ts';
import { READINESS_GATE } from '../../src/core/names.ts';
import { applyManifest, createNamespace, eventually, kubectl, kubectlJson } from './support/kube.ts';
import { lab, onRealNodes, retag, startTraffic, versionsByPod, type Lab, type Request, type Traffic } from './support/lab.ts';
import { record } from './support/recorder.ts';
import { PULL_FOR_LABEL } from '../../src/core/pre-pull.ts';
import { conditionOf, phaseIs, settled, stateOf, statusOf } from './support/pods.ts';
import { startLeadingWatcher, type WatcherProcess } from './support/watcher.ts';

const id = Date.now().toString(36);
const OPTED_IN = `e2e-real-${id}`;
const PLAIN = `e2e-real-plain-${id}`;
const GRACE_SECONDS = '0';
let L: Lab;
let watcher: WatcherProcess;

beforeAll(async () => {
  L = lab();
  await createNamespace(OPTED_IN, { 'inplace-gate.dev/enabled': 'true' });
  await createNamespace(PLAIN);
  watcher = await startLeadingWatcher();
});

afterAll(async () => {
  await watcher.stop();
  for (const ns of [OPTED_IN, PLAIN]) await kubectl(['delete', 'namespace', ns, '--wait=false', '--ignore-not-found']);
});

const readinessProbe = { httpGet: { path: '/', port: 8080 }, periodSeconds: 1 };
function podSpec(image: string) {
  return {
    ...onRealNodes,
    terminationGracePeriodSeconds: 5,
    containers: [{ name: 'app', image, ports: [{ containerPort: 8080 }], readinessProbe }],
  };
}

// maxSurge 0: a surge pod scaled in would be deleted, and deletion has its own
// race with endpoints that the product does not claim to close.
async function deployWeb(ns: string, replicas: number) {
  await applyManifest({ apiVersion: 'v1', kind: 'Service', metadata: { name: 'web', namespace: ns }, spec: { selector: { app: 'web' }, ports: [{ port: 8080 }] } });
  await applyManifest({
    apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name: 'web', namespace: ns },
    spec: {
      replicas, selector: { matchLabels: { app: 'web' } },
      strategy: { type: 'RollingUpdate', rollingUpdate: { maxUnavailable: 1, maxSurge: 0 } },
      template: { metadata: { labels: { app: 'web' }, annotations: { 'inplace-gate.dev/grace-period-seconds': GRACE_SECONDS } }, spec: podSpec(L.image('v1')) },
    },
  });
  return webPods(ns, replicas, 'v1');
}

const listPods = async (ns: string) => (await kubectlJson<{ items: Pod[] }>(['-n', ns, 'get', 'pods', '-l', 'app=web'])).items
  .filter((p) => p.metadata.deletionTimestamp === undefined);

/** Waits until `replicas` pods run `tag`, Ready, and (where managed) the gate True with no update in flight. */
function webPods(ns: string, replicas: number, tag: string, timeoutMs = 120_000): Promise<Pod[]> {
  return eventually(`${ns}: ${replicas} web pods on ${tag}, Ready`, async () => {
    const pods = await listPods(ns);
    const done = (p: Pod) => statusOf(p, 'app')?.image === L.image(tag) && statusOf(p, 'app')?.ready === true && conditionOf(p, 'Ready') === 'True' &&
      (p.spec.readinessGates === undefined || (conditionOf(p, READINESS_GATE) === 'True' && stateOf(p) === undefined));
    return pods.length === replicas && pods.every(done) ? pods : undefined;
  }, timeoutMs, 250);
}

/** Waits until the client has had `count` good answers of `version` from each pod. */
function served(traffic: Traffic, pods: string[], version: string, count = 20, timeoutMs = 30_000) {
  return eventually(`${count} answers of ${version} from ${pods.join(', ')}`, () => Promise.resolve(
    pods.every((pod) => traffic.requests.filter((r) => r.ok && r.pod === pod && r.version === version).length >= count) ? true : undefined), timeoutMs, 100);
}

const failures = (requests: Request[]) => requests.filter((r) => !r.ok);
const summary = (t: Traffic) => `${t.requests.length} requests, ${failures(t.requests).length} failed: ${JSON.stringify(failures(t.requests).slice(0, 5))}`;

describe('traffic through an in-place update on real nodes', () => {
  let pods: string[];

  it('updates one pod with no failed request, the version switching on that pod only', async () => {
    pods = (await deployWeb(OPTED_IN, 3)).map((p) => p.metadata.name ?? '').sort();
    const traffic = startTraffic(OPTED_IN, 'web');
    try {
      await served(traffic, pods, 'v1');
      const [first] = pods as [string];
      await kubectl(['-n', OPTED_IN, 'set', 'image', `pod/${first}`, `app=${L.image('v2')}`]);
      const after = await settled(OPTED_IN, first, 90_000);
      expect(statusOf(after, 'app')?.image).toBe(L.image('v2'));
      await served(traffic, [first], 'v2');
    } finally {
      await traffic.stop();
    }
    expect(failures(traffic.requests), summary(traffic)).toEqual([]);
    const versions = versionsByPod(traffic.requests);
    expect(Object.fromEntries(versions)).toEqual({ [pods[0]!]: ['v1', 'v2'], [pods[1]!]: ['v1'], [pods[2]!]: ['v1'] });
    // The client stopped sending to it during the drain, and came back only once it was proven.
    expect(traffic.endpoints.some((e) => !e.endpoints.includes(pods[0]!))).toBe(true);
    console.log(`real nodes, one pod in place: ${summary(traffic)}`);
  }, 180_000);

  it('rolls the whole Deployment in place with no failed request, each pod switching once', async () => {
    const traffic = startTraffic(OPTED_IN, 'web');
    try {
      await served(traffic, pods.slice(1), 'v1', 10);
      await served(traffic, [pods[0]!], 'v2', 10); // updated by the test before
      await kubectl(['-n', OPTED_IN, 'set', 'image', 'deployment/web', `app=${L.image('v2')}`]);
      const after = await webPods(OPTED_IN, 3, 'v2', 150_000);
      // the same pods: updated in place, none replaced
      expect(after.map((p) => p.metadata.name ?? '').sort()).toEqual(pods);
      await served(traffic, pods, 'v2');
    } finally {
      await traffic.stop();
    }
    expect(failures(traffic.requests), summary(traffic)).toEqual([]);
    const versions = versionsByPod(traffic.requests);
    expect(Object.fromEntries(versions)).toEqual({ [pods[0]!]: ['v2'], [pods[1]!]: ['v1', 'v2'], [pods[2]!]: ['v1', 'v2'] });
    console.log(`real nodes, Deployment in place: ${summary(traffic)}`);
  }, 240_000);

  it('control: the same traffic through a plain image change in a namespace that did not opt in fails requests', async () => {
    const names = (await deployWeb(PLAIN, 2)).map((p) => p.metadata.name ?? '').sort();
    expect((await listPods(PLAIN)).every((p) => p.spec.readinessGates === undefined)).toBe(true);
    const traffic = startTraffic(PLAIN, 'web');
    let tag = 'v1';
    try {
      await served(traffic, names, 'v1');
      // The kubelet kills the serving container first; how long the endpoint stays
      // listed as ready afterwards varies (20 ms to 1 s): a few changes make it certain.
      for (let i = 0; i < 4 && failures(traffic.requests).length === 0; i++) {
        tag = tag === 'v1' ? 'v2' : 'v1';
        await kubectl(['-n', PLAIN, 'set', 'image', `pod/${names[0]!}`, `app=${L.image(tag)}`]);
        await eventually(`${names[0]} on ${tag}, Ready`, async () => {
          const [pod] = (await listPods(PLAIN)).filter((p) => p.metadata.name === names[0]);
          return pod && statusOf(pod, 'app')?.image === L.image(tag) && conditionOf(pod, 'Ready') === 'True' ? pod : undefined;
        }, 60_000, 250);
        await served(traffic, [names[0]!], tag, 10);
      }
    } finally {
      await traffic.stop();
    }
    console.log(`real nodes, plain image change (control): ${summary(traffic)}`);
    expect(failures(traffic.requests).length).toBeGreaterThan(0);
    expect(failures(traffic.requests).every((r) => r.pod === names[0])).toBe(true);
  }, 300_000);
});

describe('the lifecycle on a real runtime', () => {
  const pod = (name: string) => ({
    apiVersion: 'v1', kind: 'Pod',
    metadata: { name, namespace: OPTED_IN, labels: { app: name }, annotations: { 'inplace-gate.dev/grace-period-seconds': '1' } },
    spec: podSpec(L.image('v1')),
  });

  it('proves the new container by the digest containerd reports', async () => {
    await applyManifest(pod('digest'));
    const before = await settled(OPTED_IN, 'digest', 90_000);
    const v1 = L.digests.get(L.image('v1'))!;
    const v2 = L.digests.get(L.image('v2'))!;
    expect(v1).not.toBe(v2);
    expect(statusOf(before, 'app')?.imageID).toBe(`${L.image('v1').replace(/:v1$/, '')}@${v1}`);
    await kubectl(['-n', OPTED_IN, 'set', 'image', 'pod/digest', `app=${L.image('v2')}`]);
    const after = await settled(OPTED_IN, 'digest', 90_000);
    const [was, now] = [statusOf(before, 'app')!, statusOf(after, 'app')!];
    expect(now.imageID).toBe(`${L.image('v2').replace(/:v2$/, '')}@${v2}`);
    expect(now.containerID).not.toBe(was.containerID);
    expect(now.restartCount).toBe(was.restartCount + 1);
    // in place: the same sandbox, so the same IP
    expect(after.status?.podIP).toBe(before.status?.podIP);
  }, 180_000);

  it('completes a change to another tag of the same image (the same imageID)', async () => {
    await applyManifest(pod('same'));
    const before = await settled(OPTED_IN, 'same', 90_000);
    expect(L.digests.get(L.image('v1-same'))).toBe(L.digests.get(L.image('v1')));
    await kubectl(['-n', OPTED_IN, 'set', 'image', 'pod/same', `app=${L.image('v1-same')}`]);
    const after = await settled(OPTED_IN, 'same', 90_000);
    const [was, now] = [statusOf(before, 'app')!, statusOf(after, 'app')!];
    expect(now.imageID).toBe(was.imageID);
    expect(now.containerID).not.toBe(was.containerID);
    expect(after.spec.containers[0]?.image).toBe(L.image('v1-same'));
  }, 180_000);

  it('restarts a native sidecar in place on its new image, proven by its digest, the app container untouched', async () => {
    // The sidecar serves the lab image's files on :8081 (the app holds :8080), ready by its own probe.
    const sidecar = { name: 'side', image: L.image('v1'), restartPolicy: 'Always', command: ['/bin/busybox', 'httpd', '-f', '-p', '8081', '-h', '/www'],
      readinessProbe: { httpGet: { path: '/', port: 8081 }, periodSeconds: 1 } };
    const manifest = pod('sidecar');
    await applyManifest({ ...manifest, spec: { ...manifest.spec, initContainers: [sidecar] } });
    const before = await settled(OPTED_IN, 'sidecar', 90_000);
    await kubectl(['-n', OPTED_IN, 'set', 'image', 'pod/sidecar', `side=${L.image('v2')}`]);
    const after = await eventually('the sidecar on v2 and the pod settled', async () => {
      const p = await settled(OPTED_IN, 'sidecar', 90_000);
      return statusOf(p, 'side')?.ready === true && statusOf(p, 'side')?.imageID.endsWith(L.digests.get(L.image('v2'))!) ? p : undefined;
    }, 90_000, 250);
    const [was, now] = [statusOf(before, 'side')!, statusOf(after, 'side')!];
    expect(was.imageID).toBe(`${L.image('v1').replace(/:v1$/, '')}@${L.digests.get(L.image('v1'))!}`);
    expect(now.imageID).toBe(`${L.image('v2').replace(/:v2$/, '')}@${L.digests.get(L.image('v2'))!}`);
    expect(now.containerID).not.toBe(was.containerID);
    expect(now.restartCount).toBe(was.restartCount + 1);
    expect(after.spec.initContainers?.[0]?.image).toBe(L.image('v2'));
    // the app container kept running: same container, no restart; the same sandbox
    expect(statusOf(after, 'app')).toMatchObject({ containerID: statusOf(before, 'app')!.containerID, restartCount: statusOf(before, 'app')!.restartCount, imageID: statusOf(before, 'app')!.imageID });
    expect(after.metadata.uid).toBe(before.metadata.uid);
    expect(after.status?.podIP).toBe(before.status?.podIP);
  }, 180_000);

  it('ends Stalled on a new image that crash-loops', async () => {
    await applyManifest(pod('crash'));
    await settled(OPTED_IN, 'crash', 90_000);
    await kubectl(['-n', OPTED_IN, 'set', 'image', 'pod/crash', `app=${L.image('crash')}`]);
    const stalled = await phaseIs(OPTED_IN, 'crash', 'Stalled', 120_000);
    expect(stateOf(stalled)?.stalled?.reason).toBe('CrashLoopBackOff');
    expect(conditionOf(stalled, READINESS_GATE)).toBe('False');
  }, 180_000);

  // Pre-pull (--pre-pull, on by default): the pull happens on the node while the pod still serves.
  const pullPodsOf = async (uid: string) => (await kubectlJson<{ items: Pod[] }>(['-n', OPTED_IN, 'get', 'pods', '-l', `${PULL_FOR_LABEL}=${uid}`])).items;
  const gateFalse = (p: Pod) => conditionOf(p, READINESS_GATE) === 'False';

  it('pulls the new image on the node of the pod before the condition goes False, then removes the pull pod', async () => {
    await applyManifest(pod('prepull'));
    const before = await settled(OPTED_IN, 'prepull', 90_000);
    // A tag no node has pulled (nodes keep images between runs), with v2's content.
    const image = await retag(L.image('v2'), `v2-prepull-${id}`);
    const watch = await record(`/api/v1/namespaces/${OPTED_IN}/pods`);
    try {
      await kubectl(['-n', OPTED_IN, 'set', 'image', 'pod/prepull', `app=${image}`]);
      const after = await settled(OPTED_IN, 'prepull', 90_000);
      // status.image names one tag of the image's digest; where the node has v2 already, that may be :v2.
      expect(after.spec.containers[0]?.image).toBe(image);
      expect(statusOf(after, 'app')?.imageID).toBe(`${L.image('v2').replace(/:v2$/, '')}@${L.digests.get(L.image('v2'))!}`);
      expect(statusOf(after, 'app')?.restartCount).toBe(statusOf(before, 'app')!.restartCount + 1);
    } finally {
      watch.stop();
    }
    // One watch stream: its order is the apiserver's, not a race between two clients.
    const seen = watch.seen;
    const pulled = seen.findIndex((e) => e.object.metadata.labels?.[PULL_FOR_LABEL] === before.metadata.uid &&
      e.object.spec.nodeName === before.spec.nodeName && e.object.spec.containers[0]?.image === image &&
      (e.object.status?.containerStatuses ?? []).some((s) => s.state?.terminated !== undefined || s.state?.running !== undefined ||
        ['CreateContainerError', 'RunContainerError', 'StartError'].includes(s.state?.waiting?.reason ?? '')));
    const drained = seen.findIndex((e) => e.object.metadata.name === 'prepull' && gateFalse(e.object));
    expect(pulled, 'the pull pod showed the image on the node').toBeGreaterThanOrEqual(0);
    expect(drained, 'the condition went False').toBeGreaterThanOrEqual(0);
    expect(pulled).toBeLessThan(drained);
    // The pull pod's spec: pinned, owned, restricted.
    const pullPod = seen[pulled]!.object;
    expect(pullPod.metadata.ownerReferences).toEqual([expect.objectContaining({ kind: 'Pod', name: 'prepull', uid: before.metadata.uid })]);
    expect(pullPod.spec).toMatchObject({ restartPolicy: 'Never', securityContext: { runAsNonRoot: true } });
    await eventually('the pull pods gone', async () => ((await pullPodsOf(before.metadata.uid ?? '')).length === 0 ? true : undefined), 30_000, 250);
  }, 180_000);

  it('ends Stalled before any drain on a tag the registry does not have: the pod keeps serving its old image', async () => {
    await applyManifest(pod('missing'));
    const before = await settled(OPTED_IN, 'missing', 90_000);
    const watch = await record(`/api/v1/namespaces/${OPTED_IN}/pods?fieldSelector=metadata.name%3Dmissing`);
    let stalled: Pod;
    try {
      await kubectl(['-n', OPTED_IN, 'set', 'image', 'pod/missing', `app=${L.image('no-such-tag')}`]);
      stalled = await phaseIs(OPTED_IN, 'missing', 'Stalled', 90_000);
    } finally {
      watch.stop();
    }
    expect(stateOf(stalled)?.stalled?.reason).toBe('PrePullFailed');
    expect(stateOf(stalled)?.stalled?.message).toMatch(/no-such-tag.*(ErrImagePull|ImagePullBackOff)/);
    // Never drained: the condition never went False, the image was never written, the container never restarted.
    expect(watch.seen.filter((e) => gateFalse(e.object))).toEqual([]);
    expect(conditionOf(stalled, READINESS_GATE)).toBe('True');
    expect(conditionOf(stalled, 'Ready')).toBe('True');
    expect(stalled.spec.containers[0]?.image).toBe(L.image('v1'));
    expect(statusOf(stalled, 'app')).toMatchObject({ image: L.image('v1'), ready: true, restartCount: statusOf(before, 'app')!.restartCount });
    const events = await kubectlJson<{ items: { reason: string; type: string; note?: string }[] }>(
      ['-n', OPTED_IN, 'get', 'events.events.k8s.io', '--field-selector', 'regarding.name=missing']);
    expect(events.items.some((e) => e.reason === 'InPlaceUpdateStalled' && e.type === 'Warning' && (e.note ?? '').includes('no-such-tag'))).toBe(true);
    await eventually('the pull pods gone', async () => ((await pullPodsOf(before.metadata.uid ?? '')).length === 0 ? true : undefined), 30_000, 250);
  }, 180_000);
});
