import { describe, expect, it } from 'vitest';
import { trimBudget, trimNode, trimPod, trimWorkload } from '../../src/watcher/trim.ts';
import { buildPod } from '../support/pods.ts';

describe('what the watcher caches', () => {
  it("pods: the gate condition's message (the lifecycle compares it before rewriting), no other condition's", () => {
    const pod = trimPod({
      metadata: { name: 'p', namespace: 'ns', uid: 'u', resourceVersion: '1', labels: { app: 'web' }, annotations: { 'inplace-gate.dev/image-rewrites': '{}', other: 'x' } },
      spec: { containers: [{ name: 'app', image: 'a:1', env: [{ name: 'X', value: 'y' }] }], nodeName: 'n1' },
      status: { conditions: [
        { type: 'Ready', status: 'True', message: 'long kubelet text', lastTransitionTime: '2026-12-02T00:00:00Z' },
        { type: 'InPlaceUpdateReady', status: 'True', reason: 'WaitingForDisruptionBudget', message: 'waiting for PodDisruptionBudget web' },
      ] },
    });
    expect(pod.status?.conditions).toEqual([
      { type: 'Ready', status: 'True', lastTransitionTime: '2026-12-02T00:00:00Z' },
      { type: 'InPlaceUpdateReady', status: 'True', reason: 'WaitingForDisruptionBudget', message: 'waiting for PodDisruptionBudget web' },
    ]);
    expect(pod.metadata.annotations).toEqual({ 'inplace-gate.dev/image-rewrites': '{}' });
    expect(pod.metadata.labels).toEqual({ app: 'web' });
  });

  it('workloads keep the priority and scatter annotations', () => {
    const w = trimWorkload({
      metadata: { name: 'd', namespace: 'ns', annotations: { 'inplace-gate.dev/update-priority': '{}', 'inplace-gate.dev/update-scatter': 'kubernetes.io/hostname', noise: 'x' } },
      spec: { template: { spec: { containers: [{ name: 'app', image: 'a:1' }] } } },
    });
    expect(w.metadata.annotations).toEqual({ 'inplace-gate.dev/update-priority': '{}', 'inplace-gate.dev/update-scatter': 'kubernetes.io/hostname' });
  });

  it('workloads keep minReadySeconds and progressDeadlineSeconds: the rollout paces itself and fails by them', () => {
    const w = trimWorkload({ metadata: { name: 'd' }, spec: { minReadySeconds: 5, progressDeadlineSeconds: 60, revisionHistoryLimit: 10, template: { spec: { containers: [] } } } });
    expect(w.spec).toMatchObject({ minReadySeconds: 5, progressDeadlineSeconds: 60 });
    expect(w.spec.revisionHistoryLimit).toBeUndefined();
  });

  it('budgets: selector and disruptionsAllowed; one not computed yet allows nothing', () => {
    expect(trimBudget({ metadata: { name: 'b', namespace: 'ns' }, spec: { selector: { matchLabels: { a: '1' } }, maxUnavailable: 1 }, status: { disruptionsAllowed: 2, currentHealthy: 5 } }))
      .toEqual({ metadata: { name: 'b', namespace: 'ns', resourceVersion: undefined }, selector: { matchLabels: { a: '1' } }, disruptionsAllowed: 2 });
    expect(trimBudget({ metadata: { name: 'b', namespace: 'ns' }, spec: {} }).disruptionsAllowed).toBe(0);
  });

  it('nodes for pre-pull: the image names the kubelet reports and whether it is Ready, nothing else of the status', () => {
    const node = trimNode({
      metadata: { name: 'n1', resourceVersion: '3' },
      status: {
        images: [{ names: ['reg/app@sha256:ab', 'reg/app:v2'], sizeBytes: 1 }, { names: null, sizeBytes: 2 }],
        conditions: [{ type: 'MemoryPressure', status: 'False' }, { type: 'Ready', status: 'True' }],
        capacity: { cpu: '4' },
      },
    });
    expect(node).toEqual({ metadata: { name: 'n1', resourceVersion: '3' }, images: new Set(['reg/app@sha256:ab', 'reg/app:v2']), ready: true });
  });

  it('pods keep what a pull pod pulls with: service account, pull secret names, pull policy', () => {
    const pod = trimPod({
      metadata: { name: 'p', namespace: 'ns', uid: 'u', resourceVersion: '1' },
      spec: { containers: [{ name: 'app', image: 'a:1', imagePullPolicy: 'Always' }], serviceAccountName: 'web', imagePullSecrets: [{ name: 'regcred' }], tolerations: [{ operator: 'Exists' }] },
    });
    expect(pod.spec).toEqual({ containers: [{ name: 'app', image: 'a:1', imagePullPolicy: 'Always' }], serviceAccountName: 'web', imagePullSecrets: [{ name: 'regcred' }] });
  });

  it('nodes: name and labels only', () => {
    expect(trimNode({ metadata: { name: 'n1', resourceVersion: '3', labels: { zone: 'a' }, annotations: { big: 'x' } }, status: { images: [] } }))
      .toEqual({ metadata: { name: 'n1', resourceVersion: '3', labels: { zone: 'a' } } });
  });
});

describe('trimPod', () => {
  it('keeps the last termination of a container (its start and end are part of the completion proof), drops the rest of lastState', () => {
    const pod = buildPod({});
    const terminated = { reason: 'Error', exitCode: 137, startedAt: '2026-11-28T10:00:05Z', finishedAt: '2026-11-28T11:59:31Z', containerID: 'containerd://3e3e' };
    const status = pod.status?.containerStatuses?.[0];
    if (status === undefined) throw new Error('fixture has no container status');
    status.lastState = { terminated, waiting: { reason: 'ContainerCreating' } };
    expect(trimPod(pod).status?.containerStatuses?.[0]?.lastState).toEqual({ terminated });
  });
});
