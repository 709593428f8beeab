// UPDATE Deployments and StatefulSets, mutating: a pod template change that
// touches only container images rolls out in place. The webhook holds the
// native controller back (a Deployment paused, a StatefulSet's partition held
// at replicas) and records the rollout; the watcher's rollout controller moves
// the pods through the pod lifecycle and ends it. Anything else stays native.

import type { AdmissionConfig } from '../config.ts';
import { imageChanges, isEmpty } from '../containers.ts';
import { ENABLED_LABEL, ROLLOUT_ANNOTATION, ROLLOUT_STATE_ANNOTATION } from '../names.ts';
import { deploymentWindow, statefulSetWindow } from '../rollout.ts';
import { encodeRolloutState, parseRolloutState, type RolloutState } from '../rollout-state.ts';
import { isExcludedNamespace, matchesIdentity } from '../scope.ts';
import { changedPaths, type PathSegment } from '../spec-diff.ts';
import type { Workload } from '../workload-types.ts';
import { allow, deny, patch, type Decision } from './decision.ts';
import type { AdmissionRequest } from './request.ts';

/** Template paths an in-place rollout may change: the images, and kubectl's restartedAt stays native. */
function isImagePath(path: readonly PathSegment[]): boolean {
  const [, list, index, field] = path;
  return (list === 'containers' || list === 'initContainers') && typeof index === 'number' && field === 'image' && path.length === 4;
}

export function admitWorkloadUpdate(req: AdmissionRequest<Workload>, workload: Workload, old: Workload, config: AdmissionConfig, now: Date): Decision {
  const kind = req.kind.kind;
  if (matchesIdentity(req.userInfo, config.watcher)) return allow('watcher');
  if (isExcludedNamespace(req.namespace, config)) return allow('excluded-namespace');
  const resumed = refuseResume(kind, workload, old);
  if (resumed) return resumed;
  const repartitioned = keepHeldPartition(kind, workload, old);
  if (repartitioned) return repartitioned;
  if (workload.metadata.annotations?.[ROLLOUT_ANNOTATION] === 'recreate') return allow('rollout-recreate');
  if (workload.spec.template.metadata?.labels?.[ENABLED_LABEL] === 'false') return allow('opted-out');

  const oldTemplate = { metadata: old.spec.template.metadata ?? {}, spec: old.spec.template.spec };
  const newTemplate = { metadata: workload.spec.template.metadata ?? {}, spec: workload.spec.template.spec };
  const changes = imageChanges(old.spec.template.spec, workload.spec.template.spec);
  if (isEmpty(changes)) return allow('no-image-change');
  if (changedPaths(oldTemplate.metadata, newTemplate.metadata, ['metadata'], () => false, 1).length > 0 ||
      changedPaths(oldTemplate.spec, newTemplate.spec, ['spec'], isImagePath, 1).length > 0) {
    return allow('template-change-native');
  }

  const parsed = parseRolloutState(old.metadata.annotations?.[ROLLOUT_STATE_ANNOTATION]);
  const current = parsed.ok ? parsed.state : undefined;
  if (kind === 'Deployment' && old.spec.paused === true && current === undefined) return allow('user-paused');

  // A new rollout only where the in-place window keeps native capacity (and, for a StatefulSet, the
  // strategy rolls on a template change at all). One under way is retargeted: the watcher decides.
  if (current === undefined && (kind === 'Deployment' || kind === 'StatefulSet')) {
    const window = kind === 'Deployment' ? deploymentWindow(workload.spec) : statefulSetWindow(workload.spec);
    if (!window.inPlace) return allow(window.reason, [`inplace-gate: ${kind} rolls out natively: ${window.message}`]);
  }

  // The images to reach are the new template's: a change mid-rollout (a rollback too) retargets it.
  const images: Record<string, string> = {};
  for (const c of [...workload.spec.template.spec.containers, ...(workload.spec.template.spec.initContainers ?? [])]) {
    if (c.image !== undefined) images[c.name] = c.image;
  }
  const state: RolloutState = {
    images,
    requestedBy: req.userInfo.username ?? '',
    ...(req.options?.fieldManager === undefined ? {} : { fieldManager: req.options.fieldManager }),
    startedAt: current?.startedAt ?? now.toISOString(),
  };

  const annotations = { ...workload.metadata.annotations, [ROLLOUT_STATE_ANNOTATION]: encodeRolloutState(state) };
  const mutated: Workload = { ...workload, metadata: { ...workload.metadata, annotations } };
  if (kind === 'Deployment') {
    mutated.spec = { ...workload.spec, paused: true };
  } else if (kind === 'StatefulSet') {
    const strategy = workload.spec.updateStrategy;
    if ((strategy?.type ?? 'RollingUpdate') === 'RollingUpdate') {
      const replicas = workload.spec.replicas ?? 1;
      // The user's partition: one this request sets, else the one recorded at the rollout's start, else the stored one.
      const userPartition = partitionOf(workload) !== partitionOf(old) ? partitionOf(workload) : (current?.partition ?? partitionOf(old));
      state.partition = userPartition;
      annotations[ROLLOUT_STATE_ANNOTATION] = encodeRolloutState(state);
      mutated.spec = {
        ...workload.spec,
        updateStrategy: { ...strategy, type: 'RollingUpdate', rollingUpdate: { ...strategy?.rollingUpdate, partition: Math.max(replicas, userPartition) } },
      };
    }
  } else {
    return allow('kind-not-handled');
  }
  const what = Object.entries(changes).map(([n, i]) => `${n}=${i}`).join(', ');
  const window = kind === 'Deployment' ? deploymentWindow(workload.spec) : undefined;
  const surge = window?.inPlace === true && (window.surge ?? 0) > 0 ? `; maxUnavailable is 0, so ${String(window.surge)} surge pod(s) on the new images come up first and go at the end` : '';
  return patch(mutated, current ? 'rollout-retargeted' : 'rollout-held', [
    `inplace-gate: ${kind} rolls out in place (${what}): same pods, drained and restarted a few at a time; ` +
      (kind === 'Deployment' ? `it shows paused until the rollout ends${surge}` : 'its partition is held until the rollout ends'),
  ]);
}

