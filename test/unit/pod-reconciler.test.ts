import { describe, expect, it } from 'vitest';
import type { Pod } from '../../src/core/kube-types.ts';
import { READINESS_GATE, UPDATE_ANNOTATION } from '../../src/core/names.ts';
import type { UpdateState } from '../../src/core/state.ts';
import { ApiError } from '../../src/kube/client.ts';
import { buildPod } from '../support/pods.ts';
import { fakeApiserver, testReconciler } from '../support/reconciler.ts';

const now = new Date('2026-11-28T12:00:00Z');
const OLD = 'registry.example.com:5000/shop/web:1.4.2';
// A trailing space: the webhook saw it only in the annotation; the apiserver's validation sees it at the write.
const REFUSED = 'registry.example.com:5000/shop/web:1.5.0 ';
const INVALID = `Pod "web-7d9c6b5f4-x2x8q" is invalid: spec.containers[0].image: Invalid value: "${REFUSED}": must not have leading or trailing whitespace`;

function drainedPod(): Pod {
  const state: UpdateState = {
    phase: 'Draining',
    images: { app: REFUSED },
    requestedBy: 'system:serviceaccount:argocd:argocd-application-controller',
    fieldManager: 'argocd-controller',
    requestedAt: '2026-11-28T11:59:00Z',
    drainStartedAt: '2026-11-28T11:59:01Z',
    drainDeadline: '2026-11-28T11:59:16Z',
  };
  const pod = buildPod({ containers: [{ name: 'app', image: OLD }], state });
  const status = (pod.status ??= {});
  status.conditions = [
    ...(status.conditions ?? []).filter((c) => c.type !== READINESS_GATE),
    { type: READINESS_GATE, status: 'False', reason: 'Draining', lastProbeTime: null, lastTransitionTime: '2026-11-28T11:59:01Z' },
  ];
  pod.metadata.resourceVersion = '41';
  return pod;
}

async function reconcileOnce(pod: Pod, refusal: ApiError) {
  const api = fakeApiserver(pod, { refuseImages: refusal });
  const { reconciler, pods, metrics, key } = testReconciler(api.client, pod, { clock: () => now, config: { defaultGraceSeconds: 15, progressDeadlineSeconds: 300, drainDeadlineSeconds: 120 } });
  const result = await reconciler.reconcile(key).then(
    (r) => ({ ok: true as const, r }),
    (err: unknown) => ({ ok: false as const, err }),
  );
  return { api, result, metrics, cached: pods.store.get(key) };
}

const stateOf = (pod: Pod | undefined) => JSON.parse(pod?.metadata.annotations?.[UPDATE_ANNOTATION] ?? 'null') as UpdateState | null;
const gateOf = (pod: Pod | undefined) => pod?.status?.conditions?.find((c) => c.type === READINESS_GATE);

describe('PodReconciler: a refused image write', () => {
  it('422 Invalid: Stalled with the apiserver message, a Warning event, the condition True again on the old images', async () => {
    const { api, result, metrics } = await reconcileOnce(drainedPod(), new ApiError(422, 'Invalid', `PATCH /api/v1/namespaces/shop/pods/web: ${INVALID}`, INVALID));
    expect(result).toMatchObject({ ok: true });
    expect(api.patches.map((p) => p.path)).toEqual(['/api/v1/namespaces/shop/pods/web-7d9c6b5f4-x2x8q', '/api/v1/namespaces/shop/pods/web-7d9c6b5f4-x2x8q/status']);
    const stored = api.stored();
    expect(stateOf(stored)).toMatchObject({ phase: 'Stalled', images: { app: REFUSED }, stalled: { reason: 'ImageWriteRefused', message: INVALID } });
    expect(gateOf(stored)).toMatchObject({ status: 'True', reason: 'InPlaceUpdateRefused', message: `kept the running images: ${INVALID}` });
    expect(stored.spec.containers[0]?.image).toBe(OLD);
    expect(api.events).toHaveLength(1);
    expect(api.events[0]?.body).toMatchObject({ type: 'Warning', reason: 'InPlaceUpdateRefused', note: expect.stringContaining(INVALID) as unknown });
    expect((await metrics.updates.get()).values).toEqual([expect.objectContaining({ labels: { result: 'stalled' }, value: 1 })]);
  });

  it('a policy denial (403 from a validating webhook) is just as final', async () => {
    const denial = 'admission webhook "validation.gatekeeper.sh" denied the request: [allowed-repos] container <app> has an invalid image repo';
    const { api, result } = await reconcileOnce(drainedPod(), new ApiError(403, 'Forbidden', `PATCH ...: ${denial}`, denial));
    expect(result).toMatchObject({ ok: true });
    expect(stateOf(api.stored())).toMatchObject({ phase: 'Stalled', stalled: { reason: 'ImageWriteRefused', message: denial } });
    expect(gateOf(api.stored())?.status).toBe('True');
  });

  it.each([
    [409, 'Conflict', 'try again'],
    [429, 'TooManyRequests', 'try again'],
    [500, 'InternalError', 'try again'],
    // The authorizer of a kube-apiserver just restarted: about the watcher's permissions, not the images.
    [403, 'Forbidden', 'pods "web-7d9c6b5f4-x2x8q" is forbidden: User "system:serviceaccount:inplace-gate:inplace-gate-watcher" cannot patch resource "pods" in API group "" in the namespace "shop"'],
  ])('%i %s is tried again: the pod stays Draining, out of endpoints', async (status, reason, message) => {
    const { api, result } = await reconcileOnce(drainedPod(), new ApiError(status, reason, `PATCH ...: ${message}`, message));
    expect(result).toMatchObject({ ok: false });
    expect(stateOf(api.stored())).toMatchObject({ phase: 'Draining' });
    expect(gateOf(api.stored())?.status).toBe('False');
    expect(api.events).toHaveLength(0);
  });
});
