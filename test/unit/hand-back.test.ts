import { describe, expect, it } from 'vitest';
import { cancelRequest, handBackPatch, releasePlan, type PodWrite, type ReleaseInput } from '../../src/core/hand-back.ts';
import type { Pod } from '../../src/core/kube-types.ts';
import type { UpdateState } from '../../src/core/state.ts';
import type { Workload } from '../../src/core/workload-types.ts';

const now = new Date('2026-12-03T12:00:00Z');
const config = { defaultGraceSeconds: 10, progressDeadlineSeconds: 300 };
const ctx = { now, config, user: 'alice' };
const at = (s: number) => new Date(now.getTime() - s * 1000).toISOString();

type Phase = 'none' | 'Pending' | 'Draining' | 'Updating' | 'Updating-proven' | 'Stalled' | 'StalledInDrain' | 'Refused' | 'PendingDrained';

function state(phase: Phase): UpdateState | undefined {
  const base = { images: { app: 'app:2' }, requestedBy: 'bob', requestedAt: at(60) };
  switch (phase) {
    case 'none': return undefined;
    case 'Pending': return { ...base, phase: 'Pending' };
    case 'PendingDrained': return { ...base, phase: 'Pending', drained: true, before: { app: { image: 'app:1', containerID: 'c1', imageID: 'i1', restartCount: 0 } } };
    case 'Draining': return { ...base, phase: 'Draining', drainStartedAt: at(5), drainDeadline: at(-5) };
    case 'Updating':
    case 'Updating-proven':
      return { ...base, phase: 'Updating', updatedAt: at(3), generation: 2, before: { app: { image: 'app:1', containerID: 'c1', imageID: 'i1', restartCount: 0 } } };
    case 'Stalled': return { ...base, phase: 'Stalled', updatedAt: at(30), generation: 2, stalled: { reason: 'ImagePullBackOff', message: 'Back-off pulling image', since: at(1) } };
    case 'StalledInDrain': return { ...base, phase: 'Stalled', stalled: { reason: 'DrainDeadlineExceeded', message: 'still listed', since: at(1) } };
    case 'Refused': return { ...base, phase: 'Stalled', stalled: { reason: 'ImageWriteRefused', message: 'denied by policy', since: at(1) } };
  }
}

/** A managed pod in `phase`; its spec carries app:2 once the images are written. */
function pod(name: string, phase: Phase, opts: { gate?: string; owner?: { kind: string; name: string; uid: string }; revision?: string } = {}): Pod {
  const s = state(phase);
  const written = phase.startsWith('Updating') || phase === 'Stalled';
  const proven = phase === 'Updating-proven';
  return {
    metadata: {
      name, namespace: 'ns', uid: `${name}-uid`, resourceVersion: '11', generation: written ? 2 : 1,
      labels: { 'inplace-gate.dev/managed': 'true', ...(opts.revision ? { 'controller-revision-hash': opts.revision } : {}) },
      annotations: s ? { 'inplace-gate.dev/update': JSON.stringify(s) } : {},
      ...(opts.owner ? { ownerReferences: [{ apiVersion: 'apps/v1', ...opts.owner, controller: true }] } : {}),
    },
    spec: { containers: [{ name: 'app', image: written ? 'app:2' : 'app:1' }], readinessGates: [{ conditionType: 'InPlaceUpdateReady' }] },
    status: {
      observedGeneration: written ? 2 : 1,
      conditions: [{ type: 'InPlaceUpdateReady', status: (opts.gate ?? (phase === 'none' || phase === 'Pending' || phase === 'Refused' ? 'True' : 'False')) as 'True' | 'False' }],
      containerStatuses: [proven
        ? { name: 'app', image: 'app:2', imageID: 'i2', containerID: 'c2', ready: true, restartCount: 1, state: { running: { startedAt: at(1) } } }
        : { name: 'app', image: 'app:1', imageID: 'i1', containerID: 'c1', ready: !written, restartCount: 0, state: { running: { startedAt: at(600) } } }],
    },
  };
}

