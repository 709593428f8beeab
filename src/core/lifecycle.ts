// The lifecycle of one image change, as pure transitions: given a managed pod
// as it is now (annotation, status, clock), say the one next step. The watcher
// applies it and comes back when the pod changes or the step's timer fires,
// so a watcher restarted at any point resumes where it stopped.

import { containerProgress } from './completion.ts';
import { drainVerdict, type DrainTiming } from './drain.ts';
import type { EndpointListing } from './endpoints.ts';
import { restartsInPlace, specImages, type ImageMap } from './containers.ts';
import { sameImageReference } from './images.ts';
import type { ContainerStatus, Pod, PodCondition } from './kube-types.ts';
import { GRACE_PERIOD_ANNOTATION, READINESS_GATE, UPDATE_ANNOTATION } from './names.ts';
import { IMAGE_WRITE_REFUSED, whileRefused } from './refusal.ts';
import { hasReadinessGate } from './scope.ts';
import { servingChanges } from './serving.ts';
import { PULL_DEADLINE_SLACK_SECONDS, imagesToPull, pullPodManifest, pullPodName, pullVerdict, type PrePullConfig, type PullContext } from './pre-pull.ts';
import { DRAIN_DEADLINE_EXCEEDED, PRE_PULL_FAILED, currentRecords, encodeUpdateState, parseUpdateState, stalledInDrain, type ContainerRecord, type UpdateState } from './state.ts';

export interface LifecycleConfig {
  /** Drain time when neither the pod nor its namespace sets one. */
  defaultGraceSeconds: number;
  /** How long a written image may take to come up before the update is Stalled. */
  progressDeadlineSeconds: number;
  /** How long after the condition went False the EndpointSlices may keep listing the pod (default: core/drain.ts). */
  drainDeadlineSeconds?: number;
  /** Pull the new images on the pod's node before the drain (core/pre-pull.ts); absent: off. */
  prePull?: PrePullConfig | undefined;
}

export interface PodContext {
  now: Date;
  /** The namespace's `inplace-gate.dev/grace-period-seconds`, if set. */
  namespaceGrace?: string | undefined;
  /** A PodDisruptionBudget with no disruption to spare for this pod now (see disruption.ts). */
  disruption?: { budget: string; message: string } | undefined;
  /**
   * EndpointSlices that still list the pod as receiving traffic, for Services
   * whose endpoints follow readiness. Absent or empty: none does (a pod no
   * Service selects, or one every slice has dropped).
   */
  endpoints?: readonly EndpointListing[];
  /** When the watcher saw the pod's last such listing go, if it did. */
  endpointsGoneAt?: Date | undefined;
  /** The pod's pull pods and its node's images and pulls (with config.prePull). */
  pull?: PullContext | undefined;
}

/** How often a drain held back by a disruption budget looks again. */
export const BUDGET_RETRY_MS = 5000;

/** Condition values the watcher writes, with a reason a person can read. */
export interface GateCondition {
  status: 'True' | 'False';
  reason: string;
  message: string;
}

export type Step =
  | { kind: 'none'; why: string; requeueAfterMs?: number }
  /** One pods/status patch: the condition only. */
  | { kind: 'setCondition'; condition: GateCondition; event?: PodEvent }
  /** One pods/status patch, guarded by resourceVersion: condition (for gated pods) and state together. */
  | { kind: 'transition'; condition?: GateCondition; state: UpdateState | undefined; event?: PodEvent; requeueAfterMs?: number; outcome?: Outcome; prePull?: PrePullOutcome }
  /** One pods patch, guarded, under the requester's field manager: images and Updating together. */
  | { kind: 'writeImages'; images: ImageMap; fieldManager: string | undefined; state: UpdateState; event?: PodEvent; requeueAfterMs: number; drain?: DrainTiming }
  /** One pods create: the pull pod, before the drain (core/pre-pull.ts). */
  | { kind: 'createPullPod'; pullPod: Pod; images: string[]; requeueAfterMs: number };

