// The rollout controller's I/O shell (its decisions: core/rollout-step.ts): moves the pods of a held Deployment or StatefulSet
// through the pod lifecycle, a sliding window of maxUnavailable at a time,
// then lets the native controller take over again. Everything follows from
// the workload's rollout-state annotation, its ReplicaSet or revision, and
// the pods' own lifecycle states, so a restarted watcher resumes the rollout.

import type { ImageMap } from '../core/containers.ts';
import type { Pod } from '../core/kube-types.ts';
import { parsePriority, PRIORITY_ANNOTATION, SCATTER_ANNOTATION } from '../core/rollout-order.ts';
import { WATCHER_FIELD_MANAGER, type PodEvent } from '../core/lifecycle.ts';
import { MANAGED_LABEL, READINESS_GATE, ROLLOUT_IN_PROGRESS, ROLLOUT_STATE_ANNOTATION } from '../core/names.ts';
import { encodeRolloutState, parseRolloutState, type RolloutState } from '../core/rollout-state.ts';
import { currentReplicaSet, historyStep, isSurgeOf, replicaSetView, rewindStep, surgeReplicaSet } from '../core/deployment-rollout.ts';
import { handBackPatch, rewindPatch, surgeDeletion } from '../core/hand-back.ts';
import type { PodOrder, RolloutPlan } from '../core/rollout.ts';
import { controllerUid, describe, OBSERVE_WAIT_MS, ownedBy, podRequest, progressNote, rolloutStep, type RolloutAction, type WorkloadKind } from '../core/rollout-step.ts';
import type { UpdateState } from '../core/state.ts';
import { REPORT_PREFIX, rolloutConditions, templateObserved, type RolloutPhase } from '../core/statefulset-status.ts';
import type { Workload } from '../core/workload-types.ts';
import { ApiError, type KubeClient } from '../kube/client.ts';
import type { Logger } from '../log.ts';
import type { EventRecorder } from './events.ts';
import type { Informer } from './informer.ts';
import type { WatcherMetrics } from './metrics.ts';
import type { QueueResult } from './queue.ts';
import type { NodeMeta, WorkloadCondition } from './trim.ts';

export interface RolloutDeps {
  client: KubeClient;
  pods: Informer<Pod>;
  deployments: Informer<Workload>;
  statefulSets: Informer<Workload>;
  replicaSets: Informer<Workload>;
  events: EventRecorder;
  metrics: WatcherMetrics;
  log: Logger;
  clock: () => Date;
  /**
   * Starts one pod's update from the rollout's request, in one guarded write
   * (PodReconciler.startRequest): 'step' if that was the lifecycle's first
   * step itself (the drain), 'request' if the request was recorded as Pending.
   */
  startUpdate: (pod: Pod, request: UpdateState, labels: Record<string, string> | undefined) => Promise<'step' | 'request'>;
  /** Nodes, for scatter across a node label (zone); without them only the hostname key scatters. */
  nodes?: Informer<NodeMeta> | undefined;
}

const REVISION_HASH = 'controller-revision-hash';
/** Pod starts written at once by one rollout pass. */
const START_CONCURRENCY = 16;

export const rolloutKey = (kind: 'Deployment' | 'StatefulSet', ns: string, name: string) => `${kind}/${ns}/${name}`;

export class RolloutReconciler {
  private readonly d: RolloutDeps;
  /** Per StatefulSet, the `generation/updateRevision` whose template the controller was proven to have observed. */
  private readonly observedTemplates = new Map<string, string>();

  constructor(deps: RolloutDeps) {
    this.d = deps;
  }

  /** The rollout a pod belongs to, for requeueing when the pod changes. */
  rolloutOf(pod: Pod): string | undefined {
    const owner = pod.metadata.ownerReferences?.find((o) => o.controller === true);
    const ns = pod.metadata.namespace ?? '';
    if (!owner) return undefined;
    if (owner.kind === 'StatefulSet') return rolloutKey('StatefulSet', ns, owner.name);
    if (owner.kind === 'ReplicaSet') {
      const rs = this.d.replicaSets.store.get(`${ns}/${owner.name}`);
      // The Deployment's own ReplicaSets, and a rollout's surge ReplicaSet (owned, not as controller).
      const dep = rs?.metadata.ownerReferences?.find((o) => o.kind === 'Deployment');
      if (dep) return rolloutKey('Deployment', ns, dep.name);
    }
    return undefined;
  }

