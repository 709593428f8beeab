// UPDATE pods, mutating: an image change of a managed pod never reaches the
// kubelet straight away. The webhook keeps the running images in the spec and
// records the request as Pending; the watcher drains the pod, then writes the
// images. Pods without the gate, and immediate mode, get the images at once.

import type { AdmissionConfig } from '../config.ts';
import { imageChanges, isEmpty, restartsInPlace, specImages, withImages, type ImageMap } from '../containers.ts';
import type { Pod } from '../kube-types.ts';
import { READINESS_GATE, UPDATE_ANNOTATION } from '../names.ts';
import { hasReadinessGate, isExcludedNamespace, isManaged, matchesIdentity } from '../scope.ts';
import { changedPaths, formatPath, type PathSegment } from '../spec-diff.ts';

const LAST_APPLIED = 'kubectl.kubernetes.io/last-applied-configuration';
import { currentRecords, encodeUpdateState, parseUpdateState, type ContainerRecord, type UpdateState } from '../state.ts';
import { allow, patch, type Decision } from './decision.ts';
import type { AdmissionRequest } from './request.ts';

export function admitPodUpdate(
  req: AdmissionRequest<Pod>,
  pod: Pod,
  old: Pod,
  config: AdmissionConfig,
  now: Date,
): Decision {
  if (matchesIdentity(req.userInfo, config.watcher)) return allow('watcher');
  if (matchesIdentity(req.userInfo, config.exempt)) return allow('exempt');
  if (!isManaged(old) || isExcludedNamespace(req.namespace, config)) return allow('not-managed');

  const parsed = parseUpdateState(old.metadata.annotations?.[UPDATE_ANNOTATION]);
  const current = parsed.ok ? parsed.state : undefined;
  const warnings = parsed.ok ? [] : [`inplace-gate: the stored ${UPDATE_ANNOTATION} was unreadable (${parsed.error}) and is replaced`];
  // Compared with the stored spec: while Pending or Draining that is what runs.
  const allChanges = imageChanges(old.spec, pod.spec);
  // Ordinary init containers never rerun on a running pod: their images go
  // through as sent, with no drain and no lifecycle state of their own.
  const changes: ImageMap = {};
  for (const [name, image] of Object.entries(allChanges)) if (restartsInPlace(old.spec, name)) changes[name] = image;
  if (isEmpty(changes) && !isEmpty(allChanges)) {
    return allow('init-containers-only', warnings, `${describe(allChanges)}: ordinary init containers do not rerun, nothing to drain`);
  }

  if (isEmpty(changes)) {
    // Re-asserting the object as stored (a GitOps sync of the running images)
    // is a change back to the running images: it cancels a request not yet
    // written. Any other write (labels from a controller) leaves it alone.
    if (current?.phase === 'Pending' || current?.phase === 'Draining') {
      const differs = firstDifference(old, pod);
      if (differs === undefined) {
        return patch(withState(pod, undefined), 'cancelled', [
          ...warnings,
          `inplace-gate: the pending image change (${describe(current.images)}) was cancelled: the pod keeps its running images`,
        ]);
      }
      return allow('no-image-change', warnings, `not a re-assertion: ${differs} differs`);
    }
    return allow('no-image-change', warnings);
  }

  // Latest request wins per container: while Pending or Draining a request
  // keeps the earlier request's images for the containers it does not change.
  const stillPending = current?.phase === 'Pending' || current?.phase === 'Draining' ? current.images : {};
  const request = {
    images: { ...stillPending, ...changes },
    requestedBy: req.userInfo.username ?? '',
    ...(req.options?.fieldManager === undefined ? {} : { fieldManager: req.options.fieldManager }),
    requestedAt: now.toISOString(),
  };

  if (!hasReadinessGate(old) || config.mode === 'immediate') {
    const state: UpdateState = {
      phase: 'Updating',
      ...request,
      immediate: true,
      ...(old.metadata.generation === undefined ? {} : { generation: old.metadata.generation + 1 }),
      updatedAt: request.requestedAt,
      before: { ...carriedRecords(current, changes), ...currentRecords(old, Object.keys(changes)) },
    };
    const why = hasReadinessGate(old) ? 'immediate mode is on' : `the pod has no ${READINESS_GATE} readiness gate`;
    return patch(withState(pod, state), 'immediate', [
      ...warnings,
      `inplace-gate: images applied at once because ${why}: traffic was not drained first`,
    ]);
  }

  // Latest request wins, per container (merged above). While Draining the
  // drain already under way goes on; after Updating or Stalled the pod is
  // already out of endpoints and needs no new drain.
  const draining = current?.phase === 'Draining';
  const drained = current?.phase === 'Updating' || current?.phase === 'Stalled' || (current?.drained ?? false);
  const before = carriedRecords(current, changes);
  const state: UpdateState = {
    phase: draining ? 'Draining' : 'Pending',
    ...request,
    ...(drained ? { drained: true } : {}),
    ...(draining && current.drainDeadline !== undefined ? { drainDeadline: current.drainDeadline } : {}),
    ...(isEmpty(before) ? {} : { before }),
  };
  // Only the containers that restart in place keep their running images; ordinary init containers' images go through.
  const running = specImages(old.spec);
  const held: ImageMap = {};
  for (const name of Object.keys(changes)) held[name] = running[name] ?? changes[name] ?? '';
  const deferred: Pod = { ...withState(pod, state), spec: withImages(pod.spec, held) };
  return patch(deferred, current === undefined ? 'deferred' : 'deferred-replaced', [
    ...warnings,
    `inplace-gate: image change deferred (${describe(request.images)}): the pod leaves its Service endpoints first, then restarts in place`,
  ]);
}

/**
 * Where the written pod differs from the stored one, ignoring server-managed
 * metadata; undefined when it is the pod as stored, written again.
 */
function firstDifference(old: Pod, pod: Pod): string | undefined {
  const strip = ({ metadata, status: _status, ...rest }: Pod) => {
    const { managedFields: _m, resourceVersion: _r, generation: _g, ...meta } = metadata;
    return { ...rest, metadata: meta };
  };
  // kubectl's own bookkeeping changes on every `kubectl replace` or `apply`.
  const bookkeeping = (p: readonly PathSegment[]) => p[0] === 'metadata' && p[1] === 'annotations' && p[2] === LAST_APPLIED;
  const [path] = changedPaths(strip(old), strip(pod), [], bookkeeping, 1);
  return path === undefined ? undefined : formatPath(path);
}

/** Baselines of containers an earlier Updating has not proven yet, and that this request does not touch again. */
function carriedRecords(current: UpdateState | undefined, changes: ImageMap): Record<string, ContainerRecord> {
  const out: Record<string, ContainerRecord> = {};
  if (current?.phase !== 'Updating' && current?.phase !== 'Stalled' && !current?.drained) return out;
  for (const [name, record] of Object.entries(current.before ?? {})) if (!(name in changes)) out[name] = record;
  return out;
}

function withState(pod: Pod, state: UpdateState | undefined): Pod {
  const { [UPDATE_ANNOTATION]: _previous, ...others } = pod.metadata.annotations ?? {};
  const annotations = state === undefined ? others : { ...others, [UPDATE_ANNOTATION]: encodeUpdateState(state) };
  return { ...pod, metadata: { ...pod.metadata, annotations } };
}

function describe(images: ImageMap): string {
  return Object.entries(images)
    .map(([name, image]) => `${name}=${image}`)
    .join(', ');
}
