// The drain check: after InPlaceUpdateReady went False, may the images be
// written yet? Only when the grace period has passed (it stays, for clients
// that cache endpoints beyond the slices: ingress controllers, meshes, DNS)
// and no EndpointSlice lists the pod as receiving traffic. A pod no Service
// selects is in no slice and needs the grace period alone. The drain deadline
// caps the wait: past it the update is Stalled, never written undrained.

import type { EndpointListing } from './endpoints.ts';
import type { UpdateState } from './state.ts';

/** Used when the configuration does not set one. */
export const DEFAULT_DRAIN_DEADLINE_SECONDS = 120;

/** How the drain went, for the metrics at the image write. */
export interface DrainTiming {
  /** Condition False to the last EndpointSlice listing the pod gone: the real drain. */
  endpointsSeconds: number;
  /** From there to the image write. */
  marginSeconds: number;
}

export type DrainVerdict =
  | { kind: 'drained'; timing?: DrainTiming }
  | { kind: 'waiting'; why: string; requeueAfterMs: number }
  | { kind: 'deadlineExceeded'; message: string };

export interface DrainInput {
  state: UpdateState;
  now: number;
  /** The end of the grace period (ms since the epoch). */
  graceEndsAt: number;
  /** Slices still listing the pod; absent: none does. */
  endpoints: readonly EndpointListing[] | undefined;
  /** When the watcher saw the pod's last listing go, if it saw that. */
  endpointsGoneAt: Date | undefined;
  drainDeadlineSeconds: number | undefined;
}

const ms = (iso: string | undefined) => (iso === undefined ? NaN : Date.parse(iso));

export function describeListings(endpoints: readonly EndpointListing[]): string {
  return endpoints.map((e) => (e.service === undefined ? `EndpointSlice ${e.slice}` : `EndpointSlice ${e.slice} (Service ${e.service})`)).join(', ');
}

/** When the condition went False (a state written before drainStartedAt existed counts from the grace period's end). */
const drainStart = (state: UpdateState, graceEndsAt: number) => (Number.isNaN(ms(state.drainStartedAt)) ? graceEndsAt : ms(state.drainStartedAt));

/** The drain deadline: from the condition False, and never before the grace period ends. */
export function drainDeadlineOf(state: UpdateState, graceEndsAt: number, drainDeadlineSeconds: number | undefined): number {
  return Math.max(graceEndsAt, drainStart(state, graceEndsAt) + (drainDeadlineSeconds ?? DEFAULT_DRAIN_DEADLINE_SECONDS) * 1000);
}

export function drainVerdict(input: DrainInput): DrainVerdict {
  const { state, now, graceEndsAt, endpoints } = input;
  if (now < graceEndsAt) return { kind: 'waiting', why: 'draining', requeueAfterMs: graceEndsAt - now };
  if (endpoints === undefined || endpoints.length === 0) return { kind: 'drained', ...timing(input) };
  const deadline = drainDeadlineOf(state, graceEndsAt, input.drainDeadlineSeconds);
  const listed = describeListings(endpoints);
  if (now >= deadline) {
    const seconds = Math.round((deadline - drainStart(state, graceEndsAt)) / 1000);
    return { kind: 'deadlineExceeded', message: `drain not confirmed in ${seconds}s: ${listed} still lists the pod ready` };
  }
  // A change of those slices requeues the pod at once; this is only the deadline's timer.
  return { kind: 'waiting', why: `waiting for ${listed} to stop listing the pod ready`, requeueAfterMs: deadline - now };
}

function timing({ state, now, endpointsGoneAt }: DrainInput): { timing?: DrainTiming } {
  const started = ms(state.drainStartedAt);
  // Only a listing seen to go during this drain says how long the drain took.
  if (endpointsGoneAt === undefined || Number.isNaN(started) || endpointsGoneAt.getTime() < started) return {};
  const gone = endpointsGoneAt.getTime();
  return { timing: { endpointsSeconds: (gone - started) / 1000, marginSeconds: Math.max(0, now - gone) / 1000 } };
}