  async reconcile(key: string): Promise<QueueResult> {
    const [kind, ns, name] = key.split('/') as [WorkloadKind, string, string];
    const store = kind === 'Deployment' ? this.d.deployments : this.d.statefulSets;
    const workload = store.store.get(`${ns}/${name}`);
    if (!workload) return {};
    const parsed = parseRolloutState(workload.metadata.annotations?.[ROLLOUT_STATE_ANNOTATION]);
    if (!parsed.ok) {
      this.d.log.warn({ workload: key, err: parsed.error }, 'unreadable rollout state; leaving the workload alone');
      return {};
    }
    const state = parsed.state;
    const step = rolloutStep({
      kind,
      workload,
      state,
      replicaSets: state ? [...this.d.replicaSets.store.values()].filter((r) => r.metadata.namespace === ns) : [],
      pods: state ? [...this.d.pods.store.values()].filter((p) => p.metadata.namespace === ns) : [],
      order: this.order(workload, key, state !== undefined),
      now: this.d.clock().getTime(),
    });
    for (const action of step.actions) {
      const ended = await this.apply(key, kind, workload, state, action);
      if (ended) return ended;
    }
    return step.requeueAfterMs === undefined ? {} : { requeueAfterMs: step.requeueAfterMs };
  }

  /** Applies one action of the step; a result ends the pass (the action said so). */
  private async apply(key: string, kind: WorkloadKind, w: Workload, state: RolloutState | undefined, a: RolloutAction): Promise<QueueResult | undefined> {
    const ns = w.metadata.namespace ?? '';
    switch (a.do) {
      case 'fall-back':
        await this.fallBack(kind, w, a.note);
        return {};
      case 'check-managed':
        return (await this.fellBack(key, w, a.owner)) ? {} : undefined;
      case 'history':
        return (await this.prepareHistory(w, a.replicaSet, a.scope)) ? { requeueAfterMs: 0 } : undefined;
      case 'retarget':
        this.d.replicaSets.upsert(await this.d.client.patch(`/apis/apps/v1/namespaces/${ns}/replicasets/${a.replicaSet.metadata.name ?? ''}`, a.patch, 'strategic', a.fieldManager ?? WATCHER_FIELD_MANAGER));
        this.event(w, kind, { type: 'Normal', reason: 'InPlaceRolloutStarted', action: 'Rollout', note: a.note });
        return undefined;
      case 'create-surge':
        await this.createSurge(w, a.replicaSet, a.size);
        return undefined;
      case 'remove-surges':
        await this.removeSurges(w);
        return undefined;
      case 'unmark':
        this.d.replicaSets.upsert(await this.d.client.patch(`/apis/apps/v1/namespaces/${ns}/replicasets/${a.replicaSet.metadata.name ?? ''}`,
          { spec: { template: { metadata: { annotations: { [ROLLOUT_IN_PROGRESS]: null } } } } }, 'strategic', WATCHER_FIELD_MANAGER));
        return undefined;
      case 'release':
        await this.release(w);
        if (state) this.finished(w, kind, state, a.pods);
        return {};
      case 'finish-statefulset': {
        const released = await this.d.client.patch<Workload>(`/apis/apps/v1/namespaces/${ns}/statefulsets/${w.metadata.name ?? ''}`,
          {
            metadata: { resourceVersion: w.metadata.resourceVersion, annotations: { [ROLLOUT_STATE_ANNOTATION]: null } },
            ...(a.rollingUpdate ? { spec: { updateStrategy: { rollingUpdate: { partition: a.partition } } } } : {}),
          }, 'strategic', WATCHER_FIELD_MANAGER);
        this.d.statefulSets.upsert(released);
        this.observedTemplates.delete(key);
        await this.reportStatefulSet(w, { kind: 'ended' }, true);
        await this.releaseObservedGeneration(released, w.metadata.generation ?? 0);
        if (state) this.finished(w, kind, state, a.pods);
        return {};
      }
      case 'check-observed':
        return (await this.controllerObserved(key, w)) ? undefined : { requeueAfterMs: OBSERVE_WAIT_MS };
      case 'write-state':
        await this.writeState(w, kind, a.state);
        return undefined;
      case 'report':
        await this.reportStatefulSet(w, a.phase, a.ended ?? false, a.hold ?? false);
        return undefined;
      case 'start':
        if (state) await this.startPods(w, kind, a.plan, a.target, state, a.revision);
        return undefined;
      case 'stalled':
        await this.writeState(w, kind, a.state);
        this.event(w, kind, { type: 'Warning', reason: a.reason, action: 'Rollout', note: `Stopped: ${a.why}; change the image again (a rollback, say) to go on` });
        if (a.first && kind === 'Deployment') await this.reportFailed(w, a.why, this.d.clock());
        if (a.first) this.d.metrics.rollouts.inc({ kind, result: 'stalled' });
        return undefined;
      case 'progressing':
        await this.reportProgressing(w);
        return undefined;
    }
  }

