import { describe, expect, it } from 'vitest';
import { deploymentWindow, planRollout, resolveFenceposts, resolveMaxUnavailable, restoredPartition, statefulSetRolloutStep, statefulSetWindow, type RolloutPod } from '../../src/core/rollout.ts';

const OLD = { app: 'web:1' };
const NEW = { app: 'web:2' };
const pods = (n: number, extra: (i: number) => Partial<RolloutPod> = () => ({})): RolloutPod[] =>
  Array.from({ length: n }, (_, i) => ({ name: `web-${i}`, ordinal: i, ready: true, specImages: OLD, ...extra(i) }));

describe('resolveMaxUnavailable', () => {
  it.each([
    [undefined, 10, '25%', 2],
    ['20%', 10, '25%', 2],
    ['100%', 10, '25%', 10],
    ['25%', 3, '25%', 1],
    [3, 10, '25%', 3],
    [0, 10, '25%', 1],
    [undefined, 5, 1, 1],
  ] as const)('%s of %i (default %s) is %i', (value, replicas, fallback, expected) => {
    expect(resolveMaxUnavailable(value, replicas, fallback)).toBe(expected);
  });
});

describe('resolveFenceposts: as the Deployment controller', () => {
  it.each([
    // maxSurge, maxUnavailable, replicas -> surge (rounds up), unavailable (rounds down)
    [undefined, undefined, 10, 3, 2],
    [undefined, undefined, 1, 1, 0],
    [undefined, undefined, 3, 1, 0],
    [undefined, undefined, 4, 1, 1],
    ['25%', '25%', 7, 2, 1],
    [1, 0, 5, 1, 0],
    [0, 0, 5, 0, 1],
    ['0%', '10%', 5, 0, 1],
    [0, '100%', 3, 0, 3],
    [2, 3, 10, 2, 3],
  ] as const)('maxSurge %s, maxUnavailable %s of %i: %i/%i', (surge, unavailable, replicas, s, u) => {
    expect(resolveFenceposts(surge, unavailable, replicas)).toEqual({ maxSurge: s, maxUnavailable: u });
  });
});

describe('the in-place window: never below native capacity', () => {
  const rolling = (maxUnavailable?: string | number, maxSurge?: string | number) => ({
    type: 'RollingUpdate',
    ...(maxUnavailable === undefined && maxSurge === undefined ? {} : { rollingUpdate: { ...(maxUnavailable === undefined ? {} : { maxUnavailable }), ...(maxSurge === undefined ? {} : { maxSurge }) } }),
  });
  it.each([
    // maxUnavailable 0: surge first, as natively (surge = maxSurge, rounded up, at most replicas).
    ['1 replica, default strategy', 1, undefined, 0, 1],
    ['3 replicas, default strategy', 3, undefined, 0, 1],
    ['4 replicas, default strategy', 4, undefined, 1, undefined],
    ['10 replicas, 25%/25%', 10, rolling('25%', '25%'), 2, undefined],
    ['5 replicas, maxUnavailable 0 / maxSurge 1', 5, rolling(0, 1), 0, 1],
    ['5 replicas, maxUnavailable 0 / maxSurge 60%', 5, rolling(0, '60%'), 0, 3],
    ['2 replicas, maxUnavailable 0 / maxSurge 5', 2, rolling(0, 5), 0, 2],
    ['5 replicas, maxUnavailable 0 / maxSurge 0 (the controller makes it 1)', 5, rolling(0, 0), 1, undefined],
    ['10 replicas, maxUnavailable 3', 10, rolling(3), 3, undefined],
    ['6 replicas, Recreate: all at once', 6, { type: 'Recreate' }, 6, undefined],
    ['1 replica, Recreate', 1, { type: 'Recreate' }, 1, undefined],
  ] as const)('Deployment, %s', (_what, replicas, strategy, maxUnavailable, surge) => {
    const w = deploymentWindow({ replicas, ...(strategy === undefined ? {} : { strategy }) });
    expect(w).toEqual({ inPlace: true, maxUnavailable, ...(surge === undefined ? {} : { surge }) });
  });

  it.each([
    ['default', {}, true, 1],
    ['RollingUpdate, maxUnavailable 2', { updateStrategy: { type: 'RollingUpdate', rollingUpdate: { maxUnavailable: 2 } } }, true, 2],
    ['RollingUpdate, maxUnavailable 10% of 5 (at least 1)', { updateStrategy: { type: 'RollingUpdate', rollingUpdate: { maxUnavailable: '10%' } } }, true, 1],
    ['OnDelete', { updateStrategy: { type: 'OnDelete' } }, false, 0],
  ] as const)('StatefulSet, %s', (_what, spec, inPlace, maxUnavailable) => {
    const w = statefulSetWindow({ replicas: 5, ...spec });
    expect(w.inPlace).toBe(inPlace);
    if (w.inPlace) expect(w.maxUnavailable).toBe(maxUnavailable);
  });
});

