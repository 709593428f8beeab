// CREATE pods, mutating: take a new pod in by adding the readiness gate and
// the managed label, exactly once (the apiserver may reinvoke the webhook).

import type { AdmissionConfig } from '../config.ts';
import type { Pod } from '../kube-types.ts';
import { MANAGED_LABEL, READINESS_GATE } from '../names.ts';
import { createExclusion, hasReadinessGate, isManaged } from '../scope.ts';
import { allow, patch, type Decision } from './decision.ts';
import type { AdmissionRequest } from './request.ts';

export function admitPodCreate(req: AdmissionRequest<Pod>, pod: Pod, config: AdmissionConfig): Decision {
  const excluded = createExclusion(pod, req.namespace ?? pod.metadata.namespace, config);
  if (excluded !== undefined) return allow(excluded);

  const gated = hasReadinessGate(pod);
  const labelled = isManaged(pod);
  if (gated && labelled) return allow('already-managed');

  const mutated: Pod = {
    ...pod,
    metadata: labelled ? pod.metadata : { ...pod.metadata, labels: { ...pod.metadata.labels, [MANAGED_LABEL]: 'true' } },
    spec: gated
      ? pod.spec
      : { ...pod.spec, readinessGates: [...(pod.spec.readinessGates ?? []), { conditionType: READINESS_GATE }] },
  };
  return patch(mutated, 'gate-added');
}
