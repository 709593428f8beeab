// The state of one in-place workload rollout, stored as JSON in the
// workload's `inplace-gate.dev/rollout-state` annotation.

import type { ImageMap } from './containers.ts';
import { encodeVersioned, readVersioned } from './state-schema.ts';

export interface RolloutState {
  /** The images the rollout moves the pods to (the template's, by container name). */
  images: ImageMap;
  requestedBy: string;
  fieldManager?: string;
  /** RFC 3339. */
  startedAt: string;
  /** StatefulSet RollingUpdate: the user's partition, restored at the end. */
  partition?: number;
  /** Set once a stalled pod or the progress deadline stopped the rollout (and an Event said so): why. */
  stalled?: string;
  /** RFC 3339: when that Warning was last given (it is repeated while the rollout stays stalled). */
  stalledAt?: string;
  /** StatefulSet: every pod in scope is done and only `inplace-gate.dev/partition` keeps the rest (the status is not held then). */
  partitionHeld?: boolean;
}

export function parseRolloutState(raw: string | undefined): { ok: true; state: RolloutState | undefined } | { ok: false; error: string } {
  if (raw === undefined || raw === '') return { ok: true, state: undefined };
  try {
    const parsed = JSON.parse(raw) as unknown;
    if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) return { ok: false, error: 'needs images and startedAt' };
    const read = readVersioned(parsed as Record<string, unknown>);
    if ('error' in read) return { ok: false, error: read.error };
    const value = read.record as Partial<RolloutState>;
    if (typeof value.images !== 'object' || typeof value.startedAt !== 'string') {
      return { ok: false, error: 'needs images and startedAt' };
    }
    return { ok: true, state: value as RolloutState };
  } catch (err) {
    return { ok: false, error: `not JSON: ${(err as Error).message}` };
  }
}

/** The annotation's value, with the schema version (state-schema.ts). */
export function encodeRolloutState(state: RolloutState): string {
  return encodeVersioned(state);
}
