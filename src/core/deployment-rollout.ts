// Which ReplicaSet a Deployment's in-place rollout works on, and how the
// revision history is kept so that `kubectl rollout history/undo` reads as
// after a native rollout, decided from the Deployment and its ReplicaSets
// alone (no I/O). The rules the Deployment controller (v1.37) applies and
// these follow:
// - the "new" ReplicaSet is the oldest one whose template equals the
//   Deployment's, ignoring the pod-template-hash label (FindNewReplicaSet,
//   EqualIgnoreHash); on unpause it is scaled up and every other scaled down;
// - a pod belongs to the ReplicaSet named by its controller reference.
// So an in-place rollout may only change the template of the one ReplicaSet
// that runs pods, must leave no other ReplicaSet whose template equals the
// target (the controller would scale that one up instead), and never writes
// `spec.replicas` of any ReplicaSet: the controller owns replica counts.

import { createHash } from 'node:crypto';
import { ROLLOUT_IN_PROGRESS } from './names.ts';
import type { PodTemplate, Workload } from './workload-types.ts';

export const TEMPLATE_HASH = 'pod-template-hash';
export const REVISION = 'deployment.kubernetes.io/revision';
/** Annotations of a ReplicaSet not carried into its kept copy: the controller's history of revisions, inplace-gate's state. */
const NOT_KEPT = new Set(['deployment.kubernetes.io/revision-history', 'inplace-gate.dev/rollout-state', 'inplace-gate.dev/history-of']);

/** A ReplicaSet owned (as controller) by the Deployment, as the rollout reads it. */
export interface ReplicaSetView {
  name: string;
  uid: string;
  resourceVersion: string;
  revision: number;
  /** spec.replicas: what the controller asked for. */
  replicas: number;
  /** status.replicas: pods it still has (a scale-down not yet finished counts). */
  observedReplicas: number;
  template: PodTemplate;
  annotations: Record<string, string>;
}

export function replicaSetView(rs: Workload): ReplicaSetView {
  return {
    name: rs.metadata.name ?? '',
    uid: rs.metadata.uid ?? '',
    resourceVersion: rs.metadata.resourceVersion ?? '',
    revision: Number(rs.metadata.annotations?.[REVISION] ?? 0) || 0,
    replicas: rs.spec.replicas ?? 1,
    observedReplicas: rs.status?.replicas ?? 0,
    template: rs.spec.template,
    annotations: rs.metadata.annotations ?? {},
  };
}

/** A ReplicaSet that runs pods, or was asked to. */
export function isActive(rs: Pick<ReplicaSetView, 'replicas' | 'observedReplicas'>): boolean {
  return rs.replicas > 0 || rs.observedReplicas > 0;
}

export type CurrentReplicaSet =
  | { kind: 'one'; rs: ReplicaSetView }
  | { kind: 'none' }
  | { kind: 'several'; names: string[] };

/**
 * The ReplicaSet whose pods an in-place rollout updates: the only active one.
 * Chosen by what runs, never by name or revision: after a native undo the
 * ReplicaSet with the highest revision may be the one with no pods. Several
 * active means a native rollout is under way (or was cut short): not in place.
 */
export function currentReplicaSet(replicaSets: readonly ReplicaSetView[]): CurrentReplicaSet {
  const [first, ...rest] = replicaSets.filter(isActive);
  if (first === undefined) return { kind: 'none' };
  if (rest.length === 0) return { kind: 'one', rs: first };
  const active = [first, ...rest];
  return { kind: 'several', names: active.map((r) => r.name).sort() };
}

/** A template as the controller compares them: without pod-template-hash, and without the rollout's own marker. */
function comparable(t: PodTemplate): unknown {
  const { [TEMPLATE_HASH]: _hash, ...labels } = t.metadata?.labels ?? {};
  const { [ROLLOUT_IN_PROGRESS]: _mark, ...annotations } = t.metadata?.annotations ?? {};
  const metadata = { ...t.metadata, labels, annotations };
  return { ...t, metadata };
}

/** Equal as the Deployment controller's EqualIgnoreHash: empty maps count as absent. */
export function sameTemplate(a: PodTemplate, b: PodTemplate): boolean {
  return canonical(comparable(a)) === canonical(comparable(b));
}

/** JSON with sorted keys and empty objects/arrays dropped, so that field order and omitted-vs-empty do not matter. */
export function canonical(value: unknown): string {
  return JSON.stringify(normalise(value) ?? null);
}

