// The rollout's every decision, one pure step, on workload shapes captured from
// the test control plane (test/fixtures/rollout/, written by
// test/e2e/rollout-shapes.test.ts with CAPTURE_FIXTURES=1) and trimmed as the
// watcher's caches trim them. Rows that need a shape the control plane passes
// through too briefly to catch start from a captured one and name their edit.

import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { Pod } from '../../src/core/kube-types.ts';
import { PARTITION_ANNOTATION, ROLLOUT_ANNOTATION, ROLLOUT_IN_PROGRESS, ROLLOUT_STATE_ANNOTATION, UPDATE_ANNOTATION } from '../../src/core/names.ts';
import { encodeRolloutState, parseRolloutState, type RolloutState } from '../../src/core/rollout-state.ts';
import { OBSERVE_WAIT_MS, REWARN_MS, rolloutStep, WAIT_MS, type RolloutAction, type RolloutStep } from '../../src/core/rollout-step.ts';
import type { Workload } from '../../src/core/workload-types.ts';
import { trimPod, trimWorkload } from '../../src/watcher/trim.ts';

interface Shape { workload: Workload; replicaSets: Workload[]; pods: Pod[] }

function fixture(name: string): Shape {
  const raw = JSON.parse(readFileSync(join(import.meta.dirname, '..', 'fixtures', 'rollout', `${name}.json`), 'utf8')) as { workload: unknown; replicaSets: unknown[]; pods: unknown[] };
  return { workload: trimWorkload(raw.workload), replicaSets: raw.replicaSets.map(trimWorkload), pods: raw.pods.map(trimPod) };
}

const stateOf = (w: Workload): RolloutState => {
  const parsed = parseRolloutState(w.metadata.annotations?.[ROLLOUT_STATE_ANNOTATION]);
  if (!parsed.ok || !parsed.state) throw new Error('the fixture records no rollout');
  return parsed.state;
};

function step(kind: 'Deployment' | 'StatefulSet', s: Shape, now?: number): RolloutStep {
  const parsed = parseRolloutState(s.workload.metadata.annotations?.[ROLLOUT_STATE_ANNOTATION]);
  if (!parsed.ok) throw new Error(parsed.error);
  return rolloutStep({
    kind, workload: s.workload, state: parsed.state, replicaSets: s.replicaSets, pods: s.pods,
    order: { priority: undefined, scatterKey: undefined, nodeLabels: () => undefined },
    now: now ?? (parsed.state ? Date.parse(parsed.state.startedAt) + 1000 : 0),
  });
}

const kinds = (s: RolloutStep) => s.actions.map((a) => a.do);
const action = <K extends RolloutAction['do']>(s: RolloutStep, k: K) => s.actions.find((a): a is Extract<RolloutAction, { do: K }> => a.do === k);

/** Edits of a captured shape, each named where it is used. */
const withAnnotations = (w: Workload, annotations: Record<string, string>): Workload => ({ ...w, metadata: { ...w.metadata, annotations: { ...w.metadata.annotations, ...annotations } } });
const withSpec = (w: Workload, spec: Partial<Workload['spec']>): Workload => ({ ...w, spec: { ...w.spec, ...spec } });
const withoutAnnotation = (w: Workload, key: string): Workload => {
  const { [key]: _gone, ...annotations } = w.metadata.annotations ?? {};
  return { ...w, metadata: { ...w.metadata, annotations } };
};
/** The rollout state of `held`, put back on a shape the watcher already released. */
const heldAgain = (after: Shape, held: Shape): Shape => ({ ...after, workload: withAnnotations(after.workload, { [ROLLOUT_STATE_ANNOTATION]: held.workload.metadata.annotations?.[ROLLOUT_STATE_ANNOTATION] ?? '' }) });
const ownReplicaSets = (s: Shape) => s.replicaSets.filter((r) => r.metadata.ownerReferences?.some((o) => o.uid === s.workload.metadata.uid));

