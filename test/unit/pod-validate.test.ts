import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { validate } from '../../src/core/admission/index.ts';
import { defaultAdmissionConfig } from '../../src/core/config.ts';
import type { AdmissionRequest } from '../../src/core/admission/request.ts';
import type { Pod } from '../../src/core/kube-types.ts';
import { MANAGED_LABEL, UPDATE_ANNOTATION } from '../../src/core/names.ts';
import type { UpdateState } from '../../src/core/state.ts';
import { expectDecision } from '../support/apply.ts';
import { USER, buildPod, updateRequest, withSpecImages } from '../support/pods.ts';

const config = defaultAdmissionConfig;
const WATCHER = { username: 'system:serviceaccount:inplace-gate:inplace-gate-watcher', groups: ['system:serviceaccounts'] };

function edit(pod: Pod, change: (p: Pod) => void): Pod {
  const copy = structuredClone(pod);
  change(copy);
  return copy;
}

const judge = (old: Pod, pod: Pod, extra = {}, cfg = config) => expectDecision(validate(updateRequest(old, pod, extra), cfg));

describe('UPDATE pods, validating: only images may change in the spec', () => {
  const old = buildPod({
    containers: [{ name: 'app', image: 'web:1' }, { name: 'istio-proxy', image: 'proxy:1' }],
    initContainers: [{ name: 'log-shipper', image: 'fluent-bit:3.2', restartPolicy: 'Always' }],
  });

  it('allows image changes of containers and init containers', () => {
    expect(judge(old, withSpecImages(old, { app: 'web:2', 'log-shipper': 'fluent-bit:3.3' }))).toMatchObject({ type: 'allow' });
  });

  it.each([
    ['an env var', (p: Pod) => { (p.spec.containers[0] as unknown as { env: { value?: string }[] }).env[1]!.value = 'debug'; }, ['spec.containers[0].env[1].value']],
    ['resources', (p: Pod) => { p.spec.containers[1]!.resources = { limits: { memory: '1Gi' } }; }, ['spec.containers[1].resources.limits.memory', 'spec.containers[1].resources.requests']],
    ['a node selector on a scheduled pod', (p: Pod) => { p.spec.nodeSelector = { 'topology.kubernetes.io/zone': 'eu-west-1a' }; }, ['spec.nodeSelector']],
    ['a container added', (p: Pod) => { p.spec.containers.push({ name: 'debug', image: 'busybox' }); }, ['spec.containers']],
    ['a native sidecar restart policy', (p: Pod) => { delete p.spec.initContainers![0]!.restartPolicy; }, ['spec.initContainers[0].restartPolicy']],
    ['an image and an env var together', (p: Pod) => { p.spec.containers[0]!.image = 'web:2'; p.spec.terminationGracePeriodSeconds = 5; }, ['spec.terminationGracePeriodSeconds']],
  ])('denies %s, naming every field path it touched', (_what, change, paths) => {
    const decision = judge(old, edit(old, change));
    expect(decision).toMatchObject({ type: 'deny', code: 403, reason: 'spec-change-denied' });
    if (decision.type !== 'deny') return;
    for (const path of paths) expect(decision.message).toContain(path);
    expect(decision.message).not.toContain('.image');
    expect(decision.message).toMatch(/Deployment, StatefulSet/);
    expect(decision.message).toContain('shop/web-7d9c6b5f4-x2x8q');
  });

  it('caps a long list of paths', () => {
    const pod = edit(old, (p) => {
      (p.spec.containers[0] as unknown as { env: unknown[] }).env = Array.from({ length: 2 }, (_, i) => ({ name: `A${i}`, value: String(i) }));
      p.spec.containers[0]!.ports = Array.from({ length: 30 }, (_, i) => ({ containerPort: i }));
      for (let i = 0; i < 30; i++) (p.spec as Record<string, unknown>)[`x${i}`] = i;
    });
    const decision = judge(old, pod);
    expect(decision.type === 'deny' && decision.message.endsWith('change only the image fields.')).toBe(true);
    expect(decision.type === 'deny' && decision.message).toContain(' and more');
  });

  it('allows scheduling gates to be removed (they can only be removed, before the pod runs)', () => {
    const gated = edit(old, (p) => { p.spec.schedulingGates = [{ name: 'kueue.x-k8s.io/admission' }]; });
    expect(judge(gated, edit(gated, (p) => { p.spec.schedulingGates = []; }))).toMatchObject({ type: 'allow' });
  });

  it('lets metadata change freely: labels, finalizers, owner references', () => {
    const pod = edit(old, (p) => {
      p.metadata.labels = { ...p.metadata.labels, team: 'shop' };
      p.metadata.finalizers = ['example.com/protect'];
      p.metadata.ownerReferences = [];
      p.metadata.annotations = { note: 'hi' };
    });
    expect(judge(old, pod)).toMatchObject({ type: 'allow' });
  });

  it('applies the same rule to the watcher', () => {
    expect(judge(old, edit(old, (p) => { p.spec.hostname = 'x'; }), { userInfo: WATCHER })).toMatchObject({ type: 'deny' });
  });

  it('leaves unmanaged pods, excluded namespaces and exempt users alone', () => {
    const unmanaged = buildPod({ managed: false });
    const change = (p: Pod) => { p.spec.activeDeadlineSeconds = 1; };
    expect(judge(unmanaged, edit(unmanaged, change))).toMatchObject({ type: 'allow', reason: 'not-managed' });
    const system = buildPod({ namespace: 'kube-system' });
    expect(judge(system, edit(system, change))).toMatchObject({ type: 'allow' });
    const exempt = { ...config, exempt: { users: [], groups: ['platform-team'] } };
    expect(judge(old, edit(old, change), {}, exempt)).toMatchObject({ type: 'allow', reason: 'exempt' });
  });
});

