// What `kubectl inplace-gate status` says, as pure functions of the objects as
// read and the clock: per pod its lifecycle phase, since when, the images asked
// for and what it waits for (the same progress rules the watcher decides on);
// per workload its strategy and the rollout's progress (the same plan the
// rollout controller follows). `kubectl get pods` shows READY 1/1 for a drained
// pod; this puts Ready and InPlaceUpdateReady side by side.

import { specImages, type ImageMap } from './containers.ts';
import type { Pod } from './kube-types.ts';
import type { LeaseSpec } from './leader-election.ts';
import { gateCondition, updateProgress } from './lifecycle.ts';
import { PARTITION_ANNOTATION, ROLLOUT_ANNOTATION, ROLLOUT_STATE_ANNOTATION, UPDATE_ANNOTATION } from './names.ts';
import { parseRolloutState } from './rollout-state.ts';
import { deploymentWindow, planRollout, rolloutPod, statefulSetWindow } from './rollout.ts';
import { hasReadinessGate } from './scope.ts';
import { parseUpdateState, type UpdateState } from './state.ts';
import type { Workload } from './workload-types.ts';

export type WorkloadKind = 'Deployment' | 'StatefulSet';

export interface PodReport {
  namespace: string;
  name: string;
  /** The pod's own Ready condition: what Services route on. */
  ready: string;
  /** InPlaceUpdateReady, or `-` for a pod without the gate. */
  gate: string;
  /** The lifecycle phase, `-` when no change is in flight. */
  phase: string;
  /** RFC 3339: when the phase began. */
  since: string | undefined;
  images: string;
  waitingFor: string;
  inFlight: boolean;
}

const conditionStatus = (pod: Pod, type: string): string => pod.status?.conditions?.find((c) => c.type === type)?.status ?? '-';

/** `app: v1 -> v2` for the containers a change touches, `app=v1` for a pod at rest. */
function imagesLine(pod: Pod, state: UpdateState | undefined): string {
  const running = specImages(pod.spec);
  if (state === undefined) return Object.entries(running).map(([n, i]) => `${n}=${i}`).join(', ');
  const written = state.phase === 'Updating' || state.phase === 'Stalled';
  return Object.entries(state.images)
    .map(([n, to]) => `${n}: ${(written ? state.before?.[n]?.image : running[n]) ?? '?'} -> ${to}`)
    .join(', ');
}

function phaseStart(state: UpdateState): string | undefined {
  switch (state.phase) {
    case 'Pending': return state.requestedAt;
    case 'Draining': return state.drainStartedAt ?? state.requestedAt;
    case 'Updating': return state.updatedAt ?? state.requestedAt;
    case 'Stalled': return state.stalled?.since ?? state.updatedAt ?? state.requestedAt;
  }
}

function waitingFor(pod: Pod, state: UpdateState, now: Date): string {
  switch (state.phase) {
    case 'Pending':
      return state.drained === true
        ? 'the watcher to write the images (the pod is out of endpoints already)'
        : 'the watcher to start the drain';
    case 'Draining': {
      const due = Date.parse(state.drainDeadline ?? '');
      if (Number.isNaN(due)) return 'the watcher to restart the drain (no deadline recorded)';
      const left = due - now.getTime();
      return left > 0
        ? `the grace period: images written in ${humanDuration(left)}`
        : `the watcher to write the images, due ${humanDuration(-left)} ago (its log says why: RBAC, a webhook outage, conflicts)`;
    }
    case 'Updating': {
      const { waiting, failure } = updateProgress(pod, state);
      if (failure !== undefined) return `${failure.message} (the watcher marks it Stalled)`;
      return waiting.length > 0 ? waiting.join('; ') : 'the watcher to record it done';
    }
    case 'Stalled':
      return `${state.stalled?.message ?? 'stalled'}; set the image again (a rollback, say) to start over`;
  }
}

