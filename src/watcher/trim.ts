// What the watcher keeps of each object: the fields the decisions read and
// nothing else (no managedFields, env, volumes), so a cluster of many pods
// costs little memory.

import type { LabelSelector } from '../core/disruption.ts';
import { PRIORITY_ANNOTATION, SCATTER_ANNOTATION } from '../core/rollout-order.ts';
import { SERVICE_NAME_LABEL, type EndpointView, type ServiceView, type SliceView } from '../core/endpoints.ts';
import type { Container, ContainerStatus, Pod } from '../core/kube-types.ts';
import type { PullPod } from '../core/pre-pull.ts';
import { GRACE_PERIOD_ANNOTATION, IMAGE_REWRITES_ANNOTATION, READINESS_GATE, PARTITION_ANNOTATION, ROLLOUT_ANNOTATION, ROLLOUT_IN_PROGRESS, ROLLOUT_STATE_ANNOTATION, SERVING_CONTAINERS_ANNOTATION, UPDATE_ANNOTATION } from '../core/names.ts';
import type { Workload } from '../core/workload-types.ts';

export interface NamespaceMeta {
  metadata: { name?: string; resourceVersion?: string; annotations?: Record<string, string> };
}

const KEPT_ANNOTATIONS = [UPDATE_ANNOTATION, GRACE_PERIOD_ANNOTATION, IMAGE_REWRITES_ANNOTATION, SERVING_CONTAINERS_ANNOTATION];

function keepAnnotations(all: Record<string, string> | undefined): Record<string, string> | undefined {
  if (!all) return undefined;
  let out: Record<string, string> | undefined;
  for (const k of KEPT_ANNOTATIONS) if (all[k] !== undefined) (out ??= {})[k] = all[k];
  return out;
}

const container = (c: Container): Container => ({ name: c.name, ...(c.image === undefined ? {} : { image: c.image }), ...(c.restartPolicy ? { restartPolicy: c.restartPolicy } : {}), ...(c.imagePullPolicy ? { imagePullPolicy: c.imagePullPolicy } : {}) });
const status = (s: ContainerStatus): ContainerStatus => ({
  name: s.name,
  image: s.image,
  imageID: s.imageID,
  ...(s.containerID ? { containerID: s.containerID } : {}),
  ready: s.ready,
  restartCount: s.restartCount,
  ...(s.state ? { state: s.state } : {}),
  // The crash or stop before this state: when it started and ended is part of the completion proof.
  ...(s.lastState?.terminated ? { lastState: { terminated: s.lastState.terminated } } : {}),
});

/** The object metadata every trimmed object keeps, with the annotations chosen by the caller. */
function trimMeta(m: Pod['metadata'], annotations: Record<string, string> | undefined) {
  return {
    name: m.name,
    namespace: m.namespace,
    uid: m.uid,
    resourceVersion: m.resourceVersion,
    ...(m.generation === undefined ? {} : { generation: m.generation }),
    ...(annotations ? { annotations } : {}),
    ...(m.ownerReferences ? { ownerReferences: m.ownerReferences } : {}),
  };
}

export function trimPod(raw: unknown): Pod {
  const pod = raw as Pod;
  const { metadata: m, spec, status: st } = pod;
  const annotations = keepAnnotations(m.annotations);
  return {
    metadata: {
      ...trimMeta(m, annotations),
      ...(m.labels ? { labels: m.labels } : {}),
      ...(m.deletionTimestamp ? { deletionTimestamp: m.deletionTimestamp } : {}),
    },
    spec: {
      containers: spec.containers.map(container),
      ...(spec.initContainers ? { initContainers: spec.initContainers.map(container) } : {}),
      ...(spec.readinessGates ? { readinessGates: spec.readinessGates } : {}),
      ...(spec.nodeName ? { nodeName: spec.nodeName } : {}),
      // What a pull pod pulls with: the pod's own credentials.
      ...(spec.serviceAccountName ? { serviceAccountName: spec.serviceAccountName } : {}),
      ...(spec.imagePullSecrets?.length ? { imagePullSecrets: spec.imagePullSecrets.map((s) => ({ name: s.name })) } : {}),
    },
    ...(st
      ? {
          status: {
            ...(st.phase ? { phase: st.phase } : {}),
            ...(st.observedGeneration === undefined ? {} : { observedGeneration: st.observedGeneration }),
            // The gate's message too: the lifecycle compares it before rewriting a waiting condition.
            ...(st.conditions ? { conditions: st.conditions.map(({ type, status: s, reason, message, lastTransitionTime }) => ({ type, status: s, ...(reason ? { reason } : {}), ...(type === READINESS_GATE && message ? { message } : {}), ...(lastTransitionTime ? { lastTransitionTime } : {}) })) } : {}),
            ...(st.containerStatuses ? { containerStatuses: st.containerStatuses.map(status) } : {}),
            ...(st.initContainerStatuses ? { initContainerStatuses: st.initContainerStatuses.map(status) } : {}),
          },
        }
      : {}),
  };
}

