// Handing work back: `kubectl inplace-gate cancel` (a pod's request not yet
// written) and `release` (a workload, or everything before an uninstall, back
// to its native controller). Pure: given the objects as read, the writes to
// make, each guarded by the resourceVersion it was decided on; the shell
// applies them, reads again and plans again until nothing is left to write.
// The watcher's fallback uses the same workload writes (handBackPatch,
// rewindPatch, surgeDeletion), so a release is exactly a fallback.

import { specImages, type ImageMap } from './containers.ts';
import { currentReplicaSet, isSurgeOf, replicaSetView, rewindStep, type RewindStep } from './deployment-rollout.ts';
import type { Pod } from './kube-types.ts';
import { gateCondition, nextStep, type GateCondition, type LifecycleConfig, type PodEvent } from './lifecycle.ts';
import { MANAGED_LABEL, PARTITION_ANNOTATION, ROLLOUT_ANNOTATION, ROLLOUT_IN_PROGRESS, ROLLOUT_STATE_ANNOTATION, UPDATE_ANNOTATION } from './names.ts';
import { IMAGE_WRITE_REFUSED } from './refusal.ts';
import { restoredPartition } from './rollout.ts';
import { parseRolloutState } from './rollout-state.ts';
import { hasReadinessGate } from './scope.ts';
import { backToUpdating, encodeUpdateState, parseUpdateState, stalledInDrain, type UpdateState } from './state.ts';
import type { Workload } from './workload-types.ts';

export type WorkloadKind = 'Deployment' | 'StatefulSet';

/** How the rollout's own status conditions begin (see the rollout reconciler), to tell them from the controllers'. */
export const ROLLOUT_REPORT_PREFIX = 'in-place rollout (inplace-gate)';
const REVISION_HASH = 'controller-revision-hash';

/** The workload's `inplace-gate.dev/partition`, 0 when absent or not a whole number. */
export function annotationPartition(w: Workload): number {
  const raw = w.metadata.annotations?.[PARTITION_ANNOTATION];
  return raw !== undefined && /^\d+$/.test(raw) ? Number(raw) : 0;
}

/**
 * The write that gives a held workload back to its controller: a Deployment
 * unpaused, a RollingUpdate StatefulSet's partition restored to the user's
 * (never below the partition annotation's), and the rollout state removed,
 * guarded by the resourceVersion the decision was made on.
 */
export function handBackPatch(kind: WorkloadKind, w: Workload): Record<string, unknown> {
  const state = parseRolloutState(w.metadata.annotations?.[ROLLOUT_STATE_ANNOTATION]);
  const userPartition = state.ok ? state.state?.partition : undefined;
  const rollingUpdate = (w.spec.updateStrategy?.type ?? 'RollingUpdate') === 'RollingUpdate';
  const spec = kind === 'Deployment'
    ? { paused: false }
    : userPartition === undefined || !rollingUpdate ? undefined : { updateStrategy: { rollingUpdate: { partition: restoredPartition(userPartition, annotationPartition(w)) } } };
  return { metadata: { resourceVersion: w.metadata.resourceVersion, annotations: { [ROLLOUT_STATE_ANNOTATION]: null } }, ...(spec ? { spec } : {}) };
}

/** The current ReplicaSet's template put back to its own revision's images (marker off), guarded. */
export function rewindPatch(resourceVersion: string, step: Extract<RewindStep, { action: 'restore-template' }>): Record<string, unknown> {
  return {
    metadata: { resourceVersion },
    spec: { template: { metadata: { annotations: { [ROLLOUT_IN_PROGRESS]: null } }, spec: { containers: step.containers, ...(step.initContainers.length > 0 ? { initContainers: step.initContainers } : {}) } } },
  };
}

/** DeleteOptions for a rollout's surge ReplicaSet: that one only (uid), its pods with it. */
export function surgeDeletion(uid: string | undefined): Record<string, unknown> {
  return { apiVersion: 'v1', kind: 'DeleteOptions', propagationPolicy: 'Background', preconditions: { uid } };
}

// ---- One pod ----