export function reportPod(pod: Pod, now: Date): PodReport {
  const base = {
    namespace: pod.metadata.namespace ?? '',
    name: pod.metadata.name ?? '',
    ready: conditionStatus(pod, 'Ready'),
    gate: hasReadinessGate(pod) ? (gateCondition(pod)?.status ?? 'unset') : '-',
  };
  const parsed = parseUpdateState(pod.metadata.annotations?.[UPDATE_ANNOTATION]);
  if (!parsed.ok) {
    return {
      ...base, phase: 'Unreadable', since: undefined, images: imagesLine(pod, undefined), inFlight: true,
      waitingFor: `${UPDATE_ANNOTATION} is unreadable (${parsed.error}): the watcher leaves the pod alone until the next image change`,
    };
  }
  const state = parsed.state;
  if (state !== undefined) {
    return { ...base, phase: state.phase, since: phaseStart(state), images: imagesLine(pod, state), waitingFor: waitingFor(pod, state, now), inFlight: true };
  }
  const rest = { ...base, phase: '-', since: undefined, images: imagesLine(pod, undefined) };
  if (base.gate === 'unset') return { ...rest, inFlight: true, waitingFor: 'the watcher to set InPlaceUpdateReady True (a new pod: is a watcher leading?)' };
  if (base.gate === 'False') return { ...rest, inFlight: true, waitingFor: 'the watcher to set InPlaceUpdateReady True (a request was cancelled)' };
  if (base.ready !== 'True' && pod.status?.phase === 'Running') {
    const notReady = (pod.status.containerStatuses ?? []).filter((s) => !s.ready).map((s) => s.name);
    return { ...rest, inFlight: false, waitingFor: notReady.length > 0 ? `the kubelet: containers not ready: ${notReady.join(', ')}` : 'the kubelet to report the pod Ready' };
  }
  return { ...rest, inFlight: false, waitingFor: '-' };
}

export interface WorkloadReport {
  kind: WorkloadKind;
  namespace: string;
  name: string;
  strategy: string;
  /** `in place`, `native` (no in-place rollout under way) or `unreadable`. */
  rollout: string;
  /** Pods in scope on the target images, of those in scope: `2/3`. */
  updated: string;
  inFlight: number;
  stalled: string[];
  since: string | undefined;
  images: string;
  state: string;
}

function annotationPartition(w: Workload): number {
  const raw = w.metadata.annotations?.[PARTITION_ANNOTATION];
  return raw !== undefined && /^\d+$/.test(raw) ? Number(raw) : 0;
}

/** `userPartition`: during an in-place rollout the spec's partition is inplace-gate's hold; the user's is recorded. */
function strategyLine(kind: WorkloadKind, w: Workload, userPartition: number | undefined): string {
  if (w.metadata.annotations?.[ROLLOUT_ANNOTATION] === 'recreate') return `native (${ROLLOUT_ANNOTATION}: recreate)`;
  if (kind === 'Deployment') {
    if (w.spec.strategy?.type === 'Recreate') return 'Recreate: all at once';
    const window = deploymentWindow(w.spec);
    if (!window.inPlace) return 'RollingUpdate: native';
    return (window.surge ?? 0) > 0 ? `RollingUpdate: ${String(window.surge)} surge pod(s) first, then 1 at a time per surge pod` : `RollingUpdate: ${window.maxUnavailable} at a time`;
  }
  const window = statefulSetWindow(w.spec);
  if (!window.inPlace) return 'OnDelete: native';
  const partition = userPartition ?? w.spec.updateStrategy?.rollingUpdate?.partition;
  return `RollingUpdate: ${window.maxUnavailable} at a time${partition ? `, partition ${partition}` : ''}`;
}

