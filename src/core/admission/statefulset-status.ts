// UPDATE statefulsets/status, mutating: while an in-place rollout is recorded
// on the StatefulSet, the controller's status writes are stored so that the
// users' tools read the rollout as it is (see core/statefulset-status.ts).
// The stored object's rollout state decides: status writes cannot change it.

import type { AdmissionConfig } from '../config.ts';
import { ROLLOUT_STATE_ANNOTATION } from '../names.ts';
import { parseRolloutState } from '../rollout-state.ts';
import { matchesIdentity } from '../scope.ts';
import { heldStatus, rolloutPhase, type StatusCondition } from '../statefulset-status.ts';
import type { Workload } from '../workload-types.ts';
import { allow, patch, type Decision } from './decision.ts';
import type { AdmissionRequest } from './request.ts';

export function admitStatefulSetStatus(req: AdmissionRequest<Workload>, set: Workload, stored: Workload, config: AdmissionConfig, now: Date): Decision {
  if (matchesIdentity(req.userInfo, config.watcher)) return allow('watcher');
  const parsed = parseRolloutState(stored.metadata.annotations?.[ROLLOUT_STATE_ANNOTATION]);
  if (!parsed.ok || parsed.state === undefined) return allow('no-rollout');
  const status = set.status ?? {};
  const held = heldStatus(
    { ...(status.observedGeneration === undefined ? {} : { observedGeneration: status.observedGeneration }), conditions: (status.conditions ?? []) as StatusCondition[] },
    set.metadata.generation ?? 0,
    rolloutPhase(parsed.state),
    now.toISOString().replace(/\.\d{3}Z$/, 'Z'),
  );
  if (held === undefined) return allow('status-as-written');
  return patch({ ...set, status: { ...status, ...held } }, held.observedGeneration === undefined ? 'status-conditions' : 'status-held');
}
