import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { specImages, type ImageMap } from '../../src/core/containers.ts';
import { parseImageReference } from '../../src/core/images.ts';
import type { ContainerStatus, Pod } from '../../src/core/kube-types.ts';
import { PULL_SLOT_RETRY_MS, nextStep, pullsBeforeDrain, rolloutStart, wantedPullPod, type LifecycleConfig, type PodContext, type Step } from '../../src/core/lifecycle.ts';
import { PULL_FOR_LABEL, pullPodName, type PullPod } from '../../src/core/pre-pull.ts';
import { GRACE_PERIOD_ANNOTATION, READINESS_GATE, SERVING_CONTAINERS_ANNOTATION, UPDATE_ANNOTATION } from '../../src/core/names.ts';
import { servingContainers } from '../../src/core/serving.ts';
import type { ContainerRecord, UpdateState } from '../../src/core/state.ts';
import { stateOf } from '../support/apply.ts';
import { buildPod, withSpecImages, type PodShape } from '../support/pods.ts';

const now = new Date('2026-11-28T12:00:00Z');
const ctx: PodContext = { now };
const config: LifecycleConfig = { defaultGraceSeconds: 15, progressDeadlineSeconds: 300 };
const at = (secondsFromNow: number) => new Date(now.getTime() + secondsFromNow * 1000).toISOString();

const WEB = 'registry.example.com:5000/shop/web';
const APP_OLD = `${WEB}:1.4.2`;
const APP_NEW = `${WEB}:1.5.0`;
const PROXY_OLD = 'docker.io/istio/proxyv2:1.24.0';
const PROXY_NEW = 'docker.io/istio/proxyv2:1.25.1';
const SHIPPER_OLD = 'fluent/fluent-bit:3.2';
const SHIPPER_NEW = 'fluent/fluent-bit:3.3';
const MIGRATE_OLD = `${WEB}-migrate:1.4.2`;
const MIGRATE_NEW = `${WEB}-migrate:1.5.0`;

const hex = (seed: string) => createHash('sha256').update(seed).digest('hex');
/** What containerd reports as imageID: the repository and the content digest. */
const imageIdOf = (image: string) => {
  const { domain, path } = parseImageReference(image);
  return `${domain}/${path}@sha256:${hex(image)}`;
};
const containerIdOf = (name: string, instance: number) => `containerd://${hex(`${name}/${String(instance)}`)}`;

const sidecars: PodShape = {
  containers: [
    { name: 'app', image: APP_OLD },
    { name: 'istio-proxy', image: PROXY_OLD },
  ],
  initContainers: [
    { name: 'migrate', image: MIGRATE_OLD },
    { name: 'log-shipper', image: SHIPPER_OLD, restartPolicy: 'Always' },
  ],
};

// ---- pods as the apiserver stores them, statuses as a kubelet writes them ----

function statusOf(pod: Pod, name: string): ContainerStatus {
  const s = [...(pod.status?.containerStatuses ?? []), ...(pod.status?.initContainerStatuses ?? [])].find((c) => c.name === name);
  if (s === undefined) throw new Error(`no status for ${name}`);
  return s;
}

function editStatus(pod: Pod, name: string, edit: (s: ContainerStatus) => ContainerStatus): Pod {
  const next = structuredClone(pod);
  const status = next.status;
  if (status === undefined) throw new Error('pod has no status');
  const map = (list: ContainerStatus[] | undefined) => list?.map((s) => (s.name === name ? edit(s) : s));
  status.containerStatuses = map(status.containerStatuses) ?? [];
  const init = map(status.initContainerStatuses);
  if (init) status.initContainerStatuses = init;
  return next;
}

/** A running pod whose statuses carry realistic imageIDs and containerIDs. */
function runningPod(shape: PodShape = {}): Pod {
  let pod = buildPod(shape);
  for (const name of Object.keys(specImages(pod.spec))) {
    pod = editStatus(pod, name, (s) => {
      const ordinaryInit = pod.spec.initContainers?.some((c) => c.name === name && c.restartPolicy !== 'Always') ?? false;
      return {
        ...s,
        imageID: imageIdOf(s.image),
        containerID: containerIdOf(name, 0),
        ...(ordinaryInit
          ? { ready: false, started: false, state: { terminated: { reason: 'Completed', exitCode: 0, startedAt: '2026-11-28T10:00:01Z', finishedAt: '2026-11-28T10:00:02Z' } } }
          : {}),
      };
    });
  }
  return pod;
}

function withCondition(pod: Pod, value: 'True' | 'False' | undefined): Pod {
  const next = structuredClone(pod);
  const status = (next.status ??= { phase: 'Pending' });
  const others = (status.conditions ?? []).filter((c) => c.type !== READINESS_GATE);
  status.conditions =
    value === undefined ? others : [...others, { type: READINESS_GATE, status: value, lastProbeTime: null, lastTransitionTime: '2026-11-28T11:58:01Z' }];
  return next;
}

function withState(pod: Pod, state: UpdateState | undefined): Pod {
  const next = structuredClone(pod);
  const annotations = { ...next.metadata.annotations };
  if (state === undefined) delete annotations[UPDATE_ANNOTATION];
  else annotations[UPDATE_ANNOTATION] = JSON.stringify(state);
  next.metadata.annotations = annotations;
  return next;
}

function withObservedGeneration(pod: Pod, generation: number | undefined): Pod {
  const next = structuredClone(pod);
  if (next.status === undefined) throw new Error('pod has no status');
  if (generation === undefined) delete next.status.observedGeneration;
  else next.status.observedGeneration = generation;
  return next;
}

/**
 * The kubelet killed the container for its new spec and started one from `image`. Where the
 * cluster reports status.observedGeneration, the kubelet now reports the pod's generation.
 */
function kubeletRestarted(pod: Pod, name: string, image: string, opts: { ready?: boolean; imageID?: string; instance?: number } = {}): Pod {
  const synced = pod.status?.observedGeneration === undefined ? pod : withObservedGeneration(pod, pod.metadata.generation);
  return editStatus(synced, name, (s) => ({
    ...s,
    image,
    imageID: opts.imageID ?? imageIdOf(image),
    containerID: containerIdOf(name, opts.instance ?? s.restartCount + 1),
    ready: opts.ready ?? true,
    started: true,
    restartCount: s.restartCount + 1,
    state: { running: { startedAt: '2026-11-28T11:59:41Z' } },
    lastState: { terminated: { reason: 'Completed', exitCode: 0, startedAt: '2026-11-28T10:00:05Z', finishedAt: '2026-11-28T11:59:40Z' } },
  }));
}

/** What a pod's baseline records for a container, read from its spec and status. */
function recordOf(pod: Pod, name: string): ContainerRecord {
  const s = statusOf(pod, name);
  const record: ContainerRecord = { image: specImages(pod.spec)[name] ?? '', imageID: s.imageID, restartCount: s.restartCount };
  if (s.containerID !== undefined) record.containerID = s.containerID;
  return record;
}

const REQUESTED_AT = '2026-11-28T11:58:00Z';
const UPDATED_AT = '2026-11-28T11:58:20Z';

const pendingState = (images: ImageMap, extra: Partial<UpdateState> = {}): UpdateState => ({
  phase: 'Pending',
  images,
  requestedBy: 'system:serviceaccount:argocd:argocd-application-controller',
  fieldManager: 'argocd-controller',
  requestedAt: REQUESTED_AT,
  ...extra,
});

/** A pod the watcher drained and whose images it wrote at UPDATED_AT; the kubelet has not acted yet. */
function updatingPod(
  images: ImageMap,
  opts: { shape?: PodShape; extra?: Partial<UpdateState>; condition?: 'True' | 'False' | undefined; carried?: Record<string, ContainerRecord> } = {},
): { pod: Pod; state: UpdateState } {
  const running = runningPod(opts.shape);
  const before: Record<string, ContainerRecord> = { ...opts.carried };
  for (const name of Object.keys(images)) before[name] = recordOf(running, name);
  const state: UpdateState = {
    ...pendingState(images),
    phase: 'Updating',
    generation: 2,
    updatedAt: UPDATED_AT,
    before,
    ...opts.extra,
  };
  let pod = withSpecImages(running, images);
  pod = { ...pod, metadata: { ...pod.metadata, generation: 2 } };
  pod = withCondition(withState(pod, state), 'condition' in opts ? opts.condition : 'False');
  return { pod, state };
}

const gateOf = (pod: Pod) => pod.status?.conditions?.find((c) => c.type === READINESS_GATE)?.status;

/** Applies a step as the watcher does, so walks through the lifecycle stay level-triggered. */
function applyStep(pod: Pod, step: Step): Pod {
  switch (step.kind) {
    case 'none':
      return pod;
    case 'setCondition':
      return withCondition(pod, step.condition.status);
    case 'transition':
      return withState(step.condition ? withCondition(pod, step.condition.status) : pod, step.state);
    case 'writeImages': {
      const next = withState(withSpecImages(pod, step.images), step.state);
      return { ...next, metadata: { ...next.metadata, generation: (next.metadata.generation ?? 0) + 1 } };
    }
    case 'createPullPod':
      return pod;
  }
}

