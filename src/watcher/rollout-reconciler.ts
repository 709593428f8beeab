// The rollout controller: moves the pods of a held Deployment or StatefulSet
// through the pod lifecycle, a sliding window of maxUnavailable at a time,
// then lets the native controller take over again. Everything follows from
// the workload's rollout-state annotation, its ReplicaSet or revision, and
// the pods' own lifecycle states, so a restarted watcher resumes the rollout.

import { imageChanges, specImages, type ImageMap } from '../core/containers.ts';
import type { Pod } from '../core/kube-types.ts';
import { parsePriority, PRIORITY_ANNOTATION, SCATTER_ANNOTATION } from '../core/rollout-order.ts';
import { WATCHER_FIELD_MANAGER, type PodEvent } from '../core/lifecycle.ts';
import { MANAGED_LABEL, ROLLOUT_ANNOTATION, READINESS_GATE, ROLLOUT_IN_PROGRESS, ROLLOUT_STATE_ANNOTATION, UPDATE_ANNOTATION } from '../core/names.ts';
import { encodeRolloutState, parseRolloutState, type RolloutState } from '../core/rollout-state.ts';
import { currentReplicaSet, historyStep, isSurgeOf, replicaSetView, rewindStep, surgeReplicaSet } from '../core/deployment-rollout.ts';
import { annotationPartition, handBackPatch, rewindPatch, surgeDeletion } from '../core/hand-back.ts';
import { deploymentWindow, planRollout, rolloutPod, statefulSetRolloutStep, statefulSetWindow, type PodOrder, type RolloutPlan, type RolloutTiming } from '../core/rollout.ts';
import { parseUpdateState, type UpdateState } from '../core/state.ts';
import { leftoverConditions, REPORT_PREFIX, rolloutConditions, rolloutPhase, templateObserved, type RolloutPhase } from '../core/statefulset-status.ts';
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
const WAIT_MS = 2000;
/** Pod starts written at once by one rollout pass. */
const START_CONCURRENCY = 16;
/** A rollout that stays stalled is warned about again this often. */
const REWARN_MS = 10 * 60_000;

export const rolloutKey = (kind: 'Deployment' | 'StatefulSet', ns: string, name: string) => `${kind}/${ns}/${name}`;

function templateImages(w: Workload): ImageMap {
  return specImages(w.spec.template.spec);
}

function controllerUid(w: Workload): string | undefined {
  return w.metadata.ownerReferences?.find((o) => o.controller === true)?.uid;
}

