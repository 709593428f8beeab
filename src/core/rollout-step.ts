// The rollout controller's every decision, as one pure step: from a held
// workload, its ReplicaSets (or its revision), its pods and the clock, the
// ordered actions of one pass. The reconciler (src/watcher/rollout-reconciler.ts)
// gathers the inputs from its caches and only applies the actions, in order.
//
// Three actions need the apiserver to decide (the caches keep trimmed objects):
// `check-managed` (are all the owner's pods managed? else fall back),
// `history` (one revision-history write, see historyStep) and `check-observed`
// (the StatefulSet controller's observation of the template, see
// templateObserved). Each of them either lets the pass go on or ends it, as
// the action says; their own decisions are pure functions too.

import { imageChanges, specImages, type ImageMap } from './containers.ts';
import type { Pod } from './kube-types.ts';
import { currentReplicaSet, isSurgeOf, replicaSetView } from './deployment-rollout.ts';
import { annotationPartition, type WorkloadKind } from './hand-back.ts';
import { READINESS_GATE, ROLLOUT_ANNOTATION, ROLLOUT_IN_PROGRESS, UPDATE_ANNOTATION } from './names.ts';
import type { RolloutState } from './rollout-state.ts';
import { deploymentWindow, planRollout, rolloutPod, statefulSetRolloutStep, statefulSetWindow, type PodOrder, type RolloutPlan, type RolloutTiming } from './rollout.ts';
import { parseUpdateState, type UpdateState } from './state.ts';
import { leftoverConditions, rolloutPhase, type RolloutPhase, type StatusCondition } from './statefulset-status.ts';
import type { Workload } from './workload-types.ts';

/** Wait for the controllers (a ReplicaSet not created yet, a surge coming up). */
export const WAIT_MS = 2000;
/** Wait for the StatefulSet controller to observe the template. */
export const OBSERVE_WAIT_MS = 500;
/** A rollout that stays stalled is warned about again this often. */
export const REWARN_MS = 10 * 60_000;

export type { WorkloadKind };

export interface RolloutInput {
  kind: WorkloadKind;
  workload: Workload;
  /** The rollout-state annotation, parsed; undefined: no rollout recorded. */
  state: RolloutState | undefined;
  /** ReplicaSets in the workload's namespace (a Deployment's own and its surges are picked here). */
  replicaSets: readonly Workload[];
  /** Managed pods in the workload's namespace (its own are picked by owner here). */
  pods: readonly Pod[];
  order: PodOrder;
  now: number;
}

export type RolloutAction =
  /** Hand the workload back to its native controller (surges and template undone for a Deployment), with a Warning. */
  | { do: 'fall-back'; note: string }
  /** List the owner's pods from the apiserver: any not managed by inplace-gate, and it falls back (the pass ends). */
  | { do: 'check-managed'; owner: Workload }
  /** One revision-history write if one is due (the pass ends then, to look again at once). */
  | { do: 'history'; replicaSet: Workload; scope: 'history' | 'duplicates-only' }
  /** The current ReplicaSet's template to the target images: pods it creates from now on start on them. */
  | { do: 'retarget'; replicaSet: Workload; patch: Record<string, unknown>; fieldManager: string | undefined; note: string }
  | { do: 'create-surge'; replicaSet: Workload; size: number }
  | { do: 'remove-surges' }
  /** The rollout's mark off the ReplicaSet's template: it is the Deployment's again. */
  | { do: 'unmark'; replicaSet: Workload }
  /** Unpause the Deployment and drop the state in one guarded patch; the rollout succeeded with `pods`. */
  | { do: 'release'; pods: number }
  /** Drop the StatefulSet's state, hand back `partition`, end its conditions and raise observedGeneration. */
  | { do: 'finish-statefulset'; partition: number; rollingUpdate: boolean; pods: number }
  /** Is status.updateRevision the current template's? Not yet: the pass ends, to look again soon. */
  | { do: 'check-observed' }
  | { do: 'write-state'; state: RolloutState }
  /** The StatefulSet's Reconciling/Stalled conditions for the phase; `hold` lowers observedGeneration too. */
  | { do: 'report'; phase: RolloutPhase; ended?: boolean; hold?: boolean }
  /** Start these pods' updates, one guarded write each (requests built by podRequest). */
  | { do: 'start'; plan: RolloutPlan; target: ImageMap; revision: string | undefined }
  /** A stalled rollout: the state records why, a Warning says so; `first`: newly failed (the Deployment's Progressing False). */
  | { do: 'stalled'; why: string; reason: 'InPlaceRolloutStalled' | 'ProgressDeadlineExceeded'; first: boolean; state: RolloutState }
  /** A Deployment this watcher reported failed goes on again: Progressing back to True. */
  | { do: 'progressing' };

