import { describe, expect, it } from 'vitest';
import { mutate, validate } from '../../src/core/admission/index.ts';
import { nextStep } from '../../src/core/lifecycle.ts';
import { defaultAdmissionConfig, type AdmissionConfig } from '../../src/core/config.ts';
import { specImages } from '../../src/core/containers.ts';
import type { Pod } from '../../src/core/kube-types.ts';
import { UPDATE_ANNOTATION } from '../../src/core/names.ts';
import type { UpdateState } from '../../src/core/state.ts';
import { applied, expectDecision, stateOf } from '../support/apply.ts';
import { USER, buildPod, updateRequest, withSpecImages, type PodShape } from '../support/pods.ts';

const now = new Date('2026-11-28T12:00:00Z');
const config = defaultAdmissionConfig;
const WEB = 'registry.example.com:5000/shop/web';
const DIGEST = `sha256:${'9c'.repeat(32)}`;

const twoContainers: PodShape = {
  containers: [
    { name: 'app', image: `${WEB}:1.4.2` },
    { name: 'istio-proxy', image: 'docker.io/istio/proxyv2:1.24.0' },
  ],
  initContainers: [
    { name: 'migrate', image: `${WEB}-migrate:1.4.2` },
    { name: 'log-shipper', image: 'fluent/fluent-bit:3.2', restartPolicy: 'Always' },
  ],
};

/** Sends `images` as a client would, returns the decision and the pod as stored afterwards. */
function request(old: ReturnType<typeof buildPod>, images: Record<string, string>, cfg: AdmissionConfig = config, extra = {}) {
  const pod = withSpecImages(old, images);
  const decision = expectDecision(mutate(updateRequest(old, pod, extra), cfg, now));
  return { decision, stored: applied(pod, decision) };
}

describe('UPDATE pods, mutating: image changes are deferred', () => {
  it.each([
    ['a trailing space', { app: `${WEB}:1.5.0 ` }, 'must not have leading or trailing whitespace'],
    ['a leading tab', { app: `\t${WEB}:1.5.0` }, 'must not have leading or trailing whitespace'],
    ['only spaces', { app: '   ' }, 'is required'],
    ['one of two containers', { app: `${WEB}:1.5.0`, 'istio-proxy': 'docker.io/istio/proxyv2:1.25.1 ' }, 'container istio-proxy'],
  ])('an image the apiserver would refuse after the drain (%s) is refused now with 422, nothing recorded', (_what, images, words) => {
    const old = buildPod(twoContainers);
    const decision = expectDecision(mutate(updateRequest(old, withSpecImages(old, images), {}), config, now));
    expect(decision).toMatchObject({ type: 'deny', reason: 'invalid-image', code: 422 });
    expect(decision.type === 'deny' ? decision.message : '').toContain(words);
  });

  it.each([
    ['the only container', {}, { app: `${WEB}:1.5.0` }],
    ['only the injected proxy sidecar', twoContainers, { 'istio-proxy': 'docker.io/istio/proxyv2:1.25.1' }],
    ['a native sidecar', twoContainers, { 'log-shipper': 'fluent/fluent-bit:3.3' }],
    ['an image pinned by digest', twoContainers, { app: `${WEB}@${DIGEST}` }],
    ['an image on a registry with a port', {}, { app: 'localhost:5000/web:2' }],
    ['several containers at once', twoContainers, { app: `${WEB}:1.5.0`, 'istio-proxy': 'docker.io/istio/proxyv2:1.25.1' }],
  ])('%s: spec keeps the running images, Pending records the request', (_what, shape: PodShape, images) => {
    const old = buildPod(shape);
    const { decision, stored } = request(old, images);
    expect(decision).toMatchObject({ type: 'patch', reason: 'deferred' });
    expect(specImages(stored.spec)).toEqual(specImages(old.spec));
    expect(stateOf(stored)).toEqual({
      phase: 'Pending',
      images,
      requestedBy: USER.username,
      fieldManager: 'kubectl-set',
      requestedAt: now.toISOString(),
    });
    expect(decision.warnings.join()).toContain('deferred');
  });

  it("keeps a server-side apply's field manager for the watcher's write", () => {
    const old = buildPod();
    const { stored } = request(old, { app: `${WEB}:1.5.0` }, config, {
      userInfo: { username: 'system:serviceaccount:argocd:argocd-application-controller', groups: ['system:serviceaccounts'] },
      options: { kind: 'PatchOptions', apiVersion: 'meta.k8s.io/v1', fieldManager: 'argocd-controller', force: true },
    });
    expect(stateOf(stored)).toMatchObject({ fieldManager: 'argocd-controller', requestedBy: 'system:serviceaccount:argocd:argocd-application-controller' });
  });

  it('records no field manager when the request names none', () => {
    const old = buildPod();
    const { stored } = request(old, { app: `${WEB}:1.5.0` }, config, { options: { kind: 'UpdateOptions', apiVersion: 'meta.k8s.io/v1' } });
    expect(stateOf(stored)).not.toHaveProperty('fieldManager');
  });

  it('answers a dry run as the real request', () => {
    const old = buildPod();
    const real = request(old, { app: `${WEB}:1.5.0` });
    const dry = request(old, { app: `${WEB}:1.5.0` }, config, { dryRun: true, options: { dryRun: ['All'], fieldManager: 'kubectl-set' } });
    expect(dry.stored).toEqual(real.stored);
  });
});