function ownedBy(pod: Pod, uid: string | undefined): boolean {
  return uid !== undefined && (pod.metadata.ownerReferences?.some((o) => o.uid === uid && o.controller === true) ?? false);
}

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
    const [kind, ns, name] = key.split('/') as ['Deployment' | 'StatefulSet', string, string];
    const store = kind === 'Deployment' ? this.d.deployments : this.d.statefulSets;
    const workload = store.store.get(`${ns}/${name}`);
    if (!workload) return {};
    const parsed = parseRolloutState(workload.metadata.annotations?.[ROLLOUT_STATE_ANNOTATION]);
    if (!parsed.ok) {
      this.d.log.warn({ workload: key, err: parsed.error }, 'unreadable rollout state; leaving the workload alone');
      return {};
    }
    if (!parsed.state) {
      if (kind === 'StatefulSet' && leftoverConditions((workload.status?.conditions ?? []) as WorkloadCondition[])) await this.reportStatefulSet(workload, { kind: 'ended' }, true);
      return {};
    }
    return kind === 'Deployment' ? this.deployment(key, workload, parsed.state) : this.statefulSet(key, workload, parsed.state);
  }

  private managedPods(ns: string, ownerUid: string | undefined): Pod[] {
    const out: Pod[] = [];
    for (const pod of this.d.pods.store.values()) if (pod.metadata.namespace === ns && ownedBy(pod, ownerUid)) out.push(pod);
    return out;
  }

  private partition(w: Workload): number {
    return annotationPartition(w);
  }

  private async deployment(key: string, d: Workload, state: RolloutState): Promise<QueueResult> {
    const ns = d.metadata.namespace ?? '';
    const target = templateImages(d);
    if (d.metadata.annotations?.[ROLLOUT_ANNOTATION] === 'recreate') {
      await this.fallBack('Deployment', d, 'inplace-gate.dev/rollout: recreate set during the in-place rollout: the controller replaces the remaining pods');
      return {};
    }
    const owned = [...this.d.replicaSets.store.values()].filter((r) => r.metadata.namespace === ns && controllerUid(r) === d.metadata.uid);
    // The ReplicaSet that runs the pods, as the controller sees it: never picked by name or revision.
    const current = currentReplicaSet(owned.map(replicaSetView));
    if (current.kind === 'several') {
      await this.fallBack('Deployment', d, `ReplicaSets ${current.names.join(', ')} all run pods (a native rollout under way): it goes on natively`);
      return {};
    }
    if (current.kind === 'none') {
      // Nothing runs (scaled to 0, or the first ReplicaSet not created yet): nothing to update in place.
      if (owned.length === 0 && (d.spec.replicas ?? 1) > 0) return { requeueAfterMs: WAIT_MS };
      await this.release(d);
      this.finished(d, 'Deployment', state, 0);
      return {};
    }
    const rs = owned.find((r) => r.metadata.uid === current.rs.uid);
    if (!rs) return { requeueAfterMs: WAIT_MS };
    const pods = this.managedPods(ns, rs.metadata.uid);

    const rsImages = templateImages(rs);
    const window = deploymentWindow(d.spec);
    if (Object.entries(target).some(([n, i]) => rsImages[n] !== i)) {
      // The ReplicaSet's template differs from the target (not begun, or retargeted): unpaused, the
      // native controller would roll every pod to the target, so it may still go native here.
      if (!window.inPlace) {
        await this.fallBack('Deployment', d, window.message);
        return {};
      }
      if (await this.fellBack(key, d, rs)) return {};
      if (await this.prepareHistory(d, rs, 'history')) return { requeueAfterMs: 0 };
      // Pods the ReplicaSet creates from now on (a replacement, a scale-up) start on the new images.
      const containers = rs.spec.template.spec.containers.filter((c) => target[c.name] !== undefined).map((c) => ({ name: c.name, image: target[c.name] }));
      const initContainers = (rs.spec.template.spec.initContainers ?? []).filter((c) => target[c.name] !== undefined).map((c) => ({ name: c.name, image: target[c.name] }));
      this.d.replicaSets.upsert(await this.d.client.patch(`/apis/apps/v1/namespaces/${ns}/replicasets/${rs.metadata.name ?? ''}`,
        { spec: { template: { metadata: { annotations: { [ROLLOUT_IN_PROGRESS]: 'true' } }, spec: { containers, ...(initContainers.length > 0 ? { initContainers } : {}) } } } }, 'strategic', state.fieldManager ?? WATCHER_FIELD_MANAGER));
      this.event(d, 'Deployment', { type: 'Normal', reason: 'InPlaceRolloutStarted', action: 'Rollout', note: `Rolling out ${describe(imageChanges(rs.spec.template.spec, d.spec.template.spec))} in place to ${pods.length} pods, ReplicaSet ${rs.metadata.name ?? ''} kept` });
    }

    // Begun: the ReplicaSet already has the new template, so there is no native way back without a
    // mixed state; a Deployment scaled down mid-rollout below its window goes on one pod at a time.
    const opts = { order: 'name' as const, partition: this.partition(d), timing: this.timing(d, state) };
    const surgeSize = window.inPlace ? (window.surge ?? 0) : 0;
    const surges = [...this.d.replicaSets.store.values()].filter((r) => r.metadata.namespace === ns && isSurgeOf(r, d.metadata.uid));
    const order = this.order(d, key);
    let plan = planRollout(pods.map((p) => rolloutPod(p, order)), target, window.inPlace ? window.maxUnavailable : 1, opts);
    if (surgeSize > 0 && !plan.done) {
      // maxUnavailable 0: surge pods first; each one available lets one pod out for its update.
      if (surges.length === 0) {
        await this.createSurge(d, rs, surgeSize);
        return { requeueAfterMs: WAIT_MS };
      }
      const surgePods = surges.flatMap((r) => this.managedPods(ns, r.metadata.uid)).filter((p) => p.metadata.deletionTimestamp === undefined).map((p) => rolloutPod(p));
      const minReadyMs = (opts.timing.minReadySeconds ?? 0) * 1000;
      const availableSurge = surgePods.filter((p) => p.ready && (p.readySince ?? 0) + minReadyMs <= opts.timing.now).length;
      plan = planRollout(pods.map((p) => rolloutPod(p, order)), target, Math.min(surgeSize, availableSurge), opts);
    }
    // Done only for the pods the ReplicaSet is meant to have: pods it has yet to create are not done.
    const live = pods.filter((p) => p.metadata.deletionTimestamp === undefined).length;
    if (plan.done && live >= (rs.spec.replicas ?? 0) && this.partition(d) === 0) {
      // A ReplicaSet with no pods and the target's template would be the controller's pick on unpause.
      if (await this.prepareHistory(d, rs, 'duplicates-only')) return { requeueAfterMs: 0 };
      // The Deployment's own pods all run the target and are available: the surge pods go.
      await this.removeSurges(d);
      if (rs.spec.template.metadata?.annotations?.[ROLLOUT_IN_PROGRESS] !== undefined) {
        // The ReplicaSet's template becomes the Deployment's again...
        this.d.replicaSets.upsert(await this.d.client.patch(`/apis/apps/v1/namespaces/${ns}/replicasets/${rs.metadata.name ?? ''}`,
          { spec: { template: { metadata: { annotations: { [ROLLOUT_IN_PROGRESS]: null } } } } }, 'strategic', WATCHER_FIELD_MANAGER));
      }
      // ...and one patch releases the Deployment: the controller adopts that ReplicaSet.
      await this.release(d);
      this.finished(d, 'Deployment', state, plan.total);
      return {};
    }
    await this.startPods(d, 'Deployment', pods, plan, target, state, undefined);
    await this.noteStalled(d, 'Deployment', state, plan);
    if (plan.stalled.length === 0 && plan.deadlineExceeded === undefined) await this.reportProgressing(d);
    return { requeueAfterMs: this.nextLook(plan) };
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

  private async statefulSet(key: string, s: Workload, state: RolloutState): Promise<QueueResult> {
    const ns = s.metadata.namespace ?? '';
    const target = templateImages(s);
    // Reconciling first, before the controller observes the hold: with the status webhook down, kstatus
    // would read it Current between (with it, the held observedGeneration says InProgress already).
    if (rolloutPhase(state).kind === 'running' && !((s.status?.conditions ?? []) as WorkloadCondition[]).some((c) => c.type === 'Reconciling' && c.status === 'True') && statefulSetWindow(s.spec).inPlace) await this.reportStatefulSet(s, { kind: 'running' });
    const revision = s.status?.updateRevision;
    // The pods get status.updateRevision's hash: it must name the current template.
    if (!revision || !(await this.controllerObserved(key, s))) return { requeueAfterMs: 500 };
    const pods = this.managedPods(ns, s.metadata.uid);

    const window = statefulSetWindow(s.spec);
    if (!window.inPlace) {
      // OnDelete (say, switched to mid-rollout): left to whoever deletes the pods; pods in flight finish.
      await this.fallBack('StatefulSet', s, window.message);
      return {};
    }
    const maxUnavailable = window.maxUnavailable;
    const partition = Math.max(state.partition ?? 0, this.partition(s));
    const order = this.order(s, key);
    const plan = planRollout(pods.map((p) => rolloutPod(p, order)), target, maxUnavailable, { order: 'ordinal-desc', partition, timing: this.timing(s, state) });
    // Before the first pod is touched, make sure the lifecycle can drive them all.
    if (plan.updated === 0 && plan.start.length > 0 && pods.every((p) => rolloutPod(p).update === undefined) && (await this.fellBack(key, s, s))) return {};
    const step = statefulSetRolloutStep(plan, state.partition ?? 0, this.partition(s));
    // The ordinals below the partition annotation stay on the old images: the StatefulSet stays held
    // (lowering the annotation requeues it and goes on in place), never handed a partition below it.
    if (step.action === 'hold-partition') {
      // Natively "partitioned roll out complete": recorded, so the status webhook stops holding the generation.
      if (state.partitionHeld !== true) await this.writeState(s, 'StatefulSet', { ...state, partitionHeld: true });
      await this.reportStatefulSet(s, { kind: 'partitioned' });
      return {};
    }
    if (step.action === 'finish') {
      const rollingUpdate = (s.spec.updateStrategy?.type ?? 'RollingUpdate') === 'RollingUpdate';
      const released = await this.d.client.patch<Workload>(`/apis/apps/v1/namespaces/${ns}/statefulsets/${s.metadata.name ?? ''}`,
        {
          metadata: { resourceVersion: s.metadata.resourceVersion, annotations: { [ROLLOUT_STATE_ANNOTATION]: null } },
          ...(rollingUpdate ? { spec: { updateStrategy: { rollingUpdate: { partition: step.partition } } } } : {}),
        }, 'strategic', WATCHER_FIELD_MANAGER);
      this.d.statefulSets.upsert(released);
      this.observedTemplates.delete(key);
      await this.reportStatefulSet(s, { kind: 'ended' }, true);
      await this.releaseObservedGeneration(released, s.metadata.generation ?? 0);
      this.finished(s, 'StatefulSet', state, plan.total);
      return {};
    }
    const why = stallReason(s, plan);
    const resumed = why === undefined && (state.stalled !== undefined || state.partitionHeld === true);
    if (resumed) {
      // Going on after a stall or a partition hold (the pod came back, the annotation was lowered): the
      // generation is held again before any pod moves, here at once and by the webhook from then on.
      const { stalled: _stalled, stalledAt: _at, partitionHeld: _held, ...going } = state;
      await this.writeState(s, 'StatefulSet', going);
      await this.reportStatefulSet(s, { kind: 'running' }, false, true);
    }
    await this.startPods(s, 'StatefulSet', pods, plan, target, state, revision);
    await this.noteStalled(s, 'StatefulSet', state, plan);
    if (!resumed) await this.reportStatefulSet(s, why === undefined ? { kind: 'running' } : { kind: 'stalled', why });
    return { requeueAfterMs: this.nextLook(plan) };
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
        : templateObserved(input, full.spec.template, { name: cr.metadata.name ?? '', ownerUid: controllerUid(cr as Workload), data: cr.data });
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
  private async startPods(w: Workload, kind: 'Deployment' | 'StatefulSet', pods: Pod[], plan: RolloutPlan, target: ImageMap, state: RolloutState, revision: string | undefined): Promise<void> {
    const names = plan.start;
    if (names.length === 0) return;
    const now = this.d.clock().toISOString();
    const held: string[] = [];
    const startOne = async (name: string) => {
      const pod = pods.find((p) => p.metadata.name === name);
      if (!pod) return;
      const current = parseUpdateState(pod.metadata.annotations?.[UPDATE_ANNOTATION]);
      const drained = current.ok && (current.state?.phase === 'Updating' || current.state?.phase === 'Stalled' || current.state?.drained === true);
      const images: ImageMap = {};
      const running = rolloutPod(pod).specImages;
      for (const [c, image] of Object.entries(target)) if (c in running && running[c] !== image) images[c] = image;
      // What the webhook records for a client's image request, marked as this rollout's.
      const request: UpdateState = {
        phase: 'Pending',
        images,
        requestedBy: state.requestedBy,
        ...(state.fieldManager ? { fieldManager: state.fieldManager } : {}),
        requestedAt: now,
        rollout: `${kind}/${w.metadata.name ?? ''}`,
        ...(drained ? { drained: true } : {}),
      };
      const wrote = await this.d.startUpdate(pod, request, revision ? { [REVISION_HASH]: revision } : undefined);
      if (wrote === 'request' && !drained) held.push(name);
      this.d.metrics.rolloutPods.inc({ kind });
    };
    // A window freed at once (the first batch, a retarget) is written a few pods at a time, not one
    // after the other; each start is decided (budgets included) before its write goes out.
    await settleAll(names.map((name) => () => startOne(name)), START_CONCURRENCY);
    this.d.log.info({ workload: `${kind}/${w.metadata.namespace ?? ''}/${w.metadata.name ?? ''}`, pods: names, updated: plan.updated, total: plan.total }, 'rollout: pods started');
    // Progress as Events at each tenth of the pods, not for every slot freed: every Event is an API
    // write. They stand for the pods' own Normal Events, which a rollout's pods do not get.
    const tenth = (n: number) => Math.floor((n * 10) / Math.max(1, plan.total));
    if (plan.updated === 0 || tenth(plan.updated + names.length) > tenth(plan.updated)) {
      const waiting = held.length === 0 ? '' : `; not draining yet (a PodDisruptionBudget, see their ${READINESS_GATE} condition): ${held.join(', ')}`;
      this.event(w, kind, { type: 'Normal', reason: 'InPlaceRolloutProgress', action: 'Rollout', note: `${plan.updated} of ${plan.total} pods updated; now updating ${names.join(', ')}${waiting}` });
    }
  }

  /** The workload's update order: priority and scatter annotations. */
  private order(w: Workload, key: string): PodOrder {
    const parsed = parsePriority(w.metadata.annotations?.[PRIORITY_ANNOTATION]);
    if (!parsed.ok) this.d.log.warn({ workload: key, err: parsed.error }, 'update priority ignored');
    return {
      priority: parsed.ok ? parsed.priority : undefined,
      scatterKey: w.metadata.annotations?.[SCATTER_ANNOTATION],
      nodeLabels: (node) => this.d.nodes?.store.get(node)?.metadata.labels,
    };
  }

  /** The workload's availability rules and the clock, for the plan (minReadySeconds, progressDeadlineSeconds). */
  private timing(w: Workload, state: RolloutState): RolloutTiming {
    const minReady = w.spec.minReadySeconds;
    const deadline = w.spec.progressDeadlineSeconds;
    return {
      now: this.d.clock().getTime(),
      ...(typeof minReady === 'number' ? { minReadySeconds: minReady } : {}),
      ...(typeof deadline === 'number' ? { progressDeadlineSeconds: deadline } : {}),
      startedAt: Date.parse(state.startedAt),
    };
  }

  /** When to look again: as a pod becomes available (minReadySeconds) or the progress deadline passes, else on the slow resync. */
  private nextLook(plan: RolloutPlan): number {
    const now = this.d.clock().getTime();
    const at = [plan.nextAvailableAt, plan.deadlineExceeded ? undefined : plan.deadlineAt].filter((t): t is number => t !== undefined);
    const soon = at.length === 0 ? 30_000 : Math.min(...at) - now + 50;
    return Math.max(100, Math.min(30_000, soon));
  }

  /**
   * A stalled pod, or no progress within the progress deadline: the rollout
   * is failed (recorded in its state, which the shipped Argo CD health and
   * `kubectl inplace` read) and a Warning says so, again every REWARN_MS while
   * it stays so: one Warning is easy to miss.
   */
  private async noteStalled(w: Workload, kind: string, state: RolloutState, plan: RolloutPlan): Promise<void> {
    const why = stallReason(w, plan);
    if (why === undefined) return;
    const now = this.d.clock();
    if (state.stalled === why && state.stalledAt !== undefined && now.getTime() - Date.parse(state.stalledAt) < REWARN_MS) return;
    const { partitionHeld: _held, ...rest } = state;
    await this.writeState(w, kind, { ...rest, stalled: why, stalledAt: now.toISOString() });
    const reason = plan.stalled.length > 0 ? 'InPlaceRolloutStalled' : 'ProgressDeadlineExceeded';
    this.event(w, kind, { type: 'Warning', reason, action: 'Rollout', note: `Stopped: ${why}; change the image again (a rollback, say) to go on` });
    if (kind === 'Deployment' && state.stalled === undefined) await this.reportFailed(w, why, now);
    if (state.stalled === undefined) this.d.metrics.rollouts.inc({ kind, result: 'stalled' });
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

/** Why a rollout is stopped, if it is: a stalled pod, or no progress within progressDeadlineSeconds. */
function stallReason(w: Workload, plan: RolloutPlan): string | undefined {
  if (plan.stalled.length > 0) return `${plan.stalled.join(', ')} did not come back (see its events)`;
  if (plan.deadlineExceeded) return `no pod reached the new images for ${String(w.spec.progressDeadlineSeconds)}s (progressDeadlineSeconds; ${String(plan.updated)} of ${String(plan.total)} updated)`;
  return undefined;
}

function describe(images: ImageMap): string {
  return Object.entries(images).map(([n, i]) => `${n}=${i}`).join(', ');
}