describe('cancelRequest: one pod, at each phase', () => {
  const rows: { phase: Phase; gate?: string; action: string; annotation?: 'removed' | 'Updating'; condition?: string; event?: boolean; note: RegExp }[] = [
    { phase: 'Pending', action: 'write', annotation: 'removed', event: true, note: /Pending app=app:2 dropped; keeps app=app:1; InPlaceUpdateReady True/ },
    { phase: 'Draining', action: 'write', annotation: 'removed', condition: 'True', event: true, note: /Draining app=app:2 dropped; keeps app=app:1/ },
    { phase: 'StalledInDrain', action: 'write', annotation: 'removed', condition: 'True', event: true, note: /Stalled app=app:2 dropped/ },
    // Made while an earlier write was unproven: back to Updating over the spec's images, condition untouched.
    { phase: 'PendingDrained', gate: 'False', action: 'write', annotation: 'Updating', event: true, note: /stays out of endpoints until app=app:1, written earlier, is proven/ },
    // The kubelet restarts the container whatever cancel does: refused, the condition stays False.
    { phase: 'Updating', action: 'wait', note: /cannot cancel: app=app:2 is written and the kubelet restarts the container .*set the previous images/ },
    { phase: 'Stalled', action: 'refuse', note: /cannot cancel: app=app:2 is written and stalled \(Back-off pulling image\)/ },
    // Proven but not closed (no watcher): closed on the lifecycle's own proof.
    { phase: 'Updating-proven', action: 'write', condition: 'True', note: /app=app:2 proven running; InPlaceUpdateReady True/ },
    { phase: 'Refused', action: 'none', note: /nothing pending \(the apiserver refused app=app:2/ },
    { phase: 'none', action: 'none', note: /no image change pending$/ },
    // No request but the condition left False (a cancel whose status write was lost): True again.
    { phase: 'none', gate: 'False', action: 'write', condition: 'True', note: /no image change pending; InPlaceUpdateReady set True/ },
  ];
  for (const row of rows) {
    it(`${row.phase}${row.gate ? ` (gate ${row.gate})` : ''}: ${row.action}`, () => {
      const p = pod('p', row.phase, row.gate ? { gate: row.gate } : {});
      const r = cancelRequest(p, ctx);
      expect(r.action).toBe(row.action);
      const note = r.action === 'write' ? r.write.note : r.note;
      expect(note).toMatch(row.note);
      if (r.action !== 'write') return;
      const w = r.write;
      const annotations = (w.patch?.metadata as { annotations?: Record<string, string | null>; resourceVersion?: string } | undefined);
      if (row.annotation === 'removed') expect(annotations?.annotations?.['inplace-gate.dev/update']).toBeNull();
      if (row.annotation === 'Updating') {
        const next = JSON.parse(annotations?.annotations?.['inplace-gate.dev/update'] ?? '{}') as UpdateState;
        expect(next).toMatchObject({ phase: 'Updating', images: { app: 'app:1' }, requestedBy: 'alice', generation: 1 });
      }
      // Every pods patch carries the resourceVersion it was decided on.
      if (w.patch) expect(annotations?.resourceVersion).toBe('11');
      expect(w.condition?.status).toBe(row.condition);
      expect(w.event !== undefined).toBe(row.event ?? (row.phase === 'Updating-proven'));
    });
  }

  it('a request made while Updating cannot be cancelled without knowing the writer', () => {
    expect(cancelRequest(pod('p', 'PendingDrained'), { ...ctx, user: undefined }).action).toBe('refuse');
  });

  it('the proven close clears the state in the status write (watcher identity or no webhook)', () => {
    const r = cancelRequest(pod('p', 'Updating-proven'), ctx);
    expect(r.action === 'write' && r.write.clearState).toBe(true);
  });
});

const dep = (over: Partial<Workload['metadata']> = {}, paused = true): Workload => ({
  metadata: {
    name: 'web', namespace: 'ns', uid: 'd-uid', resourceVersion: '21',
    annotations: { 'inplace-gate.dev/rollout-state': JSON.stringify({ images: { app: 'app:2' }, requestedBy: 'bob', startedAt: at(60) }) }, ...over,
  },
  spec: { replicas: 2, paused, selector: {}, template: { metadata: { labels: { app: 'web' } }, spec: { containers: [{ name: 'app', image: 'app:2' }] } } },
});

const recreate = (w: Workload): Workload => ({ ...w, metadata: { ...w.metadata, annotations: { ...w.metadata.annotations, 'inplace-gate.dev/rollout': 'recreate' } } });

const rs = (name: string, image: string, replicas: number, revision: number, extra: { marker?: boolean; surge?: boolean } = {}): Workload => ({
  metadata: {
    name, namespace: 'ns', uid: `${name}-uid`, resourceVersion: `${name}-rv`,
    annotations: { 'deployment.kubernetes.io/revision': String(revision) },
    ownerReferences: [{ apiVersion: 'apps/v1', kind: 'Deployment', name: 'web', uid: 'd-uid', controller: !extra.surge }],
  },
  spec: {
    replicas,
    template: {
      metadata: { labels: { app: 'web', 'pod-template-hash': name.slice(4) }, annotations: extra.marker ? { 'inplace-gate.dev/rollout-in-progress': 'true' } : {} },
      spec: { containers: [{ name: 'app', image }] },
    },
  },
  status: { replicas },
});

const sts = (held: boolean, conditions: unknown[] = []): Workload => ({
  metadata: {
    name: 'db', namespace: 'ns', uid: 's-uid', resourceVersion: '31',
    annotations: held ? { 'inplace-gate.dev/rollout-state': JSON.stringify({ images: { app: 'app:2' }, requestedBy: 'bob', startedAt: at(60), partition: 0 }), 'inplace-gate.dev/partition': '0' } : {},
  },
  spec: { replicas: 2, selector: {}, updateStrategy: { type: 'RollingUpdate', rollingUpdate: { partition: held ? 2 : 0 } }, template: { spec: { containers: [{ name: 'app', image: 'app:2' }] } } },
  status: { currentRevision: 'db-old', updateRevision: 'db-new', conditions },
});

const ownedByRs = (name: string) => ({ kind: 'ReplicaSet', name, uid: `${name}-uid` });
const ops = (input: ReleaseInput) => releasePlan(input).writes.map((w) => (w.op === 'pod' ? `pod ${w.pod.metadata.name ?? ''}` : `${w.op}${'name' in w ? ` ${w.name}` : ''}`));

describe('releasePlan: one workload, one round of writes at a time', () => {
  const rolled = [rs('web-a', 'app:2', 2, 1, { marker: true }), rs('web-k', 'app:1', 0, 1)];
  const pods = [pod('web-a-1', 'Draining', { owner: ownedByRs('web-a') }), pod('web-a-2', 'Pending', { owner: ownedByRs('web-a') }), pod('other', 'Draining')];
  const table: { name: string; input: ReleaseInput; writes: string[] }[] = [
    {
      name: 'Deployment mid-rollout with a surge: first marked recreate, so that a running watcher makes the same writes',
      input: { kind: 'Deployment', workload: dep(), replicaSets: [...rolled, rs('web-surge-x', 'app:2', 1, 0, { surge: true })], pods, ctx },
      writes: ['patch-workload'],
    },
    {
      name: 'marked: surge deleted and ReplicaSet rewound first; the unpause waits',
      input: { kind: 'Deployment', workload: recreate(dep()), replicaSets: [...rolled, rs('web-surge-x', 'app:2', 1, 0, { surge: true })], pods, ctx, marked: true },
      writes: ['delete-replicaset web-surge-x', 'patch-replicaset web-a'],
    },
    {
      name: 'marked and rewound: the kept copy duplicates the rewound template, removed before the unpause, as the fallback does',
      input: { kind: 'Deployment', workload: recreate(dep()), replicaSets: [rs('web-a', 'app:1', 2, 1), rs('web-k', 'app:1', 0, 1)], pods, ctx, marked: true },
      writes: ['delete-replicaset web-k'],
    },
    {
      name: 'the watcher\'s fallback made the hand-back write: the mark goes, then the pods (not the namespace\'s others)',
      input: { kind: 'Deployment', workload: recreate(dep({ annotations: {} }, false)), replicaSets: [rs('web-a', 'app:1', 2, 1)], pods, ctx, marked: true },
      writes: ['patch-workload', 'pod web-a-1', 'pod web-a-2'],
    },
    {
      name: 'a user\'s own recreate is not this release\'s mark: left alone',
      input: { kind: 'Deployment', workload: recreate(dep({ annotations: {} }, false)), replicaSets: [rs('web-a', 'app:1', 2, 1)], pods: [], ctx },
      writes: [],
    },
    {
      name: 'Deployment rewound and history clean: unpaused, state removed, pods cancelled in the same round',
      input: { kind: 'Deployment', workload: dep(), replicaSets: [rs('web-a', 'app:1', 2, 1)], pods, ctx },
      writes: ['patch-workload', 'pod web-a-1', 'pod web-a-2'],
    },
    {
      name: 'Deployment released already: nothing',
      input: { kind: 'Deployment', workload: dep({ annotations: {} }, false), replicaSets: [rs('web-a', 'app:1', 2, 1)], pods: [pod('web-a-1', 'none', { owner: ownedByRs('web-a') })], ctx },
      writes: [],
    },
    {
      name: 'StatefulSet mid-rollout: partition restored and state removed, Reconciling False, the relabelled pod cancelled and relabelled',
      input: {
        kind: 'StatefulSet',
        workload: sts(true, [{ type: 'Reconciling', status: 'True', reason: 'InPlaceRollout', message: 'in-place rollout (inplace-gate): updating pods in place' }]),
        replicaSets: [],
        pods: [pod('db-1', 'Draining', { owner: { kind: 'StatefulSet', name: 'db', uid: 's-uid' }, revision: 'db-new' }), pod('db-0', 'none', { owner: { kind: 'StatefulSet', name: 'db', uid: 's-uid' }, revision: 'db-old' })],
        ctx,
      },
      writes: ['patch-workload', 'workload-conditions', 'pod db-1'],
    },
    {
      name: 'StatefulSet released already: nothing',
      input: { kind: 'StatefulSet', workload: sts(false), replicaSets: [], pods: [pod('db-0', 'none', { owner: { kind: 'StatefulSet', name: 'db', uid: 's-uid' }, revision: 'db-old' })], ctx },
      writes: [],
    },
  ];
  for (const row of table) {
    it(row.name, () => {
      expect(ops(row.input)).toEqual(row.writes);
    });
  }

  it('the hand-back write is the fallback\'s, guarded by the workload\'s resourceVersion', () => {
    expect(handBackPatch('Deployment', dep())).toEqual({ metadata: { resourceVersion: '21', annotations: { 'inplace-gate.dev/rollout-state': null } }, spec: { paused: false } });
    expect(handBackPatch('StatefulSet', sts(true))).toEqual({ metadata: { resourceVersion: '31', annotations: { 'inplace-gate.dev/rollout-state': null } }, spec: { updateStrategy: { rollingUpdate: { partition: 0 } } } });
  });

  it('the hand-back after a mark removes the mark in the same guarded write', () => {
    const plan = releasePlan({ kind: 'Deployment', workload: recreate(dep()), replicaSets: [rs('web-a', 'app:1', 2, 1)], pods: [], ctx, marked: true });
    expect(plan.writes[0]).toMatchObject({ op: 'patch-workload', body: { metadata: { resourceVersion: '21', annotations: { 'inplace-gate.dev/rollout-state': null, 'inplace-gate.dev/rollout': null } }, spec: { paused: false } } });
  });

  it('a StatefulSet pod cancelled goes back to the old revision label in the same guarded write', () => {
    const plan = releasePlan(table.find((r) => r.name.startsWith('StatefulSet mid-rollout'))!.input);
    const w = plan.writes.find((x): x is PodWrite => x.op === 'pod');
    expect(w?.patch).toEqual({ metadata: { resourceVersion: '11', annotations: { 'inplace-gate.dev/update': null }, labels: { 'controller-revision-hash': 'db-old' } } });
  });

  it('a pod restarting on written images is waited for, not written', () => {
    const plan = releasePlan({ kind: 'Deployment', workload: dep({ annotations: {} }, false), replicaSets: [rs('web-a', 'app:2', 1, 1)], pods: [pod('web-a-1', 'Updating', { owner: ownedByRs('web-a') })], ctx });
    expect(plan.writes).toEqual([]);
    expect(plan.waiting).toHaveLength(1);
  });
});
