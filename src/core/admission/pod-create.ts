// CREATE pods, mutating: take a new pod in by adding the readiness gate and
// the managed label, exactly once (the apiserver may reinvoke the webhook).

import type { AdmissionConfig } from '../config.ts';
import type { Pod } from '../kube-types.ts';
import { MANAGED_LABEL, READINESS_GATE, UPDATE_ANNOTATION } from '../names.ts';
import { createExclusion, hasReadinessGate, isManaged } from '../scope.ts';
import { servingContainers } from '../serving.ts';
import { allow, patch, type Decision } from './decision.ts';
import type { AdmissionRequest } from './request.ts';

export function admitPodCreate(req: AdmissionRequest<Pod>, pod: Pod, config: AdmissionConfig): Decision {
  const excluded = createExclusion(pod, req.namespace ?? pod.metadata.namespace, config);
  if (excluded !== undefined) return allow(excluded);

  const gated = hasReadinessGate(pod);
  const labelled = isManaged(pod);
  // The lifecycle state is inplace-gate's own: a new pod never starts with one
  // (a forged Updating or Draining would skip the drain).
  const forged = pod.metadata.annotations?.[UPDATE_ANNOTATION] !== undefined;
  // A serving-containers annotation that names no container of the pod is ignored (every container
  // serves); say so while the author is still looking.
  const serving = servingContainers(pod);
  const servingWarnings = 'problem' in serving ? [`inplace-gate: ${serving.problem}, so it is ignored: every container counts as serving and every image change drains`] : [];
  if (gated && labelled && !forged) return allow('already-managed', servingWarnings);

  const { [UPDATE_ANNOTATION]: _dropped, ...annotations } = pod.metadata.annotations ?? {};
  const metadata = forged ? { ...pod.metadata, annotations } : pod.metadata;
  const mutated: Pod = {
    ...pod,
    metadata: labelled ? metadata : { ...metadata, labels: { ...metadata.labels, [MANAGED_LABEL]: 'true' } },
    spec: gated
      ? pod.spec
      : { ...pod.spec, readinessGates: [...(pod.spec.readinessGates ?? []), { conditionType: READINESS_GATE }] },
  };
  return patch(mutated, forged ? 'state-stripped' : 'gate-added', [
    ...(forged ? [`inplace-gate: the annotation ${UPDATE_ANNOTATION} on a new pod was removed: only inplace-gate writes it`] : []),
    ...servingWarnings,
  ]);
}
