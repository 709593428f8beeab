// Which EndpointSlices still send each pod traffic, indexed by pod, kept up to
// date from the slice informer's changes. It answers the drain's question for
// one pod without scanning every slice, says which pods a slice change
// concerns (they are requeued at once), and notes when a pod's last listing
// went (the real drain time, for the metrics).

import { followsReadiness, routesTraffic, targetsPod, type EndpointListing, type EndpointView, type ServiceView, type SliceView } from '../core/endpoints.ts';
import type { Pod } from '../core/kube-types.ts';

interface SliceEntry {
  namespace: string;
  service?: string;
  /** Endpoints that route traffic, with the pod key (namespace/name) each names. */
  routing: { podKey: string; endpoint: EndpointView }[];
}

export class EndpointIndex {
  private readonly bySlice = new Map<string, SliceEntry>();
  /** Pod key -> keys of the slices listing it as routing traffic. */
  private readonly byPod = new Map<string, Set<string>>();
  private readonly goneAt = new Map<string, Date>();
  private readonly service: (key: string) => ServiceView | undefined;
  private readonly tracked: (podKey: string) => boolean;

  /**
   * `service` looks a Service up by namespace/name; `tracked` says whether a pod
   * is one the watcher manages (only those get a drain time noted).
   */
  constructor(service: (key: string) => ServiceView | undefined, tracked: (podKey: string) => boolean) {
    this.service = service;
    this.tracked = tracked;
  }

  /** Applies one slice as it is now (undefined: deleted); returns the pods whose listing changed. */
  update(sliceKey: string, slice: SliceView | undefined, now: Date): string[] {
    const previous = this.bySlice.get(sliceKey);
    const namespace = slice?.metadata.namespace ?? previous?.namespace ?? '';
    const routing = (slice?.endpoints ?? [])
      .filter((e) => routesTraffic(e) && e.pod.name !== undefined)
      .map((endpoint) => ({ podKey: `${endpoint.pod.namespace ?? namespace}/${endpoint.pod.name ?? ''}`, endpoint }));
    const entry: SliceEntry | undefined = slice === undefined ? undefined : { namespace, ...(slice.service === undefined ? {} : { service: slice.service }), routing };

    const was = new Map((previous?.routing ?? []).map((r) => [r.podKey, r.endpoint]));
    const is = new Map(routing.map((r) => [r.podKey, r.endpoint]));
    const changed: string[] = [];
    for (const podKey of new Set([...was.keys(), ...is.keys()])) {
      const a = was.get(podKey);
      const b = is.get(podKey);
      if (a !== undefined && b !== undefined && a.pod.uid === b.pod.uid && previous?.service === slice?.service) continue;
      const slices = this.byPod.get(podKey) ?? new Set<string>();
      const before = this.countsForDrain(slices, sliceKey, previous);
      if (b === undefined) slices.delete(sliceKey);
      else slices.add(sliceKey);
      if (slices.size === 0) this.byPod.delete(podKey);
      else this.byPod.set(podKey, slices);
      const after = this.countsForDrain(slices, sliceKey, entry);
      if (before && !after && this.tracked(podKey)) this.goneAt.set(podKey, now);
      if (after) this.goneAt.delete(podKey);
      changed.push(podKey);
    }
    if (entry === undefined) this.bySlice.delete(sliceKey);
    else this.bySlice.set(sliceKey, entry);
    return changed;
  }

  /** The slices that still list this pod as receiving traffic, for Services that follow readiness. */
  listings(pod: Pod): EndpointListing[] {
    const out: EndpointListing[] = [];
    for (const sliceKey of this.byPod.get(podKeyOf(pod)) ?? []) {
      const entry = this.bySlice.get(sliceKey);
      if (entry === undefined || !this.followsReadiness(entry)) continue;
      if (!entry.routing.some((r) => targetsPod(r.endpoint, entry.namespace, pod.metadata))) continue;
      out.push({ slice: sliceKey, ...(entry.service === undefined ? {} : { service: entry.service }) });
    }
    return out;
  }

  /** When the pod's last listing went, if the watcher saw it go. */
  goneAtOf(pod: Pod): Date | undefined {
    return this.goneAt.get(podKeyOf(pod));
  }

  /** A pod that is gone needs no drain time. */
  forget(podKey: string): void {
    this.goneAt.delete(podKey);
  }

  private followsReadiness(entry: SliceEntry): boolean {
    return entry.service === undefined || followsReadiness(this.service(`${entry.namespace}/${entry.service}`));
  }

  /** Whether any of the slices holds the drain, reading `sliceKey` as `current` (the slice being changed). */
  private countsForDrain(slices: Set<string>, sliceKey: string, current: SliceEntry | undefined): boolean {
    for (const key of slices) {
      const entry = key === sliceKey ? current : this.bySlice.get(key);
      if (entry !== undefined && this.followsReadiness(entry)) return true;
    }
    return false;
  }
}

const podKeyOf = (pod: Pod) => `${pod.metadata.namespace ?? ''}/${pod.metadata.name ?? ''}`;