  /** The surge ReplicaSet, from the current ReplicaSet's whole template (the cache keeps none). */
  private async createSurge(d: Workload, rs: Workload, size: number): Promise<void> {
    const ns = d.metadata.namespace ?? '';
    const full = await this.d.client.get<Workload>(`/apis/apps/v1/namespaces/${ns}/replicasets/${rs.metadata.name ?? ''}`);
    const created = await this.d.client.post<Workload>(`/apis/apps/v1/namespaces/${ns}/replicasets?fieldManager=${WATCHER_FIELD_MANAGER}`, surgeReplicaSet(d, replicaSetView(full), size));
    this.d.replicaSets.upsert(created);
    this.event(d, 'Deployment', { type: 'Normal', reason: 'InPlaceRolloutSurge', action: 'Rollout', note: `maxUnavailable is 0: ${String(size)} surge pods on the new images first (ReplicaSet ${created.metadata.name ?? ''}), removed once every pod is updated in place` });
  }

  /** Deletes a rollout's surge ReplicaSets; their pods go with them (garbage collector, in the background). */
  private async removeSurges(d: Workload): Promise<void> {
    const ns = d.metadata.namespace ?? '';
    for (const r of [...this.d.replicaSets.store.values()]) {
      if (r.metadata.namespace !== ns || !isSurgeOf(r, d.metadata.uid)) continue;
      await this.d.client.request('DELETE', `/apis/apps/v1/namespaces/${ns}/replicasets/${r.metadata.name ?? ''}`,
        surgeDeletion(r.metadata.uid)).catch((err: unknown) => {
        if (!(err instanceof ApiError && err.status === 404)) throw err;
      });
      this.d.replicaSets.store.delete(`${ns}/${r.metadata.name ?? ''}`);
    }
  }

  /** Unpauses the Deployment and drops the rollout state, in one patch guarded by its resourceVersion. */
  private async release(d: Workload): Promise<void> {
    this.d.deployments.upsert(await this.d.client.patch(`/apis/apps/v1/namespaces/${d.metadata.namespace ?? ''}/deployments/${d.metadata.name ?? ''}`,
      { metadata: { resourceVersion: d.metadata.resourceVersion, annotations: { [ROLLOUT_STATE_ANNOTATION]: null } }, spec: { paused: false } }, 'strategic', WATCHER_FIELD_MANAGER));
  }

  /**
   * One write of the revision history before the current ReplicaSet's template
   * changes (see historyStep), read from the apiserver: the cache keeps no
   * whole templates. True if it wrote; the next reconcile re-derives the rest.
   */
  private async prepareHistory(d: Workload, rs: Workload, scope: 'history' | 'duplicates-only'): Promise<boolean> {
    const ns = d.metadata.namespace ?? '';
    const full = await this.d.client.get<Workload>(`/apis/apps/v1/namespaces/${ns}/deployments/${d.metadata.name ?? ''}`);
    const list = await this.d.client.get<{ items: Workload[] }>(`/apis/apps/v1/namespaces/${ns}/replicasets`);
    const owned = list.items.filter((r) => controllerUid(r) === d.metadata.uid).map(replicaSetView);
    const current = owned.find((r) => r.uid === rs.metadata.uid);
    if (!current) return false;
    const step = historyStep(full, current, owned.filter((r) => r.uid !== current.uid));
    if (step.action === 'retarget' || (scope === 'duplicates-only' && step.action !== 'delete-replicaset')) return false;
    if (step.action === 'delete-replicaset') {
      await this.deleteUnchanged(ns, step);
    } else {
      // Created, never updated: an existing ReplicaSet of that name is not this one's to overwrite (409: re-derive).
      this.d.replicaSets.upsert(await this.d.client.post(`/apis/apps/v1/namespaces/${ns}/replicasets?fieldManager=${WATCHER_FIELD_MANAGER}`, step.replicaSet));
    }
    this.d.log.info({ workload: `Deployment/${ns}/${d.metadata.name ?? ''}` }, step.note);
    return true;
  }

