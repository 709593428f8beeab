// What the EndpointSlices say about a pod, reduced to the one question the
// drain asks: does any slice still send it traffic? A drain is a fact the
// watcher observes in the slices, not a grace period it hopes is enough.

/** An endpoint of a slice that targets a Pod, with the conditions clients route by. */
export interface EndpointView {
  pod: { uid?: string; name?: string; namespace?: string };
  ready?: boolean;
  serving?: boolean;
  terminating?: boolean;
}

/** What the watcher keeps of one EndpointSlice. */
export interface SliceView {
  metadata: { name?: string; namespace?: string; resourceVersion?: string };
  /** Its `kubernetes.io/service-name` label; absent on slices no Service owns. */
  service?: string;
  endpoints: EndpointView[];
}

/** What the watcher keeps of one Service. */
export interface ServiceView {
  metadata: { name?: string; namespace?: string; resourceVersion?: string };
  /** The endpoint controller lists every pod ready, whatever its readiness: nothing drains it. */
  publishNotReadyAddresses?: boolean;
}

/** One EndpointSlice that still lists the pod as receiving traffic. */
export interface EndpointListing {
  /** namespace/name of the slice. */
  slice: string;
  service?: string;
}

export const SERVICE_NAME_LABEL = 'kubernetes.io/service-name';

/**
 * Whether clients may still send the endpoint traffic. `ready` unset means
 * ready (the API says so, and kube-proxy reads it so); a terminating endpoint
 * that is still serving gets traffic when a Service has no ready ones left.
 */
export function routesTraffic(e: EndpointView): boolean {
  if (e.ready !== false) return true;
  return e.terminating === true && e.serving !== false;
}

/**
 * Whether a Service's slices follow the pod's readiness. With
 * `publishNotReadyAddresses` the endpoint controller lists pods ready
 * regardless (peer discovery of StatefulSets, say): its clients do not drain by
 * readiness, so waiting for its slices would only end in the drain deadline.
 */
export function followsReadiness(service: ServiceView | undefined): boolean {
  return service?.publishNotReadyAddresses !== true;
}

/** Whether the endpoint is this pod: by uid where the slice names one, else by name in the slice's namespace. */
export function targetsPod(e: EndpointView, sliceNamespace: string | undefined, pod: { uid?: string; name?: string; namespace?: string }): boolean {
  if (e.pod.uid !== undefined && e.pod.uid !== '') return e.pod.uid === pod.uid;
  return e.pod.name === pod.name && (e.pod.namespace ?? sliceNamespace) === pod.namespace;
}
