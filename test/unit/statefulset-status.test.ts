import { describe, expect, it } from 'vitest';
import jsonpatch from 'fast-json-patch';
import { mutate } from '../../src/core/admission/index.ts';
import type { AdmissionRequest } from '../../src/core/admission/request.ts';
import { defaultAdmissionConfig } from '../../src/core/config.ts';
import { DEFAULT_WATCHER_USER, ROLLOUT_STATE_ANNOTATION } from '../../src/core/names.ts';
import { encodeRolloutState, type RolloutState } from '../../src/core/rollout-state.ts';
import { heldStatus, leftoverConditions, mergeConditions, rolloutConditions, rolloutPhase, sameJson, templateObserved, type RevisionView, type StatusCondition } from '../../src/core/statefulset-status.ts';
import type { Workload } from '../../src/core/workload-types.ts';
import { expectDecision, patchOf } from '../support/apply.ts';

const NOW = '2026-12-03T18:00:00Z';
const state: RolloutState = { images: { app: 'web:2' }, requestedBy: 'alice', startedAt: NOW, partition: 0 };
const controllerConditions: StatusCondition[] = [];
const reconciling = (status: string, reason: string) => ({ type: 'Reconciling', status, reason });

describe('heldStatus: a StatefulSet status write while its rollout is recorded', () => {
  const cases: { name: string; status: { observedGeneration?: number; conditions?: StatusCondition[] }; generation: number; state: RolloutState | undefined; observed: number | undefined; conditions: { type: string; status: string; reason: string }[] | 'unchanged' }[] = [
    { name: 'running: the controller observed the generation -> held one below, Reconciling True', status: { observedGeneration: 7, conditions: controllerConditions }, generation: 7, state,
      observed: 6, conditions: [reconciling('True', 'InPlaceRollout'), { type: 'Stalled', status: 'False', reason: 'InPlaceRollout' }] },
    { name: 'running: already below (the controller is behind) -> kept as written', status: { observedGeneration: 4, conditions: rolloutConditions({ kind: 'running' }) }, generation: 7, state,
      observed: undefined, conditions: 'unchanged' },
    { name: 'running, already held and the conditions in place -> stored as written (a no-op write)', status: { observedGeneration: 6, conditions: rolloutConditions({ kind: 'running' }) }, generation: 7, state,
      observed: undefined, conditions: 'unchanged' },
    { name: 'stalled: the generation goes through (kstatus reads Stalled only then), Reconciling False, Stalled True', status: { observedGeneration: 7, conditions: rolloutConditions({ kind: 'running' }) }, generation: 7, state: { ...state, stalled: 'web-1 did not come back' },
      observed: 7, conditions: [reconciling('False', 'InPlaceRolloutStalled'), { type: 'Stalled', status: 'True', reason: 'InPlaceRolloutStalled' }] },
    { name: 'partitioned: the pods in scope are done -> not held, Reconciling False', status: { observedGeneration: 7, conditions: rolloutConditions({ kind: 'running' }) }, generation: 7, state: { ...state, partitionHeld: true },
      observed: 7, conditions: [reconciling('False', 'InPlaceRolloutPartitioned'), { type: 'Stalled', status: 'False', reason: 'InPlaceRolloutPartitioned' }] },
    { name: 'no rollout -> as written', status: { observedGeneration: 7 }, generation: 7, state: undefined, observed: undefined, conditions: 'unchanged' },
  ];
  it.each(cases)('$name', (c) => {
    const out = heldStatus(c.status, c.generation, rolloutPhase(c.state), NOW);
    if (c.observed === undefined && c.conditions === 'unchanged') {
      expect(out).toBeUndefined();
      return;
    }
    expect(out).toBeDefined();
    expect(out?.observedGeneration).toBe(c.observed ?? c.status.observedGeneration);
    if (c.conditions !== 'unchanged') expect(out?.conditions?.map(({ type, status, reason }) => ({ type, status, reason }))).toEqual(c.conditions);
  });

  it('keeps other conditions and their order, and a condition whose status stays keeps its lastTransitionTime', () => {
    const have: StatusCondition[] = [
      { type: 'Available', status: 'True', reason: 'X', lastTransitionTime: '2026-01-01T00:00:00Z' },
      { type: 'Reconciling', status: 'True', reason: 'Other', message: 'm', lastTransitionTime: '2026-01-01T00:00:00Z' },
    ];
    const out = mergeConditions(have, rolloutConditions({ kind: 'running' }), NOW);
    expect(out?.map((c) => [c.type, c.reason, c.lastTransitionTime])).toEqual([
      ['Available', 'X', '2026-01-01T00:00:00Z'],
      ['Reconciling', 'InPlaceRollout', '2026-01-01T00:00:00Z'],
      ['Stalled', 'InPlaceRollout', NOW],
    ]);
    expect(mergeConditions(out ?? [], rolloutConditions({ kind: 'running' }), NOW)).toBeUndefined();
  });

  it('never has Reconciling and Stalled True together (kstatus reads the first True in list order)', () => {
    for (const phase of [{ kind: 'running' }, { kind: 'stalled', why: 'x' }, { kind: 'partitioned' }, { kind: 'ended' }] as const) {
      expect(rolloutConditions(phase).filter((c) => c.status === 'True').length).toBeLessThanOrEqual(1);
    }
  });
});

