// In-place rollout pacing, as a pure plan: given the workload's pods as they
// are, which to start next so that never more than maxUnavailable are out at
// once (a sliding window: each pod that is proven frees its slot at once),
// honouring a partition (pods kept on the old images), StatefulSets from the
// highest ordinal down; and whether the rollout is done or stalled.

import { sameImages, specImages, type ImageMap } from './containers.ts';
import type { Pod } from './kube-types.ts';
import { UPDATE_ANNOTATION } from './names.ts';
import { parseUpdateState } from './state.ts';
import type { IntOrString, Workload } from './workload-types.ts';

export interface RolloutPod {
  name: string;
  /** StatefulSet ordinal, from the name. */
  ordinal?: number;
  ready: boolean;
  /** The pod's images as its spec says now. */
  specImages: ImageMap;
  /** Its lifecycle state, if an update is in flight: phase and requested images. */
  update?: { phase: string; images: ImageMap } | undefined;
  deleting?: boolean;
}

/** What the plan reads of a pod: the rollout controller and `kubectl inplace-gate status` alike. */
export function rolloutPod(pod: Pod): RolloutPod {
  const parsed = parseUpdateState(pod.metadata.annotations?.[UPDATE_ANNOTATION]);
  const state = parsed.ok ? parsed.state : undefined;
  const ordinal = /-(\d+)$/.exec(pod.metadata.name ?? '')?.[1];
  return {
    name: pod.metadata.name ?? '',
    ...(ordinal === undefined ? {} : { ordinal: Number(ordinal) }),
    ready: pod.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') ?? false,
    specImages: specImages(pod.spec),
    update: state ? { phase: state.phase, images: state.images } : undefined,
    deleting: pod.metadata.deletionTimestamp !== undefined,
  };
}

export interface RolloutPlan {
  start: string[];
  done: boolean;
  updated: number;
  total: number;
  unavailable: number;
  stalled: string[];
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
  | { inPlace: true; maxUnavailable: number }
  | { inPlace: false; reason: string; message: string };

/**
 * The in-place window of a Deployment: never more pods out than its native
 * rollout allows. Where maxUnavailable resolves to 0, the native rollout keeps
 * every pod in service (it surges), which an in-place update cannot: such a
 * Deployment rolls natively. `Recreate` rolls all its pods at once.
 */
export function deploymentWindow(spec: Pick<Workload['spec'], 'replicas' | 'strategy'>): RolloutWindow {
  const replicas = spec.replicas ?? 1;
  if (spec.strategy?.type === 'Recreate') return { inPlace: true, maxUnavailable: Math.max(1, replicas) };
  const { maxUnavailable } = resolveFenceposts(spec.strategy?.rollingUpdate?.maxSurge, spec.strategy?.rollingUpdate?.maxUnavailable, replicas);
  if (maxUnavailable === 0) {
    return {
      inPlace: false,
      reason: 'max-unavailable-zero',
      message: `maxUnavailable resolves to 0 for ${replicas} replicas; an in-place update takes a pod out of service, so the native rollout (surge) is used`,
    };
  }
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
  if (pod.update && (pod.update.phase === 'Pending' || pod.update.phase === 'Draining')) {
    return wanted({ ...pod.specImages, ...pod.update.images });
  }
  return wanted(pod.specImages);
}

export function planRollout(
  pods: RolloutPod[],
  target: ImageMap,
  maxUnavailable: number,
  opts: { order: 'name' | 'ordinal-desc'; partition?: number },
): RolloutPlan {
  const live = pods.filter((p) => !p.deleting);
  const partition = opts.partition ?? 0;
  const ordered = [...live].sort((a, b) =>
    opts.order === 'ordinal-desc' ? (b.ordinal ?? 0) - (a.ordinal ?? 0) : a.name.localeCompare(b.name),
  );
  // Pods kept on the old images: the lowest ordinals, or for other workloads the last `partition` by name.
  const inScope = opts.order === 'ordinal-desc'
    ? ordered.filter((p) => (p.ordinal ?? 0) >= partition)
    : ordered.slice(0, Math.max(0, ordered.length - partition));

  const busy = (p: RolloutPod) => p.update !== undefined || !p.ready;
  const unavailable = live.filter(busy).length;
  const stalled = live.filter((p) => p.update?.phase === 'Stalled').map((p) => p.name);
  const pending = inScope.filter((p) => !reachesTarget(p, target));
  const updated = inScope.length - pending.length;

  let budget = maxUnavailable - unavailable;
  const start: string[] = [];
  for (const p of pending) {
    // A pod already out (updating toward older images, stalled, not ready) costs no new slot.
    const cost = p.update === undefined && p.ready ? 1 : 0;
    if (cost > budget) continue;
    budget -= cost;
    start.push(p.name);
  }
  const done = pending.length === 0 && inScope.every((p) => !busy(p) && sameImagesFor(p, target));
  return { start, done, updated, total: inScope.length, unavailable, stalled };
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
