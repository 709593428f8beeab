// Drain confirmed, not assumed (issue 17): after InPlaceUpdateReady goes False
// the images are written only once the grace period has passed AND no
// EndpointSlice lists the pod as receiving traffic; the drain deadline caps the
// wait with a Stalled that never writes the images.

import { describe, expect, it } from 'vitest';
import { mutate, validate } from '../../src/core/admission/index.ts';
import { defaultAdmissionConfig } from '../../src/core/config.ts';
import { specImages } from '../../src/core/containers.ts';
import { followsReadiness, routesTraffic, targetsPod, type EndpointListing, type EndpointView } from '../../src/core/endpoints.ts';
import type { Pod } from '../../src/core/kube-types.ts';
import { nextStep, type LifecycleConfig, type PodContext, type Step } from '../../src/core/lifecycle.ts';
import { READINESS_GATE, UPDATE_ANNOTATION } from '../../src/core/names.ts';
import { DRAIN_DEADLINE_EXCEEDED, type UpdateState } from '../../src/core/state.ts';
import { applied, expectDecision, stateOf } from '../support/apply.ts';
import { buildPod, updateRequest, withSpecImages } from '../support/pods.ts';

const now = new Date('2026-11-28T12:00:00Z');
const at = (s: number) => new Date(now.getTime() + s * 1000).toISOString();
const config: LifecycleConfig = { defaultGraceSeconds: 2, progressDeadlineSeconds: 300, drainDeadlineSeconds: 60 };
const OLD = 'registry.example.com:5000/shop/web:1.4.2';
const NEW = 'registry.example.com:5000/shop/web:1.5.0';

const web: EndpointListing = { slice: 'shop/web-x7k2p', service: 'web' };
const admin: EndpointListing = { slice: 'shop/web-admin-9q2vd', service: 'web-admin' };

function withGate(pod: Pod, status: 'True' | 'False'): Pod {
  const next = structuredClone(pod);
  next.status!.conditions = [...(next.status!.conditions ?? []).filter((c) => c.type !== READINESS_GATE), { type: READINESS_GATE, status, lastTransitionTime: '2026-11-28T11:59:50Z' }];
  return next;
}

/** Condition False at `startedAt` seconds from now, grace period ending at `graceEnds`. */
function draining(startedAt: number, graceEnds: number, extra: Partial<UpdateState> = {}): UpdateState {
  return {
    phase: 'Draining',
    images: { app: NEW },
    requestedBy: 'alice@example.com',
    requestedAt: at(startedAt - 0.01),
    drainStartedAt: at(startedAt),
    drainDeadline: at(graceEnds),
    ...extra,
  };
}

const podIn = (state: UpdateState, gate: 'True' | 'False' = 'False') => withGate(buildPod({ state }), gate);
const step = (pod: Pod, c: Partial<PodContext> = {}, cfg = config): Step => nextStep(pod, { now, ...c }, cfg);

describe('Draining: the write waits for the grace period and the EndpointSlices', () => {
  it.each<[string, UpdateState, EndpointListing[] | undefined, Partial<Step>]>([
    ['grace not over, pod still listed', draining(-1, 1), [web], { kind: 'none', why: 'draining', requeueAfterMs: 1000 }],
    ['grace not over, pod already unlisted', draining(-1, 1), [], { kind: 'none', why: 'draining', requeueAfterMs: 1000 }],
    ['grace over, no Service selects the pod (no slice lists it)', draining(-2, 0), undefined, { kind: 'writeImages', images: { app: NEW } }],
    ['grace over, every slice has dropped the pod', draining(-2, 0), [], { kind: 'writeImages', images: { app: NEW } }],
    ['grace over, one Service still lists the pod ready', draining(-2, 0), [web], { kind: 'none', requeueAfterMs: 58_000 }],
    ['grace over, two Services, one still lists it', draining(-2, 0), [admin], { kind: 'none', requeueAfterMs: 58_000 }],
    ['grace 0, the write one reconcile after the condition, still listed', draining(0, 0), [web, admin], { kind: 'none', requeueAfterMs: 60_000 }],
  ])('%s', (_what, state, endpoints, expected) => {
    const s = step(podIn(state), endpoints === undefined ? {} : { endpoints });
    expect(s).toMatchObject(expected);
    if (s.kind === 'none' && s.why !== 'draining') {
      for (const e of endpoints ?? []) expect(s.why).toContain(e.slice);
    }
  });

  it('a pod in two Services waits for both slices, then writes', () => {
    const pod = podIn(draining(-3, -1));
    expect(step(pod, { endpoints: [web, admin] }).kind).toBe('none');
    expect(step(pod, { endpoints: [admin] }).kind).toBe('none');
    expect(step(pod, { endpoints: [] })).toMatchObject({ kind: 'writeImages', state: { phase: 'Updating' } });
  });

  it('the grace period still holds after the slices dropped the pod (clients that cache endpoints)', () => {
    expect(step(podIn(draining(-1, 9)), { endpoints: [], endpointsGoneAt: new Date(now.getTime() - 500) })).toEqual({ kind: 'none', why: 'draining', requeueAfterMs: 9000 });
  });

  it('the write carries the drain timings: condition False -> endpoints gone, and gone -> write', () => {
    const s = step(podIn(draining(-4, -2)), { endpoints: [], endpointsGoneAt: new Date(now.getTime() - 1500) });
    expect(s).toMatchObject({ kind: 'writeImages', drain: { endpointsSeconds: 2.5, marginSeconds: 1.5 } });
  });

  it('a listing gone before this drain began says nothing about it: no timings', () => {
    const s = step(podIn(draining(-4, -2)), { endpoints: [], endpointsGoneAt: new Date(now.getTime() - 10_000) });
    expect(s.kind).toBe('writeImages');
    expect(s).not.toHaveProperty('drain');
  });
});