describe('leftoverConditions: the rollout ended but the status still says it runs', () => {
  it.each([
    { name: 'ours, running', conditions: rolloutConditions({ kind: 'running' }), want: true },
    { name: 'ours, stalled', conditions: rolloutConditions({ kind: 'stalled', why: 'web-1' }), want: true },
    { name: 'ours, ended', conditions: rolloutConditions({ kind: 'ended' }), want: false },
    { name: 'another controller\'s Reconciling', conditions: [{ type: 'Reconciling', status: 'True', message: 'operator at work' }], want: false },
    { name: 'none', conditions: undefined, want: false },
  ])('$name -> $want', ({ conditions, want }) => {
    expect(leftoverConditions(conditions)).toBe(want);
  });
});

describe('templateObserved: has the controller observed the current template?', () => {
  const template = { metadata: { labels: { app: 'web' }, creationTimestamp: null }, spec: { containers: [{ name: 'app', image: 'web:2', imagePullPolicy: 'IfNotPresent' }], restartPolicy: 'Always' } };
  const revision = (name: string, tpl: unknown, ownerUid: string | undefined = 'uid-1'): RevisionView => ({ name, ownerUid, data: { spec: { template: { ...(tpl as object), $patch: 'replace' } } } });
  const set = { uid: 'uid-1', generation: 7, observedGeneration: 6, updateRevision: 'web-abc' };
  const older = { ...template, spec: { ...template.spec, containers: [{ name: 'app', image: 'web:1', imagePullPolicy: 'IfNotPresent' }] } };
  const cases: { name: string; set: typeof set | Omit<typeof set, 'updateRevision'> & { updateRevision: string | undefined }; revision?: RevisionView; want: string }[] = [
    { name: 'status of this generation (no hold: webhook down, stalled)', set: { ...set, observedGeneration: 7 }, want: 'observed' },
    { name: 'held status: the revision must be read', set, want: 'read-revision' },
    { name: 'no updateRevision yet', set: { ...set, updateRevision: undefined }, want: 'wait' },
    { name: 'the revision holds this template (key order and nulls aside)', set, revision: revision('web-abc', { spec: template.spec, metadata: { labels: { app: 'web' } } }), want: 'observed' },
    { name: 'the revision holds the previous template (the controller has not seen the change)', set, revision: revision('web-abc', older), want: 'wait' },
    { name: 'another StatefulSet\'s revision of that name', set, revision: revision('web-abc', template, 'uid-2'), want: 'wait' },
    { name: 'a revision of another name (updateRevision moved on since)', set, revision: revision('web-old', template), want: 'read-revision' },
  ];
  it.each(cases)('$name -> $want', ({ set: s, revision: r, want }) => {
    expect(templateObserved(s, template, r).kind).toBe(want);
  });

  it('sameJson: order of keys and null-valued keys aside, arrays in order', () => {
    expect(sameJson({ a: 1, b: null, c: [1, { d: 2 }] }, { c: [1, { d: 2 }], a: 1 })).toBe(true);
    expect(sameJson({ c: [1, 2] }, { c: [2, 1] })).toBe(false);
    expect(sameJson({ a: {} }, {})).toBe(false);
  });
});

describe('the webhook on statefulsets/status', () => {
  function sts(annotations: Record<string, string>, observedGeneration: number): Workload {
    return {
      apiVersion: 'apps/v1', kind: 'StatefulSet',
      metadata: { name: 'web', namespace: 'shop', generation: 5, annotations },
      spec: { replicas: 3, template: { metadata: { labels: { app: 'web' } }, spec: { containers: [{ name: 'app', image: 'web:2' }] } }, updateStrategy: { type: 'RollingUpdate', rollingUpdate: { partition: 3 } } },
      status: { observedGeneration, replicas: 3, readyReplicas: 3, updatedReplicas: 0, updateRevision: 'web-2', currentRevision: 'web-1' },
    };
  }
  const request = (object: Workload, oldObject: Workload, username = 'system:serviceaccount:kube-system:statefulset-controller'): AdmissionRequest => ({
    uid: 'u', kind: { group: 'apps', version: 'v1', kind: 'StatefulSet' }, resource: { group: 'apps', version: 'v1', resource: 'statefulsets' }, subResource: 'status',
    name: 'web', namespace: 'shop', operation: 'UPDATE', userInfo: { username }, object, oldObject,
  });
  const held = { [ROLLOUT_STATE_ANNOTATION]: encodeRolloutState(state) };

  it('holds the controller\'s observedGeneration below the generation while the stored StatefulSet records a rollout', () => {
    const next = sts(held, 5);
    const decision = expectDecision(mutate(request(next, sts(held, 4)), defaultAdmissionConfig, new Date(NOW)));
    const after = jsonpatch.applyPatch(structuredClone(next), patchOf(next, decision)).newDocument;
    expect(after.status?.observedGeneration).toBe(4);
    expect(after.status?.conditions).toContainEqual(expect.objectContaining({ type: 'Reconciling', status: 'True' }));
  });

  it('lets the write through when the stored StatefulSet records none, and for the watcher', () => {
    expect(expectDecision(mutate(request(sts({}, 5), sts({}, 4)), defaultAdmissionConfig, new Date(NOW))).type).toBe('allow');
    expect(expectDecision(mutate(request(sts(held, 5), sts(held, 4), DEFAULT_WATCHER_USER), defaultAdmissionConfig, new Date(NOW))).type).toBe('allow');
  });
});
