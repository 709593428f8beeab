// The shell around core/lifecycle for one pod: read it from the store, ask
// for the next step, apply that step as one API write, and say when to look
// again. Writes that change the lifecycle state carry the resourceVersion they
// were decided on, so a concurrent change (a new request, the kubelet) makes
// the write fail with 409 and the pod is decided again from its fresh copy.

import type { ContainerList, ImageMap } from '../core/containers.ts';
import { eachContainer, specImages } from '../core/containers.ts';
import { drainBlockedBy, type Budget } from '../core/disruption.ts';
import { parseImageRewrites, recordRewrites } from '../core/image-rewrites.ts';
import type { Pod } from '../core/kube-types.ts';
import { WATCHER_FIELD_MANAGER, conditionFor, nextStep, pullPodRefused, rolloutStart, wantedPullPod, withRequest, type GateCondition, type LifecycleConfig, type PodContext, type Step } from '../core/lifecycle.ts';
import { GRACE_PERIOD_ANNOTATION, IMAGE_REWRITES_ANNOTATION, UPDATE_ANNOTATION } from '../core/names.ts';
import { PULL_FOR_LABEL, pullPodActive, stalePullPods, type PullContext, type PullPod } from '../core/pre-pull.ts';
import { imageWriteRefused, isPermanentRefusal } from '../core/refusal.ts';
import { encodeUpdateState, parseUpdateState, type UpdateState } from '../core/state.ts';
import { ApiError, type KubeClient } from '../kube/client.ts';
import type { Logger } from '../log.ts';
import type { EndpointIndex } from './endpoints.ts';
import type { EventRecorder } from './events.ts';
import type { Informer } from './informer.ts';
import type { WatcherMetrics } from './metrics.ts';
import type { QueueResult } from './queue.ts';
import type { BudgetMeta, NamespaceMeta, NodeMeta } from './trim.ts';

export interface PodReconcilerDeps {
  client: KubeClient;
  pods: Informer<Pod>;
  namespaces: Informer<NamespaceMeta>;
  endpoints: EndpointIndex;
  events: EventRecorder;
  metrics: WatcherMetrics;
  log: Logger;
  config: LifecycleConfig;
  clock: () => Date;
  /** PodDisruptionBudgets; without them drains wait for none. */
  budgets?: Informer<BudgetMeta> | undefined;
  /** Pull pods (core/pre-pull.ts) and nodes (their images), with config.prePull. */
  pulls?: Informer<PullPod> | undefined;
  nodes?: Informer<NodeMeta> | undefined;
}

const podPath = (pod: Pod, sub = '') => `/api/v1/namespaces/${pod.metadata.namespace ?? ''}/pods/${pod.metadata.name ?? ''}${sub}`;

export class PodReconciler {
  private readonly d: PodReconcilerDeps;
  /** Pods whose drain-start write is in flight, by namespace/name. */
  private readonly starting = new Set<string>();
  /** Pull pod creates in flight, per node: they count against the node's pulls. */
  private readonly creating = new Map<string, number>();

  constructor(deps: PodReconcilerDeps) {
    this.d = deps;
  }

  async reconcile(key: string): Promise<QueueResult> {
    const { pods, metrics, clock } = this.d;
    const pod = pods.store.get(key);
    if (!pod) return {};
    const started = performance.now();
    const now = clock();
    // An image write whose rewrite record was lost (a crash between the two writes): record it now.
    const updating = parseUpdateState(pod.metadata.annotations?.[UPDATE_ANNOTATION]);
    if (updating.ok && updating.state?.phase === 'Updating') await this.recordRewrites(pod, updating.state.images);
    // Pull pods no step wants (pulled and drained, failed, superseded, or left by a crash) go first,
    // before the budget is read: from there to the drain's start nothing may wait, or two pods
    // decided at once would both see the budget's last disruption free.
    const pulls = this.pullContext(pod);
    if (pulls) await this.deletePullPods(pod, stalePullPods(pulls.pods, wantedPullPod(pod, { now, pull: pulls }, this.d.config)));
    const ctx = this.context(pod, now);
    const step = nextStep(pod, ctx, this.d.config);
    // A drain about to start counts against its budgets for the other pods decided while it is written.
    const starting = step.kind === 'transition' && step.state?.phase === 'Draining';
    if (starting) this.starting.add(key);
    try {
      const result = await this.apply(pod, step, now, ctx);
      metrics.reconciles.inc({ controller: 'pod', result: result.requeueAfterMs === undefined ? 'success' : 'requeue_after' });
      return result;
    } catch (err) {
      metrics.reconciles.inc({ controller: 'pod', result: 'error' });
      metrics.reconcileErrors.inc({ controller: 'pod' });
      if (err instanceof ApiError && err.status === 409) {
        // Decided on a stale copy: take the fresh one and decide again.
        await this.refresh(pod);
      }
      if (err instanceof ApiError && err.status === 404) return {};
      throw err;
    } finally {
      if (starting) this.starting.delete(key);
      metrics.reconcileTime.observe({ controller: 'pod' }, (performance.now() - started) / 1000);
    }
  }

