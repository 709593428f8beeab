// Leader election on a coordination.k8s.io Lease, as a pure decision: given
// the lease as read, who we are and the clock, what to write (if anything).
// The loop around it (src/watcher/leader.ts) does the reads and writes with
// optimistic concurrency, so two candidates never both win a round.
//
// As client-go does, a lease held by another is judged expired by the local
// time at which this candidate last saw its record change, never by the
// holder's renewTime: the holder's clock may run ahead or behind ours, and a
// comparison across clocks would let a fast node steal a healthy lease.

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

/** The lease record as last seen, and when (local milliseconds) it was first seen so. */
export interface LeaseObservation {
  record: string;
  observedAtMs: number;
}

/** RFC 3339 with microseconds, as coordination.k8s.io's MicroTime expects. */
export function microTime(date: Date): string {
  return date.toISOString().replace(/\.(\d{3})Z$/, '.$1000Z');
}

/** Keeps the earlier observation while the record is unchanged; a changed (or first) record is observed now. */
export function observeLease(previous: LeaseObservation | undefined, lease: LeaseSpec | undefined, now: Date): LeaseObservation {
  const record = JSON.stringify([lease?.holderIdentity ?? null, lease?.acquireTime ?? null, lease?.renewTime ?? null, lease?.leaseDurationSeconds ?? null, lease?.leaseTransitions ?? null]);
  return previous?.record === record ? previous : { record, observedAtMs: now.getTime() };
}

export function decideLease(lease: LeaseSpec | undefined, identity: string, now: Date, leaseDurationSeconds: number, observed: LeaseObservation): LeaseDecision {
  const stamp = microTime(now);
  if (lease === undefined) {
    return { action: 'create', spec: { holderIdentity: identity, leaseDurationSeconds, acquireTime: stamp, renewTime: stamp, leaseTransitions: 0 } };
  }
  if (lease.holderIdentity === identity) {
    return { action: 'renew', spec: { ...lease, leaseDurationSeconds, renewTime: stamp } };
  }
  const duration = (lease.leaseDurationSeconds ?? leaseDurationSeconds) * 1000;
  const expiresInMs = observed.observedAtMs + duration - now.getTime();
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

/** How long a leader's renewal may still take: until the renew deadline after its last renewal. */
export function renewBudgetMs(lastRenewMs: number, renewDeadlineSeconds: number, now: Date): number {
  return Math.max(0, lastRenewMs + renewDeadlineSeconds * 1000 - now.getTime());
}
