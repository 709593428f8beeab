// In-place rollout pacing, as a pure plan: given the workload's pods as they
// are, which to start next so that never more than maxUnavailable are out at
// once (a sliding window: each pod that is proven frees its slot at once),
// honouring a partition (pods kept on the old images), StatefulSets from the
// highest ordinal down; and whether the rollout is done or stalled.

import { sameImages, specImages, type ImageMap } from './containers.ts';
import type { Pod } from './kube-types.ts';
import { parseImageRewrites, requestedImages } from './image-rewrites.ts';
import { IMAGE_REWRITES_ANNOTATION, UPDATE_ANNOTATION } from './names.ts';
import { domainOf, rankOf, type UpdatePriority } from './rollout-order.ts';
import { parseUpdateState } from './state.ts';
import type { IntOrString, Workload } from './workload-types.ts';

export interface RolloutPod {
  name: string;
  /** StatefulSet ordinal, from the name. */
  ordinal?: number;
  ready: boolean;
  /** When it last became Ready (ms since the epoch, from the Ready condition), for minReadySeconds. */
  readySince?: number | undefined;
  /** The pod's images as its spec says now. */
  specImages: ImageMap;
  /** Its lifecycle state, if an update is in flight: phase and requested images. */
  update?: { phase: string; images: ImageMap } | undefined;
  deleting?: boolean;
  /** Update priority, compared element by element, higher first (see rollout-order.ts); absent ranks lowest. */
  rank?: readonly (number | string)[] | undefined;
  /** Its topology domain (node, zone) when the rollout scatters: pods in flight are spread across domains. */
  domain?: string | undefined;
}

/** How a workload orders its pods (priority and scatter annotations, see rollout-order.ts). */
export interface PodOrder {
  priority: UpdatePriority | undefined;
  scatterKey: string | undefined;
  nodeLabels: (node: string) => Record<string, string> | undefined;
}

/**
 * What the plan reads of a pod: the rollout controller and `kubectl
 * inplace-gate status` alike. Its images as they were asked for (another
 * webhook may have rewritten them, see image-rewrites), when it became Ready
 * (minReadySeconds), and its rank and domain under the workload's order.
 */
export function rolloutPod(pod: Pod, order?: PodOrder): RolloutPod {
  const parsed = parseUpdateState(pod.metadata.annotations?.[UPDATE_ANNOTATION]);
  const state = parsed.ok ? parsed.state : undefined;
  const ordinal = /-(\d+)$/.exec(pod.metadata.name ?? '')?.[1];
  const ready = pod.status?.conditions?.find((c) => c.type === 'Ready' && c.status === 'True');
  const node = typeof pod.spec.nodeName === 'string' ? pod.spec.nodeName : undefined;
  return {
    name: pod.metadata.name ?? '',
    ...(ordinal === undefined ? {} : { ordinal: Number(ordinal) }),
    ready: ready !== undefined,
    readySince: ready?.lastTransitionTime === undefined ? undefined : Date.parse(ready.lastTransitionTime),
    specImages: requestedImages(specImages(pod.spec), parseImageRewrites(pod.metadata.annotations?.[IMAGE_REWRITES_ANNOTATION])),
    update: state ? { phase: state.phase, images: state.images } : undefined,
    deleting: pod.metadata.deletionTimestamp !== undefined,
    ...(order?.priority ? { rank: rankOf(pod.metadata.labels, order.priority) } : {}),
    ...(order?.scatterKey ? { domain: domainOf(node, node === undefined ? undefined : order.nodeLabels(node), order.scatterKey) } : {}),
  };
}

export interface RolloutPlan {
  start: string[];
  done: boolean;
  updated: number;
  total: number;
  unavailable: number;
  stalled: string[];
  /** Ready pods not yet available (Ready for less than minReadySeconds): when the next one will be, ms. */
  nextAvailableAt?: number | undefined;
  /** The workload's progress deadline passed with no pod brought to the target since (ms of the last progress). */
  deadlineExceeded?: { lastProgressAt: number } | undefined;
  /** When the progress deadline will pass if nothing progresses (ms), to look again then. */
  deadlineAt?: number | undefined;
}