  /** What the lifecycle reads beside the pod: the namespace's grace period, the EndpointSlices, the budgets, the pulls on its node. */
  private context(pod: Pod, now: Date): PodContext {
    const { namespaces, endpoints } = this.d;
    return {
      now,
      namespaceGrace: namespaces.store.get(pod.metadata.namespace ?? '')?.metadata.annotations?.[GRACE_PERIOD_ANNOTATION],
      endpoints: endpoints.listings(pod),
      endpointsGoneAt: endpoints.goneAtOf(pod),
      disruption: this.heldByBudget(pod, now),
      pull: this.pullContext(pod),
    };
  }

  /**
   * A workload rollout's request for one pod, in one write guarded by the
   * resourceVersion the pod was read at: the lifecycle's own first step where
   * that is a guarded write (the drain's start: condition False and Draining
   * with its deadline, after the disruption budgets allow it), else the
   * request as Pending (see rolloutStart). `labels` go in the same write (a
   * StatefulSet pod's revision). What it wrote: 'step' or 'request'.
   */
  async startRequest(pod: Pod, request: UpdateState, labels: Record<string, string> | undefined): Promise<'step' | 'request'> {
    const key = podKey(pod);
    const now = this.d.clock();
    // Counted against the budgets by the pods decided meanwhile, as a drain the pod reconciler starts.
    this.starting.add(key);
    try {
      // The pod as if the request were recorded: what the budgets and the step are decided on.
      const asked = withRequest(pod, request);
      // A pod that pre-pulls first gets the request (createPullPod is no guarded write): its own
      // reconcile pulls, then drains.
      const context = this.context(asked, now);
      const start = rolloutStart(pod, request, context, this.d.config);
      if (start.write === 'step') {
        await this.apply(asked, start.step, now, context, labels);
        return 'step';
      }
      const body = { metadata: { resourceVersion: pod.metadata.resourceVersion, annotations: { [UPDATE_ANNOTATION]: encodeUpdateState(request) }, ...(labels ? { labels } : {}) } };
      this.d.pods.upsert(await this.d.client.patch(podPath(pod), body, 'strategic', WATCHER_FIELD_MANAGER));
      return 'request';
    } catch (err) {
      if (err instanceof ApiError && err.status === 409) await this.refresh(pod);
      throw err;
    } finally {
      this.starting.delete(key);
    }
  }

  /** The pod's pull pods, its node's images and the node's other pulls; undefined with pre-pull off. Also for a rollout deciding whether a pod pulls before its drain (pullsBeforeDrain). */
  pullContext(pod: Pod): PullContext | undefined {
    const { pulls, nodes, config } = this.d;
    if (config.prePull === undefined || pulls === undefined) return undefined;
    const node = pod.spec.nodeName;
    const mine: PullPod[] = [];
    let busy = node === undefined ? 0 : (this.creating.get(node) ?? 0);
    for (const p of pulls.store.values()) {
      if (p.metadata.namespace === pod.metadata.namespace && p.metadata.labels?.[PULL_FOR_LABEL] === pod.metadata.uid) mine.push(p);
      else if (node !== undefined && p.spec.nodeName === node && pullPodActive(p)) busy++;
    }
    const seen = node === undefined ? undefined : nodes?.store.get(node);
    return { pods: mine, busyOnNode: busy, nodeReady: seen?.ready === true, ...(seen?.images ? { nodeImages: seen.images } : {}) };
  }

  private async createPullPod(pod: Pod, step: Extract<Step, { kind: 'createPullPod' }>, ctx: PodContext): Promise<QueueResult> {
    const node = pod.spec.nodeName ?? '';
    this.creating.set(node, (this.creating.get(node) ?? 0) + 1);
    try {
      const created = await this.d.client.post<Pod>(`/api/v1/namespaces/${pod.metadata.namespace ?? ''}/pods?fieldManager=${WATCHER_FIELD_MANAGER}`, step.pullPod);
      this.d.pulls?.upsert(created);
      this.d.log.info({ pod: podKey(pod), pullPod: step.pullPod.metadata.name, node, images: step.images }, 'pre-pull started');
    } catch (err) {
      // Made before, by this watcher or one that crashed: its status is on the way.
      if (err instanceof ApiError && err.status === 409) return { requeueAfterMs: 1000 };
      if (!(err instanceof ApiError) || !isPermanentRefusal(err.status)) throw err;
      // A quota, a policy or Pod Security refused it: the update goes on as it did before pre-pull.
      this.d.log.warn({ pod: podKey(pod), status: err.status, err: err.detail }, 'pull pod refused; draining without a pre-pull');
      return await this.apply(pod, pullPodRefused(pod, ctx, this.d.config, err.detail), ctx.now);
    } finally {
      const left = (this.creating.get(node) ?? 1) - 1;
      if (left === 0) this.creating.delete(node);
      else this.creating.set(node, left);
    }
    return { requeueAfterMs: step.requeueAfterMs };
  }