  /**
   * Whether status.updateRevision names the current template (see templateObserved):
   * with the status held below the generation, the ControllerRevision of that
   * name is read and compared, once per generation and revision.
   */
  private async controllerObserved(key: string, s: Workload): Promise<boolean> {
    const input = { uid: s.metadata.uid, generation: s.metadata.generation ?? 0, observedGeneration: s.status?.observedGeneration, updateRevision: s.status?.updateRevision };
    const proof = `${String(input.generation)}/${input.updateRevision ?? ''}`;
    if (this.observedTemplates.get(key) === proof) return true;
    let step = templateObserved(input, undefined);
    if (step.kind === 'read-revision') {
      const ns = s.metadata.namespace ?? '';
      // The cache keeps no whole templates.
      const full = await this.d.client.get<Workload>(`/apis/apps/v1/namespaces/${ns}/statefulsets/${s.metadata.name ?? ''}`);
      if (full.metadata.generation !== s.metadata.generation || full.status?.updateRevision !== input.updateRevision) return false;
      const cr = await this.d.client.get<{ metadata: Workload['metadata']; data?: unknown }>(`/apis/apps/v1/namespaces/${ns}/controllerrevisions/${step.name}`).catch((err: unknown) => {
        if (err instanceof ApiError && err.status === 404) return undefined;
        throw err;
      });
      step = cr === undefined
        ? { kind: 'wait', why: `ControllerRevision ${step.name} not found` }
        : templateObserved(input, full.spec.template, { name: cr.metadata.name ?? '', ownerUid: controllerUid(cr), data: cr.data });
    }
    if (step.kind !== 'observed') {
      this.d.log.debug({ workload: key, why: step.kind === 'wait' ? step.why : step.name }, 'rollout: waiting for the controller to observe the template');
      return false;
    }
    this.observedTemplates.set(key, proof);
    return true;
  }

  /**
   * After the end: the observedGeneration the webhook held, raised to the
   * generation whose template the controller was proven to observe, unless
   * someone (the controller, for the partition write) already wrote it; the
   * test op makes it so. Else kubectl and Argo CD would wait on a controller
   * that has no reason to write.
   */
  private async releaseObservedGeneration(s: Workload, generation: number): Promise<void> {
    const current = s.status?.observedGeneration;
    if (current === undefined || current >= generation) return;
    await this.d.client.patch(`/apis/apps/v1/namespaces/${s.metadata.namespace ?? ''}/statefulsets/${s.metadata.name ?? ''}/status`,
      [{ op: 'test', path: '/status/observedGeneration', value: current }, { op: 'replace', path: '/status/observedGeneration', value: generation }], 'json', WATCHER_FIELD_MANAGER).catch((err: unknown) => {
      // 422: the test failed, someone wrote it since; 409: likewise.
      if (!(err instanceof ApiError && (err.status === 422 || err.status === 409))) throw err;
    });
  }