// ---------------------------------------------------------------------------

describe('no update in flight', () => {
  it('a new pod with the gate and no condition yet gets the condition True', () => {
    const pod = withCondition(runningPod(), undefined);
    expect(nextStep(pod, ctx, config)).toEqual({
      kind: 'setCondition',
      condition: { status: 'True', reason: 'PodAdmitted', message: 'managed by inplace-gate' },
    });
  });

  it('a new pod not yet scheduled (no status at all) gets the condition True', () => {
    const pod = buildPod({ running: false });
    expect(nextStep(pod, ctx, config)).toMatchObject({ kind: 'setCondition', condition: { status: 'True', reason: 'PodAdmitted' } });
  });

  it('a pod whose condition is already True needs nothing', () => {
    expect(nextStep(runningPod(), ctx, config)).toEqual({ kind: 'none', why: 'ready' });
  });

  it('a pod left with the condition False and no state (a drain cancelled by the webhook) gets True back', () => {
    const pod = withCondition(runningPod(), 'False');
    expect(nextStep(pod, ctx, config)).toEqual({
      kind: 'setCondition',
      condition: { status: 'True', reason: 'UpdateCancelled', message: 'no image change pending' },
    });
  });

  it.each<[string, Pod]>([
    ['a pod without the gate', withCondition(runningPod({ readinessGates: [] }), undefined)],
    ['a pod without the gate, with a Pending state', withState(runningPod({ readinessGates: [] }), pendingState({ app: APP_NEW }))],
    ['a pod gated by something else only', withCondition(runningPod({ readinessGates: ['example.com/LoadBalancerReady'] }), undefined)],
  ])('%s is left alone', (_what, pod) => {
    expect(nextStep(pod, ctx, config)).toEqual({ kind: 'none', why: 'no readiness gate' });
  });

  it.each<[string, UpdateState | undefined, 'True' | 'False' | undefined]>([
    ['with no condition yet', undefined, undefined],
    ['while Pending', pendingState({ app: APP_NEW }), 'True'],
    ['while Draining past its deadline', { ...pendingState({ app: APP_NEW }), phase: 'Draining', drainDeadline: at(-5) }, 'False'],
  ])('a pod being deleted is left alone, %s', (_what, state, condition) => {
    const pod = withCondition(withState(runningPod(), state), condition);
    pod.metadata.deletionTimestamp = '2026-11-28T11:59:50Z';
    pod.metadata.deletionGracePeriodSeconds = 30;
    expect(nextStep(pod, ctx, config)).toEqual({ kind: 'none', why: 'pod is being deleted' });
  });

  it.each([
    ['not JSON', '{"phase":"Pending",', 'not JSON'],
    ['an unknown phase', JSON.stringify({ ...pendingState({ app: APP_NEW }), phase: 'Rolling' }), 'phase must be one of Pending, Draining, Updating, Stalled'],
    ['images that are not strings', JSON.stringify({ ...pendingState({ app: APP_NEW }), images: { app: 5 } }), 'images must map container names to images'],
    ['a bad drain deadline', JSON.stringify({ ...pendingState({ app: APP_NEW }), phase: 'Draining', drainDeadline: 'soon' }), 'drainDeadline must be a timestamp'],
  ])('an unreadable state annotation (%s) is left alone and the reason said', (_what, raw, reason) => {
    const pod = withCondition(runningPod({ annotations: { [UPDATE_ANNOTATION]: raw } }), 'False');
    const step = nextStep(pod, ctx, config);
    expect(step.kind).toBe('none');
    expect(step).toEqual({ kind: 'none', why: expect.stringContaining(`unreadable ${UPDATE_ANNOTATION}: ${reason}`) as unknown });
  });
});

describe('Pending: the condition goes False first, for the grace period', () => {
  it.each<[string, Record<string, string>, string | undefined, number]>([
    ['no override: the default', {}, undefined, 15],
    ['the pod annotation', { [GRACE_PERIOD_ANNOTATION]: '45' }, undefined, 45],
    ['the namespace annotation', {}, '60', 60],
    ['the pod annotation over the namespace', { [GRACE_PERIOD_ANNOTATION]: '45' }, '60', 45],
    ['a unit suffix on the pod falls through to the namespace', { [GRACE_PERIOD_ANNOTATION]: '30s' }, '60', 60],
    ['a negative pod value falls through to the default', { [GRACE_PERIOD_ANNOTATION]: '-5' }, undefined, 15],
    ['a fractional pod value falls through to the namespace', { [GRACE_PERIOD_ANNOTATION]: '2.5' }, '60', 60],
    ['empty values fall through to the default', { [GRACE_PERIOD_ANNOTATION]: '' }, '  ', 15],
    ['a word in the namespace falls through to the default', {}, 'long', 15],
    ['a pod value of 0', { [GRACE_PERIOD_ANNOTATION]: '0' }, '60', 0],
    ['a namespace value of 0', {}, '0', 0],
  ])('grace from %s -> %is', (_what, annotations, namespaceGrace, grace) => {
    const pending = pendingState({ app: APP_NEW });
    const pod = runningPod({ annotations, state: pending });
    const step = nextStep(pod, { now, namespaceGrace }, config);
    expect(step).toEqual({
      kind: 'transition',
      condition: { status: 'False', reason: 'Draining', message: expect.stringContaining(`draining for ${String(grace)}s`) as unknown },
      state: { ...pending, phase: 'Draining', drainStartedAt: now.toISOString(), drainDeadline: at(grace) },
      event: { type: 'Normal', reason: 'InPlaceUpdateStarted', action: 'Drain', note: expect.stringContaining(`app=${APP_NEW}`) as unknown },
      requeueAfterMs: grace * 1000,
    });
  });

  it('grace 0 still takes two steps: the condition goes False before the images are written', () => {
    let pod = runningPod({ annotations: { [GRACE_PERIOD_ANNOTATION]: '0' }, state: pendingState({ app: APP_NEW }) });
    const drain = nextStep(pod, ctx, config);
    expect(drain).toMatchObject({ kind: 'transition', condition: { status: 'False' }, state: { phase: 'Draining', drainDeadline: now.toISOString() }, requeueAfterMs: 0 });
    pod = applyStep(pod, drain);
    expect(gateOf(pod)).toBe('False');
    expect(specImages(pod.spec)).toEqual({ app: APP_OLD });
    expect(nextStep(pod, ctx, config)).toMatchObject({ kind: 'writeImages', images: { app: APP_NEW } });
  });

  it('a grace too large for a timestamp falls through instead of throwing', () => {
    // Number('100000000000000') is an integer, and now + 1e17 ms is past the last valid Date.
    const pod = runningPod({ annotations: { [GRACE_PERIOD_ANNOTATION]: '100000000000000' }, state: pendingState({ app: APP_NEW }) });
    const step = nextStep(pod, { now, namespaceGrace: '60' }, config);
    expect(step).toMatchObject({ kind: 'transition', condition: { status: 'False' }, state: { phase: 'Draining' } });
  });

  it('a request made while Updating or Stalled (drained: true), condition False: images written at once, no new drain', () => {
    const running = withCondition(runningPod(), 'False');
    const pending = pendingState({ app: APP_NEW }, { drained: true });
    const step = nextStep(withState(running, pending), ctx, config);
    expect(step).toEqual({
      kind: 'writeImages',
      images: { app: APP_NEW },
      fieldManager: 'argocd-controller',
      state: {
        phase: 'Updating',
        images: { app: APP_NEW },
        requestedBy: pending.requestedBy,
        fieldManager: 'argocd-controller',
        requestedAt: REQUESTED_AT,
        drained: true,
        updatedAt: now.toISOString(),
        generation: 2,
        before: { app: recordOf(running, 'app') },
      },
      event: expect.objectContaining({ type: 'Normal', reason: 'InPlaceUpdateDrained' }) as unknown,
      requeueAfterMs: 0,
    });
  });

  it.each<[string, 'True' | undefined]>([
    ['True (someone reset it)', 'True'],
    ['missing', undefined],
  ])('drained: true but the condition %s: it drains again', (_what, condition) => {
    const pending = pendingState({ app: APP_NEW }, { drained: true });
    const pod = withCondition(withState(runningPod(), pending), condition);
    expect(nextStep(pod, ctx, config)).toMatchObject({
      kind: 'transition',
      condition: { status: 'False', reason: 'Draining' },
      state: { ...pending, phase: 'Draining', drainStartedAt: now.toISOString(), drainDeadline: at(15) },
      requeueAfterMs: 15_000,
    });
  });
});

