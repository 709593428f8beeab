import { DEFAULT_NAMESPACE, DEFAULT_WATCHER_USER } from './names.ts';

export interface IdentitySet {
  users: string[];
  groups: string[];
}

/** What the admission rules need to know; the shell fills it from flags and environment. */
export interface AdmissionConfig {
  /** The namespace inplace-gate runs in: never in scope. */
  ownNamespace: string;
  /** `drain` defers image changes until the pod is out of endpoints; `immediate` lets them through. */
  mode: 'drain' | 'immediate';
  /** The watcher's identity: its writes pass the mutating webhook untouched. */
  watcher: IdentitySet;
  /** Identities whose pod updates pass both webhooks untouched (break-glass). */
  exempt: IdentitySet;
  /** Let `pods/resize` through on managed pods. */
  allowResize: boolean;
  /** Let `pods/ephemeralcontainers` (kubectl debug) through on managed pods. */
  allowEphemeralContainers: boolean;
}

export const defaultAdmissionConfig: AdmissionConfig = {
  ownNamespace: DEFAULT_NAMESPACE,
  mode: 'drain',
  watcher: { users: [DEFAULT_WATCHER_USER], groups: [] },
  exempt: { users: [], groups: [] },
  allowResize: false,
  allowEphemeralContainers: true,
};
