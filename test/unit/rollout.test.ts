import { describe, expect, it } from 'vitest';
import { planRollout, resolveMaxUnavailable, type RolloutPod } from '../../src/core/rollout.ts';

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
