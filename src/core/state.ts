// The lifecycle state of one image change, stored as JSON in the pod's
// `inplace-gate.dev/update` annotation. Everything the watcher knows lives
// here and in the pod's status, so any replica can resume after a crash.

import { restartsInPlace, specImages, type ImageMap } from './containers.ts';
import type { ContainerStatus, Pod } from './kube-types.ts';
import { encodeVersioned, readVersioned } from './state-schema.ts';

export type UpdatePhase = 'Pending' | 'Draining' | 'Updating' | 'Stalled';

/** What a changed container ran before the images were written: the baseline of the completion proof. */
export interface ContainerRecord {
  image: string;
  containerID?: string;
  imageID?: string;
  restartCount?: number;
}

export interface UpdateState {
  phase: UpdatePhase;
  /** Requested images, by container name. */
  images: ImageMap;
  /** Username of the request that asked for the images. */
  requestedBy: string;
  /** The request's field manager; the watcher writes the images under it. */
  fieldManager?: string;
  /** RFC 3339. */
  requestedAt: string;
  /**
   * The workload whose in-place rollout asked (`Deployment/web`): its progress Events stand for
   * this update's Normal ones (Warnings stay on the pod). A client's own request drops it.
   */
  rollout?: string;
  /** The pod is already out of endpoints (a request made while Updating or Stalled): no new drain. */
  drained?: boolean;
  /** Written by immediate mode: the images went through with no drain. */
  immediate?: boolean;
  /** Draining: when the condition went False, and when the images may be written (RFC 3339). */
  drainStartedAt?: string;
  drainDeadline?: string;
  /** Updating: only containers that serve no traffic restart; the pod was not drained and stays in endpoints. */
  inService?: boolean;
  /** Updating: how long the drain took, condition False to image write. */
  drainSeconds?: number;
  /** Updating: the pod generation that carries the requested images. */
  generation?: number;
  /** Updating: when the images were written (RFC 3339), the start of the progress deadline. */
  updatedAt?: string;
  /** Per changed container, what ran before; carried into a new request until proven. */
  before?: Record<string, ContainerRecord>;
  /** Stalled: why. */
  stalled?: { reason: string; message: string; since: string };
}

/** Stalled before the images were written: the EndpointSlices did not drop the pod in time. */
export const DRAIN_DEADLINE_EXCEEDED = 'DrainDeadlineExceeded';

/** Stalled before the drain: the pull pod could not pull the images on the node; the pod kept serving. */
export const PRE_PULL_FAILED = 'PrePullFailed';

/** Stalled with the pod still serving and its images never written: a request that can still be cancelled. */
export function stalledBeforeDrain(state: UpdateState | undefined): state is UpdateState {
  return state?.phase === 'Stalled' && state.stalled?.reason === PRE_PULL_FAILED;
}

export function stalledInDrain(state: UpdateState | undefined): state is UpdateState {
  return state?.phase === 'Stalled' && state.stalled?.reason === DRAIN_DEADLINE_EXCEEDED;
}

const PHASES: readonly string[] = ['Pending', 'Draining', 'Updating', 'Stalled'];

export type ParseResult = { ok: true; state: UpdateState | undefined } | { ok: false; error: string };

/** Decodes the annotation; a value that is present but unreadable is an error, never "no state". */
export function parseUpdateState(raw: string | undefined): ParseResult {
  if (raw === undefined || raw === '') return { ok: true, state: undefined };
  let value: unknown;
  try {
    value = JSON.parse(raw);
  } catch (err) {
    return { ok: false, error: `not JSON: ${(err as Error).message}` };
  }
  if (!isRecord(value)) return { ok: false, error: 'not a JSON object' };
  const read = readVersioned(value);
  if ('error' in read) return { ok: false, error: read.error };
  const problem = checkState(read.record);
  return problem === undefined ? { ok: true, state: read.record as unknown as UpdateState } : { ok: false, error: problem };
}

/** The annotation's value, with the schema version (state-schema.ts). */
export function encodeUpdateState(state: UpdateState): string {
  return encodeVersioned(state);
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function checkState(value: unknown): string | undefined {
  if (!isRecord(value)) return 'not a JSON object';
  if (typeof value.phase !== 'string' || !PHASES.includes(value.phase)) return `phase must be one of ${PHASES.join(', ')}`;
  if (!isRecord(value.images) || !Object.values(value.images).every((v) => typeof v === 'string')) {
    return 'images must map container names to images';
  }
  if (typeof value.requestedBy !== 'string') return 'requestedBy must be a string';
  if (typeof value.requestedAt !== 'string' || Number.isNaN(Date.parse(value.requestedAt))) return 'requestedAt must be a timestamp';
  for (const key of ['drainStartedAt', 'drainDeadline', 'updatedAt'] as const) {
    const v = value[key];
    if (v !== undefined && (typeof v !== 'string' || Number.isNaN(Date.parse(v)))) return `${key} must be a timestamp`;
  }
  if (value.rollout !== undefined && typeof value.rollout !== 'string') return 'rollout must be a string';
  if (value.generation !== undefined && !Number.isInteger(value.generation)) return 'generation must be an integer';
  if (value.before !== undefined && !isRecord(value.before)) return 'before must be an object';
  return undefined;
}

/** What the named containers run now, as their baselines: spec image, containerID, imageID, restartCount. */
export function currentRecords(pod: Pod, names: string[]): Record<string, ContainerRecord> {
  const statuses = new Map<string, ContainerStatus>();
  for (const s of [...(pod.status?.containerStatuses ?? []), ...(pod.status?.initContainerStatuses ?? [])]) statuses.set(s.name, s);
  const running = specImages(pod.spec);
  const out: Record<string, ContainerRecord> = {};
  for (const name of names) {
    const s = statuses.get(name);
    out[name] = {
      image: running[name] ?? '',
      ...(s?.containerID ? { containerID: s.containerID } : {}),
      ...(s?.imageID ? { imageID: s.imageID } : {}),
      ...(s ? { restartCount: s.restartCount } : {}),
    };
  }
  return out;
}

/**
 * A cancellation of a request made while Updating or Stalled (`drained`):
 * images written earlier are not proven yet and the pod is out of endpoints.
 * Back to Updating over the images the spec carries, with the carried
 * baselines and the pod's current generation, so the condition goes True
 * only once the kubelet's restart is proven, never on the cancellation alone.
 */
export function backToUpdating(pod: Pod, current: UpdateState, requestedBy: string, now: Date): UpdateState {
  const spec = specImages(pod.spec);
  const names = [...new Set([...Object.keys(current.before ?? {}), ...Object.keys(current.images)])].filter(
    (n) => spec[n] !== undefined && restartsInPlace(pod.spec, n),
  );
  const images: ImageMap = {};
  for (const n of names) images[n] = spec[n] ?? '';
  const { drained: _d, drainDeadline: _dd, drainStartedAt: _ds, ...rest } = current;
  return {
    ...rest,
    phase: 'Updating',
    images,
    requestedBy,
    updatedAt: now.toISOString(),
    ...(pod.metadata.generation === undefined ? {} : { generation: pod.metadata.generation }),
  };
}
