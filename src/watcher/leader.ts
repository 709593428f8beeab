// The loop around core/leader-election: read the Lease, decide, write with
// the read's resourceVersion (a lost race is a 409 and we follow). A leader
// that cannot renew within the renew deadline stops leading at once; one
// that stops on purpose releases the lease so a standby takes over in one
// retry period instead of a whole lease duration.

import { decideLease, releasedLease, type LeaseSpec } from '../core/leader-election.ts';
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
  private lastRenew = 0;

  constructor(client: KubeClient, opts: LeaderElectionOptions) {
    this.client = client;
    this.opts = opts;
  }

  get isLeader(): boolean {
    return this.leading;
  }

  private get path(): string {
    return `/apis/coordination.k8s.io/v1/namespaces/${this.opts.namespace}/leases/${this.opts.name}`;
  }

  async run(signal: AbortSignal): Promise<void> {
    const clock = this.opts.clock ?? (() => new Date());
    while (!signal.aborted) {
      try {
        await this.tryRound(clock(), signal);
      } catch (err) {
        this.opts.log.warn({ err: (err as Error).message, lease: `${this.opts.namespace}/${this.opts.name}` }, 'lease round failed');
      }
      if (this.leading && Date.now() - this.lastRenew > this.opts.renewDeadlineSeconds * 1000) this.stopLeading('could not renew the lease in time');
      await sleep(this.opts.retryPeriodSeconds * 1000 * (this.leading ? 1 : 0.5 + Math.random() * 0.5), signal);
    }
  }

  private async tryRound(now: Date, signal: AbortSignal): Promise<void> {
    let current: Lease | undefined;
    try {
      current = await this.client.get<Lease>(this.path);
    } catch (err) {
      if (!(err instanceof ApiError && err.status === 404)) throw err;
    }
    const decision = decideLease(current?.spec, this.opts.identity, now, this.opts.leaseDurationSeconds);
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
      if (decision.action === 'create') await this.client.post<Lease>(`/apis/coordination.k8s.io/v1/namespaces/${this.opts.namespace}/leases`, body);
      else await this.client.put<Lease>(this.path, body);
    } catch (err) {
      if (err instanceof ApiError && (err.status === 409 || err.status === 422)) return; // another candidate won this round
      throw err;
    }
    this.lastRenew = Date.now();
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
      await this.client.put(this.path, { ...current, spec: releasedLease(current.spec, new Date()) });
      this.opts.log.info({ identity: this.opts.identity }, 'released the lease');
    } catch (err) {
      this.opts.log.warn({ err: (err as Error).message }, 'could not release the lease; a standby takes over when it expires');
    }
  }
}