  /** Deletes pull pods, each guarded by its uid; never anything on the node (its images stay to the kubelet's GC). */
  private async deletePullPods(pod: Pod, names: string[]): Promise<void> {
    for (const name of names) {
      const pull = this.d.pulls?.store.get(`${pod.metadata.namespace ?? ''}/${name}`);
      try {
        await this.d.client.request('DELETE', `/api/v1/namespaces/${pod.metadata.namespace ?? ''}/pods/${name}`, {
          apiVersion: 'v1', kind: 'DeleteOptions', gracePeriodSeconds: 0, propagationPolicy: 'Background',
          ...(pull?.metadata.uid ? { preconditions: { uid: pull.metadata.uid } } : {}),
        });
        this.d.log.debug({ pod: podKey(pod), pullPod: name }, 'pull pod deleted');
      } catch (err) {
        if (!(err instanceof ApiError) || (err.status !== 404 && err.status !== 409)) throw err;
      }
      this.d.pulls?.store.delete(`${pod.metadata.namespace ?? ''}/${name}`);
    }
  }

  /** For a pod whose drain is still to start, the disruption budget holding it back, if one does. */
  private heldByBudget(pod: Pod, now: Date): { budget: string; message: string } | undefined {
    const budgets = this.d.budgets;
    if (!budgets || !pod.metadata.annotations?.[UPDATE_ANNOTATION]?.includes('"phase":"Pending"')) return undefined;
    const ns = pod.metadata.namespace ?? '';
    const here: Budget[] = [];
    for (const b of budgets.store.values()) {
      if (b.metadata.namespace === ns) here.push({ namespace: ns, name: b.metadata.name ?? '', selector: b.selector, disruptionsAllowed: b.disruptionsAllowed });
    }
    if (here.length === 0) return undefined;
    const neighbours = [...this.d.pods.store.values()].filter((p) => p.metadata.namespace === ns);
    return drainBlockedBy(pod, here, neighbours, this.starting, now);
  }

  private async refresh(pod: Pod): Promise<void> {
    try {
      this.d.pods.upsert(await this.d.client.get(podPath(pod)));
    } catch (err) {
      this.d.log.debug({ pod: podKey(pod), err: (err as Error).message }, 'could not refresh the pod after a conflict');
    }
  }

