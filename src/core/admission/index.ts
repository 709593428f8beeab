// The two admission entry points. Each takes a request whose envelope is
// already checked and returns a Decision, or says why the request is not one
// this webhook can judge (the server answers that with a 400).

import type { AdmissionConfig } from '../config.ts';
import type { Pod } from '../kube-types.ts';
import { allow, type Decision } from './decision.ts';
import { admitPodCreate } from './pod-create.ts';
import { admitPodUpdate } from './pod-update.ts';
import { validatePodUpdate } from './pod-validate.ts';
import type { AdmissionRequest } from './request.ts';
import { podShapeProblem, workloadShapeProblem } from './shape.ts';
import { admitStatefulSetStatus } from './statefulset-status.ts';
import { admitWorkloadUpdate } from './workload.ts';
import type { Workload } from '../workload-types.ts';

export type Invalid = { type: 'invalid'; message: string };
export type Judgement = Decision | Invalid;

export function mutate(req: AdmissionRequest, config: AdmissionConfig, now: Date): Judgement {
  if (req.kind.group === 'apps' && (req.kind.kind === 'Deployment' || req.kind.kind === 'StatefulSet')) return mutateWorkload(req, config, now);
  const pods = podsOf(req);
  if (pods.type !== 'pods') return pods;
  if (req.subResource) return allow('subresource');
  if (pods.old === undefined) return admitPodCreate(pods.req, pods.object, config);
  return admitPodUpdate(pods.req, pods.object, pods.old, config, now);
}

export function validate(req: AdmissionRequest, config: AdmissionConfig): Judgement {
  const pods = podsOf(req);
  if (pods.type !== 'pods') return pods;
  if (pods.old === undefined) return allow('create');
  return validatePodUpdate(pods.req, pods.object, pods.old, config);
}

function mutateWorkload(req: AdmissionRequest, config: AdmissionConfig, now: Date): Judgement {
  const status = req.subResource === 'status' && req.kind.kind === 'StatefulSet';
  if (req.operation !== 'UPDATE' || (req.subResource && !status)) return allow('operation-not-handled');
  // Checked field by field as pods are: a template container that is not an object was a 500 (found by fuzzing).
  for (const [value, path] of [[req.object, 'request.object'], [req.oldObject, 'request.oldObject']] as const) {
    const problem = workloadShapeProblem(value, path);
    if (problem !== undefined) return invalid(`${path} is not a ${req.kind.kind}: ${problem}`);
  }
  if (status) return admitStatefulSetStatus(req as AdmissionRequest<Workload>, req.object as Workload, req.oldObject as Workload, config, now);
  return admitWorkloadUpdate(req as AdmissionRequest<Workload>, req.object as Workload, req.oldObject as Workload, config, now);
}

type PodRequest = { type: 'pods'; req: AdmissionRequest<Pod>; object: Pod; old: Pod | undefined };

/** The request's pods, `allow` for operations no rule is about, or why it is not a Pod review. */
function podsOf(req: AdmissionRequest): PodRequest | Decision | Invalid {
  if (req.kind.group !== '' || req.kind.kind !== 'Pod') {
    const kind = req.kind.group === '' ? req.kind.kind : `${req.kind.kind}.${req.kind.group}`;
    return invalid(`request.kind is ${kind}: this endpoint judges Pods (and, on /mutate, apps Deployments and StatefulSets) only (check the webhook configuration's rules)`);
  }
  if (req.operation !== 'CREATE' && req.operation !== 'UPDATE') return allow('operation-not-handled');
  if (!isPodShaped(req.object)) return invalid('request.object is not a Pod: it needs metadata and spec.containers');
  const problem = podShapeProblem(req.object, 'request.object');
  if (problem !== undefined) return invalid(`request.object is not a Pod: ${problem}`);
  if (req.operation === 'CREATE') return { type: 'pods', req: req as AdmissionRequest<Pod>, object: req.object, old: undefined };
  if (!isPodShaped(req.oldObject)) {
    return invalid('request.oldObject is not a Pod: an UPDATE review carries the stored pod in oldObject');
  }
  const oldProblem = podShapeProblem(req.oldObject, 'request.oldObject');
  if (oldProblem !== undefined) return invalid(`request.oldObject is not a Pod: ${oldProblem}`);
  return { type: 'pods', req: req as AdmissionRequest<Pod>, object: req.object, old: req.oldObject };
}

function invalid(message: string): Invalid {
  return { type: 'invalid', message };
}

function isPodShaped(value: unknown): value is Pod {
  if (typeof value !== 'object' || value === null) return false;
  const { metadata, spec } = value as { metadata?: unknown; spec?: unknown };
  return (
    typeof metadata === 'object' && metadata !== null && !Array.isArray(metadata) &&
    typeof spec === 'object' && spec !== null && Array.isArray((spec as { containers?: unknown }).containers)
  );
}
