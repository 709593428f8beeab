// Events on pods (events.k8s.io/v1), posted without holding up the
// reconciliation: an Event that cannot be written is logged and counted.

import { microTime } from '../core/leader-election.ts';
import type { Pod } from '../core/kube-types.ts';
import type { PodEvent } from '../core/lifecycle.ts';
import type { KubeClient } from '../kube/client.ts';
import type { Logger } from '../log.ts';
import type { WatcherMetrics } from './metrics.ts';

export const REPORTING_CONTROLLER = 'inplace-gate.dev/watcher';
const MAX_NOTE = 1024;

type Regarding = { apiVersion?: string; kind?: string; metadata: Pod['metadata'] };

/** An events.k8s.io/v1 Event about `regarding`, named as client-go names them (the object's name and the time in hex). */
export function eventBody(regarding: Regarding, event: PodEvent, now: Date, instance: string, sequence: number): Record<string, unknown> {
  const namespace = regarding.metadata.namespace ?? 'default';
  return {
    apiVersion: 'events.k8s.io/v1',
    kind: 'Event',
    metadata: { name: `${regarding.metadata.name ?? 'pod'}.${(BigInt(now.getTime()) * 1_000_000n + BigInt(sequence)).toString(16)}`, namespace },
    eventTime: microTime(now),
    reportingController: REPORTING_CONTROLLER,
    reportingInstance: instance,
    action: event.action,
    reason: event.reason,
    type: event.type,
    note: event.note.length > MAX_NOTE ? `${event.note.slice(0, MAX_NOTE - 1)}…` : event.note,
    regarding: { apiVersion: regarding.apiVersion ?? 'v1', kind: regarding.kind ?? 'Pod', namespace, name: regarding.metadata.name, uid: regarding.metadata.uid },
  };
}

export class EventRecorder {
  private readonly client: KubeClient;
  private readonly instance: string;
  private readonly log: Logger;
  private readonly metrics: WatcherMetrics;
  private sequence = 0;

  constructor(client: KubeClient, instance: string, log: Logger, metrics: WatcherMetrics) {
    this.client = client;
    this.instance = instance;
    this.log = log;
    this.metrics = metrics;
  }

  /** `regarding` is the pod (or workload) the event is about. */
  record(regarding: Regarding, event: PodEvent, now = new Date()): void {
    const pod = regarding;
    const namespace = pod.metadata.namespace ?? 'default';
    const body = eventBody(regarding, event, now, this.instance, ++this.sequence);
    this.client.post(`/apis/events.k8s.io/v1/namespaces/${namespace}/events`, body).then(
      () => {
        this.metrics.events.inc({ reason: event.reason, result: 'posted' });
      },
      (err: unknown) => {
        this.metrics.events.inc({ reason: event.reason, result: 'failed' });
        this.log.warn({ object: `${pod.kind ?? 'Pod'} ${namespace}/${pod.metadata.name ?? ''}`, reason: event.reason, err: (err as Error).message }, 'could not post an event');
      },
    );
  }
}
