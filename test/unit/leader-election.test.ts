import { describe, expect, it } from 'vitest';
import { decideLease, microTime, releasedLease } from '../../src/core/leader-election.ts';

const now = new Date('2026-11-28T12:00:10.000Z');
const at = (s: number) => microTime(new Date(now.getTime() + s * 1000));

describe('decideLease', () => {
  it('creates the lease when there is none', () => {
    expect(decideLease(undefined, 'a', now, 10)).toEqual({
      action: 'create',
      spec: { holderIdentity: 'a', leaseDurationSeconds: 10, acquireTime: at(0), renewTime: at(0), leaseTransitions: 0 },
    });
  });

  it('renews its own lease, keeping acquireTime and transitions', () => {
    const lease = { holderIdentity: 'a', leaseDurationSeconds: 10, acquireTime: at(-60), renewTime: at(-2), leaseTransitions: 3 };
    expect(decideLease(lease, 'a', now, 10)).toEqual({ action: 'renew', spec: { ...lease, renewTime: at(0) } });
  });

  it.each([
    ['renewed 2 s ago', at(-2), 8000],
    ['renewed 9.9 s ago', at(-9.9), 100],
  ])('follows a live leader (%s)', (_what, renewTime, expiresInMs) => {
    const step = decideLease({ holderIdentity: 'b', leaseDurationSeconds: 10, renewTime }, 'a', now, 10);
    expect(step).toMatchObject({ action: 'follow', holder: 'b' });
    expect(step.action === 'follow' && step.expiresInMs).toBeCloseTo(expiresInMs, -1);
  });

  it.each([
    ['expired', { holderIdentity: 'b', leaseDurationSeconds: 10, renewTime: at(-10), leaseTransitions: 4 }, 5],
    ['released (no holder)', { holderIdentity: null, leaseDurationSeconds: 1, renewTime: at(0), leaseTransitions: 4 }, 5],
    ['unreadable renewTime', { holderIdentity: 'b', leaseDurationSeconds: 10, renewTime: 'soon' }, 1],
  ])('takes over a lease that is %s, counting the transition', (_what, lease, transitions) => {
    expect(decideLease(lease, 'a', now, 10)).toEqual({
      action: 'acquire',
      spec: { holderIdentity: 'a', leaseDurationSeconds: 10, acquireTime: at(0), renewTime: at(0), leaseTransitions: transitions },
    });
  });

  it("uses the holder's lease duration, not ours, to judge expiry", () => {
    expect(decideLease({ holderIdentity: 'b', leaseDurationSeconds: 30, renewTime: at(-20) }, 'a', now, 10).action).toBe('follow');
  });

  it('a released lease is free at once for anyone else', () => {
    const released = releasedLease({ holderIdentity: 'a', leaseDurationSeconds: 10, renewTime: at(-1), leaseTransitions: 2 }, now);
    expect(released.holderIdentity).toBeNull();
    expect(decideLease(released, 'b', now, 10).action).toBe('acquire');
  });

  it('writes MicroTime with microseconds', () => {
    expect(microTime(new Date('2026-11-28T12:00:10.123Z'))).toBe('2026-11-28T12:00:10.123000Z');
  });
});