describe('Draining: the images are written once the grace period has passed', () => {
  const draining = (deadline: string, extra: Partial<UpdateState> = {}): UpdateState => ({
    ...pendingState({ app: APP_NEW }),
    phase: 'Draining',
    drainDeadline: deadline,
    ...extra,
  });

  it.each([
    [7, 7000],
    [0.25, 250],
    [15, 15_000],
  ])('%is before the deadline: nothing, come back in %ims', (left, requeue) => {
    const pod = withCondition(runningPod({ state: draining(at(left)) }), 'False');
    expect(nextStep(pod, ctx, config)).toEqual({ kind: 'none', why: 'draining', requeueAfterMs: requeue });
  });

  it.each([
    ['at the deadline', 0],
    ['after the deadline', -3],
    ['long after (a watcher restarted after an outage)', -3600],
  ])('%s: one write of the images and Updating, with the baseline', (_what, offset) => {
    const running = runningPod();
    const pod = withCondition(withState(running, draining(at(offset))), 'False');
    const step = nextStep(pod, ctx, config);
    expect(step).toEqual({
      kind: 'writeImages',
      images: { app: APP_NEW },
      fieldManager: 'argocd-controller',
      state: {
        phase: 'Updating',
        images: { app: APP_NEW },
        requestedBy: 'system:serviceaccount:argocd:argocd-application-controller',
        fieldManager: 'argocd-controller',
        requestedAt: REQUESTED_AT,
        updatedAt: now.toISOString(),
        generation: 2,
        before: {
          app: {
            image: APP_OLD,
            containerID: containerIdOf('app', 0),
            imageID: imageIdOf(APP_OLD),
            restartCount: 0,
          },
        },
      },
      event: { type: 'Normal', reason: 'InPlaceUpdateDrained', action: 'Update', note: expect.stringContaining(`app=${APP_NEW}`) as unknown },
      requeueAfterMs: 0,
    });
    if (step.kind === 'writeImages') expect(step.state).not.toHaveProperty('drainDeadline');
  });

  it('the recorded generation is the pod generation the image write will make', () => {
    const pod = withCondition(runningPod({ generation: 5, state: draining(at(-1)) }), 'False');
    expect(nextStep(pod, ctx, config)).toMatchObject({ kind: 'writeImages', state: { generation: 6 } });
  });

  it('a pod that reports no generation records none', () => {
    const pod = withCondition(runningPod({ state: draining(at(-1)) }), 'False');
    delete pod.metadata.generation;
    const step = nextStep(pod, ctx, config);
    expect(step.kind).toBe('writeImages');
    if (step.kind === 'writeImages') expect(step.state).not.toHaveProperty('generation');
  });

  it('a request with no field manager is written without one', () => {
    const { fieldManager: _fm, ...anonymous } = draining(at(-1));
    const pod = withCondition(runningPod({ state: anonymous }), 'False');
    const step = nextStep(pod, ctx, config);
    expect(step).toMatchObject({ kind: 'writeImages', fieldManager: undefined });
    if (step.kind === 'writeImages') expect(step.state).not.toHaveProperty('fieldManager');
  });

  it('several containers: a baseline per changed container, read from containerStatuses and initContainerStatuses', () => {
    let running = runningPod(sidecars);
    // The native sidecar has restarted before: its restartCount is part of its baseline.
    running = editStatus(running, 'log-shipper', (s) => ({ ...s, restartCount: 3, containerID: containerIdOf('log-shipper', 3) }));
    const images = { app: APP_NEW, 'log-shipper': SHIPPER_NEW };
    const pod = withCondition(withState(running, draining(at(-1), { images })), 'False');
    expect(nextStep(pod, ctx, config)).toMatchObject({
      kind: 'writeImages',
      images,
      state: {
        phase: 'Updating',
        images,
        before: {
          app: { image: APP_OLD, containerID: containerIdOf('app', 0), imageID: imageIdOf(APP_OLD), restartCount: 0 },
          'log-shipper': { image: SHIPPER_OLD, containerID: containerIdOf('log-shipper', 3), imageID: imageIdOf(SHIPPER_OLD), restartCount: 3 },
        },
      },
    });
    const step = nextStep(pod, ctx, config);
    if (step.kind === 'writeImages') expect(Object.keys(step.state.before ?? {}).sort()).toEqual(['app', 'log-shipper']);
  });

  it('a container that already runs the requested image (a change back before the kubelet acted) gets no baseline', () => {
    // Updating wrote 1.5.0, the kubelet still runs 1.4.2, and a rollback to 1.4.2 arrived.
    let pod = withSpecImages(runningPod(sidecars), { app: APP_NEW });
    pod = { ...pod, metadata: { ...pod.metadata, generation: 2 } };
    const images = { app: APP_OLD, 'istio-proxy': PROXY_NEW };
    pod = withCondition(withState(pod, pendingState(images, { drained: true })), 'False');
    const step = nextStep(pod, ctx, config);
    expect(step).toMatchObject({ kind: 'writeImages', images, state: { phase: 'Updating', generation: 3 } });
    if (step.kind === 'writeImages') {
      expect(step.state.before).toEqual({ 'istio-proxy': recordOf(pod, 'istio-proxy') });
    }
  });

  it('baselines of a container not in this request are carried; one in the request is recorded afresh', () => {
    const carried = { image: PROXY_OLD, containerID: containerIdOf('istio-proxy', 0), imageID: imageIdOf(PROXY_OLD), restartCount: 0 };
    const staleApp = { image: APP_OLD, containerID: 'containerd://stale', imageID: 'stale', restartCount: 9 };
    const running = runningPod(sidecars);
    const pod = withCondition(withState(running, pendingState({ app: APP_NEW }, { drained: true, before: { 'istio-proxy': carried, app: staleApp } })), 'False');
    const step = nextStep(pod, ctx, config);
    expect(step.kind).toBe('writeImages');
    if (step.kind === 'writeImages') expect(step.state.before).toEqual({ 'istio-proxy': carried, app: recordOf(running, 'app') });
  });

  it.each<[string, 'True' | undefined]>([
    ['True', 'True'],
    ['missing', undefined],
  ])('condition %s while Draining: set it False again, write nothing', (_what, condition) => {
    const pod = withCondition(runningPod({ state: draining(at(-60)) }), condition);
    expect(nextStep(pod, ctx, config)).toEqual({
      kind: 'setCondition',
      condition: { status: 'False', reason: 'Draining', message: expect.stringContaining(APP_NEW) as unknown },
    });
  });
});

describe('Draining with no deadline (only a broken writer makes one)', () => {
  it('starts the drain again instead of writing the images at once', () => {
    const { drainDeadline: _none, ...noDeadline } = { ...pendingState({ app: APP_NEW }), phase: 'Draining' as const, drainDeadline: undefined };
    const pod = withCondition(withState(runningPod(), noDeadline), 'False');
    const step = nextStep(pod, ctx, config);
    expect(step).toMatchObject({ kind: 'transition', condition: { status: 'False' }, state: { phase: 'Draining', drainDeadline: at(config.defaultGraceSeconds) } });
  });
});