/** What, beyond the pods, paces a rollout: the clock and the workload's own availability rules. */
export interface RolloutTiming {
  now: number;
  /** A pod counts as available (its slot freed) only once Ready this long, as the controllers count it. */
  minReadySeconds?: number | undefined;
  /** Deployment spec.progressDeadlineSeconds: no pod brought to the target for this long is a failed rollout. */
  progressDeadlineSeconds?: number | undefined;
  /** When the rollout started (ms): the first progress mark. */
  startedAt?: number | undefined;
}

/**
 * A StatefulSet's maxUnavailable against replicas, rounded down as the
 * StatefulSet controller does, at least 1 (its default is 1).
 */
export function resolveMaxUnavailable(value: IntOrString | undefined, replicas: number, fallback: IntOrString): number {
  const n = scaledValue(value ?? fallback, replicas, false);
  return n === undefined ? 1 : Math.max(1, n);
}

/** An int-or-percent scaled against a total, as intstr.GetScaledValueFromIntOrPercent; undefined if malformed. */
export function scaledValue(value: IntOrString, total: number, roundUp: boolean): number | undefined {
  if (typeof value === 'number') return Number.isInteger(value) && value >= 0 ? value : undefined;
  const m = /^(\d+)%$/.exec(value);
  if (!m) return undefined;
  const exact = (Number(m[1]) * total) / 100;
  return roundUp ? Math.ceil(exact) : Math.floor(exact);
}

/**
 * A Deployment's maxSurge and maxUnavailable against replicas, exactly as the
 * Deployment controller's ResolveFenceposts: surge rounds up, unavailable
 * rounds down, and if both come to 0 unavailable is 1. Each defaults to 25%
 * (the API's defaulting; the apiserver has normally applied it already).
 */
export function resolveFenceposts(maxSurge: IntOrString | undefined, maxUnavailable: IntOrString | undefined, replicas: number): { maxSurge: number; maxUnavailable: number } {
  const surge = scaledValue(maxSurge ?? '25%', replicas, true) ?? 0;
  let unavailable = scaledValue(maxUnavailable ?? '25%', replicas, false) ?? 0;
  if (surge === 0 && unavailable === 0) unavailable = 1;
  return { maxSurge: surge, maxUnavailable: unavailable };
}

/** Whether a workload's template change rolls in place, and how many pods may be out at once. */
export type RolloutWindow =
  | { inPlace: true; maxUnavailable: number; surge?: number }
  | { inPlace: false; reason: string; message: string };

/**
 * The in-place window of a Deployment: never more pods out than its native
 * rollout allows. Where maxUnavailable resolves to 0, the native rollout keeps
 * every pod in service by surging, and so does the in-place one (surge pods
 * first, see the rollout controller). `Recreate` rolls all its pods at once.
 */
export function deploymentWindow(spec: Pick<Workload['spec'], 'replicas' | 'strategy'>): RolloutWindow {
  const replicas = spec.replicas ?? 1;
  if (spec.strategy?.type === 'Recreate') return { inPlace: true, maxUnavailable: Math.max(1, replicas) };
  const { maxUnavailable, maxSurge } = resolveFenceposts(spec.strategy?.rollingUpdate?.maxSurge, spec.strategy?.rollingUpdate?.maxUnavailable, replicas);
  // maxUnavailable 0 means every pod stays in service, as natively, by surging first: that many pods
  // on the new images come up beside the old ones, and each in-place update takes the slot of one.
  if (maxUnavailable === 0) return { inPlace: true, maxUnavailable: 0, surge: Math.min(maxSurge, replicas) };
  return { inPlace: true, maxUnavailable };
}

/**
 * The in-place window of a StatefulSet. OnDelete is left to whoever deletes
 * its pods: the native controller changes nothing on a template change, and
 * neither does inplace-gate.
 */