export interface PodWrite {
  op: 'pod';
  pod: Pod;
  /** A pods patch (metadata: the state annotation, a label), carrying the pod's resourceVersion. */
  patch?: Record<string, unknown>;
  /** Then a pods/status patch of the gate condition, guarded by the resourceVersion the first write returned. */
  condition?: GateCondition;
  /** The status patch also removes the state (a proven update the watcher has not closed). */
  clearState?: boolean;
  event?: PodEvent;
  note: string;
}

export type PodCancel =
  | { action: 'write'; write: PodWrite }
  /** Nothing to do, or nothing that may be done (the images are written): why, as a person reads it. */
  | { action: 'none'; note: string }
  | { action: 'refuse'; note: string }
  /** An update proven neither done nor failed yet: the kubelet is restarting the container. */
  | { action: 'wait'; note: string };

export interface CancelContext {
  now: Date;
  config: LifecycleConfig;
  /** Who writes (a back-to-Updating state names its requester, and the webhook checks it is the writer). */
  user: string | undefined;
  /** Labels to set in the same guarded write (a StatefulSet pod's revision, on a release). */
  labels?: Record<string, string>;
}

const describe = (images: ImageMap) => Object.entries(images).map(([n, i]) => `${n}=${i}`).join(', ');
const podName = (pod: Pod) => `pod/${pod.metadata.name ?? ''}`;

function stateBody(pod: Pod, value: string | null, labels: Record<string, string> | undefined): Record<string, unknown> {
  return { metadata: { resourceVersion: pod.metadata.resourceVersion, annotations: { [UPDATE_ANNOTATION]: value }, ...(labels ? { labels } : {}) } };
}

/**
 * Drops a pod's image request that is not written yet (Pending, Draining,
 * Stalled in its drain): the running images stay, the condition goes True,
 * an Event says so. Once the images are written (Updating, Stalled) the
 * kubelet restarts the container whatever is done here, so cancel refuses:
 * the condition goes True only on proof (a proven update the watcher has not
 * closed yet is closed here). A request made while an earlier write was
 * unproven goes back to Updating over those images, as the webhook's own
 * cancellation does.
 */
