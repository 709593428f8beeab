// UPDATE pods, validating: a managed pod's spec may change only in container
// images. Its lifecycle label and annotation change only through the
// webhook's own transitions and the watcher. Subresources by policy.

import type { AdmissionConfig } from '../config.ts';
import type { Pod } from '../kube-types.ts';
import { ENABLED_LABEL, MANAGED_LABEL, UPDATE_ANNOTATION } from '../names.ts';
import { specImages } from '../containers.ts';
import { hasReadinessGate, isExcludedNamespace, isManaged, matchesIdentity } from '../scope.ts';
import { changedPaths, formatPath, type PathSegment } from '../spec-diff.ts';
import { parseUpdateState, stalledBeforeDrain, stalledInDrain, type UpdateState } from '../state.ts';
import { allow, deny, type Decision } from './decision.ts';
import type { AdmissionRequest } from './request.ts';

const MAX_PATHS_LISTED = 20;

/**
 * What the apiserver's own pod update validation lets change besides images:
 * scheduling gates (removed), tolerations (added, or their tolerationSeconds),
 * activeDeadlineSeconds (set or shortened). None restarts or resizes a
 * container. That validation runs before validating webhooks, so its limits
 * (only additions, only shorter) already hold here. Its last case, a negative
 * terminationGracePeriodSeconds set to 1, only pods older than 1.24 can have.
 */
const MUTABLE_FIELDS: readonly PathSegment[] = ['schedulingGates', 'tolerations', 'activeDeadlineSeconds'];

/** Image fields are what in-place updates change; the rest is what the apiserver allows. */
function isAllowedSpecChange(path: readonly PathSegment[]): boolean {
  const [, list, index, field] = path;
  if ((list === 'containers' || list === 'initContainers') && typeof index === 'number' && field === 'image') {
    return path.length === 4;
  }
  return list !== undefined && MUTABLE_FIELDS.includes(list);
}

/**
 * The spec as compared. A scheduling-gated pod has not been placed, and the
 * apiserver lets its node selector and node affinity be narrowed until it is
 * (Kueue does so in the update that removes its gate): those leave the
 * comparison, so only pod (anti-)affinity is still compared.
 */
function comparable(spec: Pod['spec'], gated: boolean): Record<string, unknown> {
  if (!gated) return spec;
  const { nodeSelector: _ns, affinity, ...rest } = spec;
  const { nodeAffinity: _na, ...others } = (affinity ?? {}) as Record<string, unknown>;
  return Object.keys(others).length === 0 ? rest : { ...rest, affinity: others };
}

export function validatePodUpdate(req: AdmissionRequest<Pod>, pod: Pod, old: Pod, config: AdmissionConfig): Decision {
  if (matchesIdentity(req.userInfo, config.exempt)) return allow('exempt');
  if (isExcludedNamespace(req.namespace, config)) return allow('excluded-namespace');
  const watcher = matchesIdentity(req.userInfo, config.watcher);

  switch (req.subResource ?? '') {
    case '':
      break;
    case 'resize':
      if (!isManaged(old) || config.allowResize || watcher) return allow('resize-allowed');
      return deny(
        'resize-denied',
        `inplace-gate: resizing pod ${name(req)} in place is turned off for pods it manages. ` +
          `Change the resources in the pod's owner (Deployment, StatefulSet) instead, or have the operator start the webhook with --allow-resize.`,
      );
    case 'ephemeralcontainers':
      if (!isManaged(old) || config.allowEphemeralContainers) return allow('ephemeral-allowed');
      return deny(
        'ephemeral-denied',
        `inplace-gate: ephemeral containers (kubectl debug) are turned off for pods it manages. ` +
          `Debug a copy instead (kubectl debug --copy-to), or have the operator start the webhook with --allow-ephemeral-containers.`,
      );
    case 'status':
      return watcher ? allow('watcher') : checkLifecycleKeys(req, pod, old, config);
    default:
      return allow('other-subresource');
  }

  if (!isManaged(old)) return allow('not-managed');

  const gated = (old.spec.schedulingGates as unknown[] | undefined)?.length ?? 0;
  const paths = changedPaths(comparable(old.spec, gated > 0), comparable(pod.spec, gated > 0), ['spec'], isAllowedSpecChange, MAX_PATHS_LISTED + 1);
  if (paths.length > 0) {
    const listed = paths.slice(0, MAX_PATHS_LISTED).map(formatPath);
    const more = paths.length > MAX_PATHS_LISTED ? ' and more' : '';
    return deny(
      'spec-change-denied',
      `inplace-gate: pod ${name(req)} may change only container images in place (besides what Kubernetes allows without ` +
        `a restart: scheduling gates, tolerations, activeDeadlineSeconds, and node selector and affinity while gated), but this update also changes ` +
        `${listed.join(', ')}${more}. Make the change in the pod's owner (Deployment, StatefulSet, Job) so it ` +
        `replaces the pod, or delete and recreate the pod; to change images, change only the image fields.`,
    );
  }
  return watcher ? allow('watcher') : checkLifecycleKeys(req, pod, old, config);
}

