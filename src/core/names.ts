// The public contract of DESIGN.md: users put these names into manifests,
// dashboards and alerts, so once released they never change.

export const READINESS_GATE = 'InPlaceUpdateReady';

const PREFIX = 'inplace-gate.dev';

/** Namespace opt-in (`"true"`) and pod or namespace opt-out (`"false"`). */
export const ENABLED_LABEL = `${PREFIX}/enabled`;
/** Put on every pod the webhook took in; the watcher selects on it. */
export const MANAGED_LABEL = `${PREFIX}/managed`;
/** JSON lifecycle state of one image change (see core/state.ts). */
export const UPDATE_ANNOTATION = `${PREFIX}/update`;
/** Grace period between the condition going False and the image write. */
export const GRACE_PERIOD_ANNOTATION = `${PREFIX}/grace-period-seconds`;
/**
 * Which containers serve traffic (comma-separated names), on the pod or its
 * template. An image change that restarts none of them needs no drain.
 */
export const SERVING_CONTAINERS_ANNOTATION = `${PREFIX}/serving-containers`;
/** `recreate` keeps a workload's native rollout. */
export const ROLLOUT_ANNOTATION = `${PREFIX}/rollout`;
export const ROLLOUT_STATE_ANNOTATION = `${PREFIX}/rollout-state`;
export const PARTITION_ANNOTATION = `${PREFIX}/partition`;
/**
 * On a ReplicaSet's pod template while its Deployment rolls out in place: the
 * template differs from the Deployment's until the end, so the controller counts
 * no pod as updated early and `kubectl rollout status` waits as for a native rollout.
 */
export const ROLLOUT_IN_PROGRESS = `${PREFIX}/rollout-in-progress`;
/** Pod annotation (JSON): images another mutating webhook rewrote after the watcher wrote them (digest pinning, registry mirrors). */
export const IMAGE_REWRITES_ANNOTATION = `${PREFIX}/image-rewrites`;

/** Set by the kubelet on the API copy of a static pod. */
export const MIRROR_POD_ANNOTATION = 'kubernetes.io/config.mirror';
/** Pods of OpenKruise workloads already have an in-place lifecycle of their own. */
export const KRUISE_API_GROUP = 'apps.kruise.io';

/** Namespaces never in scope, whatever the webhook configuration's selectors say. */
export const SYSTEM_NAMESPACES: readonly string[] = ['kube-system', 'kube-public', 'kube-node-lease'];

/**
 * On the Namespace inplace-gate runs in (`"true"`): the webhook configurations leave it out by this
 * label, not by name, because kustomize's namespace transform and a Helm release move the Namespace
 * object (its labels with it) but not a name written inside a selector.
 */
export const SYSTEM_NAMESPACE_LABEL = `${PREFIX}/system`;

export const DEFAULT_NAMESPACE = 'inplace-gate';
/** The watcher's ServiceAccount, in the namespace inplace-gate runs in. */
export const WATCHER_SERVICE_ACCOUNT = 'inplace-gate-watcher';
/** The username the apiserver gives the watcher's ServiceAccount token when inplace-gate runs in `namespace`. */
export const watcherUser = (namespace: string): string => `system:serviceaccount:${namespace}:${WATCHER_SERVICE_ACCOUNT}`;
export const DEFAULT_WATCHER_USER = watcherUser(DEFAULT_NAMESPACE);
