// In-place rollout pacing, as a pure plan: given the workload's pods as they
// are, which to start next so that never more than maxUnavailable are out at
// once (a sliding window: each pod that is proven frees its slot at once),
// honouring a partition (pods kept on the old images), StatefulSets from the
// highest ordinal down; and whether the rollout is done or stalled.

import { sameImages, type ImageMap } from './containers.ts';
import type { IntOrString } from './workload-types.ts';

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

export interface RolloutPlan {
  start: string[];
  done: boolean;
  updated: number;
  total: number;
  unavailable: number;
  stalled: string[];
}

/** maxUnavailable against replicas, rounded down as the Deployment controller does, at least 1. */
export function resolveMaxUnavailable(value: IntOrString | undefined, replicas: number, fallback: IntOrString): number {
  const v = value ?? fallback;
  const n = typeof v === 'number' ? v : /^\d+%$/.test(v) ? Math.floor((Number(v.slice(0, -1)) * replicas) / 100) : Number(v);
  return Number.isFinite(n) ? Math.max(1, n) : 1;
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