/**
 * The managed label and the state annotation belong to inplace-gate. A user's
 * request may change the annotation only as the mutating webhook does
 * (a request recorded under the user's own name, or a cancellation), since
 * that webhook sees, and rewrites, every request that changes images.
 */
function checkLifecycleKeys(req: AdmissionRequest<Pod>, pod: Pod, old: Pod, config: AdmissionConfig): Decision {
  const oldLabel = old.metadata.labels?.[MANAGED_LABEL];
  const newLabel = pod.metadata.labels?.[MANAGED_LABEL];
  if (oldLabel !== newLabel) {
    return deny(
      'lifecycle-label-denied',
      `inplace-gate: the label ${MANAGED_LABEL} on pod ${name(req)} is set by inplace-gate and cannot be changed. ` +
        `To keep new pods out, label them (or their namespace) ${ENABLED_LABEL}="false" in the pod template.`,
    );
  }
  const oldRaw = old.metadata.annotations?.[UPDATE_ANNOTATION];
  const newRaw = pod.metadata.annotations?.[UPDATE_ANNOTATION];
  if (oldRaw === newRaw) return allow('valid');

  const previous = parseUpdateState(oldRaw);
  const next = parseUpdateState(newRaw);
  const user = req.userInfo.username ?? '';
  const webhookTransition =
    req.subResource === undefined && previous.ok && next.ok && isWebhookTransition(previous.state, next.state, pod, old, user, config);
  if (webhookTransition) return allow('valid');
  return deny(
    'lifecycle-annotation-denied',
    `inplace-gate: the annotation ${UPDATE_ANNOTATION} on pod ${name(req)} records an image change in progress and ` +
      `only inplace-gate writes it. To change images, set the container images; to cancel a pending change, ` +
      `set them back to the running ones.`,
  );
}

/**
 * The transitions the mutating webhook itself writes, and nothing else: a
 * cancellation of a request not yet written; a Pending under the user's own
 * name (marked drained only when the pod already is); a Draining that keeps
 * the drain under way exactly (same start and deadline); an immediate
 * Updating only where immediate applies, naming the images the spec now has.
 * Anything else (a Draining with an early deadline, a forged Updating or
 * Stalled) is the watcher's to write.
 */
function isWebhookTransition(
  previous: UpdateState | undefined,
  next: UpdateState | undefined,
  pod: Pod,
  old: Pod,
  user: string,
  config: AdmissionConfig,
): boolean {
  // Stalled in its drain or its pull, the images were never written: it can be cancelled like a Draining.
  const wasWaiting = previous?.phase === 'Pending' || previous?.phase === 'Draining' || stalledInDrain(previous) || stalledBeforeDrain(previous);
  if (next === undefined) return wasWaiting;
  if (next.requestedBy !== user) return false;
  // Only the watcher decides that an update skips the drain.
  if (next.inService !== undefined) return false;
  const alreadyDrained = previous?.phase === 'Updating' || previous?.phase === 'Stalled' || previous?.drained === true;
  switch (next.phase) {
    case 'Pending':
      return (next.drained !== true || alreadyDrained) && next.drainDeadline === undefined && next.drainStartedAt === undefined;
    case 'Draining':
      return (
        previous?.phase === 'Draining' &&
        next.drainDeadline === previous.drainDeadline &&
        next.drainStartedAt === previous.drainStartedAt &&
        (next.drained === true) === (previous.drained === true)
      );
    case 'Updating': {
      const spec = specImages(pod.spec);
      const namesSpec = Object.entries(next.images).every(([container, image]) => spec[container] === image);
      if (next.immediate !== true && wasWaiting && previous.drained === true) {
        // A cancellation of a request made while Updating: back to Updating, same baselines, current generation.
        return namesSpec && JSON.stringify(next.before ?? {}) === JSON.stringify(previous.before ?? {}) && next.generation === old.metadata.generation;
      }
      if (next.immediate !== true || (hasReadinessGate(old) && config.mode !== 'immediate')) return false;
      return namesSpec;
    }
    case 'Stalled':
      return false;
  }
}

function name(req: AdmissionRequest): string {
  return `${req.namespace ?? ''}/${req.name ?? ''}`;
}
