import { describe, expect, it } from 'vitest';
import { drainBlockedBy, matchesSelector, type Budget } from '../../src/core/disruption.ts';
import type { Pod } from '../../src/core/kube-types.ts';
import { BUDGET_RETRY_MS, nextStep } from '../../src/core/lifecycle.ts';

const now = new Date('2026-12-02T12:00:00Z');
const ago = (ms: number) => new Date(now.getTime() - ms).toISOString();

function pod(name: string, labels: Record<string, string>, opts: { phase?: string; drained?: boolean; ready?: boolean; readySince?: string } = {}): Pod {
  const state = opts.phase === undefined ? undefined : JSON.stringify({ phase: opts.phase, images: { app: 'app:2' }, requestedBy: 'u', requestedAt: ago(60_000), ...(opts.drained ? { drained: true } : {}) });
  return {
    metadata: { name, namespace: 'ns', uid: `${name}-uid`, labels, ...(state ? { annotations: { 'inplace-gate.dev/update': state } } : {}) },
    spec: { containers: [{ name: 'app', image: 'app:1' }], readinessGates: [{ conditionType: 'InPlaceUpdateReady' }] },
    status: {
      conditions: [
        { type: 'Ready', status: opts.ready === false ? 'False' : 'True', lastTransitionTime: opts.readySince ?? ago(600_000) },
        { type: 'InPlaceUpdateReady', status: 'True', reason: 'PodAdmitted', message: 'managed by inplace-gate' },
      ],
    },
  };
}

const budget = (disruptionsAllowed: number, selector: Budget['selector'] = { matchLabels: { tier: 'web' } }): Budget => ({ namespace: 'ns', name: 'web-pdb', selector, disruptionsAllowed });

describe('matchesSelector', () => {
  it.each([
    [{ matchLabels: { a: '1' } }, { a: '1', b: '2' }, true],
    [{ matchLabels: { a: '1' } }, { a: '2' }, false],
    [{ matchExpressions: [{ key: 'a', operator: 'In', values: ['1', '3'] }] }, { a: '3' }, true],
    [{ matchExpressions: [{ key: 'a', operator: 'NotIn', values: ['1'] }] }, {}, true],
    [{ matchExpressions: [{ key: 'a', operator: 'Exists' }] }, { a: '' }, true],
    [{ matchExpressions: [{ key: 'a', operator: 'DoesNotExist' }] }, { a: '' }, false],
    [{ matchExpressions: [{ key: 'a', operator: 'Gt', values: ['1'] }] }, { a: '2' }, false],
    [{}, { anything: 'x' }, true],
  ])('%j on %j: %s', (selector, labels, expected) => {
    expect(matchesSelector(labels, selector)).toBe(expected);
  });
});

describe('drainBlockedBy: a budget with no disruption to spare holds the drain', () => {
  const me = pod('web-0', { tier: 'web' }, { phase: 'Pending' });

  it('a disruption allowed and none taken: go', () => {
    expect(drainBlockedBy(me, [budget(1)], [me, pod('web-1', { tier: 'web' })], new Set(), now)).toBeUndefined();
  });

  it('none allowed: held, saying which budget', () => {
    expect(drainBlockedBy(me, [budget(0)], [me], new Set(), now)).toEqual({ budget: 'web-pdb', message: 'waiting for PodDisruptionBudget web-pdb: 0 disruption(s) allowed' });
  });

  it('one allowed but another pod of the budget, even of another Deployment, is out and still counted healthy: held', () => {
    const other = pod('api-0', { tier: 'web', app: 'api' }, { phase: 'Draining' });
    expect(drainBlockedBy(me, [budget(1)], [me, other], new Set(), now)?.message).toBe('waiting for PodDisruptionBudget web-pdb: 1 disruption(s) allowed, 1 taken by in-place updates under way');
  });

  it('a pod being taken out right now (its write in flight) counts the same', () => {
    expect(drainBlockedBy(me, [budget(1)], [me, pod('web-1', { tier: 'web' }, { phase: 'Pending' })], new Set(['ns/web-1']), now)).toBeDefined();
  });

  it('an out pod the budget already counts unhealthy (Ready False for a while) is not counted twice', () => {
    const out = pod('web-1', { tier: 'web' }, { phase: 'Updating', ready: false, readySince: ago(5000) });
    expect(drainBlockedBy(me, [budget(1)], [me, out], new Set(), now)).toBeUndefined();
    const justOut = pod('web-1', { tier: 'web' }, { phase: 'Updating', ready: false, readySince: ago(500) });
    expect(drainBlockedBy(me, [budget(1)], [me, justOut], new Set(), now)).toBeDefined();
  });

  it('budgets that do not select the pod, in another namespace, or with no selector, do not hold it', () => {
    expect(drainBlockedBy(me, [budget(0, { matchLabels: { tier: 'db' } })], [me], new Set(), now)).toBeUndefined();
    expect(drainBlockedBy(me, [{ ...budget(0), namespace: 'other' }], [me], new Set(), now)).toBeUndefined();
    expect(drainBlockedBy(me, [{ ...budget(0), selector: undefined }], [me], new Set(), now)).toBeUndefined();
  });
});

describe('the lifecycle while a budget holds the drain', () => {
  const config = { defaultGraceSeconds: 5, progressDeadlineSeconds: 300 };
  const me = pod('web-0', { tier: 'web' }, { phase: 'Pending' });
  const held = { budget: 'web-pdb', message: 'waiting for PodDisruptionBudget web-pdb: 0 disruption(s) allowed' };

  it('the pod keeps serving (condition True) and says why, with an Event; then waits quietly', () => {
    const step = nextStep(me, { now, disruption: held }, config);
    expect(step).toEqual({
      kind: 'setCondition',
      condition: { status: 'True', reason: 'WaitingForDisruptionBudget', message: held.message },
      event: { type: 'Normal', reason: 'InPlaceUpdateWaiting', action: 'Drain', note: `Not draining yet for app=app:2: ${held.message}` },
    });
    const said: Pod = { ...me, status: { conditions: [me.status!.conditions![0]!, { type: 'InPlaceUpdateReady', status: 'True', reason: 'WaitingForDisruptionBudget', message: held.message }] } };
    expect(nextStep(said, { now, disruption: held }, config)).toEqual({ kind: 'none', why: held.message, requeueAfterMs: BUDGET_RETRY_MS });
  });

  it('once the budget allows it, the drain starts', () => {
    expect(nextStep(me, { now }, config)).toMatchObject({ kind: 'transition', state: { phase: 'Draining' } });
  });
});
