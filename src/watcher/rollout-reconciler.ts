// The rollout controller: moves the pods of a held Deployment or StatefulSet
// through the pod lifecycle, a sliding window of maxUnavailable at a time,
// then lets the native controller take over again. Everything follows from
// the workload's rollout-state annotation, its ReplicaSet or revision, and
// the pods' own lifecycle states, so a restarted watcher resumes the rollout.

import { imageChanges, specImages, type ImageMap } from '../core/containers.ts';
import type { Pod } from '../core/kube-types.ts';
import { WATCHER_FIELD_MANAGER, type PodEvent } from '../core/lifecycle.ts';
import { MANAGED_LABEL, PARTITION_ANNOTATION, READINESS_GATE, ROLLOUT_IN_PROGRESS, ROLLOUT_STATE_ANNOTATION, UPDATE_ANNOTATION } from '../core/names.ts';
import { encodeRolloutState, parseRolloutState, type RolloutState } from '../core/rollout-state.ts';
import { deploymentWindow, planRollout, restoredPartition, rolloutPod, statefulSetRolloutStep, statefulSetWindow, type RolloutPlan } from '../core/rollout.ts';
import { encodeUpdateState, parseUpdateState, type UpdateState } from '../core/state.ts';
import type { Workload } from '../core/workload-types.ts';
import type { KubeClient } from '../kube/client.ts';
import type { Logger } from '../log.ts';
import type { EventRecorder } from './events.ts';
import type { Informer } from './informer.ts';
import type { WatcherMetrics } from './metrics.ts';
import type { QueueResult } from './queue.ts';

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
}

const REVISION = 'deployment.kubernetes.io/revision';
const REVISION_HASH = 'controller-revision-hash';
const TEMPLATE_HASH = 'pod-template-hash';
const HISTORY_SUFFIX = 'inplace-previous';
const WAIT_MS = 2000;

export const rolloutKey = (kind: 'Deployment' | 'StatefulSet', ns: string, name: string) => `${kind}/${ns}/${name}`;

function templateImages(w: Workload): ImageMap {
  return specImages(w.spec.template.spec);
}

function ownedBy(pod: Pod, uid: string | undefined): boolean {
  return uid !== undefined && (pod.metadata.ownerReferences?.some((o) => o.uid === uid && o.controller === true) ?? false);
}