  /**
   * Pods the lifecycle cannot drive (not managed: created before their namespace
   * opted in) would keep the old images: then the workload rolls out natively.
   * Asked of the apiserver, not the cache, which holds managed pods only.
   */
  private async fellBack(key: string, w: Workload, owner: Workload): Promise<boolean> {
    const selector = owner.spec.selector as { matchLabels?: Record<string, string> } | undefined;
    const labels = Object.entries(selector?.matchLabels ?? {}).map(([k, v]) => `${k}=${v}`).join(',');
    const list = await this.d.client.get<{ items: Pod[] }>(`/api/v1/namespaces/${w.metadata.namespace ?? ''}/pods?labelSelector=${encodeURIComponent(labels)}`);
    const owned = list.items.filter((p) => ownedBy(p, owner.metadata.uid) && p.metadata.deletionTimestamp === undefined);
    const unmanaged = owned.filter((p) => p.metadata.labels?.[MANAGED_LABEL] !== 'true' || !p.spec.readinessGates?.some((g) => g.conditionType === READINESS_GATE));
    if (unmanaged.length === 0) return false;
    const replicas = owned.length;
    await this.fallBack(key.split('/')[0] as 'Deployment' | 'StatefulSet', w, `${unmanaged.length} of ${replicas} pods are not managed by inplace-gate (created before their namespace opted in?): rolling out natively instead`);
    return true;
  }

  /**
   * Hands the workload back to its native controller (before a pod is touched, or OnDelete):
   * a Deployment unpaused, a StatefulSet's partition restored (never below the
   * partition annotation), the rollout state removed, and a Warning saying why.
   */
  private async fallBack(kind: 'Deployment' | 'StatefulSet', w: Workload, note: string): Promise<void> {
    const ns = w.metadata.namespace ?? '';
    if (kind === 'Deployment') {
      await this.removeSurges(w);
      await this.rewind(w);
    } else {
      await this.reportStatefulSet(w, { kind: 'ended' }, true);
      this.observedTemplates.delete(rolloutKey('StatefulSet', ns, w.metadata.name ?? ''));
    }
    // The same write as `inplace-gate release` (core/hand-back.ts).
    await this.d.client.patch(`/apis/apps/v1/namespaces/${ns}/${kind === 'Deployment' ? 'deployments' : 'statefulsets'}/${w.metadata.name ?? ''}`,
      handBackPatch(kind, w), 'strategic', WATCHER_FIELD_MANAGER);
    this.event(w, kind, { type: 'Warning', reason: 'InPlaceRolloutFallback', action: 'Rollout', note });
    this.d.metrics.rollouts.inc({ kind, result: 'fallback' });
  }

  /** Deletes a pod-less ReplicaSet only as it was read: uid and resourceVersion preconditions (409 if it changed). */
  private async deleteUnchanged(ns: string, rs: { name: string; uid: string; resourceVersion: string }): Promise<void> {
    await this.d.client.request('DELETE', `/apis/apps/v1/namespaces/${ns}/replicasets/${rs.name}`,
      { apiVersion: 'v1', kind: 'DeleteOptions', preconditions: { uid: rs.uid, resourceVersion: rs.resourceVersion } });
    this.d.replicaSets.store.delete(`${ns}/${rs.name}`);
  }

  /** Undoes the rollout's ReplicaSet changes before a Deployment goes native (see rewindStep); a few writes at most. */
  private async rewind(d: Workload): Promise<void> {
    const ns = d.metadata.namespace ?? '';
    for (let writes = 0; writes < 4; writes++) {
      const list = await this.d.client.get<{ items: Workload[] }>(`/apis/apps/v1/namespaces/${ns}/replicasets`);
      const owned = list.items.filter((r) => controllerUid(r) === d.metadata.uid).map(replicaSetView);
      const current = currentReplicaSet(owned);
      if (current.kind !== 'one') return;
      const step = rewindStep(current.rs, owned.filter((r) => r.uid !== current.rs.uid));
      if (step.action === 'release') return;
      if (step.action === 'delete-replicaset') {
        await this.deleteUnchanged(ns, step);
      } else {
        this.d.replicaSets.upsert(await this.d.client.patch(`/apis/apps/v1/namespaces/${ns}/replicasets/${current.rs.name}`,
          rewindPatch(current.rs.resourceVersion, step), 'strategic', WATCHER_FIELD_MANAGER));
        this.d.log.info({ workload: `Deployment/${ns}/${d.metadata.name ?? ''}`, replicaSet: current.rs.name }, `template restored from ${step.from} before the native rollout`);
      }
    }
  }