describe('Updating: done means proven', () => {
  it('another webhook rewrote the written image (a pinned digest): proven against the stored image the kubelet runs, not the string asked for', () => {
    // The new tag points at the content already running (a rebuild that changed nothing): same imageID.
    const digest = imageIdOf(APP_OLD).split('@')[1] ?? '';
    const pinned = `${APP_NEW}@${digest}`;
    const { pod } = updatingPod({ app: APP_NEW });
    const stored = withSpecImages(pod, { app: pinned });
    // A kubelet that publishes no observedGeneration: the proof is the stored digest in the imageID.
    const done = withObservedGeneration(kubeletRestarted(stored, 'app', APP_OLD, { imageID: imageIdOf(APP_OLD) }), undefined);
    expect(nextStep(done, ctx, config)).toMatchObject({ kind: 'transition', state: undefined, outcome: { result: 'succeeded' } });
  });

  it('the kubelet has not restarted the container yet: nothing, until the progress deadline', () => {
    const { pod } = updatingPod({ app: APP_NEW });
    expect(nextStep(withObservedGeneration(pod, 1), ctx, config)).toEqual({
      kind: 'none',
      why: 'container app has not restarted yet',
      requeueAfterMs: 200_000, // UPDATED_AT + 300s - now
    });
  });

  it('a new container, running and ready, observedGeneration caught up: condition True, state cleared, outcome succeeded', () => {
    const { pod } = updatingPod({ app: APP_NEW }, { extra: { drainSeconds: 20 } });
    const done = withObservedGeneration(kubeletRestarted(pod, 'app', APP_NEW), 2);
    expect(nextStep(done, ctx, config)).toEqual({
      kind: 'transition',
      condition: { status: 'True', reason: 'InPlaceUpdateSucceeded', message: `running app=${APP_NEW}` },
      state: undefined,
      event: { type: 'Normal', reason: 'InPlaceUpdateSucceeded', action: 'Update', note: expect.stringContaining(`app=${APP_NEW}`) as unknown },
      outcome: { result: 'succeeded', durationSeconds: 120, drainSeconds: 20 },
    });
  });

  it.each<[string, (pod: Pod) => Pod]>([
    ['observedGeneration behind the written generation', (p) => withObservedGeneration(kubeletRestarted(p, 'app', APP_NEW), 1)],
    ['running but not ready', (p) => withObservedGeneration(kubeletRestarted(p, 'app', APP_NEW, { ready: false }), 2)],
    [
      'being created',
      (p) => withObservedGeneration(editStatus(p, 'app', (s) => ({ ...s, image: APP_NEW, imageID: '', ready: false, started: false, state: { waiting: { reason: 'ContainerCreating' } } })), 2),
    ],
    [
      'no observedGeneration, new container with the same imageID and the old status.image (a crash restart)',
      (p) => withObservedGeneration(kubeletRestarted(p, 'app', APP_OLD), undefined),
    ],
  ])('%s: still waiting', (_what, kubelet) => {
    const { pod } = updatingPod({ app: APP_NEW });
    const step = nextStep(kubelet(pod), ctx, config);
    expect(step).toMatchObject({ kind: 'none', requeueAfterMs: 200_000 });
    expect(gateOf(applyStep(kubelet(pod), step))).toBe('False');
  });

  it.each<[string, (pod: Pod) => Pod, ImageMap?]>([
    ['no observedGeneration: the imageID changed', (p) => withObservedGeneration(kubeletRestarted(p, 'app', APP_NEW), undefined)],
    [
      'no observedGeneration: a digest-pinned image whose digest is the imageID',
      // Same content as before, so the same imageID; containerd names it by its first tag.
      (p) => withObservedGeneration(kubeletRestarted(p, 'app', APP_OLD, { imageID: imageIdOf(APP_OLD) }), undefined),
      { app: `${WEB}@${imageIdOf(APP_OLD).split('@')[1] ?? ''}` },
    ],
    [
      'no observedGeneration: a new tag with the same imageID, status.image the requested tag',
      (p) => withObservedGeneration(kubeletRestarted(p, 'app', APP_NEW, { imageID: imageIdOf(APP_OLD) }), undefined),
    ],
    [
      'restartCount went up with the same containerID',
      (p) => withObservedGeneration(kubeletRestarted(p, 'app', APP_NEW, { instance: 0 }), 2),
    ],
    ['observedGeneration past the written one (a later spec change)', (p) => withObservedGeneration(kubeletRestarted(p, 'app', APP_NEW), 3)],
  ])('%s: done', (_what, kubelet, images = { app: APP_NEW }) => {
    const { pod } = updatingPod(images);
    expect(nextStep(kubelet(pod), ctx, config)).toMatchObject({
      kind: 'transition',
      condition: { status: 'True', reason: 'InPlaceUpdateSucceeded' },
      state: undefined,
      outcome: { result: 'succeeded' },
    });
  });

  it('an update that needed no new drain reports no drain time', () => {
    const { pod } = updatingPod({ app: APP_NEW }, { extra: { drained: true } });
    const step = nextStep(kubeletRestarted(pod, 'app', APP_NEW), ctx, config);
    expect(step).toMatchObject({ kind: 'transition', condition: { status: 'True' }, outcome: { result: 'succeeded', durationSeconds: 120 } });
    if (step.kind === 'transition') expect(step.outcome).not.toHaveProperty('drainSeconds');
  });
});

describe('Updating: several containers, sidecars and init containers', () => {
  it('only the changed containers matter: an unchanged, unready container does not hold it', () => {
    const { pod } = updatingPod({ app: APP_NEW }, { shape: sidecars });
    const proxyDown = editStatus(kubeletRestarted(pod, 'app', APP_NEW), 'istio-proxy', (s) => ({ ...s, ready: false }));
    expect(nextStep(proxyDown, ctx, config)).toMatchObject({ kind: 'transition', condition: { status: 'True' }, state: undefined });
  });

  it('only the changed containers matter: an unchanged container in CrashLoopBackOff does not stall it', () => {
    const { pod } = updatingPod({ 'istio-proxy': PROXY_NEW }, { shape: sidecars });
    const appCrashing = editStatus(pod, 'app', (s) => ({ ...s, ready: false, state: { waiting: { reason: 'CrashLoopBackOff', message: 'back-off 10s' } } }));
    expect(nextStep(appCrashing, ctx, config)).toEqual({ kind: 'none', why: 'container istio-proxy has not restarted yet', requeueAfterMs: 200_000 });
    expect(nextStep(kubeletRestarted(appCrashing, 'istio-proxy', PROXY_NEW), ctx, config)).toMatchObject({
      kind: 'transition',
      condition: { status: 'True' },
      state: undefined,
    });
  });

  it('two changed containers, one proven and one not: waiting on the other one', () => {
    const { pod } = updatingPod({ app: APP_NEW, 'istio-proxy': PROXY_NEW }, { shape: sidecars });
    const half = kubeletRestarted(pod, 'app', APP_NEW);
    expect(nextStep(half, ctx, config)).toEqual({ kind: 'none', why: 'container istio-proxy has not restarted yet', requeueAfterMs: 200_000 });
    expect(nextStep(kubeletRestarted(half, 'istio-proxy', PROXY_NEW), ctx, config)).toMatchObject({ kind: 'transition', condition: { status: 'True' } });
  });

  it('a native sidecar (init container with restartPolicy Always) is proven like a container', () => {
    const { pod } = updatingPod({ 'log-shipper': SHIPPER_NEW }, { shape: sidecars });
    expect(nextStep(pod, ctx, config)).toEqual({ kind: 'none', why: 'container log-shipper has not restarted yet', requeueAfterMs: 200_000 });
    expect(nextStep(kubeletRestarted(pod, 'log-shipper', SHIPPER_NEW, { ready: false }), ctx, config)).toEqual({
      kind: 'none',
      why: 'container log-shipper is not ready yet',
      requeueAfterMs: 200_000,
    });
    expect(nextStep(kubeletRestarted(pod, 'log-shipper', SHIPPER_NEW), ctx, config)).toMatchObject({
      kind: 'transition',
      condition: { status: 'True' },
      state: undefined,
    });
  });

  it('an ordinary init container does not rerun on a running pod: its image change completes at once', () => {
    const { pod } = updatingPod({ migrate: MIGRATE_NEW }, { shape: sidecars });
    expect(statusOf(pod, 'migrate').state?.terminated?.reason).toBe('Completed');
    expect(nextStep(pod, ctx, config)).toMatchObject({
      kind: 'transition',
      condition: { status: 'True', reason: 'InPlaceUpdateSucceeded' },
      state: undefined,
      outcome: { result: 'succeeded' },
    });
  });

  it('an ordinary init container and the app change together: only the app is waited for', () => {
    const { pod } = updatingPod({ migrate: MIGRATE_NEW, app: APP_NEW }, { shape: sidecars });
    expect(nextStep(pod, ctx, config)).toEqual({ kind: 'none', why: 'container app has not restarted yet', requeueAfterMs: 200_000 });
    expect(nextStep(kubeletRestarted(pod, 'app', APP_NEW), ctx, config)).toMatchObject({ kind: 'transition', condition: { status: 'True' } });
  });

  it('a carried baseline (an earlier, unproven request) is still waited for, though not in this request', () => {
    // Updating wrote istio-proxy 1.25.1; before the kubelet proved it, app was bumped too.
    const running = runningPod(sidecars);
    const carried = { 'istio-proxy': recordOf(running, 'istio-proxy') };
    let { pod } = updatingPod({ app: APP_NEW }, { shape: sidecars, carried, extra: { drained: true } });
    pod = withSpecImages(pod, { 'istio-proxy': PROXY_NEW });
    const appDone = kubeletRestarted(pod, 'app', APP_NEW);
    expect(nextStep(appDone, ctx, config)).toEqual({ kind: 'none', why: 'container istio-proxy has not restarted yet', requeueAfterMs: 200_000 });
    // Restarted but from the old image, with no observedGeneration: not proven against the spec's image.
    const proxyOld = withObservedGeneration(kubeletRestarted(appDone, 'istio-proxy', PROXY_OLD), undefined);
    expect(nextStep(proxyOld, ctx, config)).toMatchObject({ kind: 'none', why: `container istio-proxy does not show ${PROXY_NEW} yet` });
    expect(nextStep(kubeletRestarted(appDone, 'istio-proxy', PROXY_NEW), ctx, config)).toMatchObject({
      kind: 'transition',
      condition: { status: 'True' },
      state: undefined,
    });
  });
});