export interface PodEvent {
  type: 'Normal' | 'Warning';
  reason: string;
  action: string;
  note: string;
}

/** What ended an update, for metrics. */
export interface Outcome {
  result: 'succeeded' | 'stalled';
  /** Request to proven ready, seconds. */
  durationSeconds: number;
  /** Condition False to image write, seconds (absent when the update needed no drain). */
  drainSeconds?: number;
}

/** How the pull before a drain ended (the drain starts, or the update stalls), for metrics. */
export interface PrePullOutcome {
  /** pulled; failed (Stalled, nothing drained); lost (no answer: drained without it); refused (the pull pod was not created). */
  result: 'pulled' | 'failed' | 'lost' | 'refused';
  /** The pull pod's creation (whole seconds, as the apiserver stamps it) to the answer; absent when refused. */
  seconds?: number;
}

export const WATCHER_FIELD_MANAGER = 'inplace-gate';

const ms = (iso: string | undefined) => (iso === undefined ? NaN : Date.parse(iso));

export function gateCondition(pod: Pod): { status: string; reason?: string; message?: string } | undefined {
  return pod.status?.conditions?.find((c) => c.type === READINESS_GATE);
}

/** The gate condition to write for `c`: its transition time moves only when its status does. */
export function conditionFor(pod: Pod, c: GateCondition, now: Date): PodCondition {
  const previous = gateCondition(pod) as PodCondition | undefined;
  const changed = previous?.status !== c.status;
  return {
    type: READINESS_GATE,
    status: c.status,
    reason: c.reason,
    message: c.message,
    lastProbeTime: null,
    lastTransitionTime: changed ? now.toISOString().replace(/\.\d{3}Z$/, 'Z') : (previous.lastTransitionTime ?? now.toISOString().replace(/\.\d{3}Z$/, 'Z')),
  };
}

/** Longer than any endpoint propagation; beyond it a value is taken for a typo. */
export const MAX_GRACE_SECONDS = 86_400;

/**
 * Grace period: the pod's annotation, else its namespace's, else the default.
 * Only plain whole numbers of seconds up to a day count; anything else falls through.
 */
export function graceSeconds(pod: Pod, ctx: PodContext, config: LifecycleConfig): number {
  for (const raw of [pod.metadata.annotations?.[GRACE_PERIOD_ANNOTATION], ctx.namespaceGrace]) {
    if (raw === undefined || !/^\d{1,6}$/.test(raw)) continue;
    const n = Number(raw);
    if (n <= MAX_GRACE_SECONDS) return n;
  }
  return config.defaultGraceSeconds;
}

/**
 * How long past its drain deadline a Draining pod is (0 when not Draining or not
 * yet due): the image write is overdue, so the watcher cannot write the pod.
 * Exported as a metric, for an alert.
 */
export function drainOverdueSeconds(pod: Pod, now: Date): number {
  const parsed = parseUpdateState(pod.metadata.annotations?.[UPDATE_ANNOTATION]);
  if (!parsed.ok || parsed.state?.phase !== 'Draining') return 0;
  const due = ms(parsed.state.drainDeadline);
  return Number.isNaN(due) ? 0 : Math.max(0, (now.getTime() - due) / 1000);
}

function describe(images: ImageMap): string {
  return Object.entries(images).map(([n, i]) => `${n}=${i}`).join(', ');
}

function statusesByName(pod: Pod): Map<string, ContainerStatus> {
  const out = new Map<string, ContainerStatus>();
  for (const s of pod.status?.containerStatuses ?? []) out.set(s.name, s);
  for (const s of pod.status?.initContainerStatuses ?? []) out.set(s.name, s);
  return out;
}

/**
 * What each changed container runs now: the baseline its restart is proven
 * against. A container that already runs the requested image (a change back
 * before the kubelet acted on the first one) may never restart: it gets no
 * baseline and is proven by its image and the pod's generation alone.
 */