describe('planRollout', () => {
  it('starts maxUnavailable pods, in name order', () => {
    expect(planRollout(pods(10), NEW, 2, { order: 'name' })).toMatchObject({ start: ['web-0', 'web-1'], done: false, updated: 0, total: 10 });
  });

  it('is a sliding window: a pod proven frees its slot at once', () => {
    const state = pods(10, (i) => (i === 0 ? { specImages: NEW } : i === 1 ? { update: { phase: 'Updating', images: NEW }, specImages: NEW, ready: false } : {}));
    expect(planRollout(state, NEW, 2, { order: 'name' }).start).toEqual(['web-2']);
  });

  it('never exceeds maxUnavailable, counting pods not ready for other reasons', () => {
    const state = pods(10, (i) => (i === 9 ? { ready: false } : {}));
    const plan = planRollout(state, NEW, 2, { order: 'name' });
    // web-9 is already out: it may be updated at no cost, and one more slot is left.
    expect(plan.start).toEqual(['web-0', 'web-9']);
    expect(plan.unavailable).toBe(1);
  });

  it('counts Pending and Draining pods asked for the target as on their way', () => {
    const state = pods(3, (i) => (i < 2 ? { update: { phase: i === 0 ? 'Pending' : 'Draining', images: NEW } } : {}));
    expect(planRollout(state, NEW, 2, { order: 'name' })).toMatchObject({ start: [], updated: 2 });
  });

  it('retargets pods in flight toward older images without a new slot (a change mid-rollout)', () => {
    const state = pods(4, (i) => (i === 0 ? { update: { phase: 'Draining', images: { app: 'web:1.5' } } } : {}));
    expect(planRollout(state, NEW, 1, { order: 'name' }).start).toEqual(['web-0']);
  });

  it('a stalled pod holds its slot: the rollout stops, and is reported', () => {
    const state = pods(5, (i) => (i === 0 ? { update: { phase: 'Stalled', images: NEW }, specImages: NEW, ready: false } : {}));
    const plan = planRollout(state, NEW, 1, { order: 'name' });
    expect(plan).toMatchObject({ start: [], stalled: ['web-0'], done: false });
  });

  it('a rollback retargets a stalled pod at no cost', () => {
    const state = pods(5, (i) => (i === 0 ? { update: { phase: 'Stalled', images: NEW }, specImages: NEW, ready: false } : {}));
    expect(planRollout(state, OLD, 1, { order: 'name' }).start).toEqual(['web-0']);
  });

  it('StatefulSets go from the highest ordinal down, and a partition keeps the low ordinals', () => {
    expect(planRollout(pods(5), NEW, 1, { order: 'ordinal-desc' }).start).toEqual(['web-4']);
    const held = pods(5, (i) => (i >= 2 ? { specImages: NEW } : {}));
    expect(planRollout(held, NEW, 1, { order: 'ordinal-desc', partition: 2 })).toMatchObject({ start: [], done: true, total: 3 });
  });

  it('is done when every pod in scope runs the target, ready, with no update in flight', () => {
    expect(planRollout(pods(3, () => ({ specImages: NEW })), NEW, 1, { order: 'name' }).done).toBe(true);
    expect(planRollout(pods(3, (i) => ({ specImages: NEW, ready: i !== 1 })), NEW, 1, { order: 'name' }).done).toBe(false);
    expect(planRollout(pods(3, (i) => ({ specImages: NEW, ...(i === 2 ? { update: { phase: 'Updating', images: NEW } } : {}) })), NEW, 1, { order: 'name' }).done).toBe(false);
  });

  it('ignores pods being deleted (the replacement comes from the patched template)', () => {
    expect(planRollout(pods(2, (i) => ({ specImages: NEW, deleting: i === 0 })), NEW, 1, { order: 'name' }).done).toBe(true);
  });

  it('touches only the containers the target names', () => {
    const two = pods(2, () => ({ specImages: { app: 'web:2', proxy: 'envoy:1' } }));
    expect(planRollout(two, NEW, 1, { order: 'name' }).done).toBe(true);
  });
});

