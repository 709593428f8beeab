// The shell's unit tests: an apiserver that stores one pod as it is sent,
// and a PodReconciler over it, its informers filled by hand, no EndpointSlice
// listing any pod.

import type { Pod, PodCondition } from '../../src/core/kube-types.ts';
import type { LifecycleConfig } from '../../src/core/lifecycle.ts';
import { ApiError, type KubeClient } from '../../src/kube/client.ts';
import { createLogger } from '../../src/log.ts';
import { EndpointIndex } from '../../src/watcher/endpoints.ts';
import { EventRecorder } from '../../src/watcher/events.ts';
import { Informer } from '../../src/watcher/informer.ts';
import { createWatcherMetrics } from '../../src/watcher/metrics.ts';
import { PodReconciler } from '../../src/watcher/pod-reconciler.ts';
import { trimBudget, trimNamespace, trimPod, type BudgetMeta, type NamespaceMeta } from '../../src/watcher/trim.ts';

interface PatchBody {
  metadata?: { resourceVersion?: string; annotations?: Record<string, string | null>; labels?: Record<string, string> };
  status?: { conditions?: PodCondition[] };
  spec?: { containers?: { name: string; image: string }[] };
}

/**
 * One pod, stored as a strategic merge would (annotations and labels merged,
 * conditions by type, container images by name), writes guarded by
 * resourceVersion (409), every write and Event kept. `refuseImages`: the
 * answer to every image write (a 422, a policy's 403).
 */
export function fakeApiserver(initial: Pod, opts: { refuseImages?: ApiError } = {}) {
  let stored = structuredClone(initial);
  const patches: { path: string; body: PatchBody }[] = [];
  const events: { path: string; body: { type?: string; reason?: string; note?: string } }[] = [];
  const bump = (p: Pod) => { p.metadata.resourceVersion = String(Number(p.metadata.resourceVersion ?? '1') + 1); };
  const client = {
    patch: (path: string, body: PatchBody) => {
      patches.push({ path, body });
      if (!path.endsWith('/status') && opts.refuseImages) return Promise.reject(opts.refuseImages);
      const rv = body.metadata?.resourceVersion;
      if (rv !== undefined && rv !== stored.metadata.resourceVersion) return Promise.reject(new ApiError(409, 'Conflict', 'the object has been modified'));
      const next = structuredClone(stored);
      const annotations: Record<string, string> = { ...next.metadata.annotations };
      for (const [k, v] of Object.entries(body.metadata?.annotations ?? {})) {
        if (v === null) delete annotations[k];
        else annotations[k] = v;
      }
      next.metadata.annotations = annotations;
      if (body.metadata?.labels) next.metadata.labels = { ...next.metadata.labels, ...body.metadata.labels };
      if (!path.endsWith('/status') && body.spec?.containers) {
        for (const c of body.spec.containers) {
          const target = next.spec.containers.find((o) => o.name === c.name);
          if (target) target.image = c.image;
        }
        next.metadata.generation = (next.metadata.generation ?? 1) + 1;
      }
      const status = (next.status ??= {});
      for (const c of body.status?.conditions ?? []) status.conditions = [...(status.conditions ?? []).filter((o) => o.type !== c.type), c];
      bump(next);
      stored = next;
      return Promise.resolve(structuredClone(next));
    },
    get: () => Promise.resolve(structuredClone(stored)),
    post: (path: string, body: { type?: string; reason?: string; note?: string }) => {
      events.push({ path, body });
      return Promise.resolve(body);
    },
  } as unknown as KubeClient;
  /** A write of someone else's (the kubelet's): `edit` changes the stored pod, which gets a new resourceVersion. */
  const writtenByOthers = (edit: (p: Pod) => void) => {
    const next = structuredClone(stored);
    edit(next);
    bump(next);
    stored = next;
    return structuredClone(next);
  };
  return { client, patches, events, writtenByOthers, stored: () => stored };
}

export function testReconciler(client: KubeClient, pod: Pod, opts: { clock: () => Date; config: LifecycleConfig; budgets?: unknown[] }) {
  const log = createLogger('test', 'silent');
  const metrics = createWatcherMetrics(() => ({ byPhase: {}, drainOverdueSeconds: 0 }), () => ({}));
  const pods = new Informer<Pod>(client, { path: '/api/v1/pods', trim: trimPod, onChange: () => undefined, log });
  const namespaces = new Informer<NamespaceMeta>(client, { path: '/api/v1/namespaces', trim: trimNamespace, onChange: () => undefined, log });
  pods.upsert(pod);
  let budgets: Informer<BudgetMeta> | undefined;
  if (opts.budgets) {
    const informer = new Informer<BudgetMeta>(client, { path: '/apis/policy/v1/poddisruptionbudgets', trim: trimBudget, onChange: () => undefined, log });
    for (const b of opts.budgets) informer.upsert(b);
    budgets = informer;
  }
  const reconciler = new PodReconciler({
    client,
    pods,
    namespaces,
    endpoints: new EndpointIndex(() => undefined, () => true),
    events: new EventRecorder(client, 'test', log, metrics),
    metrics,
    log,
    config: opts.config,
    clock: opts.clock,
    budgets,
  });
  return { reconciler, pods, metrics, key: `${pod.metadata.namespace ?? ''}/${pod.metadata.name ?? ''}` };
}