describe('Stalled is loud', () => {
  /**
   * After killing the old container for the new generation, the kubelet cannot start the new one. As the
   * kubelet writes it: the status still describes the old, exited container (image, imageID, containerID,
   * restartCount), with the start failure as the waiting state and the old container's end as lastState.
   */
  const cannotStart = (reason: string, message: string) => (pod: Pod) =>
    editStatus(withObservedGeneration(pod, pod.metadata.generation), 'app', (s) => ({
      ...s,
      ready: false,
      started: false,
      state: { waiting: { reason, message } },
      lastState: { terminated: { reason: 'Error', exitCode: 137, startedAt: '2026-11-28T10:00:05Z', finishedAt: '2026-11-28T11:58:21Z', ...(s.containerID ? { containerID: s.containerID } : {}) } },
    }));
  /** The new container started and keeps crashing. */
  const crashLooping = (pod: Pod) =>
    editStatus(kubeletRestarted(pod, 'app', APP_NEW), 'app', (s) => ({
      ...s,
      ready: false,
      started: false,
      restartCount: s.restartCount + 3,
      state: { waiting: { reason: 'CrashLoopBackOff', message: 'back-off 40s restarting failed container=app pod=web-7d9c6b5f4-x2x8q_shop' } },
      lastState: { terminated: { reason: 'Error', exitCode: 1 } },
    }));

  it.each<[string, (pod: Pod) => Pod]>([
    ['ErrImagePull', cannotStart('ErrImagePull', `failed to pull and unpack image "${APP_NEW}": not found`)],
    ['ImagePullBackOff', cannotStart('ImagePullBackOff', `Back-off pulling image "${APP_NEW}"`)],
    ['CreateContainerConfigError', cannotStart('CreateContainerConfigError', 'secret "web-db" not found')],
    ['CrashLoopBackOff', crashLooping],
  ])('%s on a changed container: Stalled, condition stays False, a Warning event, outcome stalled', (reason, kubelet) => {
    const { pod, state } = updatingPod({ app: APP_NEW });
    const failing = kubelet(pod);
    const message = `container app: ${reason}: ${statusOf(failing, 'app').state?.waiting?.message ?? ''}`;
    expect(nextStep(failing, ctx, config)).toEqual({
      kind: 'transition',
      condition: { status: 'False', reason: 'InPlaceUpdateStalled', message },
      state: { ...state, phase: 'Stalled', stalled: { reason, message, since: now.toISOString() } },
      event: { type: 'Warning', reason: 'InPlaceUpdateStalled', action: 'Update', note: expect.stringContaining(message) as unknown },
      outcome: { result: 'stalled', durationSeconds: 120 },
    });
  });

  it('a failing native sidecar stalls the update too', () => {
    const { pod } = updatingPod({ 'log-shipper': SHIPPER_NEW }, { shape: sidecars });
    const pull = `failed to pull and unpack image "docker.io/${SHIPPER_NEW}": not found`;
    const failing = editStatus(withObservedGeneration(pod, 2), 'log-shipper', (s) => ({ ...s, ready: false, state: { waiting: { reason: 'ErrImagePull', message: pull } } }));
    expect(nextStep(failing, ctx, config)).toMatchObject({
      kind: 'transition',
      condition: { status: 'False', reason: 'InPlaceUpdateStalled' },
      state: { phase: 'Stalled', stalled: { reason: 'ErrImagePull', message: `container log-shipper: ErrImagePull: ${pull}` } },
      event: { type: 'Warning' },
    });
  });

  it.each([
    ['just before the progress deadline', '2026-11-28T11:55:00.001Z', 'none'],
    ['at the progress deadline', '2026-11-28T11:55:00Z', 'transition'],
    ['well past the progress deadline', '2026-11-28T10:00:00Z', 'transition'],
  ])('no progress, images written %s (%s)', (_what, updatedAt, kind) => {
    const { pod, state } = updatingPod({ app: APP_NEW }, { extra: { updatedAt, requestedAt: '2026-11-28T09:59:00Z' } });
    const step = nextStep(pod, ctx, config);
    if (kind === 'none') {
      expect(step).toEqual({ kind: 'none', why: 'container app has not restarted yet', requeueAfterMs: 1000 });
      return;
    }
    const message = 'no progress in 300s: container app has not restarted yet';
    expect(step).toEqual({
      kind: 'transition',
      condition: { status: 'False', reason: 'InPlaceUpdateStalled', message },
      state: { ...state, phase: 'Stalled', stalled: { reason: 'ProgressDeadlineExceeded', message, since: now.toISOString() } },
      event: expect.objectContaining({ type: 'Warning', reason: 'InPlaceUpdateStalled' }) as unknown,
      outcome: { result: 'stalled', durationSeconds: (now.getTime() - Date.parse('2026-11-28T09:59:00Z')) / 1000 },
    });
  });

  const stalledPod = (kubelet: (pod: Pod) => Pod, condition: 'True' | 'False' = 'False') => {
    const { pod, state } = updatingPod({ app: APP_NEW });
    const stalled: UpdateState = {
      ...state,
      phase: 'Stalled',
      stalled: { reason: 'ImagePullBackOff', message: `container app: ImagePullBackOff: Back-off pulling image "${APP_NEW}"`, since: '2026-11-28T11:59:00Z' },
    };
    return withCondition(withState(kubelet(pod), stalled), condition);
  };

  it.each<[string, (pod: Pod) => Pod]>([
    ['still ImagePullBackOff', cannotStart('ImagePullBackOff', `Back-off pulling image "${APP_NEW}"`)],
    ['now CrashLoopBackOff', crashLooping],
    ['still not restarted', (p) => p],
    ['restarted but not ready', (p) => kubeletRestarted(p, 'app', APP_NEW, { ready: false })],
  ])('Stalled and %s: nothing more (loud once)', (_what, kubelet) => {
    const step = nextStep(stalledPod(kubelet), ctx, config);
    expect(step.kind).toBe('none');
    expect(step).toEqual({ kind: 'none', why: expect.stringMatching(/^stalled: container app: ImagePullBackOff/) as unknown });
  });

  it('Stalled, and the container later comes up proven (the registry caught up): done', () => {
    const pod = stalledPod((p) => kubeletRestarted(p, 'app', APP_NEW));
    expect(nextStep(pod, ctx, config)).toMatchObject({
      kind: 'transition',
      condition: { status: 'True', reason: 'InPlaceUpdateSucceeded' },
      state: undefined,
      outcome: { result: 'succeeded', durationSeconds: 120 },
    });
  });

  // DESIGN.md: Stalled keeps InPlaceUpdateReady False ("no traffic to a broken pod"), and every action
  // follows from the pod as it is. Draining resets a condition someone set True; Stalled does not.
  it('Stalled with the condition set True by someone else: set it False again', () => {
    const pod = stalledPod(cannotStart('ImagePullBackOff', `Back-off pulling image "${APP_NEW}"`), 'True');
    expect(nextStep(pod, ctx, config)).toMatchObject({ kind: 'setCondition', condition: { status: 'False' } });
  });
});

describe('Updating with the condition not False', () => {
  it('immediate mode (images went through with the condition True): set it False first', () => {
    const { pod } = updatingPod({ app: APP_NEW }, { extra: { immediate: true, updatedAt: REQUESTED_AT }, condition: 'True' });
    expect(nextStep(pod, ctx, config)).toEqual({
      kind: 'setCondition',
      condition: { status: 'False', reason: 'Updating', message: `updating app=${APP_NEW}` },
    });
  });

  it('immediate mode with a failing container: condition False first, then Stalled', () => {
    const { pod } = updatingPod({ app: APP_NEW }, { extra: { immediate: true, updatedAt: REQUESTED_AT }, condition: 'True' });
    const failing = editStatus(withObservedGeneration(pod, 2), 'app', (s) => ({ ...s, ready: false, state: { waiting: { reason: 'ErrImagePull', message: `failed to pull image "${APP_NEW}": not found` } } }));
    const first = nextStep(failing, ctx, config);
    expect(first).toMatchObject({ kind: 'setCondition', condition: { status: 'False' } });
    expect(nextStep(applyStep(failing, first), ctx, config)).toMatchObject({ kind: 'transition', state: { phase: 'Stalled' }, condition: { status: 'False' } });
  });

  it('immediate mode, proven: done, and no drain time reported', () => {
    const { pod } = updatingPod({ app: APP_NEW }, { extra: { immediate: true, updatedAt: REQUESTED_AT } });
    const step = nextStep(kubeletRestarted(pod, 'app', APP_NEW), ctx, config);
    expect(step).toMatchObject({ kind: 'transition', condition: { status: 'True' }, state: undefined, outcome: { result: 'succeeded', durationSeconds: 120 } });
    if (step.kind === 'transition') expect(step.outcome).not.toHaveProperty('drainSeconds');
  });

  it('a drained update whose condition someone set True: set it False again', () => {
    const { pod } = updatingPod({ app: APP_NEW }, { condition: 'True' });
    expect(nextStep(pod, ctx, config)).toMatchObject({ kind: 'setCondition', condition: { status: 'False', reason: 'Updating' } });
  });
});