export interface RolloutStep {
  actions: RolloutAction[];
  /** Look again after this long (undefined: when something changes). */
  requeueAfterMs?: number;
}

export function templateImages(w: Workload): ImageMap {
  return specImages(w.spec.template.spec);
}

export function controllerUid(w: { metadata: { ownerReferences?: { uid: string; controller?: boolean }[] | undefined } }): string | undefined {
  return w.metadata.ownerReferences?.find((o) => o.controller === true)?.uid;
}

export function ownedBy(pod: Pod, uid: string | undefined): boolean {
  return uid !== undefined && (pod.metadata.ownerReferences?.some((o) => o.uid === uid && o.controller === true) ?? false);
}

/** One pass of the rollout of the workload, decided. */
export function rolloutStep(input: RolloutInput): RolloutStep {
  if (!input.state) {
    // No rollout: a StatefulSet may still carry the conditions of one that ended while a write failed.
    const conditions = (input.workload.status?.conditions ?? []) as StatusCondition[];
    return input.kind === 'StatefulSet' && leftoverConditions(conditions) ? { actions: [{ do: 'report', phase: { kind: 'ended' }, ended: true }] } : { actions: [] };
  }
  return input.kind === 'Deployment' ? deploymentStep(input, input.state) : statefulSetStep(input, input.state);
}

function timing(w: Workload, state: RolloutState, now: number): RolloutTiming {
  const minReady = w.spec.minReadySeconds;
  const deadline = w.spec.progressDeadlineSeconds;
  return {
    now,
    ...(typeof minReady === 'number' ? { minReadySeconds: minReady } : {}),
    ...(typeof deadline === 'number' ? { progressDeadlineSeconds: deadline } : {}),
    startedAt: Date.parse(state.startedAt),
  };
}