describe('UPDATE pods, validating: the lifecycle label and annotation', () => {
  const pending: UpdateState = { phase: 'Pending', images: { app: 'web:2' }, requestedBy: USER.username, requestedAt: '2026-11-28T12:00:00Z' };
  const withState = (p: Pod, s: UpdateState | undefined) =>
    edit(p, (x) => {
      x.metadata.annotations = { ...x.metadata.annotations };
      if (s) x.metadata.annotations[UPDATE_ANNOTATION] = JSON.stringify(s);
      else delete x.metadata.annotations[UPDATE_ANNOTATION];
    });
  const old = buildPod();

  it('denies removing or changing the managed label', () => {
    const decision = judge(old, edit(old, (p) => { delete p.metadata.labels![MANAGED_LABEL]; }));
    expect(decision).toMatchObject({ type: 'deny', reason: 'lifecycle-label-denied' });
    expect(decision.type === 'deny' && decision.message).toContain('inplace-gate.dev/enabled="false"');
  });

  it("allows the mutating webhook's transitions: a request under the user's own name, a cancellation", () => {
    expect(judge(old, withState(old, pending))).toMatchObject({ type: 'allow' });
    const ungated = buildPod({ readinessGates: [] });
    expect(judge(ungated, withState(withSpecImages(ungated, { app: 'web:2' }), { ...pending, phase: 'Updating', immediate: true }))).toMatchObject({ type: 'allow' });
    expect(judge(withState(old, pending), old)).toMatchObject({ type: 'allow' });
    const draining = { ...pending, phase: 'Draining' as const, drainStartedAt: '2026-11-28T12:00:01Z', drainDeadline: '2026-11-28T12:00:11Z' };
    expect(judge(withState(old, draining), withState(old, { ...draining, images: { app: 'web:3' } }))).toMatchObject({ type: 'allow' });
  });

  it.each([
    ['a state under someone else’s name', undefined, { ...pending, requestedBy: 'bob' }],
    ['a forged Updating', undefined, { ...pending, phase: 'Updating' as const }],
    ['a Draining forged to Updating', { ...pending, phase: 'Draining' as const, requestedBy: 'bob' }, { ...pending, phase: 'Updating' as const }],
    ['a forged Draining with an early deadline, from Pending', pending, { ...pending, phase: 'Draining' as const, drainStartedAt: '2026-11-28T11:00:00Z', drainDeadline: '2026-11-28T11:00:01Z' }],
    ['a forged Draining with an early deadline, from no state', undefined, { ...pending, phase: 'Draining' as const, drainDeadline: '2026-11-28T11:00:01Z' }],
    ['a Draining whose deadline is moved earlier', { ...pending, phase: 'Draining' as const, drainStartedAt: '2026-11-28T12:00:01Z', drainDeadline: '2026-11-28T12:00:11Z' }, { ...pending, phase: 'Draining' as const, drainStartedAt: '2026-11-28T12:00:01Z', drainDeadline: '2026-11-28T12:00:02Z' }],
    ['a forged Updating marked immediate on a gated pod in drain mode', undefined, { ...pending, phase: 'Updating' as const, immediate: true }],
    ['a forged Pending marked drained on a pod that never drained', undefined, { ...pending, drained: true }],
    ['a forged Stalled', undefined, { ...pending, phase: 'Stalled' as const }],
    ['removing a state while Updating', { ...pending, phase: 'Updating' as const }, undefined],
  ])('denies %s', (_what, before, after) => {
    const decision = judge(withState(old, before), withState(old, after));
    expect(decision).toMatchObject({ type: 'deny', reason: 'lifecycle-annotation-denied' });
  });

  it('denies an immediate Updating that claims to need no drain (only the watcher decides that)', () => {
    const ungated = buildPod({ readinessGates: [] });
    const immediate = { ...pending, phase: 'Updating' as const, immediate: true };
    const images = withSpecImages(ungated, { app: 'web:2' });
    expect(judge(ungated, withState(images, immediate))).toMatchObject({ type: 'allow' });
    expect(judge(ungated, withState(images, { ...immediate, inService: true }))).toMatchObject({ type: 'deny', reason: 'lifecycle-annotation-denied' });
  });

  it('denies garbage in the annotation', () => {
    const pod = edit(old, (p) => { p.metadata.annotations = { [UPDATE_ANNOTATION]: 'nope' }; });
    expect(judge(old, pod)).toMatchObject({ type: 'deny' });
  });

  it('lets the watcher change both through pods and pods/status', () => {
    const updating = withState(old, { ...pending, phase: 'Updating' });
    expect(judge(old, updating, { userInfo: WATCHER })).toMatchObject({ type: 'allow' });
    expect(judge(old, updating, { userInfo: WATCHER, subResource: 'status' })).toMatchObject({ type: 'allow' });
  });

  it('denies the annotation through pods/status to anyone else', () => {
    const decision = judge(old, withState(old, pending), { subResource: 'status' });
    expect(decision).toMatchObject({ type: 'deny', reason: 'lifecycle-annotation-denied' });
  });
});