export function cancelRequest(pod: Pod, ctx: CancelContext): PodCancel {
  const name = podName(pod);
  if (pod.metadata.deletionTimestamp !== undefined) return { action: 'none', note: `${name}: being deleted` };
  if (pod.metadata.labels?.[MANAGED_LABEL] !== 'true') return { action: 'none', note: `${name}: not managed by inplace-gate` };
  const parsed = parseUpdateState(pod.metadata.annotations?.[UPDATE_ANNOTATION]);
  if (!parsed.ok) return { action: 'refuse', note: `${name}: ${UPDATE_ANNOTATION} is unreadable (${parsed.error}); set the image again to replace it` };
  const state = parsed.state;
  const labels = ctx.labels;
  const running = describe(specImages(pod.spec));
  const gated = hasReadinessGate(pod);

  if (state === undefined) {
    // No request: the condition the watcher gives a pod without one (a new pod, a cancelled drain).
    const step = gated ? nextStep(pod, { now: ctx.now }, ctx.config) : undefined;
    if (step?.kind === 'setCondition') {
      return { action: 'write', write: { op: 'pod', pod, ...(labels ? { patch: { metadata: { resourceVersion: pod.metadata.resourceVersion, labels } } } : {}), condition: step.condition, note: `${name}: no image change pending; InPlaceUpdateReady set True` } };
    }
    if (labels) return { action: 'write', write: { op: 'pod', pod, patch: { metadata: { resourceVersion: pod.metadata.resourceVersion, labels } }, note: `${name}: relabelled for its controller` } };
    return { action: 'none', note: `${name}: no image change pending` };
  }

  const waiting = notWritten(state);
  if (waiting && state.drained === true) {
    // Asked while an earlier write was unproven: the pod is out of endpoints for those images.
    if (ctx.user === undefined) return { action: 'refuse', note: `${name}: cannot tell who is writing, needed to cancel a request made while an earlier update was unproven` };
    const next = backToUpdating(pod, state, ctx.user, ctx.now);
    return {
      action: 'write',
      write: {
        op: 'pod', pod, patch: stateBody(pod, encodeUpdateState(next), labels),
        event: { type: 'Normal', reason: 'InPlaceUpdateCancelled', action: 'Cancel', note: `Pending ${describe(state.images)} cancelled; out of endpoints until ${describe(next.images)}, written earlier, is proven` },
        note: `${name}: pending ${describe(state.images)} dropped; stays out of endpoints until ${describe(next.images)}, written earlier, is proven`,
      },
    };
  }
  if (waiting) {
    const condition = gateCondition(pod);
    const needsCondition = gated && condition?.status !== 'True';
    return {
      action: 'write',
      write: {
        op: 'pod', pod, patch: stateBody(pod, null, labels),
        ...(needsCondition ? { condition: { status: 'True' as const, reason: 'UpdateCancelled', message: 'no image change pending' } } : {}),
        event: { type: 'Normal', reason: 'InPlaceUpdateCancelled', action: 'Cancel', note: `${state.phase} ${describe(state.images)} cancelled; keeps ${running}` },
        note: `${name}: ${state.phase} ${describe(state.images)} dropped; keeps ${running}${gated ? '; InPlaceUpdateReady True' : ''}`,
      },
    };
  }
  if (state.phase === 'Stalled' && state.stalled?.reason === IMAGE_WRITE_REFUSED) {
    return { action: 'none', note: `${name}: nothing pending (the apiserver refused ${describe(state.images)}; it runs ${running} and serves)` };
  }

  // Updating or Stalled: the images are in the spec. Closed here only on the lifecycle's own proof.
  const step = nextStep(pod, { now: ctx.now }, ctx.config);
  if (step.kind === 'transition' && step.state === undefined) {
    return {
      action: 'write',
      write: {
        op: 'pod', pod, clearState: true, ...(step.condition ? { condition: step.condition } : {}),
        ...(labels ? { patch: { metadata: { resourceVersion: pod.metadata.resourceVersion, labels } } } : {}),
        ...(step.event ? { event: step.event } : {}),
        note: `${name}: ${describe(state.images)} proven running${gated ? '; InPlaceUpdateReady True' : ''}`,
      },
    };
  }
  if (state.phase === 'Stalled') {
    return { action: 'refuse', note: `${name}: cannot cancel: ${describe(state.images)} is written and stalled (${state.stalled?.message ?? ''}); it stays out of endpoints. Set the image again (a rollback, say) to start over` };
  }
  const why = step.kind === 'none' ? step.why : 'restarting';
  return { action: 'wait', note: `${name}: cannot cancel: ${describe(state.images)} is written and the kubelet restarts the container (${why}); InPlaceUpdateReady goes True once that is proven. To go back, set the previous images` };
}

// ---- One workload ----

export type ReleaseWrite =
  | { op: 'delete-replicaset'; name: string; options: Record<string, unknown>; note: string }
  | { op: 'patch-replicaset'; name: string; body: Record<string, unknown>; note: string }
  | { op: 'patch-workload'; body: Record<string, unknown>; note: string; marks?: true }
  | { op: 'workload-conditions'; conditions: { type: string; status: 'False'; reason: string; message: string }[]; note: string }
  | PodWrite;

export interface ReleasePlan {
  writes: ReleaseWrite[];
  /** Per object, what is as it should be or cannot be changed (refusals, pods still restarting). */
  notes: string[];
  /** Pods whose written images are not proven yet: worth another look. */
  waiting: string[];
}

export interface ReleaseInput {
  kind: WorkloadKind;
  workload: Workload;
  /** The namespace's ReplicaSets (a Deployment's own and its surge ones are picked here). */
  replicaSets: readonly Workload[];
  /** The namespace's managed pods. */
  pods: readonly Pod[];
  ctx: Omit<CancelContext, 'labels'>;
  /** This release marked the Deployment `inplace-gate.dev/rollout: recreate` (see releasePlan): the mark goes again at the end. */
  marked?: boolean;
}

