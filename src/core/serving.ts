// Sidecars that do not serve: a pod (template) may name the containers that
// serve its traffic. An image change that restarts only the others (a log
// shipper, a metrics agent) leaves the serving containers running, so there
// is nothing to drain: the images are written at once, the pod stays in its
// endpoints, and the restart is still proven and recorded.

import { eachContainer, restartsInPlace, type ImageMap } from './containers.ts';
import type { Pod } from './kube-types.ts';
import { SERVING_CONTAINERS_ANNOTATION } from './names.ts';

export type ServingContainers =
  | { declared: false }
  | { declared: true; names: ReadonlySet<string> }
  /** Present but not usable: every container is taken to serve (a typo must never skip a drain). */
  | { declared: false; problem: string };

export function servingContainers(pod: Pod): ServingContainers {
  const raw = pod.metadata.annotations?.[SERVING_CONTAINERS_ANNOTATION];
  if (raw === undefined) return { declared: false };
  const names = raw.split(',').map((n) => n.trim()).filter((n) => n !== '');
  if (names.length === 0) return { declared: false, problem: `${SERVING_CONTAINERS_ANNOTATION} names no container` };
  const known = new Set([...eachContainer(pod.spec)].map(({ container }) => container.name));
  const unknown = names.filter((n) => !known.has(n));
  if (unknown.length > 0) return { declared: false, problem: `${SERVING_CONTAINERS_ANNOTATION} names ${unknown.join(', ')}, not a container of this pod` };
  return { declared: true, names: new Set(names) };
}

/**
 * The containers among `images` that restart in place and serve traffic:
 * their change needs the drain. Without a usable declaration, all of them.
 */
export function servingChanges(pod: Pod, images: ImageMap): string[] {
  const serving = servingContainers(pod);
  return Object.keys(images).filter((name) => restartsInPlace(pod.spec, name) && (!serving.declared || serving.names.has(name)));
}
