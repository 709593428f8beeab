import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { decideLease, microTime, observeLease, releasedLease, renewBudgetMs, type LeaseSpec } from '../../src/core/leader-election.ts';
import { ApiError, type KubeClient } from '../../src/kube/client.ts';
import { createLogger } from '../../src/log.ts';
import { LeaderElector } from '../../src/watcher/leader.ts';

const now = new Date('2026-11-28T12:00:10.000Z');
const at = (s: number) => microTime(new Date(now.getTime() + s * 1000));
const later = (s: number) => new Date(now.getTime() + s * 1000);
/** What a candidate knows after reading `lease` for the first time, now. */
const fresh = (lease: LeaseSpec | undefined) => observeLease(undefined, lease, now);

describe('decideLease', () => {
  it('creates the lease when there is none', () => {
    expect(decideLease(undefined, 'a', now, 10, fresh(undefined))).toEqual({
      action: 'create',
      spec: { holderIdentity: 'a', leaseDurationSeconds: 10, acquireTime: at(0), renewTime: at(0), leaseTransitions: 0 },
    });
  });

  it('renews its own lease, keeping acquireTime and transitions', () => {
    const lease = { holderIdentity: 'a', leaseDurationSeconds: 10, acquireTime: at(-60), renewTime: at(-2), leaseTransitions: 3 };
    expect(decideLease(lease, 'a', now, 10, fresh(lease))).toEqual({ action: 'renew', spec: { ...lease, renewTime: at(0) } });
  });

  it('follows a live leader for one lease duration after it last saw the record change', () => {
    const lease = { holderIdentity: 'b', leaseDurationSeconds: 10, renewTime: at(-2), leaseTransitions: 4 };
    const seen = fresh(lease);
    expect(decideLease(lease, 'a', later(9.9), 10, observeLease(seen, lease, later(9.9)))).toMatchObject({ action: 'follow', holder: 'b', expiresInMs: 100 });
    expect(decideLease(lease, 'a', later(10), 10, observeLease(seen, lease, later(10)))).toMatchObject({ action: 'acquire', spec: { leaseTransitions: 5 } });
  });

  it("a holder whose clock runs behind (renewTime long past by ours) is not robbed while it renews", () => {
    // b's clock is 45 s behind: every renewTime it writes is 45 s in our past, yet it renews every 2 s.
    let seen = fresh({ holderIdentity: 'b', leaseDurationSeconds: 10, renewTime: at(-45) });
    for (let t = 2; t <= 30; t += 2) {
      const lease = { holderIdentity: 'b', leaseDurationSeconds: 10, renewTime: at(t - 45) };
      seen = observeLease(seen, lease, later(t));
      expect(decideLease(lease, 'a', later(t), 10, seen).action).toBe('follow');
    }
  });

  it('a holder whose clock runs ahead (renewTime in our future) that died is taken over one lease duration after its last change', () => {
    const lease = { holderIdentity: 'b', leaseDurationSeconds: 10, renewTime: at(3600) };
    const seen = fresh(lease);
    expect(decideLease(lease, 'a', later(9), 10, observeLease(seen, lease, later(9))).action).toBe('follow');
    expect(decideLease(lease, 'a', later(10), 10, observeLease(seen, lease, later(10))).action).toBe('acquire');
  });

  it.each([
    ['released (no holder)', { holderIdentity: null, leaseDurationSeconds: 1, renewTime: at(0), leaseTransitions: 4 }, 5],
    ['held by nobody, with no times', { holderIdentity: '', leaseDurationSeconds: 10 }, 1],
  ])('takes over a lease that is %s at once, counting the transition', (_what, lease, transitions) => {
    expect(decideLease(lease, 'a', now, 10, fresh(lease))).toEqual({
      action: 'acquire',
      spec: { holderIdentity: 'a', leaseDurationSeconds: 10, acquireTime: at(0), renewTime: at(0), leaseTransitions: transitions },
    });
  });

  it("uses the holder's lease duration, not ours, to judge expiry", () => {
    const lease = { holderIdentity: 'b', leaseDurationSeconds: 30, renewTime: at(0) };
    expect(decideLease(lease, 'a', later(20), 10, observeLease(fresh(lease), lease, later(20))).action).toBe('follow');
  });

  it('a released lease is free at once for anyone else', () => {
    const released = releasedLease({ holderIdentity: 'a', leaseDurationSeconds: 10, renewTime: at(-1), leaseTransitions: 2 }, now);
    expect(released.holderIdentity).toBeNull();
    expect(decideLease(released, 'b', now, 10, fresh(released)).action).toBe('acquire');
  });

  it('observeLease keeps the first sighting while the record is unchanged', () => {
    const lease = { holderIdentity: 'b', renewTime: at(0) };
    const first = fresh(lease);
    expect(observeLease(first, { ...lease }, later(5))).toBe(first);
    expect(observeLease(first, { ...lease, renewTime: at(2) }, later(5)).observedAtMs).toBe(later(5).getTime());
  });

  it('renewBudgetMs: what is left of the renew deadline, never negative', () => {
    expect(renewBudgetMs(now.getTime(), 4, later(1))).toBe(3000);
    expect(renewBudgetMs(now.getTime(), 4, later(9))).toBe(0);
  });

  it('writes MicroTime with microseconds', () => {
    expect(microTime(new Date('2026-11-28T12:00:10.123Z'))).toBe('2026-11-28T12:00:10.123000Z');
  });
});