export function statefulSetWindow(spec: Pick<Workload['spec'], 'replicas' | 'updateStrategy'>): RolloutWindow {
  if ((spec.updateStrategy?.type ?? 'RollingUpdate') === 'OnDelete') {
    return { inPlace: false, reason: 'on-delete', message: 'updateStrategy OnDelete: pods take the new template when their owner deletes them; nothing is rolled on the template change' };
  }
  return { inPlace: true, maxUnavailable: resolveMaxUnavailable(spec.updateStrategy?.rollingUpdate?.maxUnavailable, spec.replicas ?? 1, 1) };
}

/** Does the pod run (or has it been asked for) the target images? */
function reachesTarget(pod: RolloutPod, target: ImageMap): boolean {
  const wanted = (images: ImageMap) => Object.entries(target).every(([name, image]) => !(name in pod.specImages) || images[name] === image);
  // Asked for the target (any phase: while Updating the spec may hold a rewritten form of it, see
  // image-rewrites), it is on its way: starting it again would drain it again.
  if (pod.update) return wanted({ ...pod.specImages, ...pod.update.images });
  return wanted(pod.specImages);
}

export function planRollout(
  pods: RolloutPod[],
  target: ImageMap,
  maxUnavailable: number,
  opts: { order: 'name' | 'ordinal-desc'; partition?: number; timing?: RolloutTiming },
): RolloutPlan {
  const timing = opts.timing;
  const minReadyMs = (timing?.minReadySeconds ?? 0) * 1000;
  const available = (p: RolloutPod) => p.ready && (minReadyMs === 0 || timing === undefined || (p.readySince ?? 0) + minReadyMs <= timing.now);
  const live = pods.filter((p) => !p.deleting);
  const partition = opts.partition ?? 0;
  const ordered = [...live].sort((a, b) =>
    compareRank(b.rank, a.rank) || (opts.order === 'ordinal-desc' ? (b.ordinal ?? 0) - (a.ordinal ?? 0) : a.name.localeCompare(b.name)),
  );
  // Pods kept on the old images: the lowest ordinals, or for other workloads the last `partition` in
  // update order (the lowest priority, then by name).
  const inScope = opts.order === 'ordinal-desc'
    ? ordered.filter((p) => (p.ordinal ?? 0) >= partition)
    : ordered.slice(0, Math.max(0, ordered.length - partition));

  const busy = (p: RolloutPod) => p.update !== undefined || !available(p);
  const unavailable = live.filter(busy).length;
  const stalled = live.filter((p) => p.update?.phase === 'Stalled').map((p) => p.name);
  const pending = inScope.filter((p) => !reachesTarget(p, target));
  const updated = inScope.length - pending.length;

  let budget = maxUnavailable - unavailable;
  const start: string[] = [];
  // Pods in flight per topology domain, to spread new starts across domains (scatter).
  const inFlight = new Map<string, number>();
  for (const p of live) if (busy(p) && p.domain !== undefined) inFlight.set(p.domain, (inFlight.get(p.domain) ?? 0) + 1);
  const left = [...pending];
  while (left.length > 0) {
    // A pod already out (updating toward older images, stalled, not ready) costs no new slot.
    const cost = (p: RolloutPod) => (p.update === undefined && available(p) ? 1 : 0);
    const free = left.findIndex((p) => cost(p) === 0);
    let i = free;
    if (i < 0) {
      if (budget < 1) break;
      i = nextToStart(left, inFlight);
      budget -= 1;
    }
    const [p] = left.splice(i, 1);
    if (p === undefined) break;
    if (p.domain !== undefined) inFlight.set(p.domain, (inFlight.get(p.domain) ?? 0) + 1);
    start.push(p.name);
  }
  start.sort((a, b) => pending.findIndex((p) => p.name === a) - pending.findIndex((p) => p.name === b));
  const done = pending.length === 0 && inScope.every((p) => !busy(p) && sameImagesFor(p, target));
  const waitingToBeAvailable = live.filter((p) => p.ready && !available(p)).map((p) => (p.readySince ?? 0) + minReadyMs);
  const nextAvailableAt = waitingToBeAvailable.length > 0 ? Math.min(...waitingToBeAvailable) : undefined;
  const deadline = progressDeadline(inScope, target, done, timing);
  return { start, done, updated, total: inScope.length, unavailable, stalled, nextAvailableAt, deadlineExceeded: deadline?.exceeded, deadlineAt: deadline?.at };
}

