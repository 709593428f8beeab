import { describe, expect, it } from 'vitest';
import type { Pod, PodCondition } from '../../src/core/kube-types.ts';
import { READINESS_GATE, UPDATE_ANNOTATION } from '../../src/core/names.ts';
import type { UpdateState } from '../../src/core/state.ts';
import { ApiError, type KubeClient } from '../../src/kube/client.ts';
import { createLogger } from '../../src/log.ts';
import { EndpointIndex } from '../../src/watcher/endpoints.ts';
import { EventRecorder } from '../../src/watcher/events.ts';
import { Informer } from '../../src/watcher/informer.ts';
import { createWatcherMetrics } from '../../src/watcher/metrics.ts';
import { PodReconciler } from '../../src/watcher/pod-reconciler.ts';
import { trimNamespace, trimNode, trimPod, trimPullPod, type NamespaceMeta, type NodeMeta } from '../../src/watcher/trim.ts';
import { PULL_FOR_LABEL, pullPodName, type PullPod } from '../../src/core/pre-pull.ts';
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

describe('PodReconciler: pre-pull', () => {
  const NEW = 'registry.example.com:5000/shop/web:1.5.0';
  const pendingPod = () => buildPod({ containers: [{ name: 'app', image: OLD }], state: { phase: 'Pending', images: { app: NEW }, requestedBy: 'bob', requestedAt: '2026-11-28T11:59:00Z' } });

  async function reconcileWithPulls(pod: Pod, answer: { create?: ApiError }, pullPods: PullPod[] = []) {
    let stored = structuredClone(pod);
    const calls: { method: string; path: string; body: unknown }[] = [];
    const client = {
      patch: (path: string, body: { metadata?: { annotations?: Record<string, string | null> }; status?: { conditions?: PodCondition[] } }) => {
        calls.push({ method: 'PATCH', path, body });
        const next = structuredClone(stored);
        next.metadata.annotations = { ...next.metadata.annotations };
        for (const [k, v] of Object.entries(body.metadata?.annotations ?? {})) {
          if (v === null) delete next.metadata.annotations[k];
          else next.metadata.annotations[k] = v;
        }
        const status = (next.status ??= {});
        for (const c of body.status?.conditions ?? []) status.conditions = [...(status.conditions ?? []).filter((o) => o.type !== c.type), c];
        next.metadata.resourceVersion = String(Number(next.metadata.resourceVersion ?? '1') + 1);
        stored = next;
        return Promise.resolve(structuredClone(next));
      },
      post: (path: string, body: unknown) => {
        calls.push({ method: 'POST', path, body });
        if (path.includes('/pods') && answer.create) return Promise.reject(answer.create);
        return Promise.resolve({ ...(body as object), metadata: { ...(body as Pod).metadata, uid: 'pull-uid', resourceVersion: '7', creationTimestamp: '2026-11-28T12:00:00Z' } });
      },
      request: (method: string, path: string, body: unknown) => {
        calls.push({ method, path, body });
        return Promise.resolve({});
      },
      get: () => Promise.resolve(structuredClone(stored)),
    } as unknown as KubeClient;
    const log = createLogger('test', 'silent');
    const metrics = createWatcherMetrics(() => ({ byPhase: {}, drainOverdueSeconds: 0 }), () => ({}));
    const pods = new Informer<Pod>(client, { path: '/api/v1/pods', trim: trimPod, onChange: () => undefined, log });
    const pulls = new Informer<PullPod>(client, { path: '/api/v1/pods', trim: trimPullPod, onChange: () => undefined, log });
    pods.upsert(pod);
    for (const p of pullPods) pulls.upsert(p);
    const nodes = new Informer<NodeMeta>(client, { path: '/api/v1/nodes', trim: trimNode, onChange: () => undefined, log });
    nodes.upsert({ metadata: { name: 'node-a', resourceVersion: '3' }, status: { conditions: [{ type: 'Ready', status: 'True' }] } });
    const reconciler = new PodReconciler({
      client, pods, pulls, nodes,
      namespaces: new Informer<NamespaceMeta>(client, { path: '/api/v1/namespaces', trim: trimNamespace, onChange: () => undefined, log }),
      endpoints: new EndpointIndex(() => undefined, () => true),
      events: new EventRecorder(client, 'test', log, metrics),
      metrics, log,
      config: { defaultGraceSeconds: 15, progressDeadlineSeconds: 300, prePull: { perNode: 2, deadlineSeconds: 300 } },
      clock: () => now,
    });
    await reconciler.reconcile(`${pod.metadata.namespace ?? ''}/${pod.metadata.name ?? ''}`);
    return { calls, stored: () => stored, pulls, metrics };
  }

  /** inplace_gate_pre_pulls_total by result, and the duration histogram's count and sum. */
  async function prePullMetrics(metrics: ReturnType<typeof createWatcherMetrics>) {
    const counts = Object.fromEntries((await metrics.prePulls.get()).values.map((v) => [String(v.labels.result), v.value]));
    const histogram = (await metrics.prePullDuration.get()).values;
    const of = (name: string): number | undefined => histogram.find((v) => v.metricName === name)?.value;
    return { counts, count: of('inplace_gate_pre_pull_duration_seconds_count'), sum: of('inplace_gate_pre_pull_duration_seconds_sum') };
  }

  /** The pod's pull pod (the name its images give), created 12 s before now, with the kubelet's answer for its container. */
  const pullPodOf = (pod: Pod, state: NonNullable<PullPod['status']>['containerStatuses']) => ({
    metadata: { name: pullPodName(pod.metadata.name ?? '', [NEW]), namespace: 'shop', uid: 'pull-uid', resourceVersion: '5', creationTimestamp: '2026-11-28T11:59:48Z', labels: { [PULL_FOR_LABEL]: pod.metadata.uid ?? '' } },
    spec: { nodeName: 'node-a', containers: [{ name: 'pull-0', image: NEW }] },
    status: { phase: 'Pending', containerStatuses: state },
  });

  it('a serving Pending pod: the pull pod is created on its node, nothing else written', async () => {
    const { calls, pulls } = await reconcileWithPulls(pendingPod(), {});
    expect(calls.map((c) => `${c.method} ${c.path}`)).toEqual(['POST /api/v1/namespaces/shop/pods?fieldManager=inplace-gate']);
    expect(calls[0]?.body).toMatchObject({ metadata: { ownerReferences: [{ kind: 'Pod', uid: '0b3c6f7e-6a55-4c5e-8f0e-2c1d9b8a7f61' }] }, spec: { nodeName: 'node-a', serviceAccountName: 'default', containers: [{ image: NEW }] } });
    expect(pulls.store.size).toBe(1);
  });

  it('a pull pod that shows the image pulled: the drain starts, counted as pulled with the time since its creation', async () => {
    const pod = pendingPod();
    const pulled = pullPodOf(pod, [{ name: 'pull-0', image: NEW, state: { waiting: { reason: 'CreateContainerError', message: 'no such file' } } }]);
    const { stored, metrics } = await reconcileWithPulls(pod, {}, [pulled]);
    expect(stateOf(stored())).toMatchObject({ phase: 'Draining' });
    expect(await prePullMetrics(metrics)).toEqual({ counts: { pulled: 1 }, count: 1, sum: 12 });
  });

  it('a pull pod that cannot pull: Stalled before any drain, counted as failed', async () => {
    const pod = pendingPod();
    const failed = pullPodOf(pod, [{ name: 'pull-0', image: NEW, state: { waiting: { reason: 'ErrImagePull', message: 'not found' } } }]);
    const { stored, metrics } = await reconcileWithPulls(pod, {}, [failed]);
    expect(stateOf(stored())).toMatchObject({ phase: 'Stalled', stalled: { reason: 'PrePullFailed' } });
    expect(await prePullMetrics(metrics)).toEqual({ counts: { failed: 1 }, count: 1, sum: 12 });
  });

  it('a pull pod still pulling: nothing counted yet', async () => {
    const pod = pendingPod();
    const pulling = pullPodOf(pod, [{ name: 'pull-0', image: NEW, state: { waiting: { reason: 'ContainerCreating' } } }]);
    const { calls, metrics } = await reconcileWithPulls(pod, {}, [pulling]);
    expect(calls).toEqual([]);
    expect(await prePullMetrics(metrics)).toEqual({ counts: {}, count: 0, sum: 0 });
  });

  it('the pull pod refused (a ResourceQuota): the drain goes on without it', async () => {
    const quota = 'pods "web-pull-1" is forbidden: exceeded quota: pods, requested: pods=1, used: pods=10, limited: pods=10';
    const { calls, stored, metrics } = await reconcileWithPulls(pendingPod(), { create: new ApiError(403, 'Forbidden', quota, quota) });
    expect(calls.map((c) => c.method)).toEqual(['POST', 'PATCH', 'POST']); // the create, the drain, its Event
    expect(stateOf(stored())).toMatchObject({ phase: 'Draining' });
    expect(gateOf(stored())?.status).toBe('False');
    // counted, with no duration: no pull pod existed
    expect(await prePullMetrics(metrics)).toEqual({ counts: { refused: 1 }, count: 0, sum: 0 });
  });

  it('a Draining pod whose pull pod is left (a crash after the drain started): the pull pod is deleted, by uid', async () => {
    const pod = drainedPod();
    const left: PullPod = {
      metadata: { name: 'web-7d9c6b5f4-x2x8q-pull-0123456789', namespace: 'shop', uid: 'pull-uid', resourceVersion: '5', labels: { [PULL_FOR_LABEL]: pod.metadata.uid ?? '' } },
      spec: { nodeName: 'node-a', containers: [{ name: 'pull-0', image: REFUSED }] },
      status: { phase: 'Failed', containerStatuses: [{ name: 'pull-0', image: REFUSED, state: { terminated: { reason: 'StartError', exitCode: 128 } } }] },
    };
    const { calls, pulls } = await reconcileWithPulls(pod, {}, [left]);
    expect(calls[0]).toEqual({ method: 'DELETE', path: '/api/v1/namespaces/shop/pods/web-7d9c6b5f4-x2x8q-pull-0123456789', body: expect.objectContaining({ preconditions: { uid: 'pull-uid' } }) as unknown });
    expect(pulls.store.size).toBe(0);
  });
});
