// Done means proven: a changed container is done when its status shows a new
// container (another containerID than the one recorded before the write) that
// runs, is ready, and was started from the new spec. The new spec is proven by
// the pod's observedGeneration where the cluster reports it (Kubernetes 1.34+),
// else by a changed imageID, the spec's digest in the imageID, or the status
// image naming the requested image (a new tag on the same image ID).

import { imageDigest, sameImageReference } from './images.ts';
import type { ContainerStatus, PodStatus } from './kube-types.ts';
import type { ContainerRecord } from './state.ts';

/** Waiting reasons that will not clear up on their own. */
export const FAILURE_REASONS: readonly string[] = [
  'ErrImagePull',
  'ImagePullBackOff',
  'InvalidImageName',
  'ErrImageNeverPull',
  'CrashLoopBackOff',
  'CreateContainerConfigError',
  'CreateContainerError',
  'RunContainerError',
];

export type ContainerProgress =
  | { state: 'done' }
  | { state: 'waiting'; why: string }
  | { state: 'failed'; reason: string; message: string };

export interface ProofInput {
  name: string;
  requested: string;
  before: ContainerRecord | undefined;
  status: ContainerStatus | undefined;
  podStatus: PodStatus | undefined;
  /** The pod generation that carries the requested images, when known. */
  generation: number | undefined;
}

export function containerProgress({ name, requested, before, status, podStatus, generation }: ProofInput): ContainerProgress {
  if (status === undefined) return { state: 'waiting', why: `no status for container ${name} yet` };
  const restarted =
    before === undefined ||
    (status.containerID !== undefined && status.containerID !== '' && status.containerID !== before.containerID) ||
    (before.restartCount !== undefined && status.restartCount > before.restartCount);
  const waiting = status.state?.waiting;
  // A failure counts only once the kubelet has acted on the new spec: the old
  // container crash-looping (the bug the new image fixes) is no reason to stall.
  const acted =
    restarted ||
    (generation !== undefined && podStatus?.observedGeneration !== undefined && podStatus.observedGeneration >= generation) ||
    sameImageReference(status.image, requested);
  if (acted && waiting?.reason !== undefined && FAILURE_REASONS.includes(waiting.reason)) {
    return { state: 'failed', reason: waiting.reason, message: `container ${name}: ${waiting.reason}${waiting.message ? `: ${waiting.message}` : ''}` };
  }
  if (!restarted) return { state: 'waiting', why: `container ${name} has not restarted yet` };
  if (status.state?.running === undefined) return { state: 'waiting', why: `container ${name} is not running yet` };
  if (!status.ready) return { state: 'waiting', why: `container ${name} is not ready yet` };
  if (!runsRequestedImage(requested, before, status, podStatus, generation)) {
    return { state: 'waiting', why: `container ${name} does not show ${requested} yet` };
  }
  return { state: 'done' };
}

function runsRequestedImage(
  requested: string,
  before: ContainerRecord | undefined,
  status: ContainerStatus,
  podStatus: PodStatus | undefined,
  generation: number | undefined,
): boolean {
  // The kubelet has acted on the spec that carries the images: the strongest proof.
  if (generation !== undefined && podStatus?.observedGeneration !== undefined) return podStatus.observedGeneration >= generation;
  if (before?.imageID !== undefined && status.imageID !== '' && status.imageID !== before.imageID) return true;
  const digest = imageDigest(requested);
  if (digest !== undefined && imageDigest(status.imageID) === digest) return true;
  return sameImageReference(status.image, requested);
}
