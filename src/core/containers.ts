import type { Container, PodSpec } from './kube-types.ts';

/**
 * Container names are unique across containers and init containers (the
 * apiserver validates it), so one map keyed by name describes every image.
 */
export type ImageMap = Record<string, string>;

export type ContainerList = 'containers' | 'initContainers';

export function* eachContainer(spec: PodSpec): Generator<{ list: ContainerList; index: number; container: Container }> {
  for (const [index, container] of spec.containers.entries()) yield { list: 'containers', index, container };
  for (const [index, container] of (spec.initContainers ?? []).entries()) yield { list: 'initContainers', index, container };
}

export function specImages(spec: PodSpec): ImageMap {
  const images: ImageMap = {};
  for (const { container } of eachContainer(spec)) if (container.image !== undefined) images[container.name] = container.image;
  return images;
}

/** Containers of `to` whose image differs from the container of the same name in `from`. */
export function imageChanges(from: PodSpec, to: PodSpec): ImageMap {
  const before = specImages(from);
  const changes: ImageMap = {};
  for (const { container } of eachContainer(to)) {
    const image = container.image;
    if (image !== undefined && container.name in before && before[container.name] !== image) changes[container.name] = image;
  }
  return changes;
}

export function isEmpty(images: Readonly<Record<string, unknown>>): boolean {
  for (const _ in images) return false;
  return true;
}

export function sameImages(a: ImageMap, b: ImageMap): boolean {
  const keys = Object.keys(a);
  return keys.length === Object.keys(b).length && keys.every((k) => a[k] === b[k]);
}

/** A copy of `spec` with the given images; containers not named are shared, not copied. */
export function withImages(spec: PodSpec, images: ImageMap): PodSpec {
  const apply = (list: Container[]): Container[] =>
    list.map((c) => (c.name in images && images[c.name] !== c.image ? { ...c, image: images[c.name] } : c));
  const next: PodSpec = { ...spec, containers: apply(spec.containers) };
  if (spec.initContainers) next.initContainers = apply(spec.initContainers);
  return next;
}

/** Init containers with restartPolicy Always run beside the app and restart in place like containers. */
export function isNativeSidecar(container: Container): boolean {
  return container.restartPolicy === 'Always';
}

/** Ordinary init containers do not rerun on a running pod: their image change is complete at once. */
export function restartsInPlace(spec: PodSpec, name: string): boolean {
  for (const { list, container } of eachContainer(spec)) {
    if (container.name === name) return list === 'containers' || isNativeSidecar(container);
  }
  return false;
}
