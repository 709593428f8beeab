// The loop around core/leader-election: read the Lease, decide, write with
// the read's resourceVersion (a lost race is a 409 and we follow). As in
// client-go, each round's requests are bounded: a leader's by what is left of
// its renew deadline, so a hung request cannot keep a deposed leader acting;
// when the deadline passes it stops leading at once, and onStoppedLeading
// stops the work it started. One that stops on purpose releases the lease so
// a standby takes over in one retry period instead of a whole lease duration.

import { decideLease, observeLease, releasedLease, renewBudgetMs, type LeaseObservation, type LeaseSpec } from '../core/leader-election.ts';
import { ApiError, type KubeClient } from '../kube/client.ts';
import type { Logger } from '../log.ts';
import { sleep } from './informer.ts';

export interface LeaderElectionOptions {
  namespace: string;
  name: string;
  identity: string;
  leaseDurationSeconds: number;
  renewDeadlineSeconds: number;
  retryPeriodSeconds: number;
  onStartedLeading: () => void;
  onStoppedLeading: () => void;
  log: Logger;
  clock?: () => Date;
}

interface Lease {
  apiVersion?: string;
  kind?: string;
  metadata: { name: string; namespace: string; resourceVersion?: string };
  spec?: LeaseSpec;
}

export class LeaderElector {
  private leading = false;
  private readonly opts: LeaderElectionOptions;
  private readonly client: KubeClient;
  /** Local time (clock) of our last successful write of the lease. */
  private lastRenew = 0;
  /** The lease record as last read, and when we first saw it so: the basis of expiry. */
  private observed: LeaseObservation | undefined;
  private readonly clock: () => Date;

  constructor(client: KubeClient, opts: LeaderElectionOptions) {
    this.client = client;
    this.opts = opts;
    this.clock = opts.clock ?? (() => new Date());
  }

  get isLeader(): boolean {
    return this.leading;
  }

  private get path(): string {
    return `/apis/coordination.k8s.io/v1/namespaces/${this.opts.namespace}/leases/${this.opts.name}`;
  }

  async run(signal: AbortSignal): Promise<void> {
    const { renewDeadlineSeconds, retryPeriodSeconds } = this.opts;
    while (!signal.aborted) {
      // A leader's round gets what is left of its renew deadline; a candidate's, one renew deadline.
      const budgetMs = this.leading ? renewBudgetMs(this.lastRenew, renewDeadlineSeconds, this.clock()) : renewDeadlineSeconds * 1000;
      const round = new AbortController();
      const timer = setTimeout(() => {
        round.abort(new Error(`no answer within the renew deadline (${renewDeadlineSeconds}s)`));
        if (this.leading) this.stopLeading('could not renew the lease in time');
      }, budgetMs);
      try {
        await this.tryRound(this.clock(), signal, round.signal);
      } catch (err) {
        this.opts.log.warn({ err: (err as Error).message, lease: `${this.opts.namespace}/${this.opts.name}` }, 'lease round failed');
      } finally {
        clearTimeout(timer);
      }
      if (this.leading && this.clock().getTime() - this.lastRenew > renewDeadlineSeconds * 1000) this.stopLeading('could not renew the lease in time');
      await sleep(retryPeriodSeconds * 1000 * (this.leading ? 1 : 0.5 + Math.random() * 0.5), signal);
    }
  }

  private async tryRound(now: Date, signal: AbortSignal, bound: AbortSignal): Promise<void> {
    let current: Lease | undefined;
    try {
      current = await this.client.get<Lease>(this.path, bound);
    } catch (err) {
      if (!(err instanceof ApiError && err.status === 404)) throw err;
    }
    this.observed = observeLease(this.observed, current?.spec, now);
    const decision = decideLease(current?.spec, this.opts.identity, now, this.opts.leaseDurationSeconds, this.observed);
    if (decision.action === 'follow') {
      if (this.leading) this.stopLeading(`lease is held by ${decision.holder}`);
      return;
    }
    const body: Lease = {
      apiVersion: 'coordination.k8s.io/v1',
      kind: 'Lease',
      metadata: { name: this.opts.name, namespace: this.opts.namespace, ...(current?.metadata.resourceVersion ? { resourceVersion: current.metadata.resourceVersion } : {}) },
      spec: decision.spec,
    };
    try {
      if (decision.action === 'create') await this.client.post<Lease>(`/apis/coordination.k8s.io/v1/namespaces/${this.opts.namespace}/leases`, body, bound);
      else await this.client.put<Lease>(this.path, body, bound);
    } catch (err) {
      if (err instanceof ApiError && (err.status === 409 || err.status === 422)) return; // another candidate won this round
      throw err;
    }
    // Past the bound the write may have landed, but this leader has already stood down: the next round renews.
    if (bound.aborted) return;
    this.lastRenew = this.clock().getTime();
    this.observed = observeLease(this.observed, decision.spec, now);
    if (signal.aborted) {
      // Stopping: we hold the lease (release() gives it up) but start nothing.
      this.leading = true;
      return;
    }
    if (!this.leading) {
      this.leading = true;
      this.opts.log.info({ identity: this.opts.identity, lease: `${this.opts.namespace}/${this.opts.name}`, action: decision.action }, 'became the leader');
      this.opts.onStartedLeading();
    }
  }

  private stopLeading(why: string): void {
    this.leading = false;
    this.opts.log.warn({ identity: this.opts.identity, why }, 'stopped leading');
    this.opts.onStoppedLeading();
  }

  /**
   * Gives the lease up so a standby takes over at its next retry. Call it
   * after run() has returned, so no renewal races it; it reads the lease
   * afresh and releases only if we still hold it.
   */
  async release(): Promise<void> {
    if (!this.leading) return;
    this.leading = false;
    try {
      const current = await this.client.get<Lease>(this.path);
      if (current.spec?.holderIdentity !== this.opts.identity) return;
      await this.client.put(this.path, { ...current, spec: releasedLease(current.spec, this.clock()) });
      this.opts.log.info({ identity: this.opts.identity }, 'released the lease');
    } catch (err) {
      this.opts.log.warn({ err: (err as Error).message }, 'could not release the lease; a standby takes over when it expires');
    }
  }
}