describe('UPDATE pods, mutating: ordinary init containers need no drain', () => {
  const pending: UpdateState = { phase: 'Pending', images: { app: `${WEB}:1.5.0` }, requestedBy: 'bob', requestedAt: '2026-11-28T11:59:58Z' };
  it.each([
    ['no state', undefined],
    ['Pending', pending],
    ['Draining', { ...pending, phase: 'Draining' as const, drainDeadline: '2026-11-28T12:00:08Z' }],
  ])('an image change of an ordinary init container alone goes through as sent (%s)', (_what, state) => {
    const old = buildPod({ ...twoContainers, ...(state ? { state } : {}) });
    const { decision, stored } = request(old, { migrate: `${WEB}-migrate:1.5.0` });
    expect(decision).toMatchObject({ type: 'allow', reason: 'init-containers-only' });
    expect(specImages(stored.spec).migrate).toBe(`${WEB}-migrate:1.5.0`);
    expect(stateOf(stored)).toEqual(state);
  });

  it('with a container change, only the container is deferred; the init container image goes through', () => {
    const old = buildPod(twoContainers);
    const { decision, stored } = request(old, { app: `${WEB}:1.5.0`, migrate: `${WEB}-migrate:1.5.0` });
    expect(decision.reason).toBe('deferred');
    expect(specImages(stored.spec)).toEqual({ ...specImages(old.spec), migrate: `${WEB}-migrate:1.5.0` });
    expect(stateOf(stored)?.images).toEqual({ app: `${WEB}:1.5.0` });
  });
});

