// UPDATE pods, mutating: an image change of a managed pod never reaches the
// kubelet straight away. The webhook keeps the running images in the spec and
// records the request as Pending; the watcher drains the pod, then writes the
// images. Pods without the gate, and immediate mode, get the images at once.

import type { AdmissionConfig } from '../config.ts';
import { imageChanges, isEmpty, restartsInPlace, specImages, withImages, type ImageMap } from '../containers.ts';
import type { Pod } from '../kube-types.ts';
import { READINESS_GATE, UPDATE_ANNOTATION } from '../names.ts';
import { hasReadinessGate, isExcludedNamespace, isManaged, matchesIdentity } from '../scope.ts';

const LAST_APPLIED = 'kubectl.kubernetes.io/last-applied-configuration';
import { backToUpdating, currentRecords, encodeUpdateState, parseUpdateState, stalledBeforeDrain, stalledInDrain, type ContainerRecord, type UpdateState } from '../state.ts';
import { allow, deny, patch, type Decision } from './decision.ts';
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
    // A cancel must be asked for: the request re-asserts the running image of
    // a container whose image is pending (a server-side apply whose manifest
    // names that image, or a client-side apply that now names it). Writes of
    // the pod as stored (a no-op apply of labels, a controller's update)
    // and metadata-only changes leave the request alone.
    // Stalled in its drain or its pull, the images were never written: still a request that can be cancelled.
    if (current?.phase === 'Pending' || current?.phase === 'Draining' || stalledInDrain(current) || stalledBeforeDrain(current)) {
      const reasserted = reassertedImages(req, old, pod, Object.keys(current.images));
      if (reasserted.length === 0) {
        return allow('no-image-change', warnings, 'not a re-assertion of the running images');
      }
      const left: ImageMap = {};
      for (const [name, image] of Object.entries(current.images)) if (!reasserted.includes(name)) left[name] = image;
      if (!isEmpty(left)) {
        return patch(withState(pod, { ...current, images: left, requestedBy: req.userInfo.username ?? '' }), 'cancelled-in-part', [
          ...warnings,
          `inplace-gate: the pending image change of ${reasserted.join(', ')} was cancelled; still pending: ${describe(left)}`,
        ]);
      }
      if (current.drained === true) {
        // Asked while Updating or Stalled: images written earlier are not
        // proven yet, and the pod is out of endpoints. Back to Updating over
        // the spec's images, so the condition goes True only once the kubelet's
        // restart is proven, never on the cancellation alone.
        const state = backToUpdating(old, current, req.userInfo.username ?? '', now);
        return patch(withState(pod, state), 'cancelled-updating', [
          ...warnings,
          `inplace-gate: the pending image change (${describe(current.images)}) was cancelled; the pod stays out of endpoints until ${describe(state.images)} is proven`,
        ]);
      }
      return patch(withState(pod, undefined), 'cancelled', [
        ...warnings,
        `inplace-gate: the pending image change (${describe(current.images)}) was cancelled: the pod keeps its running images`,
      ]);
    }
    return allow('no-image-change', warnings);
  }

  // What the apiserver's validation would refuse in the watcher's image write after the drain, refused
  // now, while the requester is there to read it and before the pod leaves its endpoints (the spec
  // the apiserver validates here keeps the running images, so it cannot see these itself).
  const invalid = Object.entries(changes).filter(([, image]) => image === '' || image.trim() !== image);
  if (invalid.length > 0) {
    const fields = invalid.map(([name, image]) => `container ${name}: image ${JSON.stringify(image)} ${image.trim() === '' ? 'is required' : 'must not have leading or trailing whitespace'}`);
    return deny('invalid-image', `inplace-gate: ${fields.join('; ')} (the apiserver would refuse it when written after the drain); send the image without surrounding spaces`, 422);
  }

  // Latest request wins per container: while Pending or Draining a request
  // keeps the earlier request's images for the containers it does not change.
  const stillPending = current?.phase === 'Pending' || current?.phase === 'Draining' || stalledInDrain(current) || stalledBeforeDrain(current) ? current.images : {};
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
      images: changes, // what this request puts into the spec; nothing pending is merged in without a drain
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
  // A pod whose pull failed was never drained: it still serves.
  const drained = current?.phase === 'Updating' || (current?.phase === 'Stalled' && !stalledBeforeDrain(current)) || (current?.drained ?? false);
  const before = carriedRecords(current, changes);
  const state: UpdateState = {
    phase: draining ? 'Draining' : 'Pending',
    ...request,
    ...(drained ? { drained: true } : {}),
    ...(draining && current.drainDeadline !== undefined ? { drainDeadline: current.drainDeadline } : {}),
    ...(draining && current.drainStartedAt !== undefined ? { drainStartedAt: current.drainStartedAt } : {}),
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
 * Containers among `names` whose running image this request explicitly names:
 * its field manager's `Apply` entry in the request's managedFields owns the
 * container's image field (server-side apply), or kubectl's last-applied
 * configuration changed in this request and names the running image
 * (client-side apply). A write of the object as stored names nothing.
 */
function reassertedImages(req: AdmissionRequest<Pod>, old: Pod, pod: Pod, names: string[]): string[] {
  const running = specImages(old.spec);
  const manager = req.options?.fieldManager;
  const applied = manager === undefined ? undefined : appliedFields(pod, manager);
  const lastApplied = pod.metadata.annotations?.[LAST_APPLIED];
  const csa = lastApplied !== undefined && lastApplied !== old.metadata.annotations?.[LAST_APPLIED] ? lastAppliedImages(lastApplied) : {};
  return names.filter((name) => {
    if (applied !== undefined && ownsImage(applied, name)) return true;
    return running[name] !== undefined && csa[name] === running[name];
  });
}

function asRecord(value: unknown): Record<string, unknown> | undefined {
  return typeof value === 'object' && value !== null && !Array.isArray(value) ? (value as Record<string, unknown>) : undefined;
}

/** The fieldsV1 of the manager's Apply entry, if it has one. */
function appliedFields(pod: Pod, manager: string): Record<string, unknown> | undefined {
  for (const entry of pod.metadata.managedFields ?? []) {
    const e = asRecord(entry);
    if (e?.manager === manager && e.operation === 'Apply' && (e.subresource ?? '') === '') return asRecord(e.fieldsV1);
  }
  return undefined;
}

function ownsImage(fields: Record<string, unknown>, name: string): boolean {
  const spec = asRecord(fields['f:spec']);
  const key = `k:${JSON.stringify({ name })}`;
  return ['f:containers', 'f:initContainers'].some((list) => asRecord(asRecord(asRecord(spec?.[list])?.[key])?.['f:image']) !== undefined);
}

function lastAppliedImages(raw: string): ImageMap {
  try {
    const parsed = asRecord(JSON.parse(raw));
    const spec = asRecord(parsed?.spec);
    const out: ImageMap = {};
    for (const list of [spec?.containers, spec?.initContainers]) {
      if (!Array.isArray(list)) continue;
      for (const c of list) {
        const r = asRecord(c);
        if (typeof r?.name === 'string' && typeof r.image === 'string') out[r.name] = r.image;
      }
    }
    return out;
  } catch {
    return {};
  }
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
