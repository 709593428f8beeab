// PodDisruptionBudgets and in-place updates. An in-place restart is a
// voluntary disruption the eviction API never sees, so a budget does not stop
// it by itself (OpenKruise adds its own PodUnavailableBudget for this). A
// drain waits while a budget that selects the pod has no disruption to spare,
// counting the pods inplace-gate itself has out that the budget may still
// count as healthy (its controller lags the pods' readiness).

import type { Pod } from './kube-types.ts';
import { UPDATE_ANNOTATION } from './names.ts';
import { parseUpdateState } from './state.ts';

export interface LabelSelector {
  matchLabels?: Record<string, string>;
  matchExpressions?: { key: string; operator: string; values?: string[] }[];
}

/** A PodDisruptionBudget as the drain reads it. */
export interface Budget {
  namespace: string;
  name: string;
  /** Absent selects nothing (policy/v1: a null selector matches no pod); empty selects every pod. */
  selector?: LabelSelector | undefined;
  /** status.disruptionsAllowed, as the disruption controller last computed it. */
  disruptionsAllowed: number;
}

/** Kubernetes label selector semantics (In, NotIn, Exists, DoesNotExist); an unknown operator matches nothing. */
export function matchesSelector(labels: Record<string, string> | undefined, selector: LabelSelector): boolean {
  const l = labels ?? {};
  for (const [k, v] of Object.entries(selector.matchLabels ?? {})) if (l[k] !== v) return false;
  for (const e of selector.matchExpressions ?? []) {
    const has = Object.hasOwn(l, e.key);
    const value = l[e.key];
    const inValues = value !== undefined && (e.values ?? []).includes(value);
    const ok = e.operator === 'In' ? inValues
      : e.operator === 'NotIn' ? !inValues
        : e.operator === 'Exists' ? has
          : e.operator === 'DoesNotExist' ? !has
            : false;
    if (!ok) return false;
  }
  return true;
}

/** How long after a pod's Ready went False the budget may still count it healthy (its controller's lag). */
export const BUDGET_LAG_MS = 2000;

/** Out for an in-place update: drained or draining, updating, or stalled (a Pending not yet drained is not). */
export function outForUpdate(pod: Pod): boolean {
  const parsed = parseUpdateState(pod.metadata.annotations?.[UPDATE_ANNOTATION]);
  if (!parsed.ok || parsed.state === undefined) return false;
  return parsed.state.phase !== 'Pending' || parsed.state.drained === true;
}

function countedHealthy(pod: Pod, now: number): boolean {
  const ready = pod.status?.conditions?.find((c) => c.type === 'Ready');
  if (ready?.status === 'True') return true;
  const since = ready?.lastTransitionTime === undefined ? NaN : Date.parse(ready.lastTransitionTime);
  return !Number.isNaN(since) && now - since < BUDGET_LAG_MS;
}

/**
 * The budget that holds this pod's drain back, if any: one selecting it whose
 * disruptionsAllowed, less the pods inplace-gate has out (or is taking out
 * now: `starting`) that it may still count as healthy, leaves none to spare.
 */
export function drainBlockedBy(
  pod: Pod,
  budgets: readonly Budget[],
  neighbours: readonly Pod[],
  starting: ReadonlySet<string>,
  now: Date,
): { budget: string; message: string } | undefined {
  const ns = pod.metadata.namespace ?? '';
  for (const b of budgets) {
    if (b.namespace !== ns || b.selector === undefined || !matchesSelector(pod.metadata.labels, b.selector)) continue;
    let out = 0;
    for (const p of neighbours) {
      if (p.metadata.uid === pod.metadata.uid || p.metadata.namespace !== ns || !matchesSelector(p.metadata.labels, b.selector)) continue;
      const key = `${ns}/${p.metadata.name ?? ''}`;
      if (starting.has(key) || (outForUpdate(p) && countedHealthy(p, now.getTime()))) out++;
    }
    const spare = b.disruptionsAllowed - out;
    if (spare < 1) {
      return {
        budget: b.name,
        message: `waiting for PodDisruptionBudget ${b.name}: ${String(b.disruptionsAllowed)} disruption(s) allowed${out > 0 ? `, ${String(out)} taken by in-place updates under way` : ''}`,
      };
    }
  }
  return undefined;
}