function baseline(pod: Pod, images: ImageMap, carried: Record<string, ContainerRecord> | undefined): Record<string, ContainerRecord> {
  const statuses = statusesByName(pod);
  const out: Record<string, ContainerRecord> = {};
  for (const [name, record] of Object.entries(carried ?? {})) if (!(name in images)) out[name] = record;
  const restarting = Object.entries(images).filter(([name, requested]) => {
    const s = statuses.get(name);
    return !(s !== undefined && sameImageReference(s.image, requested));
  });
  return { ...out, ...currentRecords(pod, restarting.map(([name]) => name)) };
}

/**
 * The one next step for a managed pod. In a workload's rollout (`rollout` in
 * the state) the pod's Normal Events are left out: each is an API write, and
 * the workload's progress Events say the same for all its pods at once.
 * Warnings stay on the pod, where a person looks for why it stopped.
 */
export function nextStep(pod: Pod, ctx: PodContext, config: LifecycleConfig): Step {
  const step = decide(pod, ctx, config);
  if (step.kind === 'none' || step.kind === 'createPullPod' || step.event?.type !== 'Normal') return step;
  const parsed = parseUpdateState(pod.metadata.annotations?.[UPDATE_ANNOTATION]);
  if (!parsed.ok || parsed.state?.rollout === undefined) return step;
  const { event: _quiet, ...rest } = step;
  return rest;
}

/** The pod as if `request` were recorded in its lifecycle annotation (a copy). */
export function withRequest(pod: Pod, request: UpdateState): Pod {
  return { ...pod, metadata: { ...pod.metadata, annotations: { ...pod.metadata.annotations, [UPDATE_ANNOTATION]: encodeUpdateState(request) } } };
}

/** What a rollout writes to start one pod's update: the step itself, or the request for the pod's own lifecycle. */
export type RolloutStart =
  | { write: 'step'; step: Extract<Step, { kind: 'transition' | 'writeImages' }> }
  | { write: 'request' };

/**
 * A rollout's request for one pod, decided as the lifecycle decides a Pending
 * one: where that first step is a guarded write (the drain's start, or the
 * image write of a pod already drained or changing no serving container),
 * the rollout writes that step instead of the request, one write fewer and
 * the same state the pod reconciler would have written from Pending. Where it
 * is not (a disruption budget holds the drain: the condition says so, which
 * is no guarded write), the request is recorded as Pending and the pod's
 * lifecycle takes it from there.
 */
export function rolloutStart(pod: Pod, request: UpdateState, ctx: PodContext, config: LifecycleConfig): RolloutStart {
  const step = nextStep(withRequest(pod, request), ctx, config);
  return step.kind === 'transition' || step.kind === 'writeImages' ? { write: 'step', step } : { write: 'request' };
}