describe('the drain deadline', () => {
  it('past it with the pod still listed: Stalled, condition False, a Warning, images NOT written', () => {
    const state = draining(-60, -58);
    const s = step(podIn(state), { endpoints: [web] });
    const message = 'drain not confirmed in 60s: EndpointSlice shop/web-x7k2p (Service web) still lists the pod ready';
    expect(s).toEqual({
      kind: 'transition',
      condition: { status: 'False', reason: 'InPlaceUpdateStalled', message },
      state: { ...state, phase: 'Stalled', stalled: { reason: DRAIN_DEADLINE_EXCEEDED, message, since: now.toISOString() } },
      event: { type: 'Warning', reason: 'InPlaceUpdateStalled', action: 'Drain', note: expect.stringContaining('the images are not written') as unknown },
      outcome: { result: 'stalled', durationSeconds: 60.01 },
    });
  });

  it('past it with the pod unlisted: written as usual (the deadline only caps a wait)', () => {
    expect(step(podIn(draining(-600, -598)), { endpoints: [] }).kind).toBe('writeImages');
  });

  it('never ends before the grace period: a deadline shorter than the grace counts from its end', () => {
    const cfg = { ...config, drainDeadlineSeconds: 5 };
    expect(step(podIn(draining(-20, 10)), { endpoints: [web] }, cfg)).toMatchObject({ kind: 'none', why: 'draining', requeueAfterMs: 10_000 });
    expect(step(podIn(draining(-30, 0)), { endpoints: [web] }, cfg)).toMatchObject({ kind: 'transition', state: { phase: 'Stalled' } });
  });

  it('defaults to 120 s when the configuration does not set one', () => {
    const { drainDeadlineSeconds: _none, ...cfg } = config;
    expect(step(podIn(draining(-119, -117)), { endpoints: [web] }, cfg)).toMatchObject({ kind: 'none', requeueAfterMs: 1000 });
    expect(step(podIn(draining(-120, -118)), { endpoints: [web] }, cfg)).toMatchObject({ kind: 'transition', state: { phase: 'Stalled' } });
  });
});