interface LeaseObject {
  metadata: { name: string; namespace: string; resourceVersion?: string };
  spec?: LeaseSpec;
}

/** The apiserver's Lease endpoint, with resourceVersion checks; `hang` makes writes wait until aborted. */
function fakeLeases(initial?: LeaseSpec) {
  let stored: LeaseObject | undefined = initial ? { metadata: { name: 'l', namespace: 'ns', resourceVersion: '1' }, spec: initial } : undefined;
  const state = { hang: false, aborted: 0, writes: 0 };
  const write = (body: LeaseObject, signal?: AbortSignal) => {
    if (state.hang) {
      return new Promise<LeaseObject>((_ok, fail) => {
        signal?.addEventListener('abort', () => { state.aborted++; fail(new ApiError(0, 'Aborted', 'cut off')); }, { once: true });
      });
    }
    if (stored && body.metadata.resourceVersion !== stored.metadata.resourceVersion) return Promise.reject(new ApiError(409, 'Conflict', 'conflict'));
    state.writes++;
    stored = { ...body, metadata: { ...body.metadata, resourceVersion: String(Number(stored?.metadata.resourceVersion ?? '0') + 1) } };
    return Promise.resolve(structuredClone(stored));
  };
  const client = {
    get: () => (stored ? Promise.resolve(structuredClone(stored)) : Promise.reject(new ApiError(404, 'NotFound', 'not found'))),
    put: (_path: string, body: LeaseObject, signal?: AbortSignal) => write(body, signal),
    post: (_path: string, body: LeaseObject, signal?: AbortSignal) => write(body, signal),
  } as unknown as KubeClient;
  return {
    client,
    state,
    lease: () => stored?.spec,
    /** Another candidate writes the record (its renewals), by its own clock. */
    renewAs: (spec: LeaseSpec) => { stored = { metadata: { name: 'l', namespace: 'ns', resourceVersion: String(Number(stored?.metadata.resourceVersion ?? '0') + 1) }, spec }; },
  };
}

describe('LeaderElector (fake clock)', () => {
  beforeEach(() => { vi.useFakeTimers({ now }); });
  afterEach(() => { vi.useRealTimers(); });

  function elector(client: KubeClient) {
    const calls: string[] = [];
    const e = new LeaderElector(client, {
      namespace: 'ns',
      name: 'l',
      identity: 'a',
      leaseDurationSeconds: 15,
      renewDeadlineSeconds: 10,
      retryPeriodSeconds: 2,
      onStartedLeading: () => calls.push(`started@${Date.now() - now.getTime()}`),
      onStoppedLeading: () => calls.push(`stopped@${Date.now() - now.getTime()}`),
      log: createLogger('test', 'silent'),
    });
    return { e, calls };
  }

  it('a renewal that hangs is cut off at the renew deadline, and the leader stops leading then, not when the request returns', async () => {
    const api = fakeLeases();
    const { e, calls } = elector(api.client);
    const abort = new AbortController();
    const done = e.run(abort.signal);
    await vi.advanceTimersByTimeAsync(0);
    expect(calls).toEqual(['started@0']);
    await vi.advanceTimersByTimeAsync(4000); // renewed at 2 s and 4 s
    api.state.hang = true; // from the 6 s round on, the apiserver answers nothing
    await vi.advanceTimersByTimeAsync(20_000);
    // Last renewal at 4 s, deadline 10 s: stopped at 14 s, the hung write aborted.
    expect(calls).toEqual(['started@0', 'stopped@14000']);
    expect(api.state.aborted).toBeGreaterThanOrEqual(1);
    expect(e.isLeader).toBe(false);
    abort.abort();
    await vi.advanceTimersByTimeAsync(10_000);
    await done;
  });

  it('a standby judges expiry by when it saw the lease change: a holder with a slow clock keeps its lease', async () => {
    // b renews every 2 s, but its clock is 60 s behind ours: by renewTime alone its lease is long expired.
    const api = fakeLeases({ holderIdentity: 'b', leaseDurationSeconds: 15, renewTime: at(-60), leaseTransitions: 0 });
    const { e, calls } = elector(api.client);
    const abort = new AbortController();
    const done = e.run(abort.signal);
    for (let t = 2; t <= 40; t += 2) {
      await vi.advanceTimersByTimeAsync(2000);
      api.renewAs({ holderIdentity: 'b', leaseDurationSeconds: 15, renewTime: at(t - 60), leaseTransitions: 0 });
    }
    expect(calls).toEqual([]);
    expect(api.lease()?.holderIdentity).toBe('b');
    // b dies: its record stops changing; one lease duration later a takes over.
    await vi.advanceTimersByTimeAsync(14_000);
    expect(calls).toEqual([]);
    await vi.advanceTimersByTimeAsync(4000);
    expect(calls).toHaveLength(1);
    expect(api.lease()).toMatchObject({ holderIdentity: 'a', leaseTransitions: 1 });
    abort.abort();
    await vi.advanceTimersByTimeAsync(5000);
    await done;
  });
});
