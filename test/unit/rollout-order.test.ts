import { describe, expect, it } from 'vitest';
import { domainOf, parsePriority, rankOf } from '../../src/core/rollout-order.ts';
import { planRollout, type RolloutPod } from '../../src/core/rollout.ts';

const OLD = { app: 'web:1' };
const NEW = { app: 'web:2' };

describe('update priority from the workload annotation', () => {
  it('weightPriority: the sum of the matching terms, higher first', () => {
    const parsed = parsePriority('{"weightPriority":[{"weight":50,"matchSelector":{"matchLabels":{"tier":"canary"}}},{"weight":10,"matchSelector":{"matchExpressions":[{"key":"zone","operator":"In","values":["a"]}]}}]}');
    expect(parsed.ok).toBe(true);
    if (!parsed.ok) return;
    expect(rankOf({ tier: 'canary', zone: 'a' }, parsed.priority)).toEqual([60]);
    expect(rankOf({ zone: 'a' }, parsed.priority)).toEqual([10]);
    expect(rankOf({}, parsed.priority)).toEqual([0]);
  });

  it('orderPriority: pods with the key first, by its value (numbers as numbers), then the next key', () => {
    const parsed = parsePriority('{"orderPriority":[{"orderedKey":"order"}]}');
    if (!parsed.ok) throw new Error(parsed.error);
    const pods: RolloutPod[] = [
      { name: 'a', ready: true, specImages: OLD, rank: rankOf({ order: '2' }, parsed.priority) },
      { name: 'b', ready: true, specImages: OLD, rank: rankOf({ order: '10' }, parsed.priority) },
      { name: 'c', ready: true, specImages: OLD, rank: rankOf({}, parsed.priority) },
    ];
    expect(planRollout(pods, NEW, 1, { order: 'name' }).start).toEqual(['b']);
    expect(planRollout(pods, NEW, 2, { order: 'name' }).start).toEqual(['b', 'a']);
  });

  it.each([
    ['not JSON', '{', /not JSON/],
    ['both kinds', '{"weightPriority":[],"orderPriority":[]}', /needs/],
    ['a weight that is not a number', '{"weightPriority":[{"weight":"5","matchSelector":{}}]}', /needs/],
    ['an empty key', '{"orderPriority":[{"orderedKey":""}]}', /needs/],
  ])('refused, with the shape it needs: %s', (_what, raw, error) => {
    const parsed = parsePriority(raw);
    expect(parsed.ok).toBe(false);
    if (!parsed.ok) expect(parsed.error).toMatch(error);
  });

  it('with a partition, the lowest priority pods are the ones kept', () => {
    const pods: RolloutPod[] = ['a', 'b', 'c'].map((name, i) => ({ name, ready: true, specImages: OLD, rank: [i] }));
    expect(planRollout(pods, NEW, 3, { order: 'name', partition: 1 }).start).toEqual(['c', 'b']);
  });
});

describe('scatter: updates in flight spread across a topology domain', () => {
  it('the next pod comes from the domain with the fewest in flight, not the next one by name on the same node', () => {
    const pods: RolloutPod[] = [
      { name: 'web-0', ready: true, specImages: OLD, domain: 'node-a' },
      { name: 'web-1', ready: true, specImages: OLD, domain: 'node-a' },
      { name: 'web-2', ready: true, specImages: OLD, domain: 'node-a' },
      { name: 'web-3', ready: true, specImages: OLD, domain: 'node-b' },
      { name: 'web-4', ready: true, specImages: OLD, domain: 'node-b' },
    ];
    expect(planRollout(pods, NEW, 2, { order: 'name' }).start).toEqual(['web-0', 'web-3']);
    // Without scatter, both from node-a.
    expect(planRollout(pods.map(({ domain: _d, ...p }) => p), NEW, 2, { order: 'name' }).start).toEqual(['web-0', 'web-1']);
    // A domain already busy is avoided: web-0 (node-a) is updating, so the one free slot goes to node-b.
    const busy = pods.map((p) => (p.name === 'web-0' ? { ...p, specImages: NEW, update: { phase: 'Updating', images: NEW }, ready: false } : p));
    expect(planRollout(busy, NEW, 2, { order: 'name' }).start).toEqual(['web-3']);
    expect(planRollout(busy.map(({ domain: _d, ...p }) => p), NEW, 2, { order: 'name' }).start).toEqual(['web-1']);
  });

  it('priority first: scatter only orders pods of equal priority', () => {
    const pods: RolloutPod[] = [
      { name: 'a', ready: true, specImages: OLD, domain: 'n1', rank: [5] },
      { name: 'b', ready: true, specImages: OLD, domain: 'n1', rank: [5] },
      { name: 'c', ready: true, specImages: OLD, domain: 'n2', rank: [1] },
    ];
    expect(planRollout(pods, NEW, 2, { order: 'name' }).start).toEqual(['a', 'b']);
  });

  it('domains: the node for the hostname key, else the node label', () => {
    expect(domainOf('n1', undefined, 'kubernetes.io/hostname')).toBe('n1');
    expect(domainOf('n1', { 'topology.kubernetes.io/zone': 'z1' }, 'topology.kubernetes.io/zone')).toBe('z1');
    expect(domainOf(undefined, undefined, 'kubernetes.io/hostname')).toBeUndefined();
    expect(domainOf('n1', {}, undefined)).toBeUndefined();
  });
});
