// How an in-place StatefulSet rollout shows in the StatefulSet's status, so
// that the users' own tools read it truthfully without help. kubectl's
// StatusViewer, kstatus and Argo CD's built-in health all check
// `status.observedGeneration < metadata.generation` first and then say "in
// progress"; with the partition held at replicas, their later rules would call
// the rollout done before any pod changed. So while the rollout runs the
// webhook keeps observedGeneration one below the generation in the
// controller's status writes, and Reconciling True in the conditions (kstatus
// reads Reconciling/Stalled, in list order, right after the generation). While
// it is stalled the generation is not held (kstatus would never reach
// Stalled=True, its Failed); nor once the pods in scope are done and only
// `inplace-gate.dev/partition` keeps the rest (natively that reads
// "partitioned roll out complete").
//
// The watcher can no longer wait for observedGeneration >= generation to know
// that status.updateRevision names the current template: it compares the
// ControllerRevision of that name with the template instead (templateObserved).

import type { RolloutState } from './rollout-state.ts';

/** How the rollout's own status conditions begin, to tell them from the controllers'. */
export const REPORT_PREFIX = 'in-place rollout (inplace-gate)';

export interface StatusCondition { type: string; status: string; reason?: string; message?: string; lastTransitionTime?: string }

export type RolloutPhase =
  | { kind: 'running' }
  | { kind: 'stalled'; why: string }
  /** Every pod in scope done; `inplace-gate.dev/partition` keeps the rest on the old images. */
  | { kind: 'partitioned' }
  | { kind: 'ended' };

/** The phase the rollout-state annotation records (undefined: no rollout). */
export function rolloutPhase(state: RolloutState | undefined): RolloutPhase {
  if (state === undefined) return { kind: 'ended' };
  if (state.stalled !== undefined) return { kind: 'stalled', why: state.stalled };
  if (state.partitionHeld === true) return { kind: 'partitioned' };
  return { kind: 'running' };
}

/** The Reconciling and Stalled conditions of a phase, as kstatus reads them (never both True). */
export function rolloutConditions(phase: RolloutPhase): StatusCondition[] {
  const both = (reconciling: boolean, reason: string, message: string, stalled?: string): StatusCondition[] => [
    { type: 'Reconciling', status: reconciling ? 'True' : 'False', reason, message: `${REPORT_PREFIX}: ${message}` },
    stalled === undefined
      ? { type: 'Stalled', status: 'False', reason, message: `${REPORT_PREFIX}: ${message}` }
      : { type: 'Stalled', status: 'True', reason: 'InPlaceRolloutStalled', message: `${REPORT_PREFIX}: ${stalled}` },
  ];
  switch (phase.kind) {
    case 'running': return both(true, 'InPlaceRollout', 'updating pods in place');
    case 'stalled': return both(false, 'InPlaceRolloutStalled', 'stopped', phase.why);
    case 'partitioned': return both(false, 'InPlaceRolloutPartitioned', 'the pods above inplace-gate.dev/partition are updated');
    case 'ended': return both(false, 'InPlaceRolloutFinished', 'finished');
  }
}

/**
 * A StatefulSet with no rollout recorded whose status still says one runs or
 * is stalled, in the rollout's own words: the controller's status write after
 * the end can carry the conditions it read before the watcher's last write
 * (on a conflict it retries with the status it computed), so the end is
 * written again.
 */
export function leftoverConditions(conditions: readonly StatusCondition[] | undefined): boolean {
  return (conditions ?? []).some((c) => (c.type === 'Reconciling' || c.type === 'Stalled') && c.status === 'True' && (c.message ?? '').startsWith(REPORT_PREFIX));
}

const same = (a: StatusCondition, b: StatusCondition) => a.type === b.type && a.status === b.status && a.reason === b.reason && a.message === b.message;

/**
 * `have` with the `want` conditions in place: kept where equal, replaced where
 * not (a new lastTransitionTime only when the status flips), appended where
 * missing; other conditions untouched. Undefined if nothing changes.
 */