function deploymentStep(input: RolloutInput, state: RolloutState): RolloutStep {
  const d = input.workload;
  const ns = d.metadata.namespace ?? '';
  const target = templateImages(d);
  if (d.metadata.annotations?.[ROLLOUT_ANNOTATION] === 'recreate') {
    return { actions: [{ do: 'fall-back', note: 'inplace-gate.dev/rollout: recreate set during the in-place rollout: the controller replaces the remaining pods' }] };
  }
  const owned = input.replicaSets.filter((r) => r.metadata.namespace === ns && controllerUid(r) === d.metadata.uid);
  // The ReplicaSet that runs the pods, as the controller sees it: never picked by name or revision.
  const current = currentReplicaSet(owned.map(replicaSetView));
  if (current.kind === 'several') {
    return { actions: [{ do: 'fall-back', note: `ReplicaSets ${current.names.join(', ')} all run pods (a native rollout under way): it goes on natively` }] };
  }
  if (current.kind === 'none') {
    // Nothing runs (scaled to 0, or the first ReplicaSet not created yet): nothing to update in place.
    if (owned.length === 0 && (d.spec.replicas ?? 1) > 0) return { actions: [], requeueAfterMs: WAIT_MS };
    return { actions: [{ do: 'release', pods: 0 }] };
  }
  const rs = owned.find((r) => r.metadata.uid === current.rs.uid);
  if (!rs) return { actions: [], requeueAfterMs: WAIT_MS };
  const pods = input.pods.filter((p) => ownedBy(p, rs.metadata.uid));
  const actions: RolloutAction[] = [];

  const rsImages = templateImages(rs);
  const window = deploymentWindow(d.spec);
  if (Object.entries(target).some(([n, i]) => rsImages[n] !== i)) {
    // The ReplicaSet's template differs from the target (not begun, or retargeted): unpaused, the
    // native controller would roll every pod to the target, so it may still go native here.
    if (!window.inPlace) return { actions: [{ do: 'fall-back', note: window.message }] };
    actions.push({ do: 'check-managed', owner: rs }, { do: 'history', replicaSet: rs, scope: 'history' });
    // Pods the ReplicaSet creates from now on (a replacement, a scale-up) start on the new images.
    const pick = (cs: readonly { name: string }[] | undefined) => (cs ?? []).filter((c) => target[c.name] !== undefined).map((c) => ({ name: c.name, image: target[c.name] }));
    const containers = pick(rs.spec.template.spec.containers);
    const initContainers = pick(rs.spec.template.spec.initContainers);
    actions.push({
      do: 'retarget',
      replicaSet: rs,
      patch: { spec: { template: { metadata: { annotations: { [ROLLOUT_IN_PROGRESS]: 'true' } }, spec: { containers, ...(initContainers.length > 0 ? { initContainers } : {}) } } } },
      fieldManager: state.fieldManager,
      note: `Rolling out ${describe(imageChanges(rs.spec.template.spec, d.spec.template.spec))} in place to ${pods.length} pods, ReplicaSet ${rs.metadata.name ?? ''} kept`,
    });
  }

  // Begun: the ReplicaSet already has the new template, so there is no native way back without a
  // mixed state; a Deployment scaled down mid-rollout below its window goes on one pod at a time.
  const partition = annotationPartition(d);
  const opts = { order: 'name' as const, partition, timing: timing(d, state, input.now) };
  const surgeSize = window.inPlace ? (window.surge ?? 0) : 0;
  const surges = input.replicaSets.filter((r) => r.metadata.namespace === ns && isSurgeOf(r, d.metadata.uid));
  const ordered = pods.map((p) => rolloutPod(p, input.order));
  let plan = planRollout(ordered, target, window.inPlace ? window.maxUnavailable : 1, opts);
  if (surgeSize > 0 && !plan.done) {
    // maxUnavailable 0: surge pods first; each one available lets one pod out for its update.
    if (surges.length === 0) return { actions: [...actions, { do: 'create-surge', replicaSet: rs, size: surgeSize }], requeueAfterMs: WAIT_MS };
    const surgePods = input.pods.filter((p) => surges.some((r) => ownedBy(p, r.metadata.uid)) && p.metadata.deletionTimestamp === undefined).map((p) => rolloutPod(p));
    const minReadyMs = (opts.timing.minReadySeconds ?? 0) * 1000;
    const availableSurge = surgePods.filter((p) => p.ready && (p.readySince ?? 0) + minReadyMs <= input.now).length;
    plan = planRollout(ordered, target, Math.min(surgeSize, availableSurge), opts);
  }
  // Done only for the pods the ReplicaSet is meant to have: pods it has yet to create are not done.
  const live = pods.filter((p) => p.metadata.deletionTimestamp === undefined).length;
  if (plan.done && live >= (rs.spec.replicas ?? 0) && partition === 0) {
    // A ReplicaSet with no pods and the target's template would be the controller's pick on unpause;
    // the surge pods go; the ReplicaSet's template becomes the Deployment's again, and one patch
    // releases the Deployment: the controller adopts that ReplicaSet.
    actions.push({ do: 'history', replicaSet: rs, scope: 'duplicates-only' }, { do: 'remove-surges' });
    if (rs.spec.template.metadata?.annotations?.[ROLLOUT_IN_PROGRESS] !== undefined) actions.push({ do: 'unmark', replicaSet: rs });
    actions.push({ do: 'release', pods: plan.total });
    return { actions };
  }
  actions.push({ do: 'start', plan, target, revision: undefined });
  const stalled = stallAction(d, state, plan, input.now);
  if (stalled) actions.push(stalled);
  else if (plan.stalled.length === 0 && plan.deadlineExceeded === undefined) actions.push({ do: 'progressing' });
  return { actions, requeueAfterMs: nextLook(plan, input.now) };
}