describe('Stalled in the drain', () => {
  const message = 'drain not confirmed in 60s: EndpointSlice shop/web-x7k2p (Service web) still lists the pod ready';
  const stalled: UpdateState = { ...draining(-70, -68), phase: 'Stalled', stalled: { reason: DRAIN_DEADLINE_EXCEEDED, message, since: at(-10) } };

  it('still listed: nothing more (loud once), images not written', () => {
    expect(step(podIn(stalled), { endpoints: [web] })).toEqual({ kind: 'none', why: `stalled: ${message}` });
  });

  it('the slices drop the pod later (the controller caught up): the write goes on', () => {
    const s = step(podIn(stalled), { endpoints: [] });
    expect(s).toMatchObject({ kind: 'writeImages', images: { app: NEW }, state: { phase: 'Updating' } });
    if (s.kind === 'writeImages') expect(s.state).not.toHaveProperty('stalled');
  });

  it('someone set the condition True: False again, nothing written', () => {
    expect(step(podIn(stalled, 'True'), { endpoints: [] })).toEqual({ kind: 'setCondition', condition: { status: 'False', reason: 'InPlaceUpdateStalled', message } });
  });

  it('a new request keeps the images never written for the containers it does not change; the write still waits for the slices', () => {
    const PROXY_OLD = 'docker.io/istio/proxyv2:1.24.0';
    const PROXY_NEW = 'docker.io/istio/proxyv2:1.25.1';
    const old = withGate(buildPod({ containers: [{ name: 'app', image: OLD }, { name: 'istio-proxy', image: PROXY_OLD }], state: stalled }), 'False');
    const pod = withSpecImages(old, { 'istio-proxy': PROXY_NEW });
    const decision = expectDecision(mutate(updateRequest(old, pod), defaultAdmissionConfig, now));
    const stored = applied(pod, decision);
    expect(specImages(stored.spec)).toEqual({ app: OLD, 'istio-proxy': PROXY_OLD });
    expect(stateOf(stored)).toMatchObject({ phase: 'Pending', images: { app: NEW, 'istio-proxy': PROXY_NEW } });
    expect(stateOf(stored)).not.toHaveProperty('stalled');
    expect(validate(updateRequest(old, stored), defaultAdmissionConfig)).toMatchObject({ type: 'allow' });
    expect(step(stored, { endpoints: [web] })).toMatchObject({ kind: 'transition', state: { phase: 'Draining' } });
  });

  it('a re-assertion of the running images cancels it (nothing was written)', () => {
    const old = podIn(stalled);
    const pod: Pod = {
      ...old,
      metadata: {
        ...old.metadata,
        managedFields: [...(old.metadata.managedFields ?? []), { manager: 'argocd-controller', operation: 'Apply', apiVersion: 'v1', time: now.toISOString(), fieldsType: 'FieldsV1', fieldsV1: { 'f:spec': { 'f:containers': { 'k:{"name":"app"}': { '.': {}, 'f:image': {}, 'f:name': {} } } } } }],
      },
    };
    const ssa = { options: { kind: 'PatchOptions', apiVersion: 'meta.k8s.io/v1', fieldManager: 'argocd-controller', force: true } };
    const decision = expectDecision(mutate(updateRequest(old, pod, ssa), defaultAdmissionConfig, now));
    expect(decision).toMatchObject({ type: 'patch', reason: 'cancelled' });
    const stored = applied(pod, decision);
    expect(stored.metadata.annotations?.[UPDATE_ANNOTATION]).toBeUndefined();
    expect(validate(updateRequest(old, stored, ssa), defaultAdmissionConfig)).toMatchObject({ type: 'allow' });
    expect(step(stored)).toMatchObject({ kind: 'setCondition', condition: { status: 'True', reason: 'UpdateCancelled' } });
  });
});

describe('a request made while out of endpoints (drained: true)', () => {
  const pending: UpdateState = { phase: 'Pending', images: { app: NEW }, requestedBy: 'alice@example.com', requestedAt: at(-1), drained: true };

  it('no slice lists the pod: written at once', () => {
    expect(step(podIn(pending), { endpoints: [] }).kind).toBe('writeImages');
  });

  it('a slice still lists it ready: drained again (grace period, then the slices, under the deadline)', () => {
    expect(step(podIn(pending), { endpoints: [web] })).toMatchObject({ kind: 'transition', condition: { status: 'False' }, state: { phase: 'Draining', drainStartedAt: now.toISOString() } });
  });
});

describe('what counts as a listing', () => {
  it.each<[string, Omit<EndpointView, 'pod'>, boolean]>([
    ['ready', { ready: true, serving: true, terminating: false }, true],
    ['ready unset (the API reads it as ready)', {}, true],
    ['not ready', { ready: false, serving: false, terminating: false }, false],
    ['not ready, terminating but still serving (clients fall back to it)', { ready: false, serving: true, terminating: true }, true],
    ['not ready, terminating, not serving', { ready: false, serving: false, terminating: true }, false],
  ])('an endpoint %s -> routes traffic: %s', (_what, conditions, routes) => {
    expect(routesTraffic({ pod: { name: 'web-1' }, ...conditions })).toBe(routes);
  });

  it.each<[string, EndpointView['pod'], boolean]>([
    ['the same uid', { uid: 'u1', name: 'web-1' }, true],
    ['the same name, another uid (a pod recreated under its name)', { uid: 'u0', name: 'web-1' }, false],
    ['no uid, the same name in the slice namespace', { name: 'web-1' }, true],
    ['no uid, the same name in another namespace', { name: 'web-1', namespace: 'other' }, false],
  ])('targetRef with %s -> this pod: %s', (_what, ref, matches) => {
    expect(targetsPod({ pod: ref }, 'shop', { uid: 'u1', name: 'web-1', namespace: 'shop' })).toBe(matches);
  });

  it.each([
    ['a Service that publishes not-ready addresses does not drain by readiness', { publishNotReadyAddresses: true }, false],
    ['an ordinary Service follows readiness', {}, true],
  ])('%s', (_what, spec, follows) => {
    expect(followsReadiness({ metadata: { name: 'web', namespace: 'shop' }, ...spec })).toBe(follows);
  });

  it('a slice whose Service is unknown (deleted, not seen yet, or none) counts', () => {
    expect(followsReadiness(undefined)).toBe(true);
  });
});
