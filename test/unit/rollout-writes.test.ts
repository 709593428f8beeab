// inplace-gate's own API writes per pod, counted at the shell: the pod
// reconciler and a rollout's start against an apiserver that stores what it
// is sent. A rollout's pod costs three (drain, images, done) and no Event;
// a single pod's request the same three writes and its three Normal Events.

import { describe, expect, it } from 'vitest';
import type { Pod } from '../../src/core/kube-types.ts';
import { READINESS_GATE, UPDATE_ANNOTATION } from '../../src/core/names.ts';
import type { UpdateState } from '../../src/core/state.ts';
import { buildPod } from '../support/pods.ts';
import { fakeApiserver, testReconciler } from '../support/reconciler.ts';

const OLD = 'registry.example.com:5000/shop/web:1.4.2';
const NEW = 'registry.example.com:5000/shop/web:1.5.0';
const start = new Date('2026-11-28T12:00:00Z');
const GRACE_S = 15;

/** The kubelet's doing: the new container runs and is ready, the generation observed. */
function kubeletRestarted(p: Pod): void {
  p.status = {
    ...p.status,
    observedGeneration: p.metadata.generation,
    containerStatuses: (p.status?.containerStatuses ?? []).map((s) => ({
      ...s,
      image: NEW,
      imageID: `${NEW}@sha256:${'b'.repeat(64)}`,
      containerID: `containerd://${'c'.repeat(64)}`,
      restartCount: s.restartCount + 1,
      ready: true,
      state: { running: { startedAt: '2026-11-28T12:00:20Z' } },
    })),
  };
}

function servingPod(): Pod {
  const pod = buildPod({ containers: [{ name: 'app', image: OLD }], annotations: { 'inplace-gate.dev/grace-period-seconds': String(GRACE_S) } });
  const status = (pod.status ??= {});
  status.conditions = [
    ...(status.conditions ?? []).filter((c) => c.type !== READINESS_GATE),
    { type: READINESS_GATE, status: 'True', reason: 'PodAdmitted', lastProbeTime: null, lastTransitionTime: '2026-11-28T10:00:05Z' },
  ];
  return pod;
}

/** `budgets`: PodDisruptionBudgets as the apiserver lists them. */
function harness(pod: Pod, budgets: unknown[] = []) {
  const api = fakeApiserver(pod);
  let now = start;
  const { reconciler, pods, key } = testReconciler(api.client, pod, { clock: () => now, budgets, config: { defaultGraceSeconds: 10, progressDeadlineSeconds: 300, drainDeadlineSeconds: 120 } });
  /** Reconciles until the pod asks for nothing more now (as the queue would, on each change). */
  const settle = async (at: Date) => {
    now = at;
    for (let i = 0; i < 10; i++) {
      const before = api.patches.length;
      await reconciler.reconcile(key);
      if (api.patches.length === before) return;
    }
    throw new Error('the pod never settled');
  };
  return { api, pods, reconciler, settle, key, setNow: (at: Date) => (now = at) };
}

const later = (s: number) => new Date(start.getTime() + s * 1000);

const request = (extra: Partial<UpdateState> = {}): UpdateState => ({
  phase: 'Pending',
  images: { app: NEW },
  requestedBy: 'system:serviceaccount:argocd:argocd-application-controller',
  fieldManager: 'argocd-controller',
  requestedAt: start.toISOString(),
  ...extra,
});

/** Drives one pod from its first write to done and says what inplace-gate wrote. */
async function rollOne(h: ReturnType<typeof harness>, begin: () => Promise<void>) {
  await begin();
  await h.settle(later(1)); // within the grace period: nothing to write
  await h.settle(later(GRACE_S)); // the grace period has passed, no slice lists the pod
  h.pods.upsert(h.api.writtenByOthers(kubeletRestarted));
  await h.settle(later(GRACE_S + 5));
  await Promise.resolve(); // Events are posted without holding up the reconcile
  const kind = (p: string) => (p.endsWith('/status') ? 'pods/status' : 'pods');
  return { writes: h.api.patches.map((w) => kind(w.path)), events: h.api.events.map((e) => e.body.reason), stored: h.api.stored() };
}

