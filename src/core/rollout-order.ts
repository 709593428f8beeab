// The order of an in-place rollout, from the workload's annotations (the
// seed's priority and scatter strategies, as OpenKruise's CloneSet has them,
// without its CRD):
//   inplace-gate.dev/update-priority: JSON, one of
//     {"weightPriority":[{"weight":50,"matchSelector":{"matchLabels":{"tier":"canary"}}}]}
//       a pod's priority is the sum of the weights of the terms its labels match;
//     {"orderPriority":[{"orderedKey":"update-order"}]}
//       pods with the first key go before those without, by its value, higher
//       first (numbers as numbers); then the next key, and so on.
//   inplace-gate.dev/update-scatter: a topology key (kubernetes.io/hostname,
//     topology.kubernetes.io/zone, any node label): pods in flight are spread
//     across its values, so one node or zone is not drained at once.
// Higher priority goes first; scatter only orders pods of equal priority.

import { matchesSelector, type LabelSelector } from './disruption.ts';

export const PRIORITY_ANNOTATION = 'inplace-gate.dev/update-priority';
export const SCATTER_ANNOTATION = 'inplace-gate.dev/update-scatter';
export const HOSTNAME_KEY = 'kubernetes.io/hostname';

export type UpdatePriority =
  | { weightPriority: { weight: number; matchSelector: LabelSelector }[] }
  | { orderPriority: { orderedKey: string }[] };

export function parsePriority(raw: string | undefined): { ok: true; priority: UpdatePriority | undefined } | { ok: false; error: string } {
  if (raw === undefined || raw.trim() === '') return { ok: true, priority: undefined };
  let value: unknown;
  try {
    value = JSON.parse(raw);
  } catch (err) {
    return { ok: false, error: `${PRIORITY_ANNOTATION} is not JSON: ${(err as Error).message}` };
  }
  const v = value as { weightPriority?: unknown; orderPriority?: unknown } | null;
  if (v !== null && typeof v === 'object' && Array.isArray(v.weightPriority) && v.orderPriority === undefined) {
    const terms = v.weightPriority as { weight?: unknown; matchSelector?: unknown }[];
    if (terms.every((t) => typeof t.weight === 'number' && Number.isFinite(t.weight) && typeof t.matchSelector === 'object' && t.matchSelector !== null)) {
      return { ok: true, priority: { weightPriority: terms as { weight: number; matchSelector: LabelSelector }[] } };
    }
  }
  if (v !== null && typeof v === 'object' && Array.isArray(v.orderPriority) && v.weightPriority === undefined) {
    const terms = v.orderPriority as { orderedKey?: unknown }[];
    if (terms.every((t) => typeof t.orderedKey === 'string' && t.orderedKey !== '')) return { ok: true, priority: { orderPriority: terms as { orderedKey: string }[] } };
  }
  return { ok: false, error: `${PRIORITY_ANNOTATION} needs {"weightPriority":[{"weight":N,"matchSelector":{...}}]} or {"orderPriority":[{"orderedKey":"label"}]}` };
}

/** A pod's rank under the priority: compared element by element, higher first (see compareRank). */
export function rankOf(labels: Record<string, string> | undefined, priority: UpdatePriority | undefined): (number | string)[] | undefined {
  if (priority === undefined) return undefined;
  if ('weightPriority' in priority) {
    let sum = 0;
    for (const t of priority.weightPriority) if (matchesSelector(labels, t.matchSelector)) sum += t.weight;
    return [sum];
  }
  // Per key: present before absent (1 / 0), then its value; absent values rank lowest.
  const rank: (number | string)[] = [];
  for (const { orderedKey } of priority.orderPriority) {
    const value = labels?.[orderedKey];
    if (value === undefined) {
      rank.push(0, -Infinity);
      continue;
    }
    const n = Number(value);
    rank.push(1, value.trim() !== '' && Number.isFinite(n) ? n : value);
  }
  return rank;
}

/** A pod's domain under a topology key: its node's name for the hostname key, else that label of its node. */
export function domainOf(nodeName: string | undefined, nodeLabels: Record<string, string> | undefined, key: string | undefined): string | undefined {
  if (key === undefined || key === '' || nodeName === undefined) return undefined;
  if (key === HOSTNAME_KEY) return nodeLabels?.[key] ?? nodeName;
  return nodeLabels?.[key];
}
