// Leader election on a coordination.k8s.io Lease, as a pure decision: given
// the lease as read, who we are and the clock, what to write (if anything).
// The loop around it (src/watcher/leader.ts) does the reads and writes with
// optimistic concurrency, so two candidates never both win a round.

export interface LeaseSpec {
  holderIdentity?: string | null;
  leaseDurationSeconds?: number;
  acquireTime?: string | null;
  renewTime?: string | null;
  leaseTransitions?: number;
}

export type LeaseDecision =
  | { action: 'create' | 'acquire' | 'renew'; spec: LeaseSpec }
  | { action: 'follow'; holder: string; expiresInMs: number };

/** RFC 3339 with microseconds, as coordination.k8s.io's MicroTime expects. */
export function microTime(date: Date): string {
  return date.toISOString().replace(/\.(\d{3})Z$/, '.$1000Z');
}

export function decideLease(lease: LeaseSpec | undefined, identity: string, now: Date, leaseDurationSeconds: number): LeaseDecision {
  const stamp = microTime(now);
  if (lease === undefined) {
    return { action: 'create', spec: { holderIdentity: identity, leaseDurationSeconds, acquireTime: stamp, renewTime: stamp, leaseTransitions: 0 } };
  }
  if (lease.holderIdentity === identity) {
    return { action: 'renew', spec: { ...lease, leaseDurationSeconds, renewTime: stamp } };
  }
  const renewed = Date.parse(lease.renewTime ?? lease.acquireTime ?? '');
  const duration = (lease.leaseDurationSeconds ?? leaseDurationSeconds) * 1000;
  const expiresInMs = Number.isNaN(renewed) ? 0 : renewed + duration - now.getTime();
  if (lease.holderIdentity && expiresInMs > 0) return { action: 'follow', holder: lease.holderIdentity, expiresInMs };
  return {
    action: 'acquire',
    spec: { holderIdentity: identity, leaseDurationSeconds, acquireTime: stamp, renewTime: stamp, leaseTransitions: (lease.leaseTransitions ?? 0) + 1 },
  };
}

/** What a leader that stops on purpose writes, so a standby need not wait out the lease. */
export function releasedLease(lease: LeaseSpec, now: Date): LeaseSpec {
  return { ...lease, holderIdentity: null, renewTime: microTime(now), leaseDurationSeconds: 1 };
}