function decide(pod: Pod, ctx: PodContext, config: LifecycleConfig): Step {
  if (pod.metadata.deletionTimestamp !== undefined) return { kind: 'none', why: 'pod is being deleted' };
  const parsed = parseUpdateState(pod.metadata.annotations?.[UPDATE_ANNOTATION]);
  const condition = gateCondition(pod);

  if (!hasReadinessGate(pod)) {
    // No gate, no condition to drive: an immediate update is still proven and
    // its state cleared (or reported Stalled), so the record stays true.
    if (parsed.ok && (parsed.state?.phase === 'Updating' || parsed.state?.phase === 'Stalled')) {
      return whileUpdating(pod, parsed.state, undefined, ctx, config);
    }
    return { kind: 'none', why: 'no readiness gate' };
  }

  if (!parsed.ok) {
    // Only a broken writer gets here (the webhook denies hand edits). Leave the pod as
    // it is, say so loudly; the next image request replaces the state.
    return { kind: 'none', why: `unreadable ${UPDATE_ANNOTATION}: ${parsed.error}` };
  }
  const state = parsed.state;

  if (state === undefined) {
    // A new pod, or one whose pending change was cancelled while it drained.
    if (condition?.status === 'True') return { kind: 'none', why: 'ready' };
    return {
      kind: 'setCondition',
      condition: { status: 'True', reason: condition ? 'UpdateCancelled' : 'PodAdmitted', message: condition ? 'no image change pending' : 'managed by inplace-gate' },
    };
  }

  switch (state.phase) {
    case 'Pending': {
      // Drained before; the write still waits for the slices (a slow controller drains it again).
      if (state.drained === true && condition?.status === 'False' && (ctx.endpoints ?? []).length === 0) return writeImages(pod, state, ctx, false);
      // Only containers that serve no traffic restart: nothing to drain, the pod stays in service.
      if (condition?.status === 'True' && servingChanges(pod, state.images).length === 0) return writeImages(pod, state, ctx, true);
      // The pull first: it costs the pod no traffic, and a failed one leaves it serving.
      const pull = beforeDrain(pod, state, condition?.status, ctx, config);
      if (pull.kind !== 'proceed') return pull;
      if (ctx.disruption && state.drained !== true) return waitForBudget(condition, ctx.disruption, state);
      return startDrain(pod, state, ctx, config, pull.note, pull.prePull);
    }
    case 'Draining': {
      if (condition?.status !== 'False') {
        // The condition is written with the phase; a True here means someone reset it.
        return { kind: 'setCondition', condition: { status: 'False', reason: 'Draining', message: `draining before ${describe(state.images)}` } };
      }
      const deadline = ms(state.drainDeadline);
      if (Number.isNaN(deadline)) {
        // A Draining with no deadline has no grace period to honour: start the drain again.
        return startDrain(pod, state, ctx, config);
      }
      return afterGrace(pod, state, deadline, ctx, config);
    }
    case 'Stalled':
      if (state.stalled?.reason === PRE_PULL_FAILED) return whilePullFailed(state, condition?.status);
      // Refused images never reached the spec: the pod is back in endpoints on what it runs.
      if (state.stalled?.reason === IMAGE_WRITE_REFUSED) return whileRefused(state, condition?.status);
      if (stalledInDrain(state)) return whileStalledInDrain(pod, state, condition?.status, ctx);
      return whileUpdating(pod, state, condition?.status, ctx, config);
    case 'Updating':
      return whileUpdating(pod, state, condition?.status, ctx, config);
  }
}

/** Still serving, held back by a disruption budget: say so in the condition (once) and an Event, look again soon. */
function waitForBudget(condition: { status: string; reason?: string; message?: string } | undefined, held: { budget: string; message: string }, state: UpdateState): Step {
  if (condition?.status === 'True' && condition.reason === 'WaitingForDisruptionBudget' && condition.message === held.message) {
    return { kind: 'none', why: held.message, requeueAfterMs: BUDGET_RETRY_MS };
  }
  return {
    kind: 'setCondition',
    condition: { status: 'True', reason: 'WaitingForDisruptionBudget', message: held.message },
    event: { type: 'Normal', reason: 'InPlaceUpdateWaiting', action: 'Drain', note: `Not draining yet for ${describe(state.images)}: ${held.message}` },
  };
}

// ---- Pre-pull: the images on the node before the drain (core/pre-pull.ts) ----

/** The images a Pending pod pulls before its drain, and the pull pod's name; undefined when it pulls nothing. */
function pullFor(pod: Pod, state: UpdateState, condition: string | undefined, ctx: PodContext, config: LifecycleConfig): { name: string; images: string[] } | undefined {
  // Only a pod still serving gains from it; one already out of endpoints gets its images at once.
  if (config.prePull === undefined || condition !== 'True' || pod.spec.nodeName === undefined) return undefined;
  // A node that is not Ready would never answer: the update goes on as without pre-pull.
  if (ctx.pull?.nodeReady !== true) return undefined;
  const images = imagesToPull(pod, state.images, ctx.pull.nodeImages);
  return images.length === 0 ? undefined : { name: pullPodName(pod.metadata.name ?? '', images), images };
}