/** A workload and its pods (see podsOfWorkload) as the rollout controller would plan it now. */
export function reportWorkload(kind: WorkloadKind, w: Workload, pods: Pod[]): WorkloadReport {
  const parsed = parseRolloutState(w.metadata.annotations?.[ROLLOUT_STATE_ANNOTATION]);
  const recorded = parsed.ok && parsed.state !== undefined ? (parsed.state.partition ?? 0) : undefined;
  const base = { kind, namespace: w.metadata.namespace ?? '', name: w.metadata.name ?? '', strategy: strategyLine(kind, w, recorded) };
  const live = pods.filter((p) => p.metadata.deletionTimestamp === undefined);
  const inFlight = live.filter((p) => p.metadata.annotations?.[UPDATE_ANNOTATION] !== undefined).length;
  if (!parsed.ok) {
    return { ...base, rollout: 'unreadable', updated: '-', inFlight, stalled: [], since: undefined, images: '-', state: `${ROLLOUT_STATE_ANNOTATION} is unreadable (${parsed.error}): the watcher leaves the workload alone` };
  }
  const state = parsed.state;
  const images = (m: ImageMap) => Object.entries(m).map(([n, i]) => `${n}=${i}`).join(', ');
  if (state === undefined) {
    const replicas = w.spec.replicas ?? 1;
    const updated = w.status?.updatedReplicas ?? 0;
    const paused = kind === 'Deployment' && w.spec.paused === true;
    return {
      ...base, rollout: 'native', updated: `${updated}/${replicas}`, inFlight, stalled: [], since: undefined,
      images: images(specImages(w.spec.template.spec)),
      state: paused ? 'paused (by its user: left to the native controller)' : updated >= replicas && (w.status?.readyReplicas ?? 0) >= replicas ? 'complete' : 'native rollout or scaling',
    };
  }
  const window = kind === 'Deployment' ? deploymentWindow(w.spec) : statefulSetWindow(w.spec);
  const partition = kind === 'Deployment' ? annotationPartition(w) : Math.max(state.partition ?? 0, annotationPartition(w));
  const plan = planRollout(live.map((p) => rolloutPod(p)), state.images, window.inPlace ? window.maxUnavailable : 1, {
    order: kind === 'Deployment' ? 'name' : 'ordinal-desc',
    partition,
  });
  let summary: string;
  if (plan.stalled.length > 0) summary = `stalled: ${plan.stalled.join(', ')} (each holds its slot; set the image again to recover)`;
  else if (plan.done && partition > 0) summary = `held: ${PARTITION_ANNOTATION} ${partition} keeps ${live.length - plan.total} pods on the old images (lower it to go on)`;
  else if (plan.done) summary = 'done: the watcher hands it back to the native controller';
  else summary = `progressing: ${plan.unavailable} out of service (at most ${window.inPlace ? window.maxUnavailable : 1})`;
  return {
    ...base, rollout: 'in place', updated: `${plan.updated}/${plan.total}`, inFlight, stalled: plan.stalled, since: state.startedAt,
    images: images(state.images), state: summary,
  };
}

interface ReplicaSetLike {
  metadata: { uid?: string; ownerReferences?: { uid: string; controller?: boolean }[] };
}

/** A StatefulSet's pods, or a Deployment's through its ReplicaSets: by controller owner references, as the controllers own them. */
export function podsOfWorkload(kind: WorkloadKind, w: Workload, pods: Pod[], replicaSets: ReplicaSetLike[]): Pod[] {
  const controlledBy = (refs: { uid: string; controller?: boolean }[] | undefined, uids: Set<string>) =>
    refs?.some((o) => o.controller === true && uids.has(o.uid)) ?? false;
  const owner = new Set([w.metadata.uid ?? '']);
  const owners = kind === 'StatefulSet'
    ? owner
    : new Set(replicaSets.filter((rs) => controlledBy(rs.metadata.ownerReferences, owner)).map((rs) => rs.metadata.uid ?? ''));
  return pods.filter((p) => controlledBy(p.metadata.ownerReferences, owners));
}

/** Who leads the watchers, judged by the Lease's own renew time and duration. */
export function leaseLine(lease: { spec?: LeaseSpec } | 'absent' | 'forbidden', where: string, now: Date): string {
  if (lease === 'absent') return `watcher: no Lease ${where}: no watcher has run here (pods wait NotReady, image changes stay Pending)`;
  if (lease === 'forbidden') return `watcher: Lease ${where} not readable with these credentials`;
  const holder = lease.spec?.holderIdentity;
  const renewed = Date.parse(lease.spec?.renewTime ?? lease.spec?.acquireTime ?? '');
  const ago = Number.isNaN(renewed) ? undefined : now.getTime() - renewed;
  const expired = ago === undefined || ago > (lease.spec?.leaseDurationSeconds ?? 0) * 1000;
  if (!holder) return `watcher: none leading (Lease ${where} released${ago === undefined ? '' : ` ${humanDuration(ago)} ago`})`;
  if (expired) return `watcher: none leading: ${holder} last renewed Lease ${where} ${ago === undefined ? 'never' : `${humanDuration(ago)} ago`}`;
  return `watcher: ${holder} leads (renewed ${humanDuration(Math.max(0, ago))} ago)`;
}