export function mergeConditions(have: readonly StatusCondition[], want: readonly StatusCondition[], now: string): StatusCondition[] | undefined {
  let changed = false;
  const out = have.map((h) => {
    const w = want.find((c) => c.type === h.type);
    if (!w || same(h, w)) return h;
    changed = true;
    return { ...w, lastTransitionTime: h.status === w.status && h.lastTransitionTime !== undefined ? h.lastTransitionTime : now };
  });
  for (const w of want) {
    if (have.some((h) => h.type === w.type)) continue;
    changed = true;
    out.push({ ...w, lastTransitionTime: now });
  }
  return changed ? out : undefined;
}

export interface HeldStatus { observedGeneration?: number; conditions?: StatusCondition[] }

/**
 * A StatefulSet status write while its in-place rollout is recorded: what to
 * store instead, or undefined to store it as written. Running: observedGeneration
 * at most generation - 1, and Reconciling True. Stalled or partitioned: the
 * generation as the controller wrote it, with that phase's conditions.
 */
export function heldStatus(status: HeldStatus, generation: number, phase: RolloutPhase, now: string): HeldStatus | undefined {
  if (phase.kind === 'ended') return undefined;
  const conditions = mergeConditions(status.conditions ?? [], rolloutConditions(phase), now);
  const observed = status.observedGeneration ?? 0;
  const hold = phase.kind === 'running' && observed >= generation ? generation - 1 : undefined;
  if (conditions === undefined && hold === undefined) return undefined;
  return { ...status, ...(hold === undefined ? {} : { observedGeneration: hold }), ...(conditions === undefined ? {} : { conditions }) };
}

/** JSON values equal as the API means them: key order and null-valued keys do not count. */
export function sameJson(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (Array.isArray(a) || Array.isArray(b)) {
    return Array.isArray(a) && Array.isArray(b) && a.length === b.length && a.every((x, i) => sameJson(x, b[i]));
  }
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return false;
  const keys = (o: object) => Object.entries(o).filter(([, v]) => v !== null && v !== undefined).map(([k]) => k).sort();
  const ka = keys(a);
  const kb = keys(b);
  return ka.length === kb.length && ka.every((k, i) => k === kb[i] && sameJson((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k]));
}

export interface RevisionView {
  name: string;
  /** The controller owner's uid. */
  ownerUid: string | undefined;
  /** The ControllerRevision's data: for a StatefulSet, `{"spec":{"template":{..., "$patch":"replace"}}}`. */
  data: unknown;
}

export interface ObservedInput {
  uid: string | undefined;
  generation: number;
  observedGeneration: number | undefined;
  updateRevision: string | undefined;
}

export type ObservedStep =
  | { kind: 'observed' }
  | { kind: 'read-revision'; name: string }
  | { kind: 'wait'; why: string };

/**
 * Has the StatefulSet controller observed the current pod template, so that
 * status.updateRevision names it (the pods the rollout updates get that hash)?
 * Yes when the status is of this generation (no hold: the webhook is down, or
 * the rollout stalled), else when the ControllerRevision named updateRevision
 * belongs to this StatefulSet and holds this template (compared as JSON values:
 * the controller stores the template as the API serves it, with `$patch`).
 * Call without `revision` first; `read-revision` names the one to read.
 */
export function templateObserved(set: ObservedInput, template: unknown, revision?: RevisionView): ObservedStep {
  if (set.updateRevision === undefined || set.updateRevision === '') return { kind: 'wait', why: 'no status.updateRevision yet' };
  if ((set.observedGeneration ?? 0) >= set.generation) return { kind: 'observed' };
  if (revision === undefined || revision.name !== set.updateRevision) return { kind: 'read-revision', name: set.updateRevision };
  if (revision.ownerUid === undefined || revision.ownerUid !== set.uid) return { kind: 'wait', why: `ControllerRevision ${revision.name} is not this StatefulSet's` };
  const spec = (revision.data as { spec?: { template?: Record<string, unknown> } } | null)?.spec;
  if (spec?.template === undefined) return { kind: 'wait', why: `ControllerRevision ${revision.name} holds no template` };
  const { $patch: _patch, ...stored } = spec.template;
  return sameJson(stored, template) ? { kind: 'observed' } : { kind: 'wait', why: `ControllerRevision ${revision.name} holds an older template` };
}
