// Images another mutating webhook rewrote. Enterprises pin digests
// (`app:2` -> `app:2@sha256:...`) or send pulls to a mirror (`docker.io/x` ->
// `mirror.corp/x`) in a webhook on pod writes, so the image the watcher writes
// is not the image the pod stores and the kubelet runs. Compared as strings,
// such a pod never reaches its template's image: the rollout would drain it
// again and again. So the watcher records, per container, what it asked for
// and what the apiserver stored; a pod whose stored image is still the one
// recorded counts as running the image it was asked for.

import type { ImageMap } from './containers.ts';

export type ImageRewrites = Record<string, { requested: string; stored: string }>;

export function parseImageRewrites(raw: string | undefined): ImageRewrites {
  if (raw === undefined || raw === '') return {};
  try {
    const value = JSON.parse(raw) as unknown;
    if (typeof value !== 'object' || value === null || Array.isArray(value)) return {};
    const out: ImageRewrites = {};
    for (const [name, entry] of Object.entries(value as Record<string, unknown>)) {
      const e = entry as { requested?: unknown; stored?: unknown } | null;
      if (typeof e?.requested === 'string' && typeof e.stored === 'string') out[name] = { requested: e.requested, stored: e.stored };
    }
    return out;
  } catch {
    return {}; // an unreadable record only costs a needless update, never a wrong one
  }
}

/**
 * The record after a write of `requested` that the apiserver stored as
 * `stored`: entries for the written containers replaced (dropped where the
 * image was stored as written), the others kept. Undefined if unchanged.
 */
export function recordRewrites(previous: ImageRewrites, requested: ImageMap, stored: ImageMap): ImageRewrites | undefined {
  const next: ImageRewrites = {};
  for (const [name, entry] of Object.entries(previous)) if (!(name in requested)) next[name] = entry;
  for (const [name, image] of Object.entries(requested)) {
    const got = stored[name];
    if (got !== undefined && got !== image) next[name] = { requested: image, stored: got };
  }
  const same = (r: ImageRewrites) => JSON.stringify(Object.entries(r).sort(([a], [b]) => a.localeCompare(b)));
  return same(next) === same(previous) ? undefined : next;
}

/** The images a pod runs, named as they were asked for: a stored image still the recorded one reads as its request. */
export function requestedImages(spec: ImageMap, rewrites: ImageRewrites): ImageMap {
  const out: ImageMap = { ...spec };
  for (const [name, { requested, stored }] of Object.entries(rewrites)) if (spec[name] === stored) out[name] = requested;
  return out;
}
