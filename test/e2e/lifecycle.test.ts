// The whole lifecycle on real hollow kubelets: drain first, write after the
// grace period, prove the restart, come back; and the variations a user hits.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Pod } from '../../src/core/kube-types.ts';
import { READINESS_GATE } from '../../src/core/names.ts';
import { applyManifest, createNamespace, eventually, kubectl, kubectlFails, kubectlJson } from './support/kube.ts';
import { IMAGE, IMAGE_2, IMAGE_3, conditionOf, getPod, phaseIs, podManifest, settled, stateOf, statusOf } from './support/pods.ts';
import { record, type Recorder } from './support/recorder.ts';
import { startLeadingWatcher, type WatcherProcess } from './support/watcher.ts';

const NS = `e2e-lifecycle-${Date.now().toString(36)}`;
// This test's pod grace period: none. The write waits for the Service's EndpointSlice to show the
// pod not ready, which follows the kubelet's Ready False (a hollow kubelet publishes it 0.5-3.3 s
// after the gate), so the order below holds by construction, not by a long enough guess.
const GRACE_MS = 0;
let watcher: WatcherProcess;
let pods: Recorder<Pod>;

interface Endpoint { conditions?: { ready?: boolean }; targetRef?: { name?: string } }
interface Slice { metadata: { labels?: Record<string, string> }; endpoints?: Endpoint[] | null }
let slices: Recorder<Slice>;

beforeAll(async () => {
  await createNamespace(NS, { 'inplace-gate.dev/enabled': 'true' });
  watcher = await startLeadingWatcher();
  pods = await record(`/api/v1/namespaces/${NS}/pods`);
  slices = await record<Slice>(`/apis/discovery.k8s.io/v1/namespaces/${NS}/endpointslices`);
});

afterAll(async () => {
  pods.stop();
  slices.stop();
  await watcher.stop();
  await kubectl(['delete', 'namespace', NS, '--wait=false']);
});

const seenOf = (name: string) => pods.seen.filter((s) => s.object.metadata.name === name);
const firstAt = (name: string, pred: (p: Pod) => boolean) => seenOf(name).find((s) => pred(s.object))?.at;
const endpointReady = (name: string, s: Slice) => s.endpoints?.find((e) => e.targetRef?.name === name)?.conditions?.ready;