/**
 * The pull pod this pod's lifecycle wants now, if any: every other pull pod
 * of the pod is stale and deleted by the shell (also after a crash).
 */
export function wantedPullPod(pod: Pod, ctx: PodContext, config: LifecycleConfig): string | undefined {
  if (pod.metadata.deletionTimestamp !== undefined || !hasReadinessGate(pod)) return undefined;
  const parsed = parseUpdateState(pod.metadata.annotations?.[UPDATE_ANNOTATION]);
  if (!parsed.ok || parsed.state?.phase !== 'Pending') return undefined;
  const condition = gateCondition(pod)?.status;
  if (condition === 'True' && servingChanges(pod, parsed.state.images).length === 0) return undefined;
  return pullFor(pod, parsed.state, condition, ctx, config)?.name;
}

/**
 * Whether a serving pod asked for `images` pulls before its drain: for a
 * writer that would start the drain itself (a rollout writing Draining), the
 * sign to write Pending instead and leave the pull to the pod's lifecycle.
 */
export function pullsBeforeDrain(pod: Pod, images: ImageMap, ctx: PodContext, config: LifecycleConfig): boolean {
  const condition = gateCondition(pod)?.status;
  if (!hasReadinessGate(pod) || (condition === 'True' && servingChanges(pod, images).length === 0)) return false;
  return pullFor(pod, { phase: 'Pending', images, requestedBy: '', requestedAt: ctx.now.toISOString() }, condition, ctx, config) !== undefined;
}

/** Pending and serving: pull, wait for the pull, or stall on a failed one; `proceed` when the drain may start. */
function beforeDrain(pod: Pod, state: UpdateState, condition: string | undefined, ctx: PodContext, config: LifecycleConfig): Step | { kind: 'proceed'; note?: string; prePull?: PrePullOutcome } {
  const wanted = pullFor(pod, state, condition, ctx, config);
  if (wanted === undefined || config.prePull === undefined) return { kind: 'proceed' };
  const node = pod.spec.nodeName ?? '';
  const pullPod = ctx.pull?.pods.find((p) => p.metadata.name === wanted.name && p.metadata.deletionTimestamp === undefined);
  if (pullPod === undefined) {
    if ((ctx.pull?.busyOnNode ?? 0) >= config.prePull.perNode) {
      return { kind: 'none', why: `waiting for a pull slot on node ${node} (${config.prePull.perNode} at once)`, requeueAfterMs: PULL_SLOT_RETRY_MS };
    }
    return { kind: 'createPullPod', pullPod: pullPodManifest(pod, wanted.images, config.prePull), images: wanted.images, requeueAfterMs: (config.prePull.deadlineSeconds + PULL_DEADLINE_SLACK_SECONDS) * 1000 };
  }
  const verdict = pullVerdict(pullPod, ctx.now, config.prePull);
  const created = ms(pullPod.metadata.creationTimestamp);
  const seconds = Number.isNaN(created) ? {} : { seconds: Math.max(0, (ctx.now.getTime() - created) / 1000) };
  switch (verdict.kind) {
    case 'waiting':
      return { kind: 'none', why: verdict.why, requeueAfterMs: Math.max(1000, verdict.giveUpInMs) };
    case 'pulled':
      return { kind: 'proceed', note: `Pulled ${wanted.images.join(', ')} on ${node}`, prePull: { result: 'pulled', ...seconds } };
    case 'lost':
      return { kind: 'proceed', note: `Pre-pull gave no answer (${verdict.message}); the kubelet pulls after the drain`, prePull: { result: 'lost', ...seconds } };
    case 'failed': {
      const message = `${verdict.image} cannot be pulled on ${node}: ${verdict.reason}: ${verdict.message}`;
      return { ...pullFailed(state, message, ctx), prePull: { result: 'failed', ...seconds } };
    }
  }
}