export class RolloutReconciler {
  private readonly d: RolloutDeps;

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
      const dep = rs?.metadata.ownerReferences?.find((o) => o.kind === 'Deployment' && o.controller === true);
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
    if (!parsed.state) return {};
    return kind === 'Deployment' ? this.deployment(key, workload, parsed.state) : this.statefulSet(key, workload, parsed.state);
  }

  private managedPods(ns: string, ownerUid: string | undefined): Pod[] {
    const out: Pod[] = [];
    for (const pod of this.d.pods.store.values()) if (pod.metadata.namespace === ns && ownedBy(pod, ownerUid)) out.push(pod);
    return out;
  }

  private partition(w: Workload): number {
    const raw = w.metadata.annotations?.[PARTITION_ANNOTATION];
    return raw !== undefined && /^\d+$/.test(raw) ? Number(raw) : 0;
  }

  private async deployment(key: string, d: Workload, state: RolloutState): Promise<QueueResult> {
    const ns = d.metadata.namespace ?? '';
    const target = templateImages(d);
    // The current ReplicaSet: the Deployment's, with the highest revision.
    let rs: Workload | undefined;
    for (const r of this.d.replicaSets.store.values()) {
      if (r.metadata.namespace !== ns || !r.metadata.ownerReferences?.some((o) => o.uid === d.metadata.uid)) continue;
      if (r.metadata.name === `${d.metadata.name ?? ''}-${HISTORY_SUFFIX}`) continue;
      if (!rs || Number(r.metadata.annotations?.[REVISION] ?? 0) > Number(rs.metadata.annotations?.[REVISION] ?? 0)) rs = r;
    }
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
      await this.keepHistory(d, rs);
      // Pods the ReplicaSet creates from now on (a replacement, a scale-up) start on the new images.
      const containers = rs.spec.template.spec.containers.filter((c) => target[c.name] !== undefined).map((c) => ({ name: c.name, image: target[c.name] }));
      const initContainers = (rs.spec.template.spec.initContainers ?? []).filter((c) => target[c.name] !== undefined).map((c) => ({ name: c.name, image: target[c.name] }));
      this.d.replicaSets.upsert(await this.d.client.patch(`/apis/apps/v1/namespaces/${ns}/replicasets/${rs.metadata.name ?? ''}`,
        { spec: { template: { metadata: { annotations: { [ROLLOUT_IN_PROGRESS]: 'true' } }, spec: { containers, ...(initContainers.length > 0 ? { initContainers } : {}) } } } }, 'strategic', state.fieldManager ?? WATCHER_FIELD_MANAGER));
      this.event(d, 'Deployment', { type: 'Normal', reason: 'InPlaceRolloutStarted', action: 'Rollout', note: `Rolling out ${describe(imageChanges(rs.spec.template.spec, d.spec.template.spec))} in place to ${pods.length} pods, ReplicaSet ${rs.metadata.name ?? ''} kept` });
    }

    // Begun: the ReplicaSet already has the new template, so there is no native way back without a
    // mixed state; a Deployment scaled down mid-rollout below its window goes on one pod at a time.
    const maxUnavailable = window.inPlace ? window.maxUnavailable : 1;
    const plan = planRollout(pods.map(rolloutPod), target, maxUnavailable, { order: 'name', partition: this.partition(d) });
    if (plan.done && this.partition(d) === 0) {
      if (rs.spec.template.metadata?.annotations?.[ROLLOUT_IN_PROGRESS] !== undefined) {
        // The ReplicaSet's template becomes the Deployment's again...
        this.d.replicaSets.upsert(await this.d.client.patch(`/apis/apps/v1/namespaces/${ns}/replicasets/${rs.metadata.name ?? ''}`,
          { spec: { template: { metadata: { annotations: { [ROLLOUT_IN_PROGRESS]: null } } } } }, 'strategic', WATCHER_FIELD_MANAGER));
      }
      // ...and one patch releases the Deployment: the controller adopts that ReplicaSet.
      this.d.deployments.upsert(await this.d.client.patch(`/apis/apps/v1/namespaces/${ns}/deployments/${d.metadata.name ?? ''}`,
        { metadata: { resourceVersion: d.metadata.resourceVersion, annotations: { [ROLLOUT_STATE_ANNOTATION]: null } }, spec: { paused: false } }, 'strategic', WATCHER_FIELD_MANAGER));
      this.finished(d, 'Deployment', state, plan.total);
      return {};
    }
    await this.startPods(d, 'Deployment', pods, plan, target, state, undefined);
    await this.noteStalled(d, 'Deployment', state, plan.stalled);
    return { requeueAfterMs: plan.done ? undefined : 30_000 };
  }

  /**
   * `kubectl rollout undo` needs the previous template in a ReplicaSet of a
   * lower revision, as a native rollout leaves it. Before the current
   * ReplicaSet's template changes, its template and revision are kept in a
   * ReplicaSet with no replicas (its own pod-template-hash, so it selects no
   * pod); at the end the Deployment controller gives the kept ReplicaSet the
   * next revision, as it would a new one.
   */
  private async keepHistory(d: Workload, rs: Workload): Promise<void> {
    const ns = d.metadata.namespace ?? '';
    const raw = await this.d.client.get<Workload>(`/apis/apps/v1/namespaces/${ns}/replicasets/${rs.metadata.name ?? ''}`);
    const name = `${d.metadata.name ?? ''}-${HISTORY_SUFFIX}`;
    const labels = { ...raw.spec.template.metadata?.labels, [TEMPLATE_HASH]: HISTORY_SUFFIX };
    const { [ROLLOUT_IN_PROGRESS]: _mark, ...templateAnnotations } = raw.spec.template.metadata?.annotations ?? {};
    const selector = raw.spec.selector as { matchLabels?: Record<string, string>; matchExpressions?: unknown[] } | undefined;
    const body = {
      apiVersion: 'apps/v1',
      kind: 'ReplicaSet',
      metadata: {
        name,
        namespace: ns,
        labels,
        annotations: { [REVISION]: raw.metadata.annotations?.[REVISION] ?? '1', 'inplace-gate.dev/history-of': rs.metadata.name ?? '' },
        ownerReferences: [{ apiVersion: 'apps/v1', kind: 'Deployment', name: d.metadata.name ?? '', uid: d.metadata.uid ?? '', controller: true, blockOwnerDeletion: true }],
      },
      spec: {
        replicas: 0,
        selector: { ...selector, matchLabels: { ...selector?.matchLabels, [TEMPLATE_HASH]: HISTORY_SUFFIX } },
        template: { ...raw.spec.template, metadata: { ...raw.spec.template.metadata, labels, annotations: templateAnnotations } },
      },
    };
    // Server-side apply: create or replace the kept ReplicaSet in one idempotent write.
    this.d.replicaSets.upsert(await this.d.client.patch(`/apis/apps/v1/namespaces/${ns}/replicasets/${name}?force=true`, body, 'apply', WATCHER_FIELD_MANAGER));
  }

  private async statefulSet(key: string, s: Workload, state: RolloutState): Promise<QueueResult> {
    const ns = s.metadata.namespace ?? '';
    const target = templateImages(s);
    const revision = s.status?.updateRevision;
    if (!revision || (s.status?.observedGeneration ?? 0) < (s.metadata.generation ?? 0)) return { requeueAfterMs: 500 };
    const pods = this.managedPods(ns, s.metadata.uid);

    const window = statefulSetWindow(s.spec);
    if (!window.inPlace) {
      // OnDelete (say, switched to mid-rollout): left to whoever deletes the pods; pods in flight finish.
      await this.fallBack('StatefulSet', s, window.message);
      return {};
    }
    const maxUnavailable = window.maxUnavailable;
    const partition = Math.max(state.partition ?? 0, this.partition(s));
    const plan = planRollout(pods.map(rolloutPod), target, maxUnavailable, { order: 'ordinal-desc', partition });
    // Before the first pod is touched, make sure the lifecycle can drive them all.
    if (plan.updated === 0 && plan.start.length > 0 && pods.every((p) => rolloutPod(p).update === undefined) && (await this.fellBack(key, s, s))) return {};
    const step = statefulSetRolloutStep(plan, state.partition ?? 0, this.partition(s));
    // The ordinals below the partition annotation stay on the old images: the StatefulSet stays held
    // (lowering the annotation requeues it and goes on in place), never handed a partition below it.
    if (step.action === 'hold-partition') return {};
    if (step.action === 'finish') {
      const rollingUpdate = (s.spec.updateStrategy?.type ?? 'RollingUpdate') === 'RollingUpdate';
      this.d.statefulSets.upsert(await this.d.client.patch(`/apis/apps/v1/namespaces/${ns}/statefulsets/${s.metadata.name ?? ''}`,
        {
          metadata: { resourceVersion: s.metadata.resourceVersion, annotations: { [ROLLOUT_STATE_ANNOTATION]: null } },
          ...(rollingUpdate ? { spec: { updateStrategy: { rollingUpdate: { partition: step.partition } } } } : {}),
        }, 'strategic', WATCHER_FIELD_MANAGER));
      this.finished(s, 'StatefulSet', state, plan.total);
      return {};
    }
    await this.startPods(s, 'StatefulSet', pods, plan, target, state, revision);
    await this.noteStalled(s, 'StatefulSet', state, plan.stalled);
    return { requeueAfterMs: 30_000 };
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
    const state = parseRolloutState(w.metadata.annotations?.[ROLLOUT_STATE_ANNOTATION]);
    const userPartition = state.ok ? state.state?.partition : undefined;
    const rollingUpdate = (w.spec.updateStrategy?.type ?? 'RollingUpdate') === 'RollingUpdate';
    const spec = kind === 'Deployment'
      ? { paused: false }
      : userPartition === undefined || !rollingUpdate ? undefined : { updateStrategy: { rollingUpdate: { partition: restoredPartition(userPartition, this.partition(w)) } } };
    await this.d.client.patch(`/apis/apps/v1/namespaces/${ns}/${kind === 'Deployment' ? 'deployments' : 'statefulsets'}/${w.metadata.name ?? ''}`,
      { metadata: { resourceVersion: w.metadata.resourceVersion, annotations: { [ROLLOUT_STATE_ANNOTATION]: null } }, ...(spec ? { spec } : {}) }, 'strategic', WATCHER_FIELD_MANAGER);
    this.event(w, kind, { type: 'Warning', reason: 'InPlaceRolloutFallback', action: 'Rollout', note });
    this.d.metrics.rollouts.inc({ kind, result: 'fallback' });
  }

  private async startPods(w: Workload, kind: string, pods: Pod[], plan: RolloutPlan, target: ImageMap, state: RolloutState, revision: string | undefined): Promise<void> {
    const names = plan.start;
    if (names.length === 0) return;
    const now = this.d.clock().toISOString();
    for (const name of names) {
      const pod = pods.find((p) => p.metadata.name === name);
      if (!pod) continue;
      const current = parseUpdateState(pod.metadata.annotations?.[UPDATE_ANNOTATION]);
      const drained = current.ok && (current.state?.phase === 'Updating' || current.state?.phase === 'Stalled' || current.state?.drained === true);
      const images: ImageMap = {};
      for (const [c, image] of Object.entries(target)) if (c in specImages(pod.spec) && specImages(pod.spec)[c] !== image) images[c] = image;
      // What the webhook records for a client's image request, written by the watcher itself.
      const pending: UpdateState = {
        phase: 'Pending',
        images,
        requestedBy: state.requestedBy,
        ...(state.fieldManager ? { fieldManager: state.fieldManager } : {}),
        requestedAt: now,
        ...(drained ? { drained: true } : {}),
      };
      const body = {
        metadata: {
          resourceVersion: pod.metadata.resourceVersion,
          annotations: { [UPDATE_ANNOTATION]: encodeUpdateState(pending) },
          ...(revision ? { labels: { [REVISION_HASH]: revision } } : {}),
        },
      };
      this.d.pods.upsert(await this.d.client.patch(`/api/v1/namespaces/${pod.metadata.namespace ?? ''}/pods/${name}`, body, 'strategic', WATCHER_FIELD_MANAGER));
      this.d.metrics.rolloutPods.inc({ kind });
    }
    this.d.log.info({ workload: `${kind}/${w.metadata.namespace ?? ''}/${w.metadata.name ?? ''}`, pods: names, updated: plan.updated, total: plan.total }, 'rollout: pods started');
    // Progress as Events at each tenth of the pods, not for every slot freed: every Event is an API write.
    const tenth = (n: number) => Math.floor((n * 10) / Math.max(1, plan.total));
    if (plan.updated === 0 || tenth(plan.updated + names.length) > tenth(plan.updated)) {
      this.event(w, kind, { type: 'Normal', reason: 'InPlaceRolloutProgress', action: 'Rollout', note: `${plan.updated} of ${plan.total} pods updated; now updating ${names.join(', ')}` });
    }
  }

  private async noteStalled(w: Workload, kind: string, state: RolloutState, stalled: string[]): Promise<void> {
    if (stalled.length === 0 || state.stalled !== undefined) return;
    const ns = w.metadata.namespace ?? '';
    const next: RolloutState = { ...state, stalled: stalled.join(', ') };
    await this.d.client.patch(`/apis/apps/v1/namespaces/${ns}/${kind === 'Deployment' ? 'deployments' : 'statefulsets'}/${w.metadata.name ?? ''}`,
      { metadata: { annotations: { [ROLLOUT_STATE_ANNOTATION]: encodeRolloutState(next) } } }, 'merge', WATCHER_FIELD_MANAGER);
    this.event(w, kind, { type: 'Warning', reason: 'InPlaceRolloutStalled', action: 'Rollout', note: `Stopped: ${next.stalled ?? ''} did not come back (see its events); change the image again (a rollback, say) to go on` });
    this.d.metrics.rollouts.inc({ kind, result: 'stalled' });
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

function describe(images: ImageMap): string {
  return Object.entries(images).map(([n, i]) => `${n}=${i}`).join(', ');
}