function normalise(value: unknown): unknown {
  if (Array.isArray(value)) return value.length === 0 ? undefined : value.map((v) => normalise(v) ?? null);
  if (value === null || typeof value !== 'object') return value;
  const out: Record<string, unknown> = {};
  for (const key of Object.keys(value).sort()) {
    const v = normalise((value as Record<string, unknown>)[key]);
    if (v !== undefined) out[key] = v;
  }
  return Object.keys(out).length === 0 ? undefined : out;
}

// The Deployment controller's alphabet for hashes in names (no vowels, no look-alikes).
const ALPHABET = 'bcdfghjklmnpqrstvwxz2456789';

/** A 10-character, name-safe hash of a template (and a collision count), in the style of the controller's names. */
export function templateHash(template: PodTemplate, collision: number | string): string {
  const digest = createHash('sha256').update(canonical(comparable(template))).update(`\0${String(collision)}`).digest();
  let out = '';
  for (const byte of digest.subarray(0, 10)) out += ALPHABET.charAt(byte % ALPHABET.length);
  return out;
}

/** One write that readies the current ReplicaSet for a new template, or none left. */
export type HistoryStep =
  | { action: 'delete-replicaset'; name: string; uid: string; resourceVersion: string; note: string }
  | { action: 'keep-history'; replicaSet: Workload; note: string }
  | { action: 'retarget' };

/**
 * Before the current ReplicaSet's template becomes the Deployment's new one:
 * 1. a ReplicaSet with no pods whose template already equals the target (the
 *    revision a rollback returns to) is deleted: left, the controller would
 *    pick it as the new ReplicaSet on unpause and recreate every pod in it. A
 *    native rollback likewise takes that revision out of the history and gives
 *    its template the next one, which the current ReplicaSet gets at the end.
 * 2. the current template is kept, with its revision and change-cause, in a
 *    ReplicaSet with no replicas and its own pod-template-hash (it selects no
 *    pod), so `kubectl rollout undo` finds the previous revision where a native
 *    rollout leaves it. Skipped where another ReplicaSet already holds it.
 * Then the template may change. Each step is idempotent and re-derived on the
 * next reconcile, so a crash between two writes leaves nothing half done.
 */
export function historyStep(deployment: Workload, current: ReplicaSetView, others: readonly ReplicaSetView[]): HistoryStep {
  const target = deployment.spec.template;
  for (const rs of others) {
    if (isActive(rs) || !sameTemplate(rs.template, target)) continue;
    return {
      action: 'delete-replicaset', name: rs.name, uid: rs.uid, resourceVersion: rs.resourceVersion,
      note: `ReplicaSet ${rs.name} (revision ${String(rs.revision)}) holds the target template with no pods; removed so that the controller keeps ${current.name}, whose pods are updated in place`,
    };
  }
  if (!others.some((rs) => sameTemplate(rs.template, current.template))) {
    const taken = new Set([current.name, ...others.map((r) => r.name)]);
    const replicaSet = historyReplicaSet(deployment, current, taken);
    return { action: 'keep-history', replicaSet, note: `revision ${String(current.revision)} kept in ReplicaSet ${replicaSet.metadata.name ?? ''} for kubectl rollout undo` };
  }
  return { action: 'retarget' };
}

function historyReplicaSet(d: Workload, current: ReplicaSetView, taken: ReadonlySet<string>): Workload {
  let collision = 0;
  let hash = templateHash(current.template, collision);
  while (taken.has(`${d.metadata.name ?? ''}-${hash}`)) hash = templateHash(current.template, ++collision);
  // The ReplicaSet's own annotations, as the controller copied them from the Deployment when that
  // revision was current: `kubectl rollout undo` puts them back on the Deployment (replacing its
  // annotations, partition and priority included), as after a native rollout.
  const annotations: Record<string, string> = {};
  for (const [k, v] of Object.entries(current.annotations)) if (!NOT_KEPT.has(k)) annotations[k] = v;
  annotations[REVISION] = String(current.revision || 1);
  const rs = ownReplicaSet(d, current.template, hash, 0, { apiVersion: 'apps/v1', kind: 'Deployment', name: d.metadata.name ?? '', uid: d.metadata.uid ?? '', controller: true, blockOwnerDeletion: true });
  return { ...rs, metadata: { ...rs.metadata, name: `${d.metadata.name ?? ''}-${hash}`, annotations } };
}

/**
 * A ReplicaSet the rollout creates from a template: `hash` as its
 * pod-template-hash in labels, selector and template (so it selects only its
 * own pods), the rollout's marker left out.
 */