  /**
   * Starts the plan's pods, one guarded write each: the drain itself where the
   * pod's lifecycle would start it from the request (see rolloutStart), so a
   * pod costs inplace-gate three writes in all (drain, images, done); else the
   * request as Pending. A StatefulSet pod's revision label goes in that write.
   */
  private async startPods(w: Workload, kind: WorkloadKind, plan: RolloutPlan, target: ImageMap, state: RolloutState, revision: string | undefined): Promise<void> {
    const names = plan.start;
    if (names.length === 0) return;
    const ns = w.metadata.namespace ?? '';
    const now = this.d.clock().toISOString();
    const held: string[] = [];
    const startOne = async (name: string) => {
      const pod = this.d.pods.store.get(`${ns}/${name}`);
      if (!pod) return;
      const request = podRequest(pod, target, state, `${kind}/${w.metadata.name ?? ''}`, now);
      const wrote = await this.d.startUpdate(pod, request, revision ? { [REVISION_HASH]: revision } : undefined);
      if (wrote === 'request' && request.drained !== true) held.push(name);
      this.d.metrics.rolloutPods.inc({ kind });
    };
    // A window freed at once (the first batch, a retarget) is written a few pods at a time, not one
    // after the other; each start is decided (budgets included) before its write goes out.
    await settleAll(names.map((name) => () => startOne(name)), START_CONCURRENCY);
    this.d.log.info({ workload: `${kind}/${ns}/${w.metadata.name ?? ''}`, pods: names, updated: plan.updated, total: plan.total }, 'rollout: pods started');
    const note = progressNote(plan, names, held);
    if (note !== undefined) this.event(w, kind, { type: 'Normal', reason: 'InPlaceRolloutProgress', action: 'Rollout', note });
  }

  /** The workload's update order: priority and scatter annotations (`warn`: say so if the priority is unreadable). */
  private order(w: Workload, key: string, warn: boolean): PodOrder {
    const parsed = parsePriority(w.metadata.annotations?.[PRIORITY_ANNOTATION]);
    if (!parsed.ok && warn) this.d.log.warn({ workload: key, err: parsed.error }, 'update priority ignored');
    return {
      priority: parsed.ok ? parsed.priority : undefined,
      scatterKey: w.metadata.annotations?.[SCATTER_ANNOTATION],
      nodeLabels: (node) => this.d.nodes?.store.get(node)?.metadata.labels,
    };
  }

  private async writeState(w: Workload, kind: string, next: RolloutState): Promise<void> {
    await this.d.client.patch(`/apis/apps/v1/namespaces/${w.metadata.namespace ?? ''}/${kind === 'Deployment' ? 'deployments' : 'statefulsets'}/${w.metadata.name ?? ''}`,
      { metadata: { annotations: { [ROLLOUT_STATE_ANNOTATION]: encodeRolloutState(next) } } }, 'merge', WATCHER_FIELD_MANAGER);
  }

  /**
   * A failed in-place rollout, told the way the users' tools read a failed
   * Deployment rollout: condition Progressing False, reason
   * ProgressDeadlineExceeded. `kubectl rollout status` then exits non-zero
   * ("exceeded its progress deadline") and kstatus says Failed. The Deployment
   * controller keeps that condition while the Deployment is paused (it does
   * not overwrite a timed-out condition with DeploymentPaused) and replaces it
   * once a later rollout completes.
   */
  private async reportFailed(d: Workload, why: string, now: Date): Promise<void> {
    const at = now.toISOString().replace(/\.\d{3}Z$/, 'Z');
    const condition = { type: 'Progressing', status: 'False', reason: 'ProgressDeadlineExceeded', message: `${REPORT_PREFIX}: ${why}`, lastUpdateTime: at, lastTransitionTime: at };
    await this.d.client.patch(`/apis/apps/v1/namespaces/${d.metadata.namespace ?? ''}/deployments/${d.metadata.name ?? ''}/status`,
      { status: { conditions: [condition] } }, 'strategic', WATCHER_FIELD_MANAGER);
  }

