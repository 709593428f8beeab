// Pre-pull: before a pod is drained for new images, pull them on its node
// with a short-lived pod pinned there (no node agent). The pull pod's
// container never needs to run: the kubelet pulls its image, then fails to
// start a command the image does not have. Either way its status says whether
// the image is on the node. Pure: what to pull, the pull pod's manifest, and
// what its status means.

import { createHash } from 'node:crypto';
import { restartsInPlace, type ImageMap } from './containers.ts';
import type { ContainerState, OwnerReference, Pod } from './kube-types.ts';
import { ENABLED_LABEL } from './names.ts';

/** On every pull pod; the watcher's informer selects on it. */
export const PULL_LABEL = 'inplace-gate.dev/pull';
/** The pull pod's owner: the managed pod's uid (the name may be too long for a label). */
export const PULL_FOR_LABEL = 'inplace-gate.dev/pull-for';

/** A command no image has: its failure to start proves the image is on the node. */
export const PULL_COMMAND = ['/.inplace-gate-pulled'];

export interface PrePullConfig {
  /** Pull pods running at once on one node. */
  perNode: number;
  /** The pull pod's activeDeadlineSeconds; the watcher gives up on it a little later. */
  deadlineSeconds: number;
}

/** A pull pod as the watcher keeps it. */
export interface PullPod {
  metadata: {
    name?: string;
    namespace?: string;
    uid?: string;
    resourceVersion?: string;
    creationTimestamp?: string;
    labels?: Record<string, string>;
    ownerReferences?: OwnerReference[];
    deletionTimestamp?: string;
  };
  spec: { nodeName?: string; containers: { name: string; image?: string }[] };
  status?: {
    phase?: string;
    reason?: string;
    message?: string;
    containerStatuses?: { name: string; image: string; imageID?: string; state?: ContainerState }[];
  };
}

/** What the lifecycle knows about pulling for one pod. */
export interface PullContext {
  /** This pod's pull pods (owned by it), any images. */
  pods: readonly PullPod[];
  /** Image names the pod's node lists in node.status.images; absent when unknown. */
  nodeImages?: ReadonlySet<string> | undefined;
  /** Other pods' pull pods on the same node not finished yet, and creates in flight. */
  busyOnNode: number;
  /** The node's Ready condition is True: a node with no working kubelet pulls nothing. */
  nodeReady: boolean;
}

/** Waiting reasons that come after the image is on the node: the container was created (or tried to be) from it. */
const PULLED_WAITING = new Set(['CreateContainerError', 'CreateContainerConfigError', 'RunContainerError', 'StartError', 'PreStartHookError', 'PostStartHookError', 'CrashLoopBackOff']);
/** Waiting reasons that say the image is not on the node and will not be by retrying alone. */
const NOT_PULLED_WAITING = new Set(['ErrImagePull', 'ImagePullBackOff', 'InvalidImageName', 'ErrImageNeverPull', 'RegistryUnavailable', 'SignatureValidationFailed']);

/**
 * The images to pull before draining for `images`: containers that restart in
 * place, whose pull policy may pull (not Never), and whose image the node does
 * not already list. Empty means: no pull, drain at once.
 */
export function imagesToPull(pod: Pod, images: ImageMap, nodeImages: ReadonlySet<string> | undefined): string[] {
  const policy = new Map<string, unknown>();
  for (const c of [...pod.spec.containers, ...(pod.spec.initContainers ?? [])]) policy.set(c.name, c.imagePullPolicy);
  const out = new Set<string>();
  for (const [name, image] of Object.entries(images)) {
    if (!restartsInPlace(pod.spec, name)) continue;
    // Never: the kubelet would not pull it either; the restart finds it or fails as it always did.
    if (policy.get(name) === 'Never') continue;
    if (nodeImages?.has(image) === true) continue;
    out.add(image);
  }
  return [...out].sort();
}

/** The pull pod's name: the pod's, and a hash of the images, so a restarted watcher finds the same one. */
export function pullPodName(podName: string, images: readonly string[]): string {
  const hash = createHash('sha256').update(JSON.stringify(images)).digest('hex').slice(0, 10);
  // Pod names are DNS subdomains (253); the suffix is 16.
  return `${podName.slice(0, 253 - 16).replace(/[.-]+$/, '')}-pull-${hash}`;
}

/**
 * The pull pod: on the pod's node, in its namespace, with its service account
 * and pull secrets (so the same credentials pull), owned by it (garbage
 * collected with it), tiny, and compliant with the restricted Pod Security
 * Standard. It mounts nothing and runs nothing: the pull is what matters.
 */