describe('UPDATE pods, mutating: latest request wins', () => {
  const pending: UpdateState = { phase: 'Pending', images: { app: `${WEB}:1.5.0` }, requestedBy: 'bob', requestedAt: '2026-11-28T11:59:58Z' };
  const draining: UpdateState = { ...pending, phase: 'Draining', drainDeadline: '2026-11-28T12:00:08Z' };

  it('a new request while Pending replaces the requested images', () => {
    const { decision, stored } = request(buildPod({ state: pending }), { app: `${WEB}:1.6.0` });
    expect(decision.reason).toBe('deferred-replaced');
    expect(stateOf(stored)).toMatchObject({ phase: 'Pending', images: { app: `${WEB}:1.6.0` }, requestedBy: USER.username });
  });

  it('a new request while Draining replaces the images and keeps the drain under way', () => {
    const { stored } = request(buildPod({ state: draining }), { app: `${WEB}:1.6.0` });
    expect(stateOf(stored)).toMatchObject({ phase: 'Draining', images: { app: `${WEB}:1.6.0` }, drainDeadline: draining.drainDeadline });
  });

  it.each([
    ['Pending', pending],
    ['Draining', draining],
  ])('requests merge per container while %s: an earlier request for another container is kept', (_what, state) => {
    const old = buildPod({ ...twoContainers, state });
    const { stored } = request(old, { 'istio-proxy': 'docker.io/istio/proxyv2:1.25.1' });
    expect(stateOf(stored)?.images).toEqual({ app: `${WEB}:1.5.0`, 'istio-proxy': 'docker.io/istio/proxyv2:1.25.1' });
    expect(specImages(stored.spec)).toEqual(specImages(old.spec));
  });

  it('the latest request wins per container', () => {
    const old = buildPod({ ...twoContainers, state: { ...pending, images: { app: `${WEB}:1.5.0`, 'istio-proxy': 'docker.io/istio/proxyv2:1.25.1' } } });
    const { stored } = request(old, { app: `${WEB}:1.6.0` });
    expect(stateOf(stored)?.images).toEqual({ app: `${WEB}:1.6.0`, 'istio-proxy': 'docker.io/istio/proxyv2:1.25.1' });
  });

  /** The pod as a server-side apply by `manager` of fields `owned` leaves it, images unchanged. */
  const applyOf = (old: Pod, manager: string, owned: Record<string, unknown>, labels: Record<string, string> = {}): Pod => ({
    ...old,
    metadata: {
      ...old.metadata,
      labels: { ...old.metadata.labels, ...labels },
      managedFields: [...(old.metadata.managedFields ?? []), { manager, operation: 'Apply', apiVersion: 'v1', time: now.toISOString(), fieldsType: 'FieldsV1', fieldsV1: owned }],
    },
  });
  const ownsImages = (...names: string[]) => ({
    'f:spec': { 'f:containers': Object.fromEntries(names.map((n) => [`k:{"name":"${n}"}`, { '.': {}, 'f:image': {}, 'f:name': {} }])) },
  });
  const ssa = (manager: string) => ({ options: { kind: 'PatchOptions', apiVersion: 'meta.k8s.io/v1', fieldManager: manager, force: true } });

  it.each([
    ['Pending', pending],
    ['Draining', draining],
  ])('a server-side apply naming the running images while %s cancels the request (a rollback, no drain)', (_what, state) => {
    const old = buildPod({ state });
    const pod = applyOf(old, 'argocd-controller', ownsImages('app'));
    const decision = expectDecision(mutate(updateRequest(old, pod, ssa('argocd-controller')), config, now));
    expect(decision).toMatchObject({ type: 'patch', reason: 'cancelled' });
    const stored = applied(pod, decision);
    expect(stored.metadata.annotations?.[UPDATE_ANNOTATION]).toBeUndefined();
    expect(specImages(stored.spec)).toEqual(specImages(old.spec));
  });

  it('a client-side kubectl apply whose last-applied now names the running image cancels', () => {
    const lastApplied = (image: string) => JSON.stringify({ apiVersion: 'v1', kind: 'Pod', spec: { containers: [{ name: 'app', image }] } });
    const old = buildPod({ state: pending, annotations: { 'kubectl.kubernetes.io/last-applied-configuration': lastApplied(`${WEB}:1.5.0`) } });
    const pod = { ...old, metadata: { ...old.metadata, annotations: { ...old.metadata.annotations, 'kubectl.kubernetes.io/last-applied-configuration': lastApplied(`${WEB}:1.4.2`) } } };
    const decision = expectDecision(mutate(updateRequest(old, pod, { options: { fieldManager: 'kubectl-client-side-apply' } }), config, now));
    expect(decision).toMatchObject({ type: 'patch', reason: 'cancelled' });
  });

  it('re-asserting one of two pending containers cancels that one only', () => {
    const both: UpdateState = { ...pending, images: { app: `${WEB}:1.5.0`, 'istio-proxy': 'docker.io/istio/proxyv2:1.25.1' } };
    const old = buildPod({ ...twoContainers, state: both });
    const pod = applyOf(old, 'argocd-controller', ownsImages('istio-proxy'));
    const decision = expectDecision(mutate(updateRequest(old, pod, ssa('argocd-controller')), config, now));
    expect(decision).toMatchObject({ type: 'patch', reason: 'cancelled-in-part' });
    expect(stateOf(applied(pod, decision))?.images).toEqual({ app: `${WEB}:1.5.0` });
  });

  it.each([
    ['the pod written back as stored (a PUT)', (old: Pod) => old, {}],
    ['a server-side apply of unchanged labels', (old: Pod) => applyOf(old, 'labeller', { 'f:metadata': { 'f:labels': { 'f:app': {} } } }), ssa('labeller')],
    ['a server-side apply that adds a label', (old: Pod) => applyOf(old, 'labeller', { 'f:metadata': { 'f:labels': { 'f:team': {} } } }, { team: 'shop' }), ssa('labeller')],
    ['a controller adding a label', (old: Pod) => ({ ...old, metadata: { ...old.metadata, labels: { ...old.metadata.labels, team: 'shop' } } }), {}],
    ["another manager's apply that owns the image", (old: Pod) => applyOf(old, 'argocd-controller', ownsImages('app')), ssa('labeller')],
  ])('%s while Pending or Draining leaves the request alone', (_what, write, extra) => {
    for (const state of [pending, draining]) {
      const old = buildPod({ state });
      const decision = expectDecision(mutate(updateRequest(old, write(old), extra), config, now));
      expect(decision).toMatchObject({ type: 'allow', reason: 'no-image-change' });
    }
  });

  it('a request while Updating starts a new Pending that needs no new drain and carries unproven baselines', () => {
    const updating: UpdateState = {
      phase: 'Updating',
      images: { app: `${WEB}:1.5.0`, 'istio-proxy': 'docker.io/istio/proxyv2:1.25.1' },
      requestedBy: 'bob',
      requestedAt: '2026-11-28T11:59:00Z',
      generation: 2,
      updatedAt: '2026-11-28T11:59:10Z',
      before: {
        app: { image: `${WEB}:1.4.2`, containerID: 'containerd://1', imageID: 'x', restartCount: 0 },
        'istio-proxy': { image: 'docker.io/istio/proxyv2:1.24.0', containerID: 'containerd://2', imageID: 'y', restartCount: 0 },
      },
    };
    const old = withSpecImages(buildPod({ ...twoContainers, state: updating, generation: 2 }), updating.images);
    const { stored } = request(old, { app: `${WEB}:1.4.2` });
    expect(specImages(stored.spec)).toEqual(specImages(old.spec));
    expect(stateOf(stored)).toMatchObject({
      phase: 'Pending',
      images: { app: `${WEB}:1.4.2` },
      drained: true,
      before: { 'istio-proxy': updating.before?.['istio-proxy'] },
    });
  });

  it('a cancel of a request made while Updating never sets the condition True before the restart is proven', () => {
    // app=1.5.0 was written (Updating, kubelet not restarted yet), then app=1.6.0 asked (Pending, drained), then cancelled.
    const record = { image: `${WEB}:1.4.2`, containerID: 'containerd://old', imageID: 'x', restartCount: 0 };
    const pendingDrained: UpdateState = { phase: 'Pending', images: { 'istio-proxy': 'docker.io/istio/proxyv2:1.25.1' }, requestedBy: 'bob', requestedAt: '2026-11-28T11:59:30Z', drained: true, before: { app: record } };
    const base = withSpecImages(buildPod({ ...twoContainers, state: pendingDrained, generation: 2 }), { app: `${WEB}:1.5.0` });
    const old: Pod = structuredClone(base);
    old.status!.observedGeneration = 1; // the kubelet has not acted on the written image
    old.status!.containerStatuses![0]!.containerID = 'containerd://old';
    for (const c of old.status!.conditions!) if (c.type === 'InPlaceUpdateReady') c.status = 'False';
    const pod = applyOf(old, 'argocd-controller', ownsImages('istio-proxy'));
    const decision = expectDecision(mutate(updateRequest(old, pod, ssa('argocd-controller')), config, now));
    expect(decision.type).toBe('patch');
    const stored = applied(pod, decision);
    expect(validate(updateRequest(old, stored, ssa('argocd-controller')), config)).toMatchObject({ type: 'allow' });
    const step = nextStep(stored, { now }, { defaultGraceSeconds: 10, progressDeadlineSeconds: 300 });
    expect(step.kind === 'setCondition' || step.kind === 'transition' ? step.condition?.status : undefined).not.toBe('True');
    expect(stateOf(stored)).toMatchObject({ phase: 'Updating', images: { app: `${WEB}:1.5.0` }, before: { app: record }, generation: 2 });
  });

  it('a request while Stalled (a rollback) starts over without a new drain', () => {
    const stalled: UpdateState = {
      phase: 'Stalled',
      images: { app: `${WEB}:9.9.9` },
      requestedBy: 'bob',
      requestedAt: '2026-11-28T11:50:00Z',
      stalled: { reason: 'ImagePullBackOff', message: 'not found', since: '2026-11-28T11:51:00Z' },
    };
    const old = withSpecImages(buildPod({ state: stalled }), stalled.images);
    const { stored } = request(old, { app: `${WEB}:1.4.2` });
    expect(stateOf(stored)).toMatchObject({ phase: 'Pending', images: { app: `${WEB}:1.4.2` }, drained: true });
    expect(stateOf(stored)).not.toHaveProperty('stalled');
  });

  describe('Stalled before any drain (PrePullFailed): the pod still serves its running images', () => {
    const pullFailed: UpdateState = {
      phase: 'Stalled',
      images: { app: `${WEB}:9.9.9` },
      requestedBy: 'bob',
      requestedAt: '2026-11-28T11:50:00Z',
      stalled: { reason: 'PrePullFailed', message: 'not found', since: '2026-11-28T11:51:00Z' },
    };
    const old = buildPod({ state: pullFailed }); // the spec still has 1.4.2

    it('a new request is a Pending that drains (it never was drained)', () => {
      const { stored } = request(old, { app: `${WEB}:1.5.0` });
      expect(stateOf(stored)).toMatchObject({ phase: 'Pending', images: { app: `${WEB}:1.5.0` } });
      expect(stateOf(stored)).not.toHaveProperty('drained');
      expect(specImages(stored.spec)).toEqual({ app: `${WEB}:1.4.2` });
      expect(validate(updateRequest(old, stored), config)).toMatchObject({ type: 'allow' });
    });

    it('a server-side apply naming the running image cancels it', () => {
      const pod = applyOf(old, 'argocd-controller', ownsImages('app'));
      const decision = expectDecision(mutate(updateRequest(old, pod, ssa('argocd-controller')), config, now));
      expect(decision).toMatchObject({ type: 'patch', reason: 'cancelled' });
      const stored = applied(pod, decision);
      expect(stored.metadata.annotations?.[UPDATE_ANNOTATION]).toBeUndefined();
      // ... and the validating webhook lets the mutating webhook's cancellation through.
      expect(validate(updateRequest(old, stored, ssa('argocd-controller')), config)).toMatchObject({ type: 'allow' });
    });
  });

  it('replaces an unreadable state annotation and says so', () => {
    const old = buildPod({ annotations: { [UPDATE_ANNOTATION]: '{broken' } });
    const { decision, stored } = request(old, { app: `${WEB}:1.5.0` });
    expect(stateOf(stored)?.phase).toBe('Pending');
    expect(decision.warnings.join()).toContain('unreadable');
  });
});