describe('one image change, end to end', () => {
  it('drains first, writes after the grace period, proves the restart, and comes back', async () => {
    await applyManifest({ apiVersion: 'v1', kind: 'Service', metadata: { name: 'web', namespace: NS }, spec: { selector: { app: 'web-1' }, ports: [{ port: 80 }] } });
    await applyManifest(podManifest('web-1', NS, {
      containers: [{ name: 'app', image: IMAGE }, { name: 'proxy', image: IMAGE }],
      annotations: { 'inplace-gate.dev/grace-period-seconds': String(GRACE_MS / 1000) },
    }));
    const before = await settled(NS, 'web-1');

    // Ready only once the watcher set the condition: no Ready=True without the gate True first.
    const readyAt = firstAt('web-1', (p) => conditionOf(p, 'Ready') === 'True')!;
    const gateAt = firstAt('web-1', (p) => conditionOf(p, READINESS_GATE) === 'True')!;
    expect(gateAt).toBeLessThanOrEqual(readyAt);

    const oldID = statusOf(before, 'app')!.containerID;
    const requested = Date.now();
    await kubectl(['-n', NS, 'set', 'image', 'pod/web-1', `app=${IMAGE_2}`]);
    const after = await settled(NS, 'web-1');

    const falseAt = firstAt('web-1', (p) => conditionOf(p, READINESS_GATE) === 'False')!;
    const writtenAt = firstAt('web-1', (p) => p.spec.containers[0]?.image === IMAGE_2)!;
    const restartedAt = seenOf('web-1').find((s) => s.at >= requested && (statusOf(s.object, 'app')?.containerID ?? oldID) !== oldID)!.at;
    expect(falseAt).toBeGreaterThanOrEqual(requested);
    // Condition first: False arrives before the image is written and before the new container.
    expect(falseAt).toBeLessThan(writtenAt);
    expect(falseAt).toBeLessThan(restartedAt);
    expect(writtenAt - falseAt).toBeGreaterThanOrEqual(GRACE_MS - 250);
    // The kubelet turned Ready False before the image was written, and nothing said Ready
    // again until the watcher proved the new container (the condition's True).
    const notReadyAt = firstAt('web-1', (p) => conditionOf(p, 'Ready') === 'False' && conditionOf(p, READINESS_GATE) === 'False')!;
    expect(notReadyAt).toBeLessThan(writtenAt);
    const backAt = seenOf('web-1').find((s) => s.at > falseAt && conditionOf(s.object, READINESS_GATE) === 'True')!.at;
    const between = seenOf('web-1').filter((s) => s.at >= notReadyAt && s.at < backAt);
    expect(between.every((s) => conditionOf(s.object, 'Ready') !== 'True')).toBe(true);
    expect(restartedAt).toBeLessThan(backAt);
    // The Service's endpoint turned not ready during the drain, before the restart.
    const endpointDownAt = slices.seen.find((s) => s.at >= requested && endpointReady('web-1', s.object) === false)?.at;
    expect(endpointDownAt).toBeDefined();
    expect(endpointDownAt!).toBeLessThan(restartedAt);

    // Back: new container, new image, Ready, endpoint ready, same pod.
    expect(after.metadata.uid).toBe(before.metadata.uid);
    expect(after.spec.containers.map((c) => c.image)).toEqual([IMAGE_2, IMAGE]);
    expect(statusOf(after, 'app')!.containerID).not.toBe(oldID);
    expect(statusOf(after, 'app')!.image).toBe(IMAGE_2);
    expect(statusOf(after, 'proxy')!.containerID).toBe(statusOf(before, 'proxy')!.containerID);
    const lastSlice = [...slices.seen].reverse().find((s) => endpointReady('web-1', s.object) !== undefined);
    expect(lastSlice && endpointReady('web-1', lastSlice.object)).toBe(true);

    const events = await kubectl(['-n', NS, 'get', 'events.events.k8s.io', '--field-selector', 'regarding.name=web-1', '-o', 'jsonpath={.items[*].reason}']);
    expect(events.split(' ')).toEqual(expect.arrayContaining(['InPlaceUpdateStarted', 'InPlaceUpdateDrained', 'InPlaceUpdateSucceeded']));
  });
});