/**
 * The last progress is the latest moment a pod in scope became Ready on the
 * target images (or the start): read from the pods, so it costs no write and
 * survives a restart. Past the deadline with pods still to go: failed, as the
 * Deployment controller's ProgressDeadlineExceeded, which a paused Deployment
 * never gets from the controller itself.
 */
function progressDeadline(inScope: RolloutPod[], target: ImageMap, done: boolean, timing: RolloutTiming | undefined): { at: number; exceeded?: { lastProgressAt: number } } | undefined {
  if (done || timing?.progressDeadlineSeconds === undefined || timing.startedAt === undefined) return undefined;
  let last = timing.startedAt;
  for (const p of inScope) {
    if (p.ready && p.update === undefined && sameImagesFor(p, target) && p.readySince !== undefined) last = Math.max(last, p.readySince);
  }
  const at = last + timing.progressDeadlineSeconds * 1000;
  return timing.now > at ? { at, exceeded: { lastProgressAt: last } } : { at };
}

/** Higher rank first; a missing rank or element ranks below any present one; numbers below strings never mix in practice. */
export function compareRank(a: RolloutPod['rank'], b: RolloutPod['rank']): number {
  const n = Math.max(a?.length ?? 0, b?.length ?? 0);
  for (let i = 0; i < n; i++) {
    const x = a?.[i];
    const y = b?.[i];
    if (x === y) continue;
    if (x === undefined) return -1;
    if (y === undefined) return 1;
    if (typeof x === 'number' && typeof y === 'number') return x - y;
    return String(x).localeCompare(String(y));
  }
  return 0;
}

/**
 * Among the pods of the highest rank still waiting (they come first in
 * `left`), the one in the topology domain with the fewest pods in flight, so
 * that one node or zone is not drained at once; the update order breaks ties.
 */
function nextToStart(left: readonly RolloutPod[], inFlight: ReadonlyMap<string, number>): number {
  const first = left[0];
  if (first === undefined) return -1;
  let best = 0;
  for (let i = 1; i < left.length; i++) {
    const p = left[i];
    if (p === undefined || compareRank(p.rank, first.rank) !== 0) break;
    const load = (q: RolloutPod | undefined) => (q?.domain === undefined ? 0 : (inFlight.get(q.domain) ?? 0));
    if (load(p) < load(left[best])) best = i;
  }
  return best;
}

function sameImagesFor(p: RolloutPod, target: ImageMap): boolean {
  const relevant: ImageMap = {};
  for (const name of Object.keys(target)) if (name in p.specImages) relevant[name] = p.specImages[name] ?? '';
  const wanted: ImageMap = {};
  for (const name of Object.keys(relevant)) wanted[name] = target[name] ?? '';
  return sameImages(relevant, wanted);
}

/**
 * The StatefulSet partition to hand back to the native controller: the user's,
 * never below `inplace-gate.dev/partition`, so the ordinals it keeps on the
 * old images are not recreated natively.
 */
export function restoredPartition(userPartition: number, annotationPartition: number): number {
  return Math.max(userPartition, annotationPartition);
}

/**
 * What a StatefulSet rollout does once planned: go on; or, every pod in scope
 * done, stay held while `inplace-gate.dev/partition` keeps ordinals the user's
 * own partition would let the native controller recreate (lowering it goes on
 * in place); or end, handing back the partition.
 */
export function statefulSetRolloutStep(
  plan: Pick<RolloutPlan, 'done'>,
  userPartition: number,
  annotationPartition: number,
): { action: 'continue' } | { action: 'hold-partition'; partition: number } | { action: 'finish'; partition: number } {
  if (!plan.done) return { action: 'continue' };
  if (annotationPartition > userPartition) return { action: 'hold-partition', partition: annotationPartition };
  return { action: 'finish', partition: restoredPartition(userPartition, annotationPartition) };
}