/** How often a pod waiting for a pull slot on its node looks again (a finished pull also wakes it). */
export const PULL_SLOT_RETRY_MS = 2000;

/** Stalled before anything was drained: the pod keeps serving on its running images, the condition stays True. */
function pullFailed(state: UpdateState, message: string, ctx: PodContext): Extract<Step, { kind: 'transition' }> {
  return {
    kind: 'transition',
    condition: { status: 'True', reason: 'InPlaceUpdatePullFailed', message: `kept the running images: ${message}` },
    state: { ...state, phase: 'Stalled', stalled: { reason: PRE_PULL_FAILED, message, since: ctx.now.toISOString() } },
    event: {
      type: 'Warning',
      reason: 'InPlaceUpdateStalled',
      action: 'PrePull',
      note: `${message}. Nothing was drained: the pod keeps serving on its running images; fix the image or its pull secret and change the image again to start over`,
    },
    outcome: { result: 'stalled', durationSeconds: Math.max(0, (ctx.now.getTime() - ms(state.requestedAt)) / 1000) },
  };
}

/** A failed pull stays on record as Stalled, the pod in endpoints: nothing was drained or written. */
function whilePullFailed(state: UpdateState, condition: string | undefined): Step {
  const message = state.stalled?.message ?? '';
  if (condition === 'True') return { kind: 'none', why: `pre-pull failed: ${message}` };
  return { kind: 'setCondition', condition: { status: 'True', reason: 'InPlaceUpdatePullFailed', message: `kept the running images: ${message}` } };
}

/** The step after the pull pod's create was refused (a quota, a policy): drain without a pre-pull, as before it existed. */
export function pullPodRefused(pod: Pod, ctx: PodContext, config: LifecycleConfig, message: string): Step {
  const parsed = parseUpdateState(pod.metadata.annotations?.[UPDATE_ANNOTATION]);
  if (!parsed.ok || parsed.state?.phase !== 'Pending') return { kind: 'none', why: 'no longer Pending' };
  return startDrain(pod, parsed.state, ctx, config, `The pull pod was refused (${message}); the kubelet pulls after the drain`, { result: 'refused' });
}

/** One status patch: the condition False and Draining with its deadline, the grace period from now. */
function startDrain(pod: Pod, state: UpdateState, ctx: PodContext, config: LifecycleConfig, pullNote?: string, prePull?: PrePullOutcome): Step {
  const grace = graceSeconds(pod, ctx, config);
  const { drainDeadline: _old, ...rest } = state;
  return {
    kind: 'transition',
    condition: { status: 'False', reason: 'Draining', message: `draining for ${grace}s before ${describe(state.images)}` },
    state: { ...rest, phase: 'Draining', drainStartedAt: ctx.now.toISOString(), drainDeadline: new Date(ctx.now.getTime() + grace * 1000).toISOString() },
    event: { type: 'Normal', reason: 'InPlaceUpdateStarted', action: 'Drain', note: `${pullNote === undefined ? '' : `${pullNote}. `}Draining for ${grace}s, then updating ${describe(state.images)} in place` },
    requeueAfterMs: grace * 1000,
    ...(prePull ? { prePull } : {}),
  };
}