describe('UPDATE pods, mutating: immediate', () => {
  it('a pod without the gate gets its images at once, Updating recorded with the baseline, and a warning', () => {
    const old = buildPod({ readinessGates: [], generation: 3 });
    const { decision, stored } = request(old, { app: `${WEB}:1.5.0` });
    expect(decision.reason).toBe('immediate');
    expect(specImages(stored.spec)).toEqual({ app: `${WEB}:1.5.0` });
    const state = stateOf(stored);
    expect(state).toMatchObject({ phase: 'Updating', immediate: true, generation: 4, images: { app: `${WEB}:1.5.0` } });
    expect(state?.before?.app).toEqual({
      image: `${WEB}:1.4.2`,
      containerID: old.status?.containerStatuses?.[0]?.containerID,
      imageID: old.status?.containerStatuses?.[0]?.imageID,
      restartCount: 0,
    });
    expect(decision.warnings.join()).toMatch(/not drained/);
  });

  it('immediate mode lets images through for gated pods too', () => {
    const { stored } = request(buildPod(), { app: `${WEB}:1.5.0` }, { ...config, mode: 'immediate' });
    expect(specImages(stored.spec)).toEqual({ app: `${WEB}:1.5.0` });
    expect(stateOf(stored)?.phase).toBe('Updating');
  });
});