describe('variations', () => {
  it('only a sidecar changed: only the sidecar restarts', async () => {
    await applyManifest(podManifest('side', NS, { containers: [{ name: 'app', image: IMAGE }, { name: 'proxy', image: IMAGE }] }));
    const before = await settled(NS, 'side');
    await kubectl(['-n', NS, 'set', 'image', 'pod/side', `proxy=${IMAGE_2}`]);
    await phaseIs(NS, 'side', 'Draining');
    const after = await settled(NS, 'side');
    expect(statusOf(after, 'app')!.containerID).toBe(statusOf(before, 'app')!.containerID);
    expect(statusOf(after, 'proxy')!.containerID).not.toBe(statusOf(before, 'proxy')!.containerID);
    expect(statusOf(after, 'proxy')!.image).toBe(IMAGE_2);
  });

  it('another image while Draining replaces the request; the drain goes on', async () => {
    await applyManifest(podManifest('redo', NS));
    await settled(NS, 'redo');
    await kubectl(['-n', NS, 'set', 'image', 'pod/redo', `app=${IMAGE_2}`]);
    const draining = await phaseIs(NS, 'redo', 'Draining');
    await kubectl(['-n', NS, 'set', 'image', 'pod/redo', `app=${IMAGE_3}`]);
    const replaced = await getPod(NS, 'redo');
    expect(stateOf(replaced)).toMatchObject({ phase: 'Draining', images: { app: IMAGE_3 }, drainDeadline: stateOf(draining)!.drainDeadline });
    const after = await settled(NS, 'redo');
    expect(statusOf(after, 'app')!.image).toBe(IMAGE_3);
  });

  it('a server-side apply of the running images while Draining cancels: no restart, Ready again', async () => {
    await applyManifest(podManifest('cancel', NS));
    const before = await settled(NS, 'cancel');
    await kubectl(['-n', NS, 'set', 'image', 'pod/cancel', `app=${IMAGE_2}`]);
    await phaseIs(NS, 'cancel', 'Draining');
    // A write of the pod as stored (kubectl replace) no longer cancels: the request must re-assert the image.
    await applyManifest(podManifest('cancel', NS), ['--server-side', '--field-manager=gitops', '--force-conflicts']);
    const after = await settled(NS, 'cancel');
    expect(after.spec.containers[0]!.image).toBe(IMAGE);
    expect(statusOf(after, 'app')!.containerID).toBe(statusOf(before, 'app')!.containerID);
  });

  it('an image the apiserver would refuse at the write (trailing whitespace) is refused at request time, with a 422 naming the container; nothing drains', async () => {
    await applyManifest(podManifest('spaced', NS));
    const before = await settled(NS, 'spaced');
    const said = await kubectlFails(['-n', NS, 'patch', 'pod', 'spaced', '--type=json', '-p', JSON.stringify([{ op: 'replace', path: '/spec/containers/0/image', value: `${IMAGE_2} ` }])]);
    expect(said).toContain('container app');
    expect(said).toContain('must not have leading or trailing whitespace');
    const after = await getPod(NS, 'spaced');
    expect(after.metadata.annotations?.['inplace-gate.dev/update']).toBeUndefined();
    expect(conditionOf(after, READINESS_GATE)).toBe('True');
    expect(statusOf(after, 'app')!.containerID).toBe(statusOf(before, 'app')!.containerID);
  });

  it("an image a policy refuses at the watcher's write (a ValidatingAdmissionPolicy, as Gatekeeper or Kyverno would): Stalled with its message, back in service on the old image", async () => {
    // The policy sees the requested image only in the watcher's write: the request itself keeps the running image in the spec.
    const policy = `e2e-no-blocked-${NS}`;
    await applyManifest({
      apiVersion: 'admissionregistration.k8s.io/v1', kind: 'ValidatingAdmissionPolicy', metadata: { name: policy },
      spec: {
        failurePolicy: 'Fail',
        matchConstraints: { resourceRules: [{ apiGroups: [''], apiVersions: ['v1'], operations: ['UPDATE'], resources: ['pods'] }] },
        validations: [{ expression: "object.spec.containers.all(c, !c.image.endsWith('-blocked'))", message: 'images tagged -blocked are not allowed here' }],
      },
    });
    await applyManifest({
      apiVersion: 'admissionregistration.k8s.io/v1', kind: 'ValidatingAdmissionPolicyBinding', metadata: { name: policy },
      spec: { policyName: policy, validationActions: ['Deny'], matchResources: { namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': NS } } } },
    });
    try {
      await applyManifest(podManifest('refused', NS));
      const before = await settled(NS, 'refused');
      const blocked = `${IMAGE_2}-blocked`;
      // The policy is in force once a plain write of the image is refused (its bindings are read asynchronously).
      await eventually('the policy in force', async () => {
        await applyManifest(podManifest('probe', NS, { labels: { 'inplace-gate.dev/enabled': 'false' } })).catch(() => undefined);
        const out = await kubectlFails(['-n', NS, 'set', 'image', 'pod/probe', `app=${blocked}`]).catch(() => '');
        return out.includes('not allowed here') ? true : undefined;
      });
      await kubectl(['-n', NS, 'set', 'image', 'pod/refused', `app=${blocked}`]);
      const stalled = await phaseIs(NS, 'refused', 'Stalled');
      expect(stateOf(stalled)).toMatchObject({ images: { app: blocked }, stalled: { reason: 'ImageWriteRefused', message: expect.stringContaining('not allowed here') as unknown } });
      const back = await eventually('back in service', async () => {
        const p = await getPod(NS, 'refused');
        return conditionOf(p, READINESS_GATE) === 'True' && conditionOf(p, 'Ready') === 'True' ? p : undefined;
      });
      expect(back.spec.containers[0]!.image).toBe(IMAGE);
      expect(statusOf(back, 'app')!.containerID).toBe(statusOf(before, 'app')!.containerID);
      const events = await eventually('the Warning event', async () => {
        const list = await kubectlJson<{ items: { reason: string; type: string; note: string }[] }>(
          ['-n', NS, 'get', 'events.events.k8s.io', '--field-selector', 'regarding.name=refused,reason=InPlaceUpdateRefused']);
        return list.items.length > 0 ? list.items : undefined;
      });
      expect(events).toEqual([expect.objectContaining({ type: 'Warning', note: expect.stringContaining('not allowed here') as unknown })]);
      // The next image change starts over, with a drain.
      await kubectl(['-n', NS, 'set', 'image', 'pod/refused', `app=${IMAGE_2}`]);
      await phaseIs(NS, 'refused', 'Draining');
      expect(statusOf(await settled(NS, 'refused'), 'app')!.image).toBe(IMAGE_2);
    } finally {
      await kubectl(['delete', 'validatingadmissionpolicybinding,validatingadmissionpolicy', policy, '--ignore-not-found']);
    }
  });

  it('a container declared not serving: updated in place with no drain, the gate True throughout, still proven', async () => {
    await applyManifest(podManifest('quiet', NS, {
      containers: [{ name: 'app', image: IMAGE }, { name: 'shipper', image: IMAGE }],
      annotations: { 'inplace-gate.dev/serving-containers': 'app', 'inplace-gate.dev/grace-period-seconds': '30' },
    }));
    const before = await settled(NS, 'quiet');
    const requested = Date.now();
    await kubectl(['-n', NS, 'set', 'image', 'pod/quiet', `shipper=${IMAGE_2}`]);
    const after = await settled(NS, 'quiet');
    // Well inside the 30 s grace period a drain would have waited.
    expect(Date.now() - requested).toBeLessThan(20_000);
    expect(statusOf(after, 'shipper')!.image).toBe(IMAGE_2);
    expect(statusOf(after, 'shipper')!.containerID).not.toBe(statusOf(before, 'shipper')!.containerID);
    expect(statusOf(after, 'app')!.containerID).toBe(statusOf(before, 'app')!.containerID);
    // From the test's own pod watch: never Draining, and the gate never False.
    const since = seenOf('quiet').filter((s) => s.at >= requested).map((s) => s.object);
    expect(since.some((p) => stateOf(p)?.phase === 'Updating')).toBe(true);
    expect(since.filter((p) => stateOf(p)?.phase === 'Draining')).toEqual([]);
    expect(since.filter((p) => conditionOf(p, READINESS_GATE) !== 'True')).toEqual([]);
    const events = await eventually('the success event', async () => {
      const list = await kubectlJson<{ items: { reason: string }[] }>(['-n', NS, 'get', 'events.events.k8s.io', '--field-selector', 'regarding.name=quiet']);
      return list.items.some((e) => e.reason === 'InPlaceUpdateSucceeded') ? list.items.map((e) => e.reason) : undefined;
    });
    expect(events).toContain('InPlaceUpdateStarted');
  });

  it('two pods at once', async () => {
    await Promise.all(['two-a', 'two-b'].map((n) => applyManifest(podManifest(n, NS))));
    await Promise.all(['two-a', 'two-b'].map((n) => settled(NS, n)));
    await Promise.all(['two-a', 'two-b'].map((n) => kubectl(['-n', NS, 'set', 'image', `pod/${n}`, `app=${IMAGE_2}`])));
    const after = await Promise.all(['two-a', 'two-b'].map((n) => settled(NS, n)));
    expect(after.map((p) => statusOf(p, 'app')!.image)).toEqual([IMAGE_2, IMAGE_2]);
  });

  it('a server-side apply bump keeps the tool as the image field manager', async () => {
    const manifest = podManifest('ssa', NS);
    await applyManifest(manifest, ['--server-side', '--field-manager=argocd-controller']);
    await settled(NS, 'ssa');
    manifest.spec.containers[0]!.image = IMAGE_2;
    await applyManifest(manifest, ['--server-side', '--field-manager=argocd-controller']);
    await settled(NS, 'ssa');
    const after = await kubectlJson<Pod>(['-n', NS, 'get', 'pod', 'ssa', '--show-managed-fields']);
    expect(after.spec.containers[0]!.image).toBe(IMAGE_2);
    const full = JSON.stringify(after.metadata.managedFields?.filter((m) => (m as { manager: string }).manager === 'argocd-controller'));
    expect(full).toContain('f:image');
    const byWatcher = after.metadata.managedFields?.filter((m) => (m as { manager: string; subresource?: string }).manager === 'inplace-gate' && !(m as { subresource?: string }).subresource);
    expect(JSON.stringify(byWatcher ?? [])).not.toContain('f:image');
  });
});
