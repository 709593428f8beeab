// The watcher's Prometheus metrics: controller-runtime and client-go names
// where they exist (dashboards for Go controllers work unchanged), and the
// lifecycle's own under inplace_gate_. Seconds everywhere.

import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { QueueObserver } from './queue.ts';

/** Endpoint propagation is sub-second when all is well, seconds under load. */
const DRAIN_BUCKETS = [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 20, 30, 60, 120];
const DURATION_BUCKETS = [0.5, 1, 2, 5, 10, 15, 20, 30, 45, 60, 90, 120, 180, 300, 600];

export interface PodCounts {
  /** Managed pods by lifecycle phase. */
  byPhase: Record<string, number>;
  /** The most seconds any Draining pod is past its drain deadline (0 if none). */
  drainOverdueSeconds: number;
}

const QUEUE_BUCKETS = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];

/** `queueDepths`: keys waiting, by queue name (`pods`, `rollouts`). */
export function createWatcherMetrics(podCounts: () => PodCounts, queueDepths: () => Record<string, number>) {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  const phases = ['Ready', 'Pending', 'Draining', 'Updating', 'Stalled'];
  return {
    registry,
    updates: new Counter({ name: 'inplace_gate_updates_total', help: 'In-place updates that ended, by result (succeeded, stalled)', labelNames: ['result'], registers: [registry] }),
    updateDuration: new Histogram({
      name: 'inplace_gate_update_duration_seconds',
      help: 'From the image request to the changed containers proven ready',
      buckets: DURATION_BUCKETS,
      registers: [registry],
    }),
    drainDuration: new Histogram({
      name: 'inplace_gate_drain_duration_seconds',
      help: 'From the image request to the image write (the drain, grace period included)',
      buckets: DURATION_BUCKETS,
      registers: [registry],
    }),
    endpointsDrainDuration: new Histogram({
      name: 'inplace_gate_drain_endpoints_seconds',
      help: 'From InPlaceUpdateReady False to the last EndpointSlice listing the pod ready gone (the real drain; pods no Service selects are not counted)',
      buckets: DRAIN_BUCKETS,
      registers: [registry],
    }),
    drainMargin: new Histogram({
      name: 'inplace_gate_drain_margin_seconds',
      help: "From the pod's last ready EndpointSlice listing gone to the image write (the grace period's share beyond the real drain)",
      buckets: DRAIN_BUCKETS,
      registers: [registry],
    }),
    prePulls: new Counter({
      name: 'inplace_gate_pre_pulls_total',
      help: 'Pulls before a drain, by result: pulled, failed (Stalled, nothing drained), lost (no answer: drained without it), refused (no pull pod created)',
      labelNames: ['result'],
      registers: [registry],
    }),
    prePullDuration: new Histogram({
      name: 'inplace_gate_pre_pull_duration_seconds',
      help: "From the pull pod's creation to its answer (pulled, failed or lost), as the drain starts or the update stalls",
      buckets: DURATION_BUCKETS,
      registers: [registry],
    }),
    pods: new Gauge({
      name: 'inplace_gate_pods',
      help: 'Managed pods by lifecycle phase (Ready means no update in progress)',
      labelNames: ['phase'],
      registers: [registry],
      collect() {
        const counts = podCounts().byPhase;
        for (const phase of phases) this.set({ phase }, counts[phase] ?? 0);
      },
    }),
    drainOverdue: new Gauge({
      name: 'inplace_gate_drain_overdue_seconds',
      help: 'The most seconds any Draining pod is past its drain deadline: its images are due but not written (0 if none)',
      registers: [registry],
      collect() {
        this.set(podCounts().drainOverdueSeconds);
      },
    }),
    reconciles: new Counter({ name: 'controller_runtime_reconcile_total', help: 'Reconciliations by result', labelNames: ['controller', 'result'], registers: [registry] }),
    reconcileErrors: new Counter({ name: 'controller_runtime_reconcile_errors_total', help: 'Reconciliations that failed', labelNames: ['controller'], registers: [registry] }),
    reconcileTime: new Histogram({
      name: 'controller_runtime_reconcile_time_seconds',
      help: 'Time per reconciliation',
      labelNames: ['controller'],
      buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
      registers: [registry],
    }),
    queueDepth: new Gauge({
      name: 'workqueue_depth',
      help: 'Keys waiting in the work queue',
      labelNames: ['name'],
      registers: [registry],
      collect() {
        for (const [name, depth] of Object.entries(queueDepths())) this.set({ name }, depth);
      },
    }),
    // client-go's workqueue metrics, by queue name, so dashboards for Go controllers read them.
    queueAdds: new Counter({ name: 'workqueue_adds_total', help: 'Keys added to the work queue', labelNames: ['name'], registers: [registry] }),
    queueRetries: new Counter({ name: 'workqueue_retries_total', help: 'Keys put back with backoff after a failure', labelNames: ['name'], registers: [registry] }),
    queueLatency: new Histogram({
      name: 'workqueue_queue_duration_seconds',
      help: 'How long a key waits in the work queue before it is worked on',
      labelNames: ['name'],
      buckets: QUEUE_BUCKETS,
      registers: [registry],
    }),
    workDuration: new Histogram({
      name: 'workqueue_work_duration_seconds',
      help: 'How long working on a key takes',
      labelNames: ['name'],
      buckets: QUEUE_BUCKETS,
      registers: [registry],
    }),
    leader: new Gauge({ name: 'leader_election_master_status', help: '1 while this replica leads', labelNames: ['name'], registers: [registry] }),
    rollouts: new Counter({ name: 'inplace_gate_rollouts_total', help: 'In-place workload rollouts that ended or stalled, by kind and result (succeeded, stalled, fallback)', labelNames: ['kind', 'result'], registers: [registry] }),
    rolloutDuration: new Histogram({
      name: 'inplace_gate_rollout_duration_seconds',
      help: 'In-place workload rollouts, from the template change to the workload released',
      labelNames: ['kind'],
      buckets: [5, 10, 20, 30, 60, 120, 180, 300, 600, 1200, 1800, 3600],
      registers: [registry],
    }),
    rolloutPods: new Counter({ name: 'inplace_gate_rollout_pods_total', help: 'Pods a workload rollout started updating in place', labelNames: ['kind'], registers: [registry] }),
    events: new Counter({ name: 'inplace_gate_events_total', help: 'Events posted, by reason and result', labelNames: ['reason', 'result'], registers: [registry] }),
    // client-go's name and labels: `method` the HTTP method, `code` the status or `<error>` when none came back.
    apiRequests: new Counter({ name: 'rest_client_requests_total', help: 'Requests to the apiserver by method, status code and host', labelNames: ['code', 'method', 'host'], registers: [registry] }),
  };
}

export type WatcherMetrics = ReturnType<typeof createWatcherMetrics>;

/** The work queue named `name` reporting into the workqueue_* metrics. */
export function queueObserver(metrics: WatcherMetrics, name: string): QueueObserver {
  const adds = metrics.queueAdds.labels({ name });
  const retries = metrics.queueRetries.labels({ name });
  const latency = metrics.queueLatency.labels({ name });
  const work = metrics.workDuration.labels({ name });
  return {
    added: () => { adds.inc(); },
    retried: () => { retries.inc(); },
    waited: (seconds) => { latency.observe(seconds); },
    worked: (seconds) => { work.observe(seconds); },
  };
}

/** Counts each apiserver request of a client into rest_client_requests_total, as client-go does. */
export function apiRequestObserver(metrics: WatcherMetrics, host: string): (method: string, status: number) => void {
  return (method, status) => { metrics.apiRequests.inc({ code: status === 0 ? '<error>' : String(status), method, host }); };
}