describe('UPDATE pods, immediate mode with a request still pending', () => {
  it('records only the images it puts into the spec, and the validating webhook accepts its own write', () => {
    const pending: UpdateState = { phase: 'Pending', images: { app: `${WEB}:1.5.0` }, requestedBy: 'bob', requestedAt: '2026-11-28T11:59:58Z' };
    const old = buildPod({ ...twoContainers, state: pending });
    const cfg = { ...config, mode: 'immediate' as const };
    const { stored } = request(old, { 'istio-proxy': 'docker.io/istio/proxyv2:1.25.1' }, cfg);
    expect(stateOf(stored)?.images).toEqual({ 'istio-proxy': 'docker.io/istio/proxyv2:1.25.1' });
    expect(validate(updateRequest(old, stored), cfg)).toMatchObject({ type: 'allow' });
  });
});

describe('UPDATE pods, mutating: requests it leaves alone', () => {
  it.each([
    ['the watcher, by username', { userInfo: { username: 'system:serviceaccount:inplace-gate:inplace-gate-watcher', groups: [] } }, config, 'watcher'],
    ['the watcher, by a configured group', { userInfo: { username: 'w', groups: ['inplace-gate:watchers'] } }, { ...config, watcher: { users: [], groups: ['inplace-gate:watchers'] } }, 'watcher'],
    ['an exempt user', { userInfo: { username: 'breakglass', groups: [] } }, { ...config, exempt: { users: ['breakglass'], groups: [] } }, 'exempt'],
  ])('%s', (_what, extra, cfg, reason) => {
    const old = buildPod();
    const { decision, stored } = request(old, { app: `${WEB}:1.5.0` }, cfg, extra);
    expect(decision).toMatchObject({ type: 'allow', reason });
    expect(specImages(stored.spec)).toEqual({ app: `${WEB}:1.5.0` });
  });

  it('does not take a user for the watcher because of anything in the object', () => {
    const old = buildPod({ annotations: { 'inplace-gate.dev/writer': 'watcher' }, labels: { 'app.kubernetes.io/managed-by': 'inplace-gate-watcher' } });
    const { decision } = request(old, { app: `${WEB}:1.5.0` });
    expect(decision.reason).toBe('deferred');
  });

  it('a pod without the managed label', () => {
    const { decision } = request(buildPod({ managed: false }), { app: `${WEB}:1.5.0` });
    expect(decision).toMatchObject({ type: 'allow', reason: 'not-managed' });
  });

  it('a pod in a system namespace even if labelled', () => {
    const { decision } = request(buildPod({ namespace: 'kube-system' }), { app: `${WEB}:1.5.0` });
    expect(decision).toMatchObject({ type: 'allow', reason: 'not-managed' });
  });

  it('a subresource request', () => {
    const old = buildPod();
    const decision = expectDecision(mutate(updateRequest(old, old, { subResource: 'status' }), config, now));
    expect(decision.type).toBe('allow');
  });

  it('refuses an UPDATE review with no oldObject', () => {
    const old = buildPod();
    expect(mutate(updateRequest(old, old, { oldObject: null }), config, now)).toMatchObject({ type: 'invalid' });
  });
});
