// Done means proven: a changed container is done when its status shows a new
// container (another containerID than the one recorded before the write) that
// runs, is ready, and was started from the new spec.
//
// The kubelet publishes the new observedGeneration before it acts, still with
// the old container statuses; so observedGeneration is necessary where the
// cluster reports it (Kubernetes 1.34+), never sufficient. The container itself
// must show the new spec: a changed imageID, the spec's digest in the imageID,
// the status image naming the requested image, or, once observedGeneration has
// caught up, a start at or after the image write (a new tag on the same image
// ID, whose status may name the old tag). A failure counts only with the same kind of evidence: an old container
// crash-looping or backing off on its old image is no failed new one.

import { imageDigest, normalizeImageReference, parseImageReference, sameImageReference } from './images.ts';
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

/** The image could not be had: the kubelet's message names the image it tried. */
const PULL_REASONS: readonly string[] = ['ErrImagePull', 'ImagePullBackOff', 'InvalidImageName', 'ErrImageNeverPull'];
/** No container was created: nothing started, so only the old container's stop shows the kubelet acted. */
const CREATE_REASONS: readonly string[] = ['CreateContainerConfigError', 'CreateContainerError'];

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
  /** When the requested images were written (RFC 3339), when known. */
  writtenAt: string | undefined;
}

export function containerProgress(proof: ProofInput): ContainerProgress {
  const { name, requested, before, status } = proof;
  if (status === undefined) return { state: 'waiting', why: `no status for container ${name} yet` };
  const restarted =
    before === undefined ||
    (status.containerID !== undefined && status.containerID !== '' && status.containerID !== before.containerID) ||
    (before.restartCount !== undefined && status.restartCount > before.restartCount);
  const waiting = status.state?.waiting;
  if (waiting?.reason !== undefined && FAILURE_REASONS.includes(waiting.reason)) {
    const failure = { reason: waiting.reason, message: `container ${name}: ${waiting.reason}${waiting.message ? `: ${waiting.message}` : ''}` };
    if (failsOnNewSpec(waiting.reason, waiting.message, proof, status)) return { state: 'failed', ...failure };
    return { state: 'waiting', why: `container ${name} fails on its old spec (${waiting.reason}); waiting for the kubelet to act on ${requested}` };
  }
  if (!restarted) return { state: 'waiting', why: `container ${name} has not restarted yet` };
  if (status.state?.running === undefined) return { state: 'waiting', why: `container ${name} is not running yet` };
  if (!status.ready) return { state: 'waiting', why: `container ${name} is not ready yet` };
  if (!kubeletSawSpec(proof) || !(showsRequestedImage(requested, before, status) || startedFromSeenSpec(status.state.running.startedAt, proof))) {
    return { state: 'waiting', why: `container ${name} does not show ${requested} yet` };
  }
  return { state: 'done' };
}

/** observedGeneration behind the written generation: whatever runs was started from an older spec. */
function kubeletSawSpec({ generation, podStatus }: ProofInput): boolean {
  return generation === undefined || podStatus?.observedGeneration === undefined || podStatus.observedGeneration >= generation;
}

/** The container's own status names the new image: another imageID, the pinned digest, or the requested reference. */
function showsRequestedImage(requested: string, before: ContainerRecord | undefined, status: ContainerStatus): boolean {
  if (before?.imageID !== undefined && status.imageID !== '' && status.imageID !== before.imageID) return true;
  const digest = imageDigest(requested);
  if (digest !== undefined && imageDigest(status.imageID) === digest) return true;
  // The old container's status names the old image; one that already was the requested one proves nothing.
  if (before !== undefined && sameImageReference(before.image, requested)) return false;
  return sameImageReference(status.image, requested);
}

/**
 * Started at or after the write: from the new spec, since the kubelet starts
 * containers from the spec it has. Status times have whole seconds, so the
 * write time is cut to its second. The node's clock is compared with the
 * watcher's: skew can only turn this evidence down (then the image must show).
 */
function startedAfterWrite(startedAt: string | undefined, writtenAt: string | undefined): boolean {
  if (startedAt === undefined || writtenAt === undefined) return false;
  const started = Date.parse(startedAt);
  const written = Math.floor(Date.parse(writtenAt) / 1000) * 1000;
  return !Number.isNaN(started) && !Number.isNaN(written) && started >= written;
}

/**
 * Started after the write, where the kubelet reports that it has the spec: a
 * new tag on the same image ID shows nothing else. Without observedGeneration a
 * start after the write may still be a crash restart from the old spec.
 */
function startedFromSeenSpec(startedAt: string | undefined, proof: ProofInput): boolean {
  return proof.generation !== undefined && proof.podStatus?.observedGeneration !== undefined && kubeletSawSpec(proof) && startedAfterWrite(startedAt, proof.writtenAt);
}

/**
 * The message names `image`: as written, with the default tag the kubelet adds
 * (`Back-off pulling image "web:latest"`), or fully qualified as containerd and
 * CRI-O name it (`"docker.io/library/web:latest"`, `docker://web:latest`). A
 * longer reference (`web:1.5.0` for `web:1.5`) does not count.
 */
function namesImage(message: string, image: string): boolean {
  const { tag, digest } = parseImageReference(image);
  const forms = new Set([image.trim(), normalizeImageReference(image)]);
  if (tag === undefined && digest === undefined) forms.add(`${image.trim()}:latest`);
  return [...forms].some((form) => {
    for (let at = message.indexOf(form); at >= 0; at = message.indexOf(form, at + 1)) {
      const before = message[at - 1] ?? ' ';
      // Not followed by more of a reference: a path, a digest, or a tag after a colon (`: ` ends it).
      const longer = /^(?:[A-Za-z0-9._\-/@]|:[A-Za-z0-9_])/.test(message.slice(at + form.length));
      if (!/[A-Za-z0-9._-]/.test(before) && !longer) return true;
    }
    return false;
  });
}

function failsOnNewSpec(reason: string, message: string | undefined, proof: ProofInput, status: ContainerStatus): boolean {
  const { requested, before, writtenAt } = proof;
  if (!kubeletSawSpec(proof)) return false;
  if (PULL_REASONS.includes(reason)) {
    // The kubelet's message names the image it tried: which spec failed, whatever status.image says
    // (for a container that never ran, the kubelet fills that in from the newest spec).
    if (message !== undefined && namesImage(message, requested)) return true;
    if (message !== undefined && before !== undefined && namesImage(message, before.image)) return false;
    return showsRequestedImage(requested, before, status);
  }
  if (showsRequestedImage(requested, before, status)) return true;
  const last = status.lastState?.terminated;
  if (CREATE_REASONS.includes(reason)) {
    // The container that ran at the write was stopped after it: the kubelet is replacing it.
    return before?.containerID !== undefined && last?.containerID === before.containerID && startedAfterWrite(last.finishedAt, writtenAt);
  }
  // CrashLoopBackOff, RunContainerError: the container that crashed started after the write.
  return startedAfterWrite(last?.startedAt, writtenAt);
}
