// The schema version the state annotations carry (the pod's `inplace-gate.dev/update`, the
// workload's `inplace-gate.dev/rollout-state`), so that during an upgrade, with old and new
// watchers and webhooks side by side, each reads the records the other wrote or knows it cannot.
// A record without `v` is schema 1: every record written before the field existed has that shape.
// A later schema that old code cannot read bumps the number; old code then leaves that record
// alone (an unreadable state, logged) instead of acting on fields it does not know.

/** The schema this build writes, and the newest it reads. */
export const STATE_SCHEMA = 1;

/** The record as JSON, its schema version first. */
export function encodeVersioned(state: object): string {
  return JSON.stringify({ v: STATE_SCHEMA, ...state });
}

/**
 * Why a decoded record cannot be read by this build (a newer or malformed schema version), if it
 * cannot; and the record without its version field.
 */
export function readVersioned(value: Record<string, unknown>): { error: string } | { record: Record<string, unknown> } {
  const { v, ...record } = value;
  if (v === undefined) return { record };
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 1) return { error: 'v (schema version) must be a whole number from 1' };
  if (v > STATE_SCHEMA) return { error: `written by a newer inplace-gate (schema ${String(v)}; this one reads up to ${String(STATE_SCHEMA)}): upgrade this component or finish the update with the newer one` };
  return { record };
}