export function trimNamespace(raw: unknown): NamespaceMeta {
  const { metadata: m } = raw as NamespaceMeta;
  const annotations = keepAnnotations(m.annotations);
  return { metadata: { name: m.name, resourceVersion: m.resourceVersion, ...(annotations ? { annotations } : {}) } };
}

/** A workload status condition, as far as the rollout reads it. */
export interface WorkloadCondition { type: string; status: string; reason?: string; message?: string }
const REPORTED_CONDITIONS = new Set(['Progressing', 'Reconciling', 'Stalled']);

const WORKLOAD_ANNOTATIONS = [ROLLOUT_STATE_ANNOTATION, ROLLOUT_ANNOTATION, PARTITION_ANNOTATION, PRIORITY_ANNOTATION, SCATTER_ANNOTATION, 'deployment.kubernetes.io/revision'];

/** Deployments, StatefulSets and ReplicaSets: what the rollout controller reads. */
export function trimWorkload(raw: unknown): Workload {
  const w = raw as Workload;
  const m = w.metadata;
  let annotations: Record<string, string> | undefined;
  for (const k of WORKLOAD_ANNOTATIONS) if (m.annotations?.[k] !== undefined) (annotations ??= {})[k] = m.annotations[k];
  const t = w.spec.template;
  return {
    metadata: trimMeta(m, annotations),
    spec: {
      ...(w.spec.replicas === undefined ? {} : { replicas: w.spec.replicas }),
      ...(w.spec.selector ? { selector: w.spec.selector } : {}),
      ...(w.spec.paused === undefined ? {} : { paused: w.spec.paused }),
      // Availability and deadline rules the rollout paces itself by.
      ...(typeof w.spec.minReadySeconds === 'number' ? { minReadySeconds: w.spec.minReadySeconds } : {}),
      ...(typeof w.spec.progressDeadlineSeconds === 'number' ? { progressDeadlineSeconds: w.spec.progressDeadlineSeconds } : {}),
      ...(w.spec.strategy ? { strategy: w.spec.strategy } : {}),
      ...(w.spec.updateStrategy ? { updateStrategy: w.spec.updateStrategy } : {}),
      template: {
        ...(t.metadata?.annotations?.[ROLLOUT_IN_PROGRESS] === undefined ? {} : { metadata: { annotations: { [ROLLOUT_IN_PROGRESS]: t.metadata.annotations[ROLLOUT_IN_PROGRESS] } } }),
        spec: {
          containers: t.spec.containers.map(container),
          ...(t.spec.initContainers ? { initContainers: t.spec.initContainers.map(container) } : {}),
        },
      },
    },
    ...(w.status
      ? {
          status: {
            ...(w.status.replicas === undefined ? {} : { replicas: w.status.replicas }),
            ...(w.status.observedGeneration === undefined ? {} : { observedGeneration: w.status.observedGeneration }),
            ...(w.status.updateRevision ? { updateRevision: w.status.updateRevision } : {}),
            ...(w.status.currentRevision ? { currentRevision: w.status.currentRevision } : {}),
            // The conditions the rollout itself reports through (failed, reconciling, stalled), so it writes each once.
            ...(Array.isArray(w.status.conditions) ? { conditions: (w.status.conditions as WorkloadCondition[]).filter((c) => REPORTED_CONDITIONS.has(c.type)).map(({ type, status: st, reason, message }) => ({ type, status: st, ...(reason ? { reason } : {}), ...(message ? { message } : {}) })) } : {}),
          },
        }
      : {}),
  };
}

/** A PodDisruptionBudget as the drain reads it: its selector and how many disruptions it allows now. */
export interface BudgetMeta {
  metadata: { name?: string | undefined; namespace?: string | undefined; resourceVersion?: string | undefined };
  selector?: LabelSelector | undefined;
  disruptionsAllowed: number;
}

export function trimBudget(raw: unknown): BudgetMeta {
  const b = raw as { metadata: BudgetMeta['metadata']; spec?: { selector?: LabelSelector }; status?: { disruptionsAllowed?: number } };
  return {
    metadata: { name: b.metadata.name, namespace: b.metadata.namespace, resourceVersion: b.metadata.resourceVersion },
    ...(b.spec?.selector ? { selector: b.spec.selector } : {}),
    // A budget its controller has not computed yet allows nothing (the eviction API treats it so too).
    disruptionsAllowed: b.status?.disruptionsAllowed ?? 0,
  };
}

