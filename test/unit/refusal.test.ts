import { describe, expect, it } from 'vitest';
import type { Pod } from '../../src/core/kube-types.ts';
import { nextStep } from '../../src/core/lifecycle.ts';
import { READINESS_GATE } from '../../src/core/names.ts';
import { IMAGE_WRITE_REFUSED, imageWriteRefused, isPermanentRefusal } from '../../src/core/refusal.ts';
import type { UpdateState } from '../../src/core/state.ts';
import { buildPod } from '../support/pods.ts';

const now = new Date('2026-11-28T12:00:00Z');
const config = { defaultGraceSeconds: 15, progressDeadlineSeconds: 300 };
const APP_OLD = 'registry.example.com:5000/shop/web:1.4.2';
const PROXY_OLD = 'docker.io/istio/proxyv2:1.24.0';
const PROXY_NEW = 'docker.io/istio/proxyv2:1.25.1';
const DENIAL = 'admission webhook "validation.gatekeeper.sh" denied the request: [allowed-repos] container <app> has an invalid image repo <evil.example/web:2>';

const base = (extra: Partial<UpdateState>): UpdateState => ({
  phase: 'Draining',
  images: { app: 'evil.example/web:2' },
  requestedBy: 'jane',
  requestedAt: '2026-11-28T11:59:00Z',
  drainStartedAt: '2026-11-28T11:59:01Z',
  drainDeadline: '2026-11-28T11:59:16Z',
  ...extra,
});

function withGate(pod: Pod, status: 'True' | 'False'): Pod {
  const next = structuredClone(pod);
  const st = (next.status ??= {});
  st.conditions = [...(st.conditions ?? []).filter((c) => c.type !== READINESS_GATE), { type: READINESS_GATE, status, lastProbeTime: null, lastTransitionTime: '2026-11-28T11:59:01Z' }];
  return next;
}

const sidecarPod = (state: UpdateState, gate: 'True' | 'False') =>
  withGate(buildPod({ containers: [{ name: 'app', image: APP_OLD }, { name: 'istio-proxy', image: PROXY_NEW }], generation: 3, state }), gate);

describe('isPermanentRefusal', () => {
  it.each([
    [400, true],
    [403, true],
    [422, true],
    [401, false],
    [404, false],
    [408, false],
    [409, false],
    [429, false],
    [500, false],
    [503, false],
  ])('%i -> %s', (status, permanent) => {
    expect(isPermanentRefusal(status)).toBe(permanent);
  });

  it.each([
    // The RBAC authorizer of a kube-apiserver just restarted, before its caches are filled (seen in test/e2e/faults.test.ts).
    ['the authorizer refusing the watcher', 'pods "single-008" is forbidden: User "system:serviceaccount:inplace-gate:inplace-gate-watcher" cannot patch resource "pods" in API group "" in the namespace "shop"', false],
    ['a validating webhook refusing the images', DENIAL, true],
    ['a ValidatingAdmissionPolicy refusing the images', 'pods "web" is forbidden: ValidatingAdmissionPolicy \'allowed-repos\' with binding \'allowed-repos\' denied request: image must come from registry.example.com', true],
  ])('403, %s', (_, message, permanent) => {
    expect(isPermanentRefusal(403, message)).toBe(permanent);
  });
});

describe('imageWriteRefused', () => {
  it('a request made while an earlier write was unproven: back to Updating over the earlier images, still out of endpoints', () => {
    const carried = { 'istio-proxy': { image: PROXY_OLD, containerID: 'containerd://aa', imageID: 'docker.io/istio/proxyv2@sha256:aa', restartCount: 0 } };
    const state = base({ phase: 'Pending', drained: true, before: carried, drainDeadline: undefined, drainStartedAt: undefined });
    const pod = sidecarPod(state, 'False');
    const step = imageWriteRefused(pod, state, DENIAL, { now });
    expect(step).toMatchObject({
      kind: 'transition',
      state: { phase: 'Updating', images: { 'istio-proxy': PROXY_NEW }, before: carried, generation: 3, updatedAt: now.toISOString() },
      event: { type: 'Warning', reason: 'InPlaceUpdateRefused', note: expect.stringContaining(DENIAL) as unknown },
      outcome: { result: 'stalled' },
    });
    expect(step).not.toHaveProperty('condition');
    if (step.kind === 'transition') expect(step.state).not.toHaveProperty('drained');
  });

  it('stays on record as Stalled in endpoints: no drain, no write, until the next image change', () => {
    const refused = base({ phase: 'Stalled', stalled: { reason: IMAGE_WRITE_REFUSED, message: DENIAL, since: now.toISOString() }, drainDeadline: undefined, drainStartedAt: undefined });
    expect(nextStep(sidecarPod(refused, 'True'), { now }, config)).toEqual({ kind: 'none', why: `image write refused: ${DENIAL}` });
    // Someone reset the condition: the pod runs what it ran, so it goes back.
    expect(nextStep(sidecarPod(refused, 'False'), { now }, config)).toMatchObject({ kind: 'setCondition', condition: { status: 'True', reason: 'InPlaceUpdateRefused' } });
  });

  it('the next image change (a new Pending, marked drained by the webhook since the phase was Stalled) drains again first', () => {
    const next = base({ phase: 'Pending', images: { app: 'registry.example.com:5000/shop/web:1.5.0' }, drained: true, drainDeadline: undefined, drainStartedAt: undefined });
    expect(nextStep(sidecarPod(next, 'True'), { now }, config)).toMatchObject({ kind: 'transition', condition: { status: 'False' }, state: { phase: 'Draining' } });
  });
});