/** kubectl's short durations (apimachinery's HumanDuration): 45s, 3m20s, 125m, 4h5m, 30h, 3d4h. */
export function humanDuration(ms: number): string {
  const s = Math.floor(ms / 1000);
  if (s < 120) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 10) return s % 60 === 0 ? `${m}m` : `${m}m${s % 60}s`;
  if (m < 180) return `${m}m`;
  const h = Math.floor(m / 60);
  if (h < 8) return m % 60 === 0 ? `${h}h` : `${h}h${m % 60}m`;
  if (h < 48) return `${h}h`;
  if (h < 24 * 8) return h % 24 === 0 ? `${Math.floor(h / 24)}d` : `${Math.floor(h / 24)}d${h % 24}h`;
  return `${Math.floor(h / 24)}d`;
}

/** Columns as kubectl prints them: left-aligned, three spaces apart, the last one unpadded. */
export function formatTable(headers: string[], rows: string[][]): string {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) => cells.map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i] ?? 0))).join('   ').trimEnd();
  return [headers, ...rows].map(line).join('\n') + '\n';
}

export interface StatusInput {
  pods: PodReport[];
  workloads: WorkloadReport[];
  lease: string | undefined;
  /** Show every pod given, not only those in flight (a named pod or workload). */
  allPods: boolean;
  namespaceColumn: boolean;
  now: Date;
}

/** The whole answer of `status`: the watcher's Lease, the workloads, then the pods. */
export function formatStatus(input: StatusInput): string {
  const age = (iso: string | undefined) => (iso === undefined || Number.isNaN(Date.parse(iso)) ? '-' : humanDuration(Math.max(0, input.now.getTime() - Date.parse(iso))));
  const ns = (namespace: string) => (input.namespaceColumn ? [namespace] : []);
  const nsHeader = input.namespaceColumn ? ['NAMESPACE'] : [];
  const parts: string[] = [];
  if (input.lease !== undefined) parts.push(`${input.lease}\n`);
  if (input.workloads.length > 0) {
    parts.push(formatTable(
      [...nsHeader, 'WORKLOAD', 'ROLLOUT', 'UPDATED', 'IN-FLIGHT', 'AGE', 'STRATEGY', 'IMAGES', 'STATE'],
      input.workloads.map((w) => [...ns(w.namespace), `${w.kind.toLowerCase()}/${w.name}`, w.rollout, w.updated, String(w.inFlight), age(w.since), w.strategy, w.images, w.state]),
    ));
  }
  const pods = input.allPods ? input.pods : input.pods.filter((p) => p.inFlight);
  if (pods.length > 0) {
    parts.push(formatTable(
      [...nsHeader, 'POD', 'READY', 'GATE', 'PHASE', 'SINCE', 'IMAGES', 'WAITING FOR'],
      pods.map((p) => [...ns(p.namespace), p.name, p.ready, p.gate, p.phase, age(p.since), p.images, p.waitingFor]),
    ));
  } else if (input.workloads.length === 0) {
    parts.push(input.allPods ? 'No managed pods found.\n' : 'No image change in flight.\n');
  }
  return parts.join('\n');
}

export interface RolloutVerdict {
  state: 'waiting' | 'done' | 'failed';
  message: string;
}

/**
 * `kubectl inplace-gate rollout status`: waits as `kubectl rollout status`
 * does, but reads an in-place rollout's own progress, fails on a stalled pod
 * (which would otherwise hold the rollout until its progress deadline), and
 * fails on a fallback to the native rollout (`fallback`: the Warning's note).
 */