export function pullPodManifest(pod: Pod, images: readonly string[], config: PrePullConfig): Pod {
  const m = pod.metadata;
  const spec = pod.spec as Pod['spec'] & { nodeName?: string; serviceAccountName?: string; imagePullSecrets?: { name: string }[] };
  const policy = new Map<string, unknown>();
  for (const c of [...pod.spec.containers, ...(pod.spec.initContainers ?? [])]) if (c.image !== undefined) policy.set(c.image, c.imagePullPolicy);
  const resources = { requests: { cpu: '1m', memory: '8Mi' }, limits: { cpu: '10m', memory: '32Mi' } };
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: {
      name: pullPodName(m.name ?? '', images),
      namespace: m.namespace ?? '',
      // Opted out: the webhook leaves it alone, and no Service or controller selects it.
      labels: { [PULL_LABEL]: 'true', [PULL_FOR_LABEL]: m.uid ?? '', [ENABLED_LABEL]: 'false', 'app.kubernetes.io/managed-by': 'inplace-gate' },
      ownerReferences: [{ apiVersion: 'v1', kind: 'Pod', name: m.name ?? '', uid: m.uid ?? '' }],
    },
    spec: {
      nodeName: spec.nodeName,
      restartPolicy: 'Never',
      activeDeadlineSeconds: config.deadlineSeconds,
      terminationGracePeriodSeconds: 0,
      ...(spec.serviceAccountName ? { serviceAccountName: spec.serviceAccountName } : {}),
      automountServiceAccountToken: false,
      enableServiceLinks: false,
      ...(spec.imagePullSecrets ? { imagePullSecrets: spec.imagePullSecrets } : {}),
      // Pinned by nodeName, never scheduled; a taint of the node must not evict it mid-pull.
      tolerations: [{ operator: 'Exists' }],
      securityContext: { runAsNonRoot: true, runAsUser: 65534, runAsGroup: 65534, seccompProfile: { type: 'RuntimeDefault' } },
      containers: images.map((image, i) => ({
        name: `pull-${String(i)}`,
        image,
        // The pod's own policy (Always pulls again even where a stale copy is); IfNotPresent otherwise.
        imagePullPolicy: policy.get(image) === 'Always' ? 'Always' : 'IfNotPresent',
        command: PULL_COMMAND,
        resources,
        securityContext: { allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: { drop: ['ALL'] } },
      })),
    },
  };
}

export type PullVerdict =
  /** `giveUpInMs`: when the watcher stops waiting for an answer. */
  | { kind: 'waiting'; why: string; giveUpInMs: number }
  | { kind: 'pulled' }
  /** The kubelet could not pull: the images would not come after a drain either. */
  | { kind: 'failed'; image: string; reason: string; message: string }
  /** The pull pod ended or timed out without an answer (deadline, eviction, no room): drain without it. */
  | { kind: 'lost'; message: string };

/** How long past its activeDeadlineSeconds the watcher waits for a pull pod's kubelet to end it. */
export const PULL_DEADLINE_SLACK_SECONDS = 30;

/** What the pull pod's status says about its images. */
export function pullVerdict(pull: PullPod, now: Date, config: PrePullConfig): PullVerdict {
  const statuses = new Map((pull.status?.containerStatuses ?? []).map((s) => [s.name, s]));
  const waiting: string[] = [];
  for (const c of pull.spec.containers) {
    const image = c.image ?? '';
    const state = statuses.get(c.name)?.state;
    const reason = state?.waiting?.reason;
    if (reason !== undefined && NOT_PULLED_WAITING.has(reason)) {
      return { kind: 'failed', image, reason, message: state?.waiting?.message ?? reason };
    }
    const pulled = state?.running !== undefined || (state?.terminated !== undefined && state.terminated.reason !== 'ContainerStatusUnknown') || (reason !== undefined && PULLED_WAITING.has(reason));
    if (!pulled) waiting.push(`${image}: ${reason ?? 'no status yet'}`);
  }
  if (waiting.length === 0) return { kind: 'pulled' };
  const phase = pull.status?.phase;
  if (phase === 'Failed' || phase === 'Succeeded') {
    return { kind: 'lost', message: `pull pod ${pull.metadata.name ?? ''} ended (${pull.status?.reason ?? phase}${pull.status?.message ? `: ${pull.status.message}` : ''}) before ${waiting.join('; ')}` };
  }
  // A node with no kubelet never enforces activeDeadlineSeconds: the watcher does, a little later.
  const created = Date.parse(pull.metadata.creationTimestamp ?? '');
  const giveUpAt = (Number.isNaN(created) ? now.getTime() : created) + (config.deadlineSeconds + PULL_DEADLINE_SLACK_SECONDS) * 1000;
  if (now.getTime() >= giveUpAt) {
    return { kind: 'lost', message: `pull pod ${pull.metadata.name ?? ''} gave no answer in ${config.deadlineSeconds}s (${waiting.join('; ')})` };
  }
  return { kind: 'waiting', why: `pulling on the node: ${waiting.join('; ')}`, giveUpInMs: giveUpAt - now.getTime() };
}

/** A pull pod is done with its node once the kubelet ended it or it is being deleted. */
export function pullPodActive(pull: PullPod): boolean {
  return pull.metadata.deletionTimestamp === undefined && pull.status?.phase !== 'Failed' && pull.status?.phase !== 'Succeeded';
}

/** The pull pods of a pod that no step wants: every one but `wanted`. */
export function stalePullPods(pulls: readonly PullPod[], wanted: string | undefined): string[] {
  return pulls.filter((p) => p.metadata.name !== wanted && p.metadata.deletionTimestamp === undefined).map((p) => p.metadata.name ?? '');
}