describe('Deployment, held by the webhook (captured)', () => {
  const held = fixture('deployment-held');
  const target = held.workload.spec.template.spec.containers[0]?.image ?? '';

  it('is captured as the webhook leaves it: paused, rollout state, the ReplicaSet still on the old image', () => {
    expect(held.workload.spec.paused).toBe(true);
    expect(stateOf(held.workload).images).toEqual({ app: target });
    expect(ownReplicaSets(held).map((r) => r.spec.template.spec.containers[0]?.image)).not.toContain(target);
  });

  it('checks the pods are managed, keeps the history, retargets the ReplicaSet, starts one pod (maxUnavailable 1)', () => {
    const s = step('Deployment', held);
    expect(kinds(s)).toEqual(['check-managed', 'history', 'retarget', 'start', 'progressing']);
    expect(action(s, 'retarget')?.patch).toEqual({ spec: { template: { metadata: { annotations: { [ROLLOUT_IN_PROGRESS]: 'true' } }, spec: { containers: [{ name: 'app', image: target }] } } } });
    const start = action(s, 'start');
    expect(start?.plan.start).toHaveLength(1);
    expect(start?.plan.start[0]).toBe([...held.pods.map((p) => p.metadata.name ?? '')].sort()[0]);
    expect(start?.plan).toMatchObject({ total: 4, updated: 0, unavailable: 0, done: false });
  });

  it('with maxUnavailable 3 (edited): three pods at once', () => {
    const wide = { ...held, workload: withSpec(held.workload, { strategy: { type: 'RollingUpdate', rollingUpdate: { maxUnavailable: 3, maxSurge: 1 } } }) };
    expect(action(step('Deployment', wide), 'start')?.plan.start).toHaveLength(3);
  });

  it('with maxUnavailable 0 (edited): the surge ReplicaSet first, then wait for it', () => {
    const surge = { ...held, workload: withSpec(held.workload, { strategy: { type: 'RollingUpdate', rollingUpdate: { maxUnavailable: 0, maxSurge: 2 } } }) };
    const s = step('Deployment', surge);
    expect(kinds(s)).toEqual(['check-managed', 'history', 'retarget', 'create-surge']);
    expect(action(s, 'create-surge')?.size).toBe(2);
    expect(s.requeueAfterMs).toBe(WAIT_MS);
  });

  it('inplace-gate.dev/rollout: recreate set (edited): falls back, nothing else', () => {
    const s = step('Deployment', { ...held, workload: withAnnotations(held.workload, { [ROLLOUT_ANNOTATION]: 'recreate' }) });
    expect(kinds(s)).toEqual(['fall-back']);
  });

  it('a second ReplicaSet running pods (edited: a copy of the current one, another uid): a native rollout is under way, it falls back', () => {
    const [rs] = ownReplicaSets(held);
    if (!rs) throw new Error('no ReplicaSet in the fixture');
    const other = { ...rs, metadata: { ...rs.metadata, name: `${rs.metadata.name ?? ''}-other`, uid: 'other-uid' } };
    const s = step('Deployment', { ...held, replicaSets: [...held.replicaSets, other] });
    expect(kinds(s)).toEqual(['fall-back']);
    expect(action(s, 'fall-back')?.note).toContain('a native rollout under way');
  });

  it('progressDeadlineSeconds passed with no pod brought to the target: stalled, newly failed; warned again only after REWARN_MS', () => {
    const state = stateOf(held.workload);
    const deadline = Number(held.workload.spec.progressDeadlineSeconds ?? 600) * 1000;
    const late = Date.parse(state.startedAt) + deadline + 1000;
    const s = step('Deployment', held, late);
    const stalled = action(s, 'stalled');
    expect(stalled).toMatchObject({ reason: 'ProgressDeadlineExceeded', first: true });
    expect(stalled?.state.stalled).toContain('progressDeadlineSeconds');
    expect(kinds(s)).not.toContain('progressing');
    // Recorded as stalled: the next looks within REWARN_MS write nothing more.
    const recorded = { ...held, workload: withAnnotations(held.workload, { [ROLLOUT_STATE_ANNOTATION]: encodeRolloutState(stalled?.state ?? state) }) };
    expect(action(step('Deployment', recorded, late + 1000), 'stalled')).toBeUndefined();
    expect(action(step('Deployment', recorded, late + REWARN_MS + 1000), 'stalled')).toMatchObject({ first: false });
  });
});

describe('Deployment, mid-rollout (captured)', () => {
  const mid = fixture('deployment-mid');

  it('is captured with the ReplicaSet retargeted and a pod out', () => {
    const target = mid.workload.spec.template.spec.containers[0]?.image;
    expect(ownReplicaSets(mid).some((r) => r.spec.template.spec.containers[0]?.image === target)).toBe(true);
    expect(mid.pods.some((p) => p.metadata.annotations?.[UPDATE_ANNOTATION] !== undefined)).toBe(true);
  });

  it('neither retargets nor keeps history again; starts only what the window has free', () => {
    const s = step('Deployment', mid);
    expect(kinds(s)).not.toContain('retarget');
    expect(kinds(s)).not.toContain('history');
    const plan = action(s, 'start')?.plan;
    expect(plan?.unavailable).toBeGreaterThan(0);
    expect(plan?.start).toEqual([]);
  });

  it('a pod Stalled (edited: its phase): the rollout is stalled, InPlaceRolloutStalled, naming it', () => {
    const out = mid.pods.find((p) => p.metadata.annotations?.[UPDATE_ANNOTATION] !== undefined);
    if (!out) throw new Error('no pod out in the fixture');
    const update = JSON.parse(out.metadata.annotations?.[UPDATE_ANNOTATION] ?? '{}') as Record<string, unknown>;
    const stalledPod = { ...out, metadata: { ...out.metadata, annotations: { ...out.metadata.annotations, [UPDATE_ANNOTATION]: JSON.stringify({ ...update, phase: 'Stalled' }) } } };
    const s = step('Deployment', { ...mid, pods: mid.pods.map((p) => (p === out ? stalledPod : p)) });
    expect(action(s, 'stalled')).toMatchObject({ reason: 'InPlaceRolloutStalled', first: true });
    expect(action(s, 'stalled')?.why).toContain(out.metadata.name ?? '');
  });
});