  /**
   * A Deployment whose in-place rollout this watcher reported failed goes on
   * again (the budget allows it, a retarget): its Progressing condition back
   * to True, as the controller does when progress resumes; else `kubectl
   * rollout status` would keep failing a rollout that runs.
   */
  private async reportProgressing(d: Workload): Promise<void> {
    const conditions = (d.status?.conditions ?? []) as WorkloadCondition[];
    const ours = conditions.find((c) => c.type === 'Progressing' && c.reason === 'ProgressDeadlineExceeded' && (c.message ?? '').startsWith(REPORT_PREFIX));
    if (!ours) return;
    await this.setConditions('deployments', d, [{ type: 'Progressing', status: 'True', reason: 'ReplicaSetUpdated', message: `${REPORT_PREFIX}: progressing again` }]);
  }

  /**
   * The phase's Reconciling and Stalled conditions (core/statefulset-status.ts;
   * the status webhook writes the same ones into the controller's writes). The
   * StatefulSet controller keeps conditions it does not own (verified on
   * v1.37.2). With the webhook down they are what kstatus reads; kubectl and
   * Argo CD's built-in health read no conditions. `hold`: observedGeneration
   * lowered below the generation in the same write (the rollout goes on again).
   */
  private async reportStatefulSet(s: Workload, phase: RolloutPhase, ended = false, hold = false): Promise<void> {
    const want = rolloutConditions(phase);
    const have = (s.status?.conditions ?? []) as WorkloadCondition[];
    const changed = want.filter((w) => !have.some((h) => h.type === w.type && h.status === w.status && h.reason === w.reason && h.message === w.message));
    const generation = s.metadata.generation ?? 0;
    const lower = hold && (s.status?.observedGeneration ?? 0) >= generation ? { observedGeneration: generation - 1 } : {};
    // A StatefulSet that never had these conditions needs no "False" written at its end.
    if ((changed.length === 0 && lower.observedGeneration === undefined) || (ended && !have.some((h) => h.type === 'Reconciling' || h.type === 'Stalled'))) return;
    await this.setConditions('statefulsets', s, changed, lower);
  }

  private async setConditions(resource: 'deployments' | 'statefulsets', w: Workload, conditions: WorkloadCondition[], extra: { observedGeneration?: number } = {}): Promise<void> {
    const at = this.d.clock().toISOString().replace(/\.\d{3}Z$/, 'Z');
    const stamped = conditions.map((c) => ({ ...c, lastTransitionTime: at, ...(resource === 'deployments' ? { lastUpdateTime: at } : {}) }));
    const updated = await this.d.client.patch<Workload>(`/apis/apps/v1/namespaces/${w.metadata.namespace ?? ''}/${resource}/${w.metadata.name ?? ''}/status`,
      { status: { ...extra, ...(stamped.length > 0 ? { conditions: stamped } : {}) } }, 'strategic', WATCHER_FIELD_MANAGER);
    (resource === 'deployments' ? this.d.deployments : this.d.statefulSets).upsert(updated);
  }

  private finished(w: Workload, kind: string, state: RolloutState, pods: number): void {
    const seconds = Math.max(0, (this.d.clock().getTime() - Date.parse(state.startedAt)) / 1000);
    this.d.metrics.rollouts.inc({ kind, result: 'succeeded' });
    this.d.metrics.rolloutDuration.observe({ kind }, seconds);
    this.d.log.info({ workload: `${kind}/${w.metadata.namespace ?? ''}/${w.metadata.name ?? ''}`, pods, seconds }, 'rollout finished');
    this.event(w, kind, { type: 'Normal', reason: 'InPlaceRolloutFinished', action: 'Rollout', note: `${pods} pods running ${describe(state.images)} in ${seconds.toFixed(0)}s, none recreated` });
  }

  private event(w: Workload, kind: string, e: PodEvent): void {
    this.d.events.record({ apiVersion: 'apps/v1', kind, metadata: w.metadata }, e, this.d.clock());
  }
}

/**
 * Runs the jobs at most `limit` at a time and waits for all of them; then
 * throws the first failure, if any (one pod's 409 does not stop the others).
 */
async function settleAll(jobs: (() => Promise<void>)[], limit: number): Promise<void> {
  let next = 0;
  const failures: unknown[] = [];
  const lane = async () => {
    while (next < jobs.length) {
      const job = jobs[next++];
      await job?.().catch((err: unknown) => failures.push(err));
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, jobs.length) }, lane));
  if (failures.length > 0) throw failures[0];
}