describe('one image change, end to end, one step at a time', () => {
  it('new pod -> Pending -> Draining -> Updating -> done, each step from the pod as it is', () => {
    let pod = withCondition(runningPod(sidecars), undefined);
    const steps: string[] = [];
    const step = (c: PodContext = ctx) => {
      const s = nextStep(pod, c, config);
      steps.push(s.kind);
      pod = applyStep(pod, s);
      return s;
    };

    step();
    expect(gateOf(pod)).toBe('True');
    expect(step()).toMatchObject({ kind: 'none' });

    // The webhook defers the request.
    pod = withState(pod, pendingState({ 'istio-proxy': PROXY_NEW }));
    step();
    expect(gateOf(pod)).toBe('False');
    expect(stateOf(pod)).toMatchObject({ phase: 'Draining', drainDeadline: at(15) });
    expect(step({ now: new Date(now.getTime() + 14_000) })).toEqual({ kind: 'none', why: 'draining', requeueAfterMs: 1000 });
    expect(specImages(pod.spec)['istio-proxy']).toBe(PROXY_OLD);

    const later = { now: new Date(now.getTime() + 15_000) };
    step(later);
    expect(specImages(pod.spec)).toMatchObject({ app: APP_OLD, 'istio-proxy': PROXY_NEW });
    expect(stateOf(pod)).toMatchObject({ phase: 'Updating', generation: 2, before: { 'istio-proxy': { image: PROXY_OLD } } });
    expect(step(later)).toMatchObject({ kind: 'none', why: 'container istio-proxy has not restarted yet' });

    // The kubelet restarts the proxy and reports the new generation.
    pod = kubeletRestarted(pod, 'istio-proxy', PROXY_NEW);
    expect(pod.status?.observedGeneration).toBe(2);
    const end = { now: new Date(now.getTime() + 40_000) };
    const done = step(end);
    expect(done).toMatchObject({ kind: 'transition', condition: { status: 'True' }, state: undefined, outcome: { result: 'succeeded', durationSeconds: 160 } });
    expect(done.kind === 'transition' ? done.outcome?.drainSeconds : undefined).toEqual(expect.any(Number));
    expect(gateOf(pod)).toBe('True');
    expect(stateOf(pod)).toBeUndefined();
    expect(step(end)).toEqual({ kind: 'none', why: 'ready' });
    expect(steps).toEqual(['setCondition', 'none', 'transition', 'none', 'writeImages', 'none', 'transition', 'none']);
  });
});

describe('containers that serve no traffic: updated in place without a drain', () => {
  const declared = (serving: string): PodShape => ({ ...sidecars, annotations: { [SERVING_CONTAINERS_ANNOTATION]: serving } });
  const pendingOn = (shape: PodShape, images: ImageMap, extra: Partial<UpdateState> = {}) =>
    withCondition(withState(runningPod(shape), pendingState(images, extra)), 'True');

  it.each<[string, string | undefined, ReturnType<typeof servingContainers>]>([
    ['absent: every container serves', undefined, { declared: false }],
    ['a list, spaces allowed', 'app, istio-proxy', { declared: true, names: new Set(['app', 'istio-proxy']) }],
    ['empty', ' , ', { declared: false, problem: `${SERVING_CONTAINERS_ANNOTATION} names no container` }],
    ['a name that is no container of the pod (a typo must not skip a drain)', 'ap', { declared: false, problem: `${SERVING_CONTAINERS_ANNOTATION} names ap, not a container of this pod` }],
  ])('servingContainers: %s', (_what, value, expected) => {
    const pod = runningPod(value === undefined ? sidecars : declared(value));
    expect(servingContainers(pod)).toEqual(expected);
  });

  it('a native sidecar that serves nothing: images written at once, condition untouched, Updating in service', () => {
    const pod = pendingOn(declared('app,istio-proxy'), { 'log-shipper': SHIPPER_NEW });
    const step = nextStep(pod, ctx, config);
    expect(step).toMatchObject({
      kind: 'writeImages',
      images: { 'log-shipper': SHIPPER_NEW },
      fieldManager: 'argocd-controller',
      state: { phase: 'Updating', inService: true, images: { 'log-shipper': SHIPPER_NEW }, updatedAt: now.toISOString(), before: { 'log-shipper': recordOf(pod, 'log-shipper') } },
      event: { type: 'Normal', reason: 'InPlaceUpdateStarted', note: expect.stringContaining('without a drain') as unknown },
    });
    if (step.kind === 'writeImages') expect(step.state).not.toHaveProperty('drainSeconds');
  });

  it.each<[string, PodShape, ImageMap]>([
    ['a serving container changes', declared('app'), { app: APP_NEW }],
    ['a serving and a non-serving container change together', declared('app'), { app: APP_NEW, 'log-shipper': SHIPPER_NEW }],
    ['no declaration', sidecars, { 'log-shipper': SHIPPER_NEW }],
    ['a declaration naming no container of the pod', declared('ap'), { 'log-shipper': SHIPPER_NEW }],
  ])('drains as ever when %s', (_what, shape, images) => {
    expect(nextStep(pendingOn(shape, images), ctx, config)).toMatchObject({ kind: 'transition', condition: { status: 'False', reason: 'Draining' }, state: { phase: 'Draining' } });
  });

  /** The log shipper's images written in service at UPDATED_AT; the pod keeps its condition True. */
  const inService = () => {
    const { pod, state } = updatingPod({ 'log-shipper': SHIPPER_NEW }, { shape: declared('app,istio-proxy'), extra: { inService: true }, condition: 'True' });
    return { pod, state };
  };

  it('while the kubelet restarts it, the condition stays True: nothing to do but wait', () => {
    expect(nextStep(inService().pod, ctx, config)).toEqual({ kind: 'none', why: 'container log-shipper has not restarted yet', requeueAfterMs: 200_000 });
  });

  it('proven like any other update: done, recorded, no drain time', () => {
    const step = nextStep(kubeletRestarted(inService().pod, 'log-shipper', SHIPPER_NEW), ctx, config);
    expect(step).toMatchObject({ kind: 'transition', condition: { status: 'True' }, state: undefined, event: { reason: 'InPlaceUpdateSucceeded' }, outcome: { result: 'succeeded' } });
    if (step.kind === 'transition') expect(step.outcome).not.toHaveProperty('drainSeconds');
  });

  it('a failing non-serving container is Stalled loudly, but the pod stays in endpoints', () => {
    const { pod, state } = inService();
    const pull = `failed to pull and unpack image "docker.io/${SHIPPER_NEW}": not found`;
    const failing = editStatus(withObservedGeneration(pod, 2), 'log-shipper', (s) => ({ ...s, ready: false, state: { waiting: { reason: 'ErrImagePull', message: pull } } }));
    const step = nextStep(failing, ctx, config);
    expect(step).toMatchObject({
      kind: 'transition',
      state: { ...state, phase: 'Stalled', stalled: { reason: 'ErrImagePull' } },
      event: { type: 'Warning', reason: 'InPlaceUpdateStalled', note: expect.stringContaining('in endpoints') as unknown },
      outcome: { result: 'stalled' },
    });
    expect(step).not.toHaveProperty('condition');
    expect(nextStep(applyStep(failing, step), ctx, config)).toMatchObject({ kind: 'none', why: expect.stringMatching(/^stalled:/) as unknown });
  });

  it('a serving change requested while it is unproven drains first (the webhook marked it drained; the pod is not)', () => {
    const { pod, state } = inService();
    const next = withState(pod, { ...pendingState({ app: APP_NEW }), drained: true, before: state.before });
    expect(nextStep(next, ctx, config)).toMatchObject({ kind: 'transition', condition: { status: 'False', reason: 'Draining' }, state: { phase: 'Draining' } });
  });
});

// ---- a workload rollout: the rollout writes the lifecycle's first step itself, and its pods get no Normal Events ----

/** The step with its state's `rollout` marker taken out, to compare with a single pod's. */
function withoutRollout(step: Step): Step {
  if (step.kind === 'none' || step.kind === 'setCondition' || step.kind === 'createPullPod' || step.state === undefined) return step;
  const { rollout: _r, ...state } = step.state;
  return { ...step, state };
}

function withoutEvent(step: Step): Step {
  if (step.kind === 'none' || step.kind === 'createPullPod') return step;
  const { event: _e, ...rest } = step;
  return rest;
}