function statefulSetStep(input: RolloutInput, state: RolloutState): RolloutStep {
  const s = input.workload;
  const ns = s.metadata.namespace ?? '';
  const target = templateImages(s);
  const window = statefulSetWindow(s.spec);
  const actions: RolloutAction[] = [];
  // Reconciling first, before the controller observes the hold: with the status webhook down, kstatus
  // would read it Current between (with it, the held observedGeneration says InProgress already).
  const reconciling = ((s.status?.conditions ?? []) as StatusCondition[]).some((c) => c.type === 'Reconciling' && c.status === 'True');
  if (rolloutPhase(state).kind === 'running' && !reconciling && window.inPlace) actions.push({ do: 'report', phase: { kind: 'running' } });
  const revision = s.status?.updateRevision;
  // The pods get status.updateRevision's hash: it must name the current template.
  if (!revision) return { actions, requeueAfterMs: OBSERVE_WAIT_MS };
  actions.push({ do: 'check-observed' });
  // OnDelete (say, switched to mid-rollout): left to whoever deletes the pods; pods in flight finish.
  if (!window.inPlace) return { actions: [...actions, { do: 'fall-back', note: window.message }] };

  const pods = input.pods.filter((p) => p.metadata.namespace === ns && ownedBy(p, s.metadata.uid));
  const own = annotationPartition(s);
  const partition = Math.max(state.partition ?? 0, own);
  const plan = planRollout(pods.map((p) => rolloutPod(p, input.order)), target, window.maxUnavailable, { order: 'ordinal-desc', partition, timing: timing(s, state, input.now) });
  // Before the first pod is touched, make sure the lifecycle can drive them all.
  if (plan.updated === 0 && plan.start.length > 0 && pods.every((p) => rolloutPod(p).update === undefined)) actions.push({ do: 'check-managed', owner: s });
  const step = statefulSetRolloutStep(plan, state.partition ?? 0, own);
  if (step.action === 'hold-partition') {
    // The ordinals below the partition annotation stay on the old images: the StatefulSet stays held
    // (lowering the annotation requeues it and goes on in place), never handed a partition below it.
    // Natively "partitioned roll out complete": recorded, so the status webhook stops holding the generation.
    if (state.partitionHeld !== true) actions.push({ do: 'write-state', state: { ...state, partitionHeld: true } });
    actions.push({ do: 'report', phase: { kind: 'partitioned' } });
    return { actions };
  }
  if (step.action === 'finish') {
    actions.push({ do: 'finish-statefulset', partition: step.partition, rollingUpdate: (s.spec.updateStrategy?.type ?? 'RollingUpdate') === 'RollingUpdate', pods: plan.total });
    return { actions };
  }
  const why = stallReason(s, plan);
  const resumed = why === undefined && (state.stalled !== undefined || state.partitionHeld === true);
  if (resumed) {
    // Going on after a stall or a partition hold (the pod came back, the annotation was lowered): the
    // generation is held again before any pod moves, here at once and by the webhook from then on.
    const { stalled: _stalled, stalledAt: _at, partitionHeld: _held, ...going } = state;
    actions.push({ do: 'write-state', state: going }, { do: 'report', phase: { kind: 'running' }, hold: true });
  }
  actions.push({ do: 'start', plan, target, revision });
  const stalled = stallAction(s, state, plan, input.now);
  if (stalled) actions.push(stalled);
  if (!resumed) actions.push({ do: 'report', phase: why === undefined ? { kind: 'running' } : { kind: 'stalled', why } });
  return { actions, requeueAfterMs: nextLook(plan, input.now) };
}