describe('Deployment, every pod done (captured after the rollout, its state put back)', () => {
  const held = fixture('deployment-held');
  const after = fixture('deployment-after');

  it('is captured released: no state, nothing to do', () => {
    expect(after.workload.metadata.annotations?.[ROLLOUT_STATE_ANNOTATION]).toBeUndefined();
    expect(step('Deployment', after).actions).toEqual([]);
  });

  it('with the state put back: history duplicates only, surges removed, released with every pod', () => {
    const s = step('Deployment', heldAgain(after, held));
    expect(kinds(s)).toEqual(['history', 'remove-surges', 'release']);
    expect(action(s, 'history')?.scope).toBe('duplicates-only');
    expect(action(s, 'release')?.pods).toBe(4);
  });

  it('and inplace-gate.dev/partition 1 (edited): one pod kept back, so not released', () => {
    const kept = heldAgain(after, held);
    const s = step('Deployment', { ...kept, workload: withAnnotations(kept.workload, { [PARTITION_ANNOTATION]: '1' }) });
    expect(kinds(s)).not.toContain('release');
  });

  it('scaled to 0 (edited: Deployment and ReplicaSets): nothing to update, released with none', () => {
    const kept = heldAgain(after, held);
    const zero = { ...kept, workload: withSpec(kept.workload, { replicas: 0 }), replicaSets: kept.replicaSets.map((r) => ({ ...withSpec(r, { replicas: 0 }), status: { ...r.status, replicas: 0 } })) };
    expect(step('Deployment', zero).actions).toEqual([{ do: 'release', pods: 0 }]);
  });
});

describe('StatefulSet, held by the webhook (captured)', () => {
  const held = fixture('statefulset-held');

  it('reads the controller observation before it starts the highest ordinal', () => {
    const s = step('StatefulSet', held);
    const order = kinds(s);
    expect(order.indexOf('check-observed')).toBeGreaterThanOrEqual(0);
    expect(order.indexOf('check-observed')).toBeLessThan(order.indexOf('start'));
    expect(order).toContain('check-managed');
    expect(action(s, 'start')?.plan.start).toEqual(['db-2']);
    expect(action(s, 'start')?.revision).toBe(held.workload.status?.updateRevision);
  });

  it('no updateRevision yet (edited): waits for the controller, no pod started', () => {
    const w = { ...held.workload, status: { ...held.workload.status, updateRevision: undefined } };
    const s = step('StatefulSet', { ...held, workload: w });
    expect(kinds(s)).not.toContain('start');
    expect(s.requeueAfterMs).toBe(OBSERVE_WAIT_MS);
  });

  it('switched to OnDelete (edited): falls back once the template is observed', () => {
    const s = step('StatefulSet', { ...held, workload: withSpec(held.workload, { updateStrategy: { type: 'OnDelete' } }) });
    expect(kinds(s).slice(-2)).toEqual(['check-observed', 'fall-back']);
  });
});

describe('StatefulSet, every pod done (captured after the rollout, its state put back)', () => {
  const held = fixture('statefulset-held');
  const after = fixture('statefulset-after');

  it('hands back the user partition (0) and ends', () => {
    const s = step('StatefulSet', heldAgain(after, held));
    expect(action(s, 'finish-statefulset')).toEqual({ do: 'finish-statefulset', partition: 0, rollingUpdate: true, pods: 3 });
    expect(kinds(s)).not.toContain('start');
  });

  it('with inplace-gate.dev/partition 1 (edited): stays held, recorded as partitioned, never handed a lower partition', () => {
    const kept = heldAgain(after, held);
    const s = step('StatefulSet', { ...kept, workload: withAnnotations(kept.workload, { [PARTITION_ANNOTATION]: '1' }) });
    expect(kinds(s)).not.toContain('finish-statefulset');
    expect(action(s, 'write-state')?.state.partitionHeld).toBe(true);
    // The last word on the status (this edited shape lacks the Reconciling=True a live one has, so it is written first).
    expect(s.actions.filter((a) => a.do === 'report').at(-1)).toMatchObject({ phase: { kind: 'partitioned' } });
  });

  it('no rollout recorded but the rollout conditions left True (edited): they are ended, nothing else', () => {
    const w = withoutAnnotation(after.workload, ROLLOUT_STATE_ANNOTATION);
    const leftover = { ...w, status: { ...w.status, conditions: [{ type: 'Reconciling', status: 'True', reason: 'InPlaceRollout', message: 'in-place rollout (inplace-gate): updating pods in place' }] } };
    expect(step('StatefulSet', { ...after, workload: leftover }).actions).toEqual([{ do: 'report', phase: { kind: 'ended' }, ended: true }]);
  });
});