describe('a rollout request (rolloutStart): the first step itself where it is a guarded write, else the request as Pending', () => {
  const ROLLOUT = 'Deployment/web';
  const request = (extra: Partial<UpdateState> = {}) => pendingState({ app: APP_NEW }, { rollout: ROLLOUT, ...extra });
  const held = { budget: 'web-pdb', message: 'waiting for PodDisruptionBudget web-pdb: 0 disruption(s) allowed' };
  const listed = [{ slice: 'shop/web-x7k2p', service: 'web' }];
  const serving = { ...sidecars, annotations: { [SERVING_CONTAINERS_ANNOTATION]: 'app,istio-proxy' } };

  it.each<[string, Pod, UpdateState, PodContext, { write: 'step'; kind: string; phase: string; condition?: 'True' | 'False' } | { write: 'request' }]>([
    ['serving, condition True: the drain (condition False, Draining with its deadline)', withCondition(runningPod(), 'True'), request(), ctx, { write: 'step', kind: 'transition', phase: 'Draining', condition: 'False' }],
    ['a disruption budget holds it: the request, for the pod to wait with', withCondition(runningPod(), 'True'), request(), { now, disruption: held }, { write: 'request' }],
    ['already drained (retargeted while Updating), no slice lists it: the image write', withCondition(runningPod(), 'False'), request({ drained: true }), ctx, { write: 'step', kind: 'writeImages', phase: 'Updating' }],
    ['already drained, but a slice lists it again: drained again first', withCondition(runningPod(), 'False'), request({ drained: true }), { now, endpoints: listed }, { write: 'step', kind: 'transition', phase: 'Draining', condition: 'False' }],
    ['already drained, a budget too: the budget does not hold a pod already out', withCondition(runningPod(), 'False'), request({ drained: true }), { now, disruption: held }, { write: 'step', kind: 'writeImages', phase: 'Updating' }],
    ['only a container that serves nothing: the image write, in service', withCondition(runningPod(serving), 'True'), pendingState({ 'log-shipper': SHIPPER_NEW }, { rollout: ROLLOUT }), ctx, { write: 'step', kind: 'writeImages', phase: 'Updating' }],
    ['no readiness gate: the request', runningPod({ readinessGates: [] }), request(), ctx, { write: 'request' }],
    ['being deleted: the request', { ...withCondition(runningPod(), 'True'), metadata: { ...runningPod().metadata, deletionTimestamp: '2026-11-28T11:59:59Z' } }, request(), ctx, { write: 'request' }],
  ])('%s', (_what, pod, asked, context, expected) => {
    const start = rolloutStart(pod, asked, context, config);
    if (expected.write === 'request') {
      expect(start).toEqual({ write: 'request' });
      return;
    }
    expect(start).toMatchObject({ write: 'step', step: { kind: expected.kind, state: { phase: expected.phase, rollout: ROLLOUT } } });
    if (start.write !== 'step') return;
    // The very step the pod reconciler would take from the request recorded, less its Normal Event.
    const { rollout: _r, ...single } = asked;
    expect(withoutRollout(start.step)).toEqual(withoutEvent(nextStep(withState(pod, single), context, config)));
    expect(start.step).not.toHaveProperty('event');
    if (expected.condition !== undefined) expect(start.step).toMatchObject({ condition: { status: expected.condition } });
  });

  it('the drain written by the rollout has the same deadline as one started from Pending, the grace period from now', () => {
    const pod = withCondition(runningPod({ annotations: { [GRACE_PERIOD_ANNOTATION]: '45' } }), 'True');
    expect(rolloutStart(pod, request(), ctx, config)).toMatchObject({
      write: 'step',
      step: { kind: 'transition', condition: { status: 'False', reason: 'Draining' }, state: { phase: 'Draining', drainStartedAt: now.toISOString(), drainDeadline: at(45) }, requeueAfterMs: 45_000 },
    });
  });
});

describe('in a rollout the pod gets no Normal Events (the workload has them); Warnings stay', () => {
  const inRollout = { rollout: 'StatefulSet/db' };
  const drainingPod = (extra: Partial<UpdateState>) =>
    withCondition(runningPod({ state: { ...pendingState({ app: APP_NEW }), phase: 'Draining', drainStartedAt: at(-20), drainDeadline: at(-5), ...extra } }), 'False');

  it.each<[string, (extra: Partial<UpdateState>) => Pod, PodContext, string, 'Normal' | 'Warning']>([
    ['the drain starts', (extra) => withCondition(runningPod({ state: pendingState({ app: APP_NEW }, extra) }), 'True'), ctx, 'InPlaceUpdateStarted', 'Normal'],
    ['a budget holds the drain', (extra) => withCondition(runningPod({ state: pendingState({ app: APP_NEW }, extra) }), 'True'), { now, disruption: { budget: 'b', message: 'waiting for PodDisruptionBudget b' } }, 'InPlaceUpdateWaiting', 'Normal'],
    ['drained: the image write', drainingPod, ctx, 'InPlaceUpdateDrained', 'Normal'],
    ['proven: done', (extra) => kubeletRestarted(updatingPod({ app: APP_NEW }, { extra }).pod, 'app', APP_NEW), ctx, 'InPlaceUpdateSucceeded', 'Normal'],
    ['the new container crash-loops: Stalled', (extra) => editStatus(kubeletRestarted(updatingPod({ app: APP_NEW }, { extra }).pod, 'app', APP_NEW), 'app', (s) => ({ ...s, ready: false, state: { waiting: { reason: 'CrashLoopBackOff', message: 'back-off' } } })), ctx, 'InPlaceUpdateStalled', 'Warning'],
    ['a slice still lists it at the drain deadline: Stalled', drainingPod, { now: new Date(now.getTime() + 300_000), endpoints: [{ slice: 'shop/web-x7k2p', service: 'web' }] }, 'InPlaceUpdateStalled', 'Warning'],
  ])('%s', (_what, podWith, context, reason, type) => {
    const single = nextStep(podWith({}), context, config);
    expect(single).toMatchObject({ event: { type, reason } });
    const rollout = nextStep(podWith(inRollout), context, config);
    // The same step, its state still the rollout's; only a Normal Event is left out.
    expect(withoutRollout(rollout)).toEqual(type === 'Warning' ? single : withoutEvent(single));
  });
});

describe('a rollout pod, end to end: three writes of inplace-gate, no Normal Event', () => {
  it('rollout request -> Draining (one write) -> Updating -> done, each from the pod as it is', () => {
    let pod = withCondition(runningPod(), 'True');
    const writes: string[] = [];
    const events: string[] = [];
    const apply = (s: Step) => {
      if (s.kind === 'setCondition') writes.push('condition');
      else if (s.kind === 'createPullPod') writes.push('pull pod');
      else if (s.kind !== 'none') writes.push(s.kind === 'writeImages' ? 'images' : (s.state?.phase ?? 'done'));
      if (s.kind !== 'none' && s.kind !== 'createPullPod' && s.event) events.push(s.event.reason);
      pod = applyStep(pod, s);
    };
    const start = rolloutStart(pod, pendingState({ app: APP_NEW }, { rollout: 'Deployment/web' }), ctx, config);
    if (start.write !== 'step') throw new Error('expected the drain');
    apply(start.step);
    expect(gateOf(pod)).toBe('False');
    expect(specImages(pod.spec)).toEqual({ app: APP_OLD });
    apply(nextStep(pod, { now: new Date(now.getTime() + 14_000) }, config));
    const later = { now: new Date(now.getTime() + 15_000) };
    apply(nextStep(pod, later, config));
    expect(specImages(pod.spec)).toEqual({ app: APP_NEW });
    apply(nextStep(pod, later, config));
    pod = kubeletRestarted(pod, 'app', APP_NEW);
    apply(nextStep(pod, later, config));
    expect(gateOf(pod)).toBe('True');
    expect(stateOf(pod)).toBeUndefined();
    apply(nextStep(pod, later, config));
    expect(writes).toEqual(['Draining', 'images', 'done']);
    expect(events).toEqual([]);
  });
});

// ---- Pre-pull: the new images on the node before the drain (core/pre-pull.ts) ----