function ownReplicaSet(d: Workload, template: PodTemplate, hash: string, replicas: number, owner: NonNullable<Workload['metadata']['ownerReferences']>[number]): Workload {
  const labels = { ...template.metadata?.labels, [TEMPLATE_HASH]: hash };
  const { [ROLLOUT_IN_PROGRESS]: _mark, ...templateAnnotations } = template.metadata?.annotations ?? {};
  const selector = d.spec.selector as { matchLabels?: Record<string, string>; matchExpressions?: unknown[] } | undefined;
  return {
    apiVersion: 'apps/v1',
    kind: 'ReplicaSet',
    metadata: { namespace: d.metadata.namespace ?? '', labels, ownerReferences: [owner] },
    spec: {
      replicas,
      selector: { ...selector, matchLabels: { ...selector?.matchLabels, [TEMPLATE_HASH]: hash } },
      template: { ...template, metadata: { ...template.metadata, labels, annotations: templateAnnotations } },
    },
  };
}

/** One write that undoes a begun in-place rollout's ReplicaSet changes before a native fallback, or none left. */
export type RewindStep =
  | { action: 'restore-template'; containers: { name: string; image: string }[]; initContainers: { name: string; image: string }[]; from: string }
  | { action: 'delete-replicaset'; name: string; uid: string; resourceVersion: string; note: string }
  | { action: 'release' };

/**
 * Handing a begun rollout back to the controller: the current ReplicaSet
 * carries the target's images and the in-progress marker. Unpaused like that
 * the controller would replace every pod (the marker keeps it from matching),
 * and the marker would stay in the history. So its template goes back to the
 * images it had (kept in the history ReplicaSet of its revision), marker off,
 * and the history copy, now a duplicate, is removed: then the controller does
 * exactly what it would have done without inplace-gate.
 */
export function rewindStep(current: ReplicaSetView, others: readonly ReplicaSetView[]): RewindStep {
  if (current.template.metadata?.annotations?.[ROLLOUT_IN_PROGRESS] !== undefined) {
    const kept = others.find((rs) => !isActive(rs) && rs.revision === current.revision && sameTemplate(rs.template, withImagesOf(current.template, rs.template)));
    if (kept) {
      const pick = (list: PodTemplate['spec']['containers'] | undefined) => (list ?? []).map((c) => ({ name: c.name, image: c.image ?? '' }));
      return { action: 'restore-template', containers: pick(kept.template.spec.containers), initContainers: pick(kept.template.spec.initContainers), from: kept.name };
    }
  }
  for (const rs of others) {
    if (isActive(rs) || !sameTemplate(rs.template, current.template)) continue;
    return { action: 'delete-replicaset', name: rs.name, uid: rs.uid, resourceVersion: rs.resourceVersion, note: `ReplicaSet ${rs.name} duplicated ${current.name}'s template after the rewind; removed` };
  }
  return { action: 'release' };
}

/** `template` with the images of `from`'s containers of the same names. */
function withImagesOf(template: PodTemplate, from: PodTemplate): PodTemplate {
  const images = new Map([...from.spec.containers, ...(from.spec.initContainers ?? [])].map((c) => [c.name, c.image]));
  const swap = <C extends { name: string; image?: string }>(c: C): C => (images.has(c.name) ? { ...c, image: images.get(c.name) } : c);
  return { ...template, spec: { ...template.spec, containers: template.spec.containers.map(swap), ...(template.spec.initContainers ? { initContainers: template.spec.initContainers.map(swap) } : {}) } };
}

/** The surge ReplicaSet of a rollout: owned by the Deployment for garbage collection, never as its controller. */
export function isSurgeOf(rs: Workload, deploymentUid: string | undefined): boolean {
  return deploymentUid !== undefined && (rs.metadata.ownerReferences?.some((o) => o.uid === deploymentUid && o.controller !== true) ?? false);
}

/**
 * Surge pods for a Deployment whose maxUnavailable resolves to 0: `size` pods
 * of the target template beside the old ones, so that each in-place update
 * takes the place of one and Ready pods never drop below replicas. The
 * ReplicaSet is not the Deployment's to count or scale: its own labels do not
 * match the Deployment's selector (no adoption) and its owner reference is not
 * a controller one; its pods carry the template's labels (they serve) and
 * their own pod-template-hash (no other ReplicaSet selects them). Removed,
 * pods and all, once the Deployment's own pods are done.
 */
export function surgeReplicaSet(d: Workload, current: ReplicaSetView, size: number): Workload {
  const rs = ownReplicaSet(d, current.template, templateHash(current.template, 'surge'), size, { apiVersion: 'apps/v1', kind: 'Deployment', name: d.metadata.name ?? '', uid: d.metadata.uid ?? '', controller: false, blockOwnerDeletion: false });
  return { ...rs, metadata: { ...rs.metadata, generateName: `${d.metadata.name ?? ''}-surge-`, labels: { 'inplace-gate.dev/surge-for': d.metadata.name ?? '' } } };
}