/** `inService`: no serving container restarts, so the pod was not drained and stays in its endpoints. */
function writeImages(pod: Pod, state: UpdateState, ctx: PodContext, inService: boolean): Step {
  const generation = pod.metadata.generation === undefined ? undefined : pod.metadata.generation + 1;
  const writtenAt = ctx.now.toISOString();
  const { drainDeadline: _deadline, drainStartedAt, inService: _was, ...rest } = state;
  const next: UpdateState = {
    ...rest,
    phase: 'Updating',
    ...(inService ? { inService: true } : {}),
    updatedAt: writtenAt,
    ...(generation === undefined ? {} : { generation }),
    before: baseline(pod, state.images, state.before),
    ...(drainStartedAt === undefined ? {} : { drainSeconds: Math.max(0, (ctx.now.getTime() - ms(drainStartedAt)) / 1000) }),
  };
  return {
    kind: 'writeImages',
    images: state.images,
    fieldManager: state.fieldManager,
    state: next,
    event: inService
      ? { type: 'Normal', reason: 'InPlaceUpdateStarted', action: 'Update', note: `Restarting ${describe(state.images)} in place without a drain: no serving container changes` }
      : { type: 'Normal', reason: 'InPlaceUpdateDrained', action: 'Update', note: `Drained; restarting ${describe(state.images)} in place` },
    requeueAfterMs: 0,
  };
}

// ---- Drain confirmed: the image write waits for the EndpointSlices (core/drain.ts) ----

/** Draining with the condition False: write once the grace period has passed and no slice lists the pod. */
function afterGrace(pod: Pod, state: UpdateState, graceEndsAt: number, ctx: PodContext, config: LifecycleConfig): Step {
  const verdict = drainVerdict({
    state,
    now: ctx.now.getTime(),
    graceEndsAt,
    endpoints: ctx.endpoints,
    endpointsGoneAt: ctx.endpointsGoneAt,
    drainDeadlineSeconds: config.drainDeadlineSeconds,
  });
  switch (verdict.kind) {
    case 'waiting':
      return { kind: 'none', why: verdict.why, requeueAfterMs: verdict.requeueAfterMs };
    case 'drained': {
      const step = writeImages(pod, state, ctx, false);
      return verdict.timing === undefined || step.kind !== 'writeImages' ? step : { ...step, drain: verdict.timing };
    }
    case 'deadlineExceeded': {
      const message = verdict.message;
      return {
        kind: 'transition',
        condition: { status: 'False', reason: 'InPlaceUpdateStalled', message },
        state: { ...state, phase: 'Stalled', stalled: { reason: DRAIN_DEADLINE_EXCEEDED, message, since: ctx.now.toISOString() } },
        event: {
          type: 'Warning',
          reason: 'InPlaceUpdateStalled',
          action: 'Drain',
          note: `${message}; the images are not written. It goes on once the slices drop the pod (check the EndpointSlice controller), or change the image again to start over`,
        },
        outcome: { result: 'stalled', durationSeconds: Math.max(0, (ctx.now.getTime() - ms(state.requestedAt)) / 1000) },
      };
    }
  }
}

/** Stalled before the write: the condition stays False, and the write goes on as soon as the slices drop the pod. */
function whileStalledInDrain(pod: Pod, state: UpdateState, condition: string | undefined, ctx: PodContext): Step {
  if (condition !== 'False') {
    return { kind: 'setCondition', condition: { status: 'False', reason: 'InPlaceUpdateStalled', message: state.stalled?.message ?? 'drain not confirmed' } };
  }
  if ((ctx.endpoints ?? []).length > 0) return { kind: 'none', why: `stalled: ${state.stalled?.message ?? ''}` };
  const { stalled: _stalled, ...rest } = state;
  return writeImages(pod, { ...rest, phase: 'Draining' }, ctx, false);
}

/**
 * Where the images written (this request's and earlier unproven ones) stand:
 * why each changed container is not proven yet, and the first failure seen.
 * The watcher decides on it; `kubectl inplace-gate status` shows it.
 */