describe('Pending with pre-pull: the images are pulled on the node before the condition goes False', () => {
  const prePull = { perNode: 2, deadlineSeconds: 300 };
  const pulling: LifecycleConfig = { ...config, prePull };
  const pending = pendingState({ app: APP_NEW });
  const serving = runningPod({ state: pending });
  const PULL_NAME = pullPodName(serving.metadata.name ?? '', [APP_NEW]);
  type Shape = { waiting?: string; message?: string; running?: true; terminated?: string; phase?: string; reason?: string; createdAt?: string };
  const pullPod = (shape: Shape, images = [APP_NEW]): PullPod => ({
    metadata: { name: pullPodName(serving.metadata.name ?? '', images), namespace: 'shop', uid: 'pull-uid', creationTimestamp: shape.createdAt ?? at(-20), labels: { [PULL_FOR_LABEL]: serving.metadata.uid ?? '' } },
    spec: { nodeName: 'node-a', containers: images.map((image, i) => ({ name: `pull-${String(i)}`, image })) },
    status: {
      phase: shape.phase ?? 'Pending',
      ...(shape.reason ? { reason: shape.reason } : {}),
      containerStatuses: shape.waiting === undefined && shape.running === undefined && shape.terminated === undefined ? [] : images.map((image, i) => ({
        name: `pull-${String(i)}`,
        image,
        state: shape.running ? { running: {} } : shape.terminated ? { terminated: { reason: shape.terminated, exitCode: 128 } } : { waiting: { reason: shape.waiting, ...(shape.message ? { message: shape.message } : {}) } },
      })),
    },
  });
  const withPull = (pods: PullPod[], extra: Partial<PodContext['pull'] & object> = {}): PodContext => ({ now, pull: { pods, busyOnNode: 0, nodeReady: true, ...extra } });
  const drains = { kind: 'transition', condition: { status: 'False', reason: 'Draining' }, state: { phase: 'Draining' } };

  it('no pull pod yet: one is created on the node, the condition untouched', () => {
    const step = nextStep(serving, withPull([]), pulling);
    expect(step).toMatchObject({ kind: 'createPullPod', images: [APP_NEW], pullPod: { metadata: { name: PULL_NAME, namespace: 'shop' }, spec: { nodeName: 'node-a' } } });
    expect(applyStep(serving, step)).toEqual(serving);
  });

  it.each<[string, Shape]>([
    ['the kubelet is still pulling (ContainerCreating)', { waiting: 'ContainerCreating' }],
    ['no container status yet', {}],
  ])('%s: it waits, serving', (_what, shape) => {
    expect(nextStep(serving, withPull([pullPod(shape)]), pulling)).toMatchObject({ kind: 'none', why: expect.stringContaining('pulling on the node') as unknown });
  });

  it.each<[string, Shape]>([
    ['StartError (runc: the command is not in the image)', { terminated: 'StartError', phase: 'Failed' }],
    ['RunContainerError', { waiting: 'RunContainerError' }],
    ['CreateContainerError', { waiting: 'CreateContainerError' }],
    ['CreateContainerConfigError', { waiting: 'CreateContainerConfigError' }],
    ['running (a hollow kubelet runs anything)', { running: true, phase: 'Running' }],
  ])('pulled, shown by %s: the drain starts', (_what, shape) => {
    const step = nextStep(serving, withPull([pullPod(shape)]), pulling);
    expect(step).toMatchObject({ ...drains, event: { note: expect.stringContaining(`Pulled ${APP_NEW} on node-a`) as unknown }, prePull: { result: 'pulled', seconds: 20 } });
  });

  it.each<[string, string]>([
    ['ErrImagePull', 'failed to pull and unpack image "registry.example.com:5000/shop/web:1.5.0": not found'],
    ['ImagePullBackOff', 'Back-off pulling image "registry.example.com:5000/shop/web:1.5.0"'],
    ['InvalidImageName', 'Failed to apply default image tag'],
    ['ErrImageNeverPull', 'Container image is not present with pull policy of Never'],
  ])('%s: Stalled before any drain, the condition True, a Warning with the kubelet\'s message', (reason, message) => {
    const step = nextStep(serving, withPull([pullPod({ waiting: reason, message })]), pulling);
    expect(step).toEqual({
      kind: 'transition',
      condition: { status: 'True', reason: 'InPlaceUpdatePullFailed', message: expect.stringContaining(message) as unknown },
      state: { ...pending, phase: 'Stalled', stalled: { reason: 'PrePullFailed', message: `${APP_NEW} cannot be pulled on node-a: ${reason}: ${message}`, since: now.toISOString() } },
      event: { type: 'Warning', reason: 'InPlaceUpdateStalled', action: 'PrePull', note: expect.stringContaining(message) as unknown },
      outcome: { result: 'stalled', durationSeconds: 120 },
      prePull: { result: 'failed', seconds: 20 },
    });
    // Nothing more to do: it stays serving, on record as Stalled.
    const stalled = applyStep(serving, step);
    expect(gateOf(stalled)).toBe('True');
    expect(specImages(stalled.spec)).toEqual({ app: APP_OLD });
    expect(nextStep(stalled, withPull([]), pulling)).toMatchObject({ kind: 'none', why: expect.stringContaining('pre-pull failed') as unknown });
    expect(wantedPullPod(stalled, withPull([]), pulling)).toBeUndefined();
  });

  it('Stalled PrePullFailed with the condition reset to False: back to True, nothing was drained', () => {
    const stalled = withCondition(withState(serving, { ...pending, phase: 'Stalled', stalled: { reason: 'PrePullFailed', message: 'nope', since: at(-5) } }), 'False');
    expect(nextStep(stalled, withPull([]), pulling)).toEqual({ kind: 'setCondition', condition: { status: 'True', reason: 'InPlaceUpdatePullFailed', message: 'kept the running images: nope' } });
  });

  it.each<[string, Shape]>([
    ['ended with no answer (activeDeadlineSeconds)', { waiting: 'ContainerCreating', phase: 'Failed', reason: 'DeadlineExceeded' }],
    ['refused by the kubelet (no room)', { phase: 'Failed', reason: 'OutOfcpu' }],
    ['silent past its deadline (a node with no kubelet)', { createdAt: at(-331) }],
  ])('a pull pod %s does not block the update: the drain starts, the kubelet pulls after it', (_what, shape) => {
    expect(nextStep(serving, withPull([pullPod(shape)]), pulling)).toMatchObject({ ...drains, event: { note: expect.stringContaining('Pre-pull gave no answer') as unknown }, prePull: { result: 'lost' } });
  });

  it('a silent pull pod is looked at again when the watcher gives up on it', () => {
    expect(nextStep(serving, withPull([pullPod({ createdAt: at(-20) })]), pulling)).toMatchObject({ kind: 'none', requeueAfterMs: 310_000 });
  });

  it.each<[string, LifecycleConfig, Pod, PodContext]>([
    ['pre-pull is off', config, serving, withPull([])],
    ['the node lists the image already', pulling, serving, withPull([], { nodeImages: new Set([APP_NEW]) })],
    ['imagePullPolicy Never', pulling, { ...serving, spec: { ...serving.spec, containers: serving.spec.containers.map((c) => ({ ...c, imagePullPolicy: 'Never' })) } }, withPull([])],
    ['the pod is not on a node', pulling, { ...serving, spec: { ...serving.spec, nodeName: undefined } }, withPull([])],
    ['its node is not Ready (no kubelet would answer)', pulling, serving, withPull([], { nodeReady: false })],
  ])('no pull when %s: the drain starts at once', (_what, cfg, pod, c) => {
    expect(nextStep(pod, c, cfg)).toMatchObject(drains);
    expect(wantedPullPod(pod, c, cfg)).toBeUndefined();
  });

  it('a pod already drained (condition False) is not pulled for: its images are written at once', () => {
    const out = withCondition(withState(runningPod(), pendingState({ app: APP_NEW }, { drained: true })), 'False');
    expect(nextStep(out, withPull([]), pulling)).toMatchObject({ kind: 'writeImages' });
  });

  it('the node has its pulls running: it waits for a slot, serving', () => {
    expect(nextStep(serving, withPull([], { busyOnNode: 2 }), pulling)).toEqual({ kind: 'none', why: expect.stringContaining('pull slot on node node-a') as unknown, requeueAfterMs: PULL_SLOT_RETRY_MS });
    expect(nextStep(serving, withPull([], { busyOnNode: 1 }), pulling)).toMatchObject({ kind: 'createPullPod' });
  });

  it('a pull pod for images no longer requested is not the one wanted: a new one is created, the old one is stale', () => {
    const old = pullPod({ terminated: 'StartError' }, [PROXY_NEW]);
    expect(nextStep(serving, withPull([old]), pulling)).toMatchObject({ kind: 'createPullPod', pullPod: { metadata: { name: PULL_NAME } } });
    expect(wantedPullPod(serving, withPull([old]), pulling)).toBe(PULL_NAME);
  });

  it('a disruption budget with nothing to spare: the pull goes first, the drain waits for the budget', () => {
    const disruption = { budget: 'web', message: 'PodDisruptionBudget web allows no disruption now' };
    expect(nextStep(serving, { ...withPull([]), disruption }, pulling)).toMatchObject({ kind: 'createPullPod' });
    expect(nextStep(serving, { ...withPull([pullPod({ terminated: 'StartError' })]), disruption }, pulling)).toMatchObject({ kind: 'setCondition', condition: { status: 'True', reason: 'WaitingForDisruptionBudget' } });
  });

  it.each<[string, PodContext, boolean]>([
    ['the node lacks the image', withPull([]), true],
    ['the node has it', withPull([], { nodeImages: new Set([APP_NEW]) }), false],
    ['the node is not Ready', withPull([], { nodeReady: false }), false],
  ])('for a rollout that would write Draining itself: a serving pod pulls first when %s', (_what, c, pulls) => {
    const ready = runningPod();
    expect(pullsBeforeDrain(ready, { app: APP_NEW }, c, pulling)).toBe(pulls);
    expect(pullsBeforeDrain(ready, { app: APP_NEW }, c, config)).toBe(false);
  });

  it('a walk: the condition goes False only once the pull pod shows the image on the node, and the pull pod is unwanted after', () => {
    let pod = serving;
    const create = nextStep(pod, withPull([]), pulling);
    expect(create.kind).toBe('createPullPod');
    expect(wantedPullPod(pod, withPull([]), pulling)).toBe(PULL_NAME);
    expect(nextStep(pod, withPull([pullPod({ waiting: 'ContainerCreating' })]), pulling).kind).toBe('none');
    expect(gateOf(pod)).toBe('True');
    const drain = nextStep(pod, withPull([pullPod({ terminated: 'StartError', phase: 'Failed' })]), pulling);
    pod = applyStep(pod, drain);
    expect(gateOf(pod)).toBe('False');
    // Draining: the shell deletes the pull pod; a watcher restarted here finds it unwanted too.
    expect(wantedPullPod(pod, withPull([pullPod({ terminated: 'StartError', phase: 'Failed' })]), pulling)).toBeUndefined();
  });
});