describe("inplace-gate's own writes per pod", () => {
  it('a rollout pod: three writes (drain with the revision label, images, done) and no Event', async () => {
    const h = harness(servingPod());
    const pod = h.pods.store.get(h.key)!;
    const out = await rollOne(h, async () => {
      expect(await h.reconciler.startRequest(pod, request({ rollout: 'StatefulSet/db' }), { 'controller-revision-hash': 'db-5d8f7c9b6' })).toBe('step');
    });
    expect(out.writes).toEqual(['pods/status', 'pods', 'pods/status']);
    expect(out.events).toEqual([]);
    // The first write was the whole drain: condition False, Draining with its deadline, the label.
    const first = h.api.patches[0]?.body;
    expect(first?.status?.conditions).toEqual([expect.objectContaining({ type: READINESS_GATE, status: 'False', reason: 'Draining' })]);
    expect(JSON.parse(first?.metadata?.annotations?.[UPDATE_ANNOTATION] ?? '{}')).toMatchObject({ phase: 'Draining', drainDeadline: later(GRACE_S).toISOString(), rollout: 'StatefulSet/db' });
    expect(first?.metadata?.labels).toEqual({ 'controller-revision-hash': 'db-5d8f7c9b6' });
    expect(first?.metadata?.resourceVersion).toBe(pod.metadata.resourceVersion);
    expect(out.stored.spec.containers[0]?.image).toBe(NEW);
    expect(out.stored.metadata.annotations?.[UPDATE_ANNOTATION]).toBeUndefined();
    expect(out.stored.status?.conditions?.find((c) => c.type === READINESS_GATE)?.status).toBe('True');
  });

  it('a single pod, asked by a client (the webhook wrote Pending): the same three writes, and its three Normal Events', async () => {
    const asked = servingPod();
    asked.metadata.annotations = { ...asked.metadata.annotations, [UPDATE_ANNOTATION]: JSON.stringify(request()) };
    const h = harness(asked);
    const out = await rollOne(h, () => h.settle(start));
    expect(out.writes).toEqual(['pods/status', 'pods', 'pods/status']);
    expect(out.events).toEqual(['InPlaceUpdateStarted', 'InPlaceUpdateDrained', 'InPlaceUpdateSucceeded']);
  });

  it('a rollout pod a budget holds: the request is recorded (Pending) and the pod waits, serving; no drain written', async () => {
    const pod = servingPod();
    const h = harness(pod, [{ metadata: { name: 'web-pdb', namespace: pod.metadata.namespace ?? '', resourceVersion: '7' }, spec: { selector: { matchLabels: { app: 'web' } } }, status: { disruptionsAllowed: 0 } }]);
    expect(await h.reconciler.startRequest(h.pods.store.get(h.key)!, request({ rollout: 'Deployment/web' }), undefined)).toBe('request');
    await h.settle(later(1));
    const stored = h.api.stored();
    expect(JSON.parse(stored.metadata.annotations?.[UPDATE_ANNOTATION] ?? '{}')).toMatchObject({ phase: 'Pending', rollout: 'Deployment/web' });
    expect(stored.status?.conditions?.find((c) => c.type === READINESS_GATE)).toMatchObject({ status: 'True', reason: 'WaitingForDisruptionBudget' });
    expect(stored.spec.containers[0]?.image).toBe(OLD);
    expect(h.api.patches.map((w) => w.path.endsWith('/status'))).toEqual([false, true]);
  });

  it('a rollout start decided on a stale copy is refused (409) and the fresh copy taken: nothing written over a newer pod', async () => {
    const h = harness(servingPod());
    const stale = h.pods.store.get(h.key)!;
    h.pods.upsert(h.api.writtenByOthers(kubeletRestarted)); // the kubelet wrote in between
    await expect(h.reconciler.startRequest(stale, request({ rollout: 'Deployment/web' }), undefined)).rejects.toMatchObject({ status: 409 });
    expect(h.api.stored().metadata.annotations?.[UPDATE_ANNOTATION]).toBeUndefined();
  });
});