const controllerUid = (o: { metadata: { ownerReferences?: { uid: string; controller?: boolean }[] } }) => o.metadata.ownerReferences?.find((r) => r.controller === true)?.uid;

/** A workload's own pods: a Deployment's through its ReplicaSets, a StatefulSet's directly (surge pods go with their ReplicaSet). */
export function podsOf(kind: WorkloadKind, w: Workload, replicaSets: readonly Workload[], pods: readonly Pod[]): Pod[] {
  const owners = new Set(kind === 'Deployment' ? replicaSets.filter((r) => controllerUid(r) === w.metadata.uid).map((r) => r.metadata.uid) : [w.metadata.uid]);
  return pods.filter((p) => owners.has(controllerUid(p)));
}

/**
 * Everything a release of one workload writes now, in order: a Deployment's
 * surge ReplicaSets deleted and its ReplicaSet rewound (one step a plan), then
 * the hand-back write (the same as the watcher's fallback), then its pods'
 * requests not yet written dropped, only once the rollout state is gone (so
 * the watcher starts none again). A released workload plans nothing.
 */
export function releasePlan(input: ReleaseInput): ReleasePlan {
  const { kind, workload: w, ctx } = input;
  const label = `${kind.toLowerCase()}/${w.metadata.name ?? ''}`;
  const writes: ReleaseWrite[] = [];
  const notes: string[] = [];
  const waiting: string[] = [];
  const rolloutState = parseRolloutState(w.metadata.annotations?.[ROLLOUT_STATE_ANNOTATION]);
  const held = !rolloutState.ok || rolloutState.state !== undefined;
  let handedBack = !held;

  if (kind === 'Deployment') {
    for (const r of input.replicaSets) {
      if (isSurgeOf(r, w.metadata.uid)) {
        writes.push({ op: 'delete-replicaset', name: r.metadata.name ?? '', options: surgeDeletion(r.metadata.uid), note: `${label}: surge ReplicaSet ${r.metadata.name ?? ''} deleted (its pods go with it)` });
      }
    }
    const owned = input.replicaSets.filter((r) => controllerUid(r) === w.metadata.uid).map(replicaSetView);
    const current = currentReplicaSet(owned);
    const step = current.kind === 'one' ? rewindStep(current.rs, owned.filter((r) => r.uid !== current.rs.uid)) : { action: 'release' as const };
    if (current.kind === 'one' && step.action === 'restore-template') {
      writes.push({ op: 'patch-replicaset', name: current.rs.name, body: rewindPatch(current.rs.resourceVersion, step), note: `${label}: ReplicaSet ${current.rs.name} template back to its revision's images (from ${step.from})` });
    } else if (step.action === 'delete-replicaset') {
      writes.push({ op: 'delete-replicaset', name: step.name, options: { apiVersion: 'v1', kind: 'DeleteOptions', preconditions: { uid: step.uid, resourceVersion: step.resourceVersion } }, note: `${label}: ${step.note}` });
    } else if (held && writes.length === 0) {
      writes.push({ op: 'patch-workload', body: unmarked(handBackPatch(kind, w), input.marked), note: handedBackNote(label, w) });
      handedBack = true;
    }
    if (held && writes.length > 0 && writes[0]?.op !== 'patch-workload' && w.metadata.annotations?.[ROLLOUT_ANNOTATION] !== 'recreate') {
      // Surge and ReplicaSet writes first: a running watcher that saw the rewound ReplicaSet would roll
      // it forward again. Marked recreate, it makes these same writes itself (its fallback), so the two
      // agree; the mark goes again with the hand-back.
      return {
        writes: [{ op: 'patch-workload', marks: true, body: { metadata: { resourceVersion: w.metadata.resourceVersion, annotations: { [ROLLOUT_ANNOTATION]: 'recreate' } } }, note: `${label}: marked ${ROLLOUT_ANNOTATION}=recreate while it is handed back (the watcher agrees and does the same)` }],
        notes, waiting,
      };
    }
    if (!held && input.marked === true && w.metadata.annotations?.[ROLLOUT_ANNOTATION] === 'recreate') {
      // The watcher's fallback won the hand-back write: the mark goes, and the hand-back is said all the same.
      writes.push({ op: 'patch-workload', body: unmarked({ metadata: { resourceVersion: w.metadata.resourceVersion } }, true), note: handedBackNote(label, w) });
    }
  } else {
    if (held) {
      const restored = (handBackPatch(kind, w).spec as { updateStrategy?: { rollingUpdate: { partition: number } } } | undefined)?.updateStrategy?.rollingUpdate.partition;
      writes.push({ op: 'patch-workload', body: handBackPatch(kind, w), note: `${label}: ${restored === undefined ? '' : `partition ${String(restored)} restored, `}rollout state removed: the StatefulSet controller goes on natively` });
      handedBack = true;
    }
    // kstatus reads the rollout's Reconciling/Stalled True as in progress: ours go False once handed back.
    const ours = ((w.status?.conditions ?? []) as { type: string; status: string; message?: string }[])
      .filter((c) => (c.type === 'Reconciling' || c.type === 'Stalled') && c.status === 'True' && (c.message ?? '').startsWith(ROLLOUT_REPORT_PREFIX));
    if (handedBack && ours.length > 0) {
      writes.push({
        op: 'workload-conditions',
        conditions: ours.map((c) => ({ type: c.type, status: 'False' as const, reason: 'InPlaceRolloutReleased', message: `${ROLLOUT_REPORT_PREFIX}: released to the StatefulSet controller` })),
        note: `${label}: ${ours.map((c) => c.type).join(' and ')} False`,
      });
    }
  }

  if (handedBack) {
    const update = w.status?.updateRevision;
    const currentRevision = w.status?.currentRevision;
    const target = specImages(w.spec.template.spec);
    for (const pod of podsOf(kind, w, input.replicaSets, input.pods)) {
      // A StatefulSet pod relabelled with the new revision but still on the old images (its request
      // dropped, or never written) would be taken by the controller for updated: give it back the old one.
      const images = specImages(pod.spec);
      const behind = Object.entries(target).some(([c, i]) => c in images && images[c] !== i);
      const relabel = kind === 'StatefulSet' && update !== undefined && currentRevision !== undefined && currentRevision !== update &&
        pod.metadata.labels?.[REVISION_HASH] === update && (behind || wouldDrop(pod));
      const result = cancelRequest(pod, { ...ctx, ...(relabel ? { labels: { [REVISION_HASH]: currentRevision } } : {}) });
      if (result.action === 'write') writes.push(result.write);
      else if (result.action === 'wait') waiting.push(result.note);
      else if (result.action === 'refuse') notes.push(result.note);
    }
  }
  if (writes.length === 0 && waiting.length === 0 && notes.length === 0) notes.push(`${label}: nothing to release${held ? '' : ' (not held by inplace-gate)'}`);
  return { writes, notes, waiting };
}

function handedBackNote(label: string, w: Workload): string {
  return `${label}: unpaused and its rollout state removed: the Deployment controller rolls out ${describe(specImages(w.spec.template.spec))} natively`;
}

/** The write with this release's recreate mark removed, where it made one. */
function unmarked(body: Record<string, unknown>, marked: boolean | undefined): Record<string, unknown> {
  if (marked !== true) return body;
  const metadata = body.metadata as { annotations?: Record<string, unknown> };
  return { ...body, metadata: { ...metadata, annotations: { ...metadata.annotations, [ROLLOUT_ANNOTATION]: null } } };
}

/** A request not yet written, which a cancel drops (the spec keeps the old images). */
function wouldDrop(pod: Pod): boolean {
  const parsed = parseUpdateState(pod.metadata.annotations?.[UPDATE_ANNOTATION]);
  const s = parsed.ok ? parsed.state : undefined;
  return s !== undefined && s.drained !== true && notWritten(s);
}

/** Pending, Draining, or Stalled in its drain: the requested images are not in the spec. */
function notWritten(s: UpdateState): boolean {
  return s.phase === 'Pending' || s.phase === 'Draining' || stalledInDrain(s);
}
