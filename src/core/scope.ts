// Which pods inplace-gate takes in. The webhook configuration's selectors
// narrow the requests; these rules hold whatever those selectors say.

import type { AdmissionConfig, IdentitySet } from './config.ts';
import type { Pod } from './kube-types.ts';
import type { UserInfo } from './admission/request.ts';
import {
  ENABLED_LABEL,
  KRUISE_API_GROUP,
  MANAGED_LABEL,
  MIRROR_POD_ANNOTATION,
  READINESS_GATE,
  SYSTEM_NAMESPACES,
} from './names.ts';

export function isExcludedNamespace(namespace: string | undefined, config: AdmissionConfig): boolean {
  return namespace !== undefined && (SYSTEM_NAMESPACES.includes(namespace) || namespace === config.ownNamespace);
}

/** Why a new pod is left alone, or undefined when it is taken in. */
export function createExclusion(pod: Pod, namespace: string | undefined, config: AdmissionConfig): string | undefined {
  if (isExcludedNamespace(namespace, config)) return 'excluded-namespace';
  if (pod.metadata.labels?.[ENABLED_LABEL] === 'false') return 'opted-out';
  if (pod.metadata.annotations?.[MIRROR_POD_ANNOTATION] !== undefined) return 'mirror-pod';
  if (pod.metadata.ownerReferences?.some((o) => o.apiVersion.split('/')[0] === KRUISE_API_GROUP)) return 'kruise-owned';
  return undefined;
}

export function isManaged(pod: Pod): boolean {
  return pod.metadata.labels?.[MANAGED_LABEL] === 'true';
}

export function hasReadinessGate(pod: Pod): boolean {
  return pod.spec.readinessGates?.some((g) => g.conditionType === READINESS_GATE) ?? false;
}

export function matchesIdentity(user: UserInfo, set: IdentitySet): boolean {
  if (user.username !== undefined && set.users.includes(user.username)) return true;
  return user.groups?.some((g) => set.groups.includes(g)) ?? false;
}