  /** `labels`: set in the same write (a rollout's request carries the StatefulSet revision). */
  private async apply(pod: Pod, step: Step, now: Date, ctx: PodContext = { now }, labels?: Record<string, string>): Promise<QueueResult> {
    const { client, pods, log } = this.d;
    switch (step.kind) {
      case 'createPullPod':
        return await this.createPullPod(pod, step, ctx);
      case 'none':
        if (step.why.startsWith('unreadable')) log.warn({ pod: podKey(pod), why: step.why }, 'cannot read the lifecycle state');
        else if (step.why.startsWith('waiting for EndpointSlice')) log.debug({ pod: podKey(pod), why: step.why }, 'drain not confirmed yet');
        return { requeueAfterMs: step.requeueAfterMs };
      case 'setCondition': {
        const body = { status: { conditions: [conditionFor(pod, step.condition, now)] } };
        pods.upsert(await client.patch(podPath(pod, '/status'), body, 'strategic', WATCHER_FIELD_MANAGER));
        log.debug({ pod: podKey(pod), condition: step.condition.status, reason: step.condition.reason }, 'condition set');
        if (step.event) this.d.events.record(pod, step.event, now);
        return {};
      }
      case 'transition': {
        const body = {
          metadata: { resourceVersion: pod.metadata.resourceVersion, annotations: { [UPDATE_ANNOTATION]: step.state ? encodeUpdateState(step.state) : null }, ...(labels ? { labels } : {}) },
          ...(step.condition ? { status: { conditions: [conditionFor(pod, step.condition, now)] } } : {}),
        };
        pods.upsert(await client.patch(podPath(pod, '/status'), body, 'strategic', WATCHER_FIELD_MANAGER));
        this.logTransition(pod, step.state, step.condition);
        if (step.event) this.d.events.record(pod, step.event, now);
        if (step.prePull) {
          this.d.metrics.prePulls.inc({ result: step.prePull.result });
          if (step.prePull.seconds !== undefined) this.d.metrics.prePullDuration.observe(step.prePull.seconds);
        }
        if (step.outcome) {
          this.d.metrics.updates.inc({ result: step.outcome.result });
          if (step.outcome.result === 'succeeded') {
            this.d.metrics.updateDuration.observe(step.outcome.durationSeconds);
            if (step.outcome.drainSeconds !== undefined) this.d.metrics.drainDuration.observe(step.outcome.drainSeconds);
          }
        }
        return { requeueAfterMs: step.requeueAfterMs };
      }
      case 'writeImages': {
        const lists: Partial<Record<ContainerList, { name: string; image: string }[]>> = {};
        for (const { list, container } of eachContainer(pod.spec)) {
          const image = step.images[container.name];
          if (image !== undefined) (lists[list] ??= []).push({ name: container.name, image });
        }
        const body = {
          metadata: { resourceVersion: pod.metadata.resourceVersion, annotations: { [UPDATE_ANNOTATION]: encodeUpdateState(step.state) }, ...(labels ? { labels } : {}) },
          spec: lists,
        };
        // Under the requester's field manager, so managedFields keep naming the tool that asked.
        let written: Pod;
        try {
          written = await client.patch<Pod>(podPath(pod), body, 'strategic', step.fieldManager ?? WATCHER_FIELD_MANAGER);
        } catch (err) {
          const before = parseUpdateState(pod.metadata.annotations?.[UPDATE_ANNOTATION]);
          if (!(err instanceof ApiError) || !isPermanentRefusal(err.status, err.detail) || !before.ok || before.state === undefined) throw err;
          // Another try cannot change this answer: Stalled, with the apiserver's words.
          log.warn({ pod: podKey(pod), status: err.status, reason: err.reason, err: err.detail, images: step.images }, 'image write refused');
          return this.apply(pod, imageWriteRefused(pod, before.state, err.detail, { now }), now);
        }
        pods.upsert(written);
        await this.recordRewrites(written, step.images);
        this.logTransition(pod, step.state, undefined);
        if (step.event) this.d.events.record(pod, step.event, now);
        if (step.drain) {
          this.d.metrics.endpointsDrainDuration.observe(step.drain.endpointsSeconds);
          this.d.metrics.drainMargin.observe(step.drain.marginSeconds);
        }
        return { requeueAfterMs: step.requeueAfterMs };
      }
    }
  }

  /**
   * Where another webhook stored other images than the ones written (digest
   * pinning, a registry mirror), say so on the pod, so that the rollout reads
   * it as running what was asked and does not drain it again (image-rewrites).
   */
  private async recordRewrites(written: Pod, requested: ImageMap): Promise<void> {
    const next = recordRewrites(parseImageRewrites(written.metadata.annotations?.[IMAGE_REWRITES_ANNOTATION]), requested, specImages(written.spec));
    if (next === undefined) return;
    const value = Object.keys(next).length === 0 ? null : JSON.stringify(next);
    this.d.pods.upsert(await this.d.client.patch(podPath(written), { metadata: { resourceVersion: written.metadata.resourceVersion, annotations: { [IMAGE_REWRITES_ANNOTATION]: value } } }, 'strategic', WATCHER_FIELD_MANAGER));
    if (value !== null) this.d.log.info({ pod: podKey(written), rewrites: next }, 'another webhook rewrote the images written; recorded so the rollout reads them as asked');
  }

  private logTransition(pod: Pod, state: UpdateState | undefined, condition: GateCondition | undefined): void {
    const from = parseUpdateState(pod.metadata.annotations?.[UPDATE_ANNOTATION]);
    const line = {
      pod: podKey(pod),
      from: from.ok ? (from.state?.phase ?? 'none') : 'unreadable',
      to: state?.phase ?? 'done',
      images: state?.images,
      ...(condition ? { condition: condition.status, reason: condition.reason } : {}),
    };
    if (state?.phase === 'Stalled') this.d.log.warn({ ...line, stalled: state.stalled }, 'in-place update stalled');
    else this.d.log.info(line, 'lifecycle');
  }
}

export function podKey(pod: Pod): string {
  return `${pod.metadata.namespace ?? ''}/${pod.metadata.name ?? ''}`;
}

/** Phase per managed pod, for the inplace_gate_pods gauge. */
export function phaseOf(pod: Pod): string {
  const parsed = parseUpdateState(pod.metadata.annotations?.[UPDATE_ANNOTATION]);
  return parsed.ok ? (parsed.state?.phase ?? 'Ready') : 'Stalled';
}