/** A node as scatter and pre-pull read it: its name, labels (zone, hostname) and the image names it has. */
export interface NodeMeta {
  metadata: { name?: string | undefined; resourceVersion?: string | undefined; labels?: Record<string, string> | undefined };
  /** node.status.images' names (tags and digests), when the kubelet reports any. */
  images?: ReadonlySet<string>;
  /** Its Ready condition is True. */
  ready?: boolean;
}

export function trimNode(raw: unknown): NodeMeta {
  const { metadata: m, status } = raw as NodeMeta & { status?: { images?: { names?: string[] | null }[] | null; conditions?: { type: string; status: string }[] | null } };
  const images = new Set<string>();
  for (const i of status?.images ?? []) for (const n of i.names ?? []) images.add(n);
  const ready = status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') === true;
  return { metadata: { name: m.name, resourceVersion: m.resourceVersion, ...(m.labels ? { labels: m.labels } : {}) }, ...(images.size > 0 ? { images } : {}), ...(ready ? { ready } : {}) };
}

/** A pull pod (core/pre-pull.ts): who it is for, where, its images, and what the kubelet says. */
export function trimPullPod(raw: unknown): PullPod {
  const { metadata: m, spec, status: st } = raw as PullPod;
  return {
    metadata: {
      name: m.name,
      namespace: m.namespace,
      uid: m.uid,
      resourceVersion: m.resourceVersion,
      ...(m.creationTimestamp ? { creationTimestamp: m.creationTimestamp } : {}),
      ...(m.labels ? { labels: m.labels } : {}),
      ...(m.ownerReferences ? { ownerReferences: m.ownerReferences } : {}),
      ...(m.deletionTimestamp ? { deletionTimestamp: m.deletionTimestamp } : {}),
    },
    spec: { ...(spec.nodeName ? { nodeName: spec.nodeName } : {}), containers: spec.containers.map((c) => ({ name: c.name, ...(c.image === undefined ? {} : { image: c.image }) })) },
    ...(st
      ? {
          status: {
            ...(st.phase ? { phase: st.phase } : {}),
            ...(st.reason ? { reason: st.reason } : {}),
            ...(st.message ? { message: st.message } : {}),
            ...(st.containerStatuses ? { containerStatuses: st.containerStatuses.map((s) => ({ name: s.name, image: s.image, ...(s.state ? { state: s.state } : {}) })) } : {}),
          },
        }
      : {}),
  };
}

interface RawSlice {
  metadata: { name?: string; namespace?: string; resourceVersion?: string; labels?: Record<string, string> };
  endpoints?: { conditions?: { ready?: boolean; serving?: boolean; terminating?: boolean }; targetRef?: { kind?: string; name?: string; namespace?: string; uid?: string } }[] | null;
}

/**
 * EndpointSlices (all of them: a Service may select any pod): the Service and,
 * per endpoint that targets a Pod, who it is and its conditions. No addresses,
 * ports, zones or hints.
 */
export function trimEndpointSlice(raw: unknown): SliceView {
  const { metadata: m, endpoints } = raw as RawSlice;
  const service = m.labels?.[SERVICE_NAME_LABEL];
  const out: EndpointView[] = [];
  for (const e of endpoints ?? []) {
    const ref = e.targetRef;
    if (ref?.kind !== 'Pod') continue;
    const c = e.conditions ?? {};
    out.push({
      pod: { ...(ref.uid ? { uid: ref.uid } : {}), ...(ref.name ? { name: ref.name } : {}), ...(ref.namespace && ref.namespace !== m.namespace ? { namespace: ref.namespace } : {}) },
      ...(c.ready === undefined ? {} : { ready: c.ready }),
      ...(c.serving === undefined ? {} : { serving: c.serving }),
      ...(c.terminating === undefined ? {} : { terminating: c.terminating }),
    });
  }
  return { metadata: { name: m.name, namespace: m.namespace, resourceVersion: m.resourceVersion }, ...(service ? { service } : {}), endpoints: out };
}

/** Services: only whether their endpoints follow readiness. */
export function trimService(raw: unknown): ServiceView {
  const { metadata: m, spec } = raw as { metadata: ServiceView['metadata']; spec?: { publishNotReadyAddresses?: boolean } };
  return { metadata: { name: m.name, namespace: m.namespace, resourceVersion: m.resourceVersion }, ...(spec?.publishNotReadyAddresses ? { publishNotReadyAddresses: true } : {}) };
}