/** Why a rollout is stopped, if it is: a stalled pod, or no progress within progressDeadlineSeconds. */
export function stallReason(w: Workload, plan: RolloutPlan): string | undefined {
  if (plan.stalled.length > 0) return `${plan.stalled.join(', ')} did not come back (see its events)`;
  if (plan.deadlineExceeded) return `no pod reached the new images for ${String(w.spec.progressDeadlineSeconds)}s (progressDeadlineSeconds; ${String(plan.updated)} of ${String(plan.total)} updated)`;
  return undefined;
}

/**
 * A stalled pod, or no progress within the progress deadline: the rollout is
 * failed (recorded in its state, which the shipped Argo CD health and `kubectl
 * inplace` read) and a Warning says so, again every REWARN_MS while it stays
 * so: one Warning is easy to miss.
 */
function stallAction(w: Workload, state: RolloutState, plan: RolloutPlan, now: number): RolloutAction | undefined {
  const why = stallReason(w, plan);
  if (why === undefined) return undefined;
  if (state.stalled === why && state.stalledAt !== undefined && now - Date.parse(state.stalledAt) < REWARN_MS) return undefined;
  const { partitionHeld: _held, ...rest } = state;
  return {
    do: 'stalled',
    why,
    reason: plan.stalled.length > 0 ? 'InPlaceRolloutStalled' : 'ProgressDeadlineExceeded',
    first: state.stalled === undefined,
    state: { ...rest, stalled: why, stalledAt: new Date(now).toISOString() },
  };
}

/** When to look again: as a pod becomes available (minReadySeconds) or the progress deadline passes, else on the slow resync. */
export function nextLook(plan: RolloutPlan, now: number): number {
  const at = [plan.nextAvailableAt, plan.deadlineExceeded ? undefined : plan.deadlineAt].filter((t): t is number => t !== undefined);
  const soon = at.length === 0 ? 30_000 : Math.min(...at) - now + 50;
  return Math.max(100, Math.min(30_000, soon));
}

/**
 * The request a rollout writes for one of its pods: what the webhook records
 * for a client's image request, marked as this rollout's; only the containers
 * whose image differs from the target. `drained`: the pod is already out of
 * its endpoints (an earlier update in flight), so no second drain.
 */
export function podRequest(pod: Pod, target: ImageMap, state: RolloutState, rollout: string, now: string): UpdateState {
  const current = parseUpdateState(pod.metadata.annotations?.[UPDATE_ANNOTATION]);
  const drained = current.ok && (current.state?.phase === 'Updating' || current.state?.phase === 'Stalled' || current.state?.drained === true);
  const images: ImageMap = {};
  const running = rolloutPod(pod).specImages;
  for (const [c, image] of Object.entries(target)) if (c in running && running[c] !== image) images[c] = image;
  return {
    phase: 'Pending',
    images,
    requestedBy: state.requestedBy,
    ...(state.fieldManager ? { fieldManager: state.fieldManager } : {}),
    requestedAt: now,
    rollout,
    ...(drained ? { drained: true } : {}),
  };
}

/**
 * Progress as Events at each tenth of the pods, not for every slot freed:
 * every Event is an API write. They stand for the pods' own Normal Events,
 * which a rollout's pods do not get. `held`: pods whose request waits on a
 * PodDisruptionBudget.
 */
export function progressNote(plan: Pick<RolloutPlan, 'updated' | 'total'>, started: readonly string[], held: readonly string[]): string | undefined {
  const tenth = (n: number) => Math.floor((n * 10) / Math.max(1, plan.total));
  if (plan.updated !== 0 && tenth(plan.updated + started.length) <= tenth(plan.updated)) return undefined;
  const waiting = held.length === 0 ? '' : `; not draining yet (a PodDisruptionBudget, see their ${READINESS_GATE} condition): ${held.join(', ')}`;
  return `${plan.updated} of ${plan.total} pods updated; now updating ${started.join(', ')}${waiting}`;
}

export function describe(images: ImageMap): string {
  return Object.entries(images).map(([n, i]) => `${n}=${i}`).join(', ');
}