export function updateProgress(pod: Pod, state: UpdateState): { waiting: string[]; failure: { reason: string; message: string } | undefined } {
  const statuses = statusesByName(pod);
  const waiting: string[] = [];
  let failure: { reason: string; message: string } | undefined;
  // Everything written and not yet proven: this request's images and earlier unproven ones, each
  // as the spec stores it, which is what the kubelet runs (another webhook may have rewritten it).
  const stored = specImages(pod.spec);
  const pending: ImageMap = {};
  for (const [name, image] of Object.entries(state.images)) pending[name] = stored[name] ?? image;
  for (const [name, record] of Object.entries(state.before ?? {})) {
    if (!(name in pending)) pending[name] = specImages(pod.spec)[name] ?? record.image;
  }
  for (const [name, requested] of Object.entries(pending)) {
    if (!restartsInPlace(pod.spec, name)) continue; // ordinary init containers do not rerun
    const progress = containerProgress({
      name,
      requested,
      before: state.before?.[name],
      status: statuses.get(name),
      podStatus: pod.status,
      generation: state.generation,
      writtenAt: state.updatedAt,
    });
    if (progress.state === 'failed') failure ??= progress;
    else if (progress.state === 'waiting') waiting.push(progress.why);
  }
  return { waiting, failure };
}

/** `condition` is the gate condition's status, or undefined for a pod without the gate. */
function whileUpdating(pod: Pod, state: UpdateState, condition: string | undefined, ctx: PodContext, config: LifecycleConfig): Step {
  const gated = hasReadinessGate(pod);
  const now = ctx.now.getTime();
  const { waiting, failure: seen } = updateProgress(pod, state);
  let failure = seen;

  const requestedAt = ms(state.requestedAt);
  if (waiting.length === 0 && failure === undefined) {
    const outcome: Outcome = {
      result: 'succeeded',
      durationSeconds: Math.max(0, (now - requestedAt) / 1000),
      ...(state.drainSeconds === undefined ? {} : { drainSeconds: state.drainSeconds }),
    };
    return {
      kind: 'transition',
      ...(gated ? { condition: { status: 'True' as const, reason: 'InPlaceUpdateSucceeded', message: `running ${describe(state.images)}` } } : {}),
      state: undefined,
      event: { type: 'Normal', reason: 'InPlaceUpdateSucceeded', action: 'Update', note: `Running ${describe(state.images)}, ready` },
      outcome,
    };
  }

  // An update of non-serving containers only keeps the pod in service, stalled or not.
  const drains = gated && state.inService !== true;
  if (drains && condition !== 'False') {
    // Immediate mode records Updating with the pod still in endpoints, and nobody
    // may put a Stalled pod back: out of endpoints until proven.
    const reason = state.phase === 'Stalled' ? 'InPlaceUpdateStalled' : 'Updating';
    return { kind: 'setCondition', condition: { status: 'False', reason, message: state.stalled?.message ?? `updating ${describe(state.images)}` } };
  }

  if (state.phase === 'Stalled') {
    // Loud once; a container that comes back later still completes the update above.
    return { kind: 'none', why: `stalled: ${state.stalled?.message ?? ''}` };
  }

  const deadline = ms(state.updatedAt ?? state.requestedAt) + config.progressDeadlineSeconds * 1000;
  if (failure === undefined && now >= deadline) {
    failure = { reason: 'ProgressDeadlineExceeded', message: `no progress in ${config.progressDeadlineSeconds}s: ${waiting.join('; ')}` };
  }
  if (failure !== undefined) {
    return {
      kind: 'transition',
      ...(drains ? { condition: { status: 'False' as const, reason: 'InPlaceUpdateStalled', message: failure.message } } : {}),
      state: { ...state, phase: 'Stalled', stalled: { reason: failure.reason, message: failure.message, since: ctx.now.toISOString() } },
      event: {
        type: 'Warning',
        reason: 'InPlaceUpdateStalled',
        action: 'Update',
        note: `${failure.message}. ${drains ? 'The pod stays out of endpoints' : 'Its serving containers run on, in endpoints'}; change the image again (a rollback, say) to start over`,
      },
      outcome: { result: 'stalled', durationSeconds: Math.max(0, (now - requestedAt) / 1000) },
    };
  }
  return { kind: 'none', why: waiting.join('; '), requeueAfterMs: Math.max(1000, deadline - now) };
}