describe('a StatefulSet partition annotation holds: the ordinals below it are never handed to the native controller', () => {
  it.each([
    // done, user partition, annotation partition -> step
    [false, 0, 2, { action: 'continue' }],
    [true, 0, 2, { action: 'hold-partition', partition: 2 }],
    [true, 1, 3, { action: 'hold-partition', partition: 3 }],
    [true, 0, 0, { action: 'finish', partition: 0 }],
    [true, 3, 2, { action: 'finish', partition: 3 }],
    [true, 2, 2, { action: 'finish', partition: 2 }],
  ] as const)('done %s, user partition %i, annotation %i', (done, user, annotation, step) => {
    expect(statefulSetRolloutStep({ done }, user, annotation)).toEqual(step);
  });

  it('5 replicas, annotation 2: ordinals 4..2 updated in place, then held; 1 and 0 stay on the old images', () => {
    const updated = pods(5, (i) => (i >= 2 ? { specImages: NEW } : {}));
    const plan = planRollout(updated, NEW, 1, { order: 'ordinal-desc', partition: 2 });
    expect(plan).toMatchObject({ start: [], done: true });
    const step = statefulSetRolloutStep(plan, 0, 2);
    // Not the user's 0: with it, the native controller would recreate web-1 and web-0 on the new revision.
    expect(step.action).not.toBe('finish');
    // Lowered to 0, the rollout goes on in place from web-1, then ends with the user's partition.
    const lowered = planRollout(updated, NEW, 1, { order: 'ordinal-desc', partition: 0 });
    expect(lowered.start).toEqual(['web-1']);
    expect(statefulSetRolloutStep(lowered, 0, 0)).toEqual({ action: 'continue' });
  });

  it('a fallback hands back the larger of the two partitions', () => {
    expect(restoredPartition(0, 2)).toBe(2);
    expect(restoredPartition(3, 2)).toBe(3);
  });
});

describe('planRollout: minReadySeconds and progressDeadlineSeconds, as the controllers count them', () => {
  const now = Date.parse('2026-12-02T12:00:00Z');
  const timing = { now, minReadySeconds: 10, progressDeadlineSeconds: 60, startedAt: now - 30_000 };

  it('a pod Ready on the new images for less than minReadySeconds still holds its slot', () => {
    const state = pods(3, (i) => (i === 0 ? { specImages: NEW, readySince: now - 4_000 } : {}));
    const plan = planRollout(state, NEW, 1, { order: 'name', timing });
    expect(plan).toMatchObject({ start: [], done: false, updated: 1, unavailable: 1, nextAvailableAt: now + 6_000 });
    // Without minReadySeconds the slot is free at once.
    expect(planRollout(state, NEW, 1, { order: 'name', timing: { now } }).start).toEqual(['web-1']);
  });

  it('available once Ready that long: the next pod starts; the last one available ends the rollout', () => {
    expect(planRollout(pods(3, (i) => (i === 0 ? { specImages: NEW, readySince: now - 10_000 } : {})), NEW, 1, { order: 'name', timing }).start).toEqual(['web-1']);
    expect(planRollout(pods(2, () => ({ specImages: NEW, readySince: now - 1_000 })), NEW, 1, { order: 'name', timing }).done).toBe(false);
    expect(planRollout(pods(2, () => ({ specImages: NEW, readySince: now - 11_000 })), NEW, 1, { order: 'name', timing }).done).toBe(true);
  });

  it('no pod brought to the target within the progress deadline: exceeded, counted from the last pod that made it', () => {
    const stuck = pods(3, (i) => (i === 0 ? { update: { phase: 'Updating', images: NEW }, ready: false } : {}));
    expect(planRollout(stuck, NEW, 1, { order: 'name', timing })).toMatchObject({ deadlineExceeded: undefined, deadlineAt: now + 30_000 });
    expect(planRollout(stuck, NEW, 1, { order: 'name', timing: { ...timing, now: now + 31_000 } }).deadlineExceeded).toEqual({ lastProgressAt: now - 30_000 });
    const progressed = stuck.map((p, i) => (i === 2 ? { ...p, specImages: NEW, readySince: now + 20_000 } : p));
    expect(planRollout(progressed, NEW, 1, { order: 'name', timing: { ...timing, now: now + 31_000 } }).deadlineExceeded).toBeUndefined();
    expect(planRollout(pods(2, () => ({ specImages: NEW })), NEW, 1, { order: 'name', timing: { ...timing, now: now + 99_000 } }).deadlineExceeded).toBeUndefined();
  });
});