export function rolloutVerdict(kind: WorkloadKind, w: Workload, pods: Pod[], now: Date, fallback: string | undefined): RolloutVerdict {
  const name = `${kind.toLowerCase()}/${w.metadata.name ?? ''}`;
  if (fallback !== undefined) return { state: 'failed', message: `${name} fell back to the native rollout: ${fallback}` };
  const report = reportWorkload(kind, w, pods);
  if (report.rollout === 'unreadable') return { state: 'failed', message: `${name}: ${report.state}` };
  if (report.rollout === 'in place') {
    if (report.stalled.length > 0) {
      const why = pods.filter((p) => report.stalled.includes(p.metadata.name ?? '')).map((p) => `${p.metadata.name ?? ''}: ${reportPod(p, now).waitingFor}`);
      return { state: 'failed', message: `${name}: in-place rollout stalled (${why.join('; ')})` };
    }
    if (report.state.startsWith('held:')) return { state: 'done', message: `partitioned in-place roll out complete: ${report.updated} pods updated; ${report.state}` };
    if (report.state.startsWith('done:')) return { state: 'waiting', message: `Waiting for ${name} to be handed back to its controller...` };
    return { state: 'waiting', message: `Waiting for in-place rollout of ${name} to finish: ${report.updated.replace('/', ' of ')} pods updated, ${report.inFlight} in flight...` };
  }
  return nativeVerdict(kind, w, name);
}

/** What kubectl's status viewers decide from a workload's status, for a rollout not (or no longer) in place. */
function nativeVerdict(kind: WorkloadKind, w: Workload, name: string): RolloutVerdict {
  const status = w.status ?? {};
  const replicas = w.spec.replicas ?? 1;
  const updated = status.updatedReplicas ?? 0;
  const ready = status.readyReplicas ?? 0;
  if ((status.observedGeneration ?? 0) < (w.metadata.generation ?? 0)) return { state: 'waiting', message: `Waiting for ${name} spec update to be observed...` };
  if (kind === 'Deployment') {
    const conditions = (status.conditions ?? []) as { type: string; reason?: string }[];
    if (conditions.some((c) => c.type === 'Progressing' && c.reason === 'ProgressDeadlineExceeded')) {
      return { state: 'failed', message: `${name} exceeded its progress deadline` };
    }
    const available = (status.availableReplicas as number | undefined) ?? 0;
    if (updated < replicas) return { state: 'waiting', message: `Waiting for ${name} rollout to finish: ${updated} out of ${replicas} new replicas have been updated...` };
    if ((status.replicas ?? 0) > updated) return { state: 'waiting', message: `Waiting for ${name} rollout to finish: ${(status.replicas ?? 0) - updated} old replicas are pending termination...` };
    if (available < updated) return { state: 'waiting', message: `Waiting for ${name} rollout to finish: ${available} of ${updated} updated replicas are available...` };
    return { state: 'done', message: `${name} successfully rolled out` };
  }
  if ((w.spec.updateStrategy?.type ?? 'RollingUpdate') === 'OnDelete') return { state: 'done', message: `${name}: updateStrategy OnDelete: nothing is rolled out until its pods are deleted` };
  const partition = w.spec.updateStrategy?.rollingUpdate?.partition ?? 0;
  if (ready < replicas) return { state: 'waiting', message: `Waiting for ${replicas - ready} pods to be ready...` };
  if (partition > 0) {
    if (updated < replicas - partition) return { state: 'waiting', message: `Waiting for partitioned roll out to finish: ${updated} out of ${replicas - partition} new pods have been updated...` };
    return { state: 'done', message: `partitioned roll out complete: ${updated} new pods have been updated...` };
  }
  if (status.updateRevision !== status.currentRevision) {
    return { state: 'waiting', message: `waiting for ${name} rolling update to complete ${updated} pods at revision ${status.updateRevision ?? ''}...` };
  }
  return { state: 'done', message: `${name} rolling update complete ${ready} pods at revision ${status.currentRevision ?? ''}...` };
}