describe('subresources', () => {
  const old = buildPod();
  it('denies pods/resize on managed pods by default, allows it when configured', () => {
    const decision = judge(old, old, { subResource: 'resize' });
    expect(decision).toMatchObject({ type: 'deny', reason: 'resize-denied' });
    expect(decision.type === 'deny' && decision.message).toContain('--allow-resize');
    expect(judge(old, old, { subResource: 'resize' }, { ...config, allowResize: true })).toMatchObject({ type: 'allow' });
    expect(judge(buildPod({ managed: false }), buildPod({ managed: false }), { subResource: 'resize' })).toMatchObject({ type: 'allow' });
  });

  it('allows pods/ephemeralcontainers by default, denies it when configured', () => {
    expect(judge(old, old, { subResource: 'ephemeralcontainers' })).toMatchObject({ type: 'allow' });
    const decision = judge(old, old, { subResource: 'ephemeralcontainers' }, { ...config, allowEphemeralContainers: false });
    expect(decision).toMatchObject({ type: 'deny', reason: 'ephemeral-denied' });
  });
});

// The apiserver's own pod update validation (ValidatePodUpdate) runs before validating webhooks; what
// it allows without restarting or resizing a container must not be denied here. Shapes from the
// AdmissionReview the apiserver sent for a managed pod (test/fixtures/update-pod-env.json).
describe('UPDATE pods, validating: what Kubernetes itself allows on a pod update', () => {
  const captured = JSON.parse(readFileSync(new URL('../fixtures/update-pod-env.json', import.meta.url), 'utf8')) as { request: AdmissionRequest<Pod> };
  const scheduled = captured.request.oldObject as Pod;
  /** The same pod as Kueue creates it: gated, not yet placed. */
  const gated = edit(scheduled, (p) => {
    delete p.spec.nodeName;
    p.spec.schedulingGates = [{ name: 'kueue.x-k8s.io/admission' }];
    if (p.status) p.status = { phase: 'Pending', qosClass: 'BestEffort', conditions: [{ type: 'PodScheduled', status: 'False', reason: 'SchedulingGated', message: 'Scheduling is blocked due to non-empty scheduling gates' }] };
  });
  const fromCapture = (old: Pod, pod: Pod) =>
    expectDecision(validate({ ...captured.request, uid: '3f1d2c4e-0000-4000-8000-00000000000a', oldObject: old, object: pod }, config));
  const flavor = { 'cloud.provider.com/node-pool': 'spot-a', 'kubernetes.io/arch': 'amd64' };
  const spotToleration = { key: 'spot', operator: 'Equal', value: 'true', effect: 'NoSchedule' };
  const nodeAffinity = {
    requiredDuringSchedulingIgnoredDuringExecution: {
      nodeSelectorTerms: [{ matchExpressions: [{ key: 'topology.kubernetes.io/zone', operator: 'In', values: ['eu-west-1a'] }] }],
    },
  };

  it('Kueue admitting a gated pod: the gate removed with a node selector, tolerations and node affinity added in the same update', () => {
    const admitted = edit(gated, (p) => {
      p.spec.schedulingGates = [];
      p.spec.nodeSelector = flavor;
      p.spec.tolerations = [...(p.spec.tolerations as unknown[]), spotToleration];
      p.spec.affinity = { nodeAffinity };
    });
    expect(fromCapture(gated, admitted)).toMatchObject({ type: 'allow' });
  });

  it('a gated pod keeps its gate while the node selector and affinity narrow (another gate still holds it)', () => {
    const twoGates = edit(gated, (p) => { p.spec.schedulingGates = [{ name: 'kueue.x-k8s.io/admission' }, { name: 'example.com/quota' }]; p.spec.affinity = { podAntiAffinity: {} }; });
    const narrowed = edit(twoGates, (p) => {
      p.spec.schedulingGates = [{ name: 'example.com/quota' }];
      p.spec.nodeSelector = flavor;
      p.spec.affinity = { podAntiAffinity: {}, nodeAffinity };
    });
    expect(fromCapture(twoGates, narrowed)).toMatchObject({ type: 'allow' });
  });

  it('pod affinity stays fixed even on a gated pod (the apiserver does not let it change either)', () => {
    const decision = fromCapture(gated, edit(gated, (p) => { p.spec.affinity = { nodeAffinity, podAffinity: { requiredDuringSchedulingIgnoredDuringExecution: [] } }; }));
    expect(decision).toMatchObject({ type: 'deny', reason: 'spec-change-denied' });
    if (decision.type === 'deny') expect(decision.message).toContain('spec.affinity');
  });

  it.each<[string, (p: Pod) => void]>([
    ['a toleration added', (p) => { p.spec.tolerations = [...(p.spec.tolerations as unknown[]), spotToleration]; }],
    ['the tolerationSeconds of an existing toleration changed', (p) => { (p.spec.tolerations as { tolerationSeconds?: number }[])[0]!.tolerationSeconds = 60; }],
    ['activeDeadlineSeconds set', (p) => { p.spec.activeDeadlineSeconds = 3600; }],
  ])('on a running pod: %s', (_what, change) => {
    expect(fromCapture(scheduled, edit(scheduled, change))).toMatchObject({ type: 'allow' });
  });

  it('activeDeadlineSeconds shortened together with an image change', () => {
    const withDeadline = edit(scheduled, (p) => { p.spec.activeDeadlineSeconds = 3600; });
    const pod = edit(withSpecImages(withDeadline, { app: 'registry.k8s.io/pause:3.10.1' }), (p) => { p.spec.activeDeadlineSeconds = 600; });
    expect(fromCapture(withDeadline, pod)).toMatchObject({ type: 'allow' });
  });

  it.each<[string, (p: Pod) => void, string]>([
    ['a node selector', (p) => { p.spec.nodeSelector = flavor; }, 'spec.nodeSelector'],
    ['node affinity', (p) => { p.spec.affinity = { nodeAffinity }; }, 'spec.affinity'],
  ])('on a scheduled pod, %s still may not change', (_what, change, path) => {
    const decision = fromCapture(scheduled, edit(scheduled, change));
    expect(decision).toMatchObject({ type: 'deny', reason: 'spec-change-denied' });
    if (decision.type === 'deny') expect(decision.message).toContain(path);
  });
});