const partitionOf = (w: Workload): number => w.spec.updateStrategy?.rollingUpdate?.partition ?? 0;

/**
 * A StatefulSet's own partition changed (and nothing in its template) while
 * inplace-gate holds it at replicas. Stored as sent, it would let the native
 * controller recreate the pods the in-place rollout has not reached, on top of
 * it, and the rollout's end would hand back the partition recorded at its
 * start. So it stays held, and the value is recorded as the user's partition:
 * the rollout leaves the ordinals below it on their old images and hands it
 * back at the end.
 */
function keepHeldPartition(kind: string, workload: Workload, old: Workload): Decision | undefined {
  if (kind !== 'StatefulSet' || partitionOf(workload) === partitionOf(old)) return undefined;
  if (!isEmpty(imageChanges(old.spec.template.spec, workload.spec.template.spec))) return undefined;
  const held = parseRolloutState(old.metadata.annotations?.[ROLLOUT_STATE_ANNOTATION]);
  // Not held, or the rollout state dropped in this very write (the watcher's release, or a user knowingly).
  if (!held.ok || held.state === undefined || workload.metadata.annotations?.[ROLLOUT_STATE_ANNOTATION] === undefined) return undefined;
  const strategy = workload.spec.updateStrategy;
  if ((strategy?.type ?? 'RollingUpdate') !== 'RollingUpdate') return undefined;
  const wanted = partitionOf(workload);
  const replicas = workload.spec.replicas ?? 1;
  const annotations = { ...workload.metadata.annotations, [ROLLOUT_STATE_ANNOTATION]: encodeRolloutState({ ...held.state, partition: wanted }) };
  return patch(
    {
      ...workload,
      metadata: { ...workload.metadata, annotations },
      spec: { ...workload.spec, updateStrategy: { ...strategy, type: 'RollingUpdate', rollingUpdate: { ...strategy?.rollingUpdate, partition: Math.max(replicas, wanted) } } },
    },
    'partition-recorded',
    [`inplace-gate: statefulset/${old.metadata.name ?? ''} is held while it updates its pods in place; partition ${String(wanted)} is recorded, the in-place rollout leaves the ordinals below it on their old images and hands it back when it ends`],
  );
}

/**
 * `kubectl rollout resume` (which kubectl itself suggests before `rollout undo`
 * and `rollout restart` of a paused Deployment) while inplace-gate holds the
 * Deployment paused would start a native rollout on top of the in-place one:
 * refused, saying what to do instead. The watcher's own release drops the
 * rollout state in the same write, so it is not this; neither is a user who
 * drops the state knowingly.
 */
function refuseResume(kind: string, workload: Workload, old: Workload): Decision | undefined {
  if (kind !== 'Deployment' || old.spec.paused !== true || workload.spec.paused === true) return undefined;
  const held = parseRolloutState(old.metadata.annotations?.[ROLLOUT_STATE_ANNOTATION]);
  if (!held.ok || held.state === undefined || workload.metadata.annotations?.[ROLLOUT_STATE_ANNOTATION] === undefined) return undefined;
  const name = `deployment/${old.metadata.name ?? ''}`;
  const images = Object.entries(held.state.images).map(([c, i]) => `${c}=${i}`).join(', ');
  return deny('rollout-held', [
    `${name} is paused by inplace-gate while it updates its pods in place (to ${images}); it unpauses itself when every pod runs the new images (watch: kubectl rollout status ${name}).`,
    `Resuming now would start a native rollout on top of it, so it is refused. Instead:`,
    `to roll back, set the previous images (kubectl set image ${name} CONTAINER=IMAGE): the same pods go back in place;`,
    `to finish natively (the controller replaces the remaining pods, as kubectl rollout restart would), run kubectl annotate ${name} inplace-gate.dev/rollout=recreate.`,
  ].join(' '), 409);
}
