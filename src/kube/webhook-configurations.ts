// The one source of the webhook registrations: the shipped manifests, the
// end-to-end tests and `npm start` all build them here, so they cannot drift.
// matchConditions keep the apiserver from calling the webhook for requests no
// rule is about (most pod writes are status and label updates).

import { ENABLED_LABEL, KRUISE_API_GROUP, MANAGED_LABEL, MIRROR_POD_ANNOTATION, ROLLOUT_STATE_ANNOTATION, SYSTEM_NAMESPACE_LABEL, SYSTEM_NAMESPACES, UPDATE_ANNOTATION } from '../core/names.ts';

export type ClientConfig =
  | { url: string; caBundle?: string }
  | { service: { namespace: string; name: string; path: string; port?: number }; caBundle?: string };

export interface RegistrationOptions {
  /** Where the apiserver finds a webhook path (`/mutate`, `/validate`). */
  clientConfig: (path: '/mutate' | '/validate') => ClientConfig;
  /** `opt-in`: namespaces labelled enabled=true; `cluster-wide`: every namespace not labelled enabled=false. */
  scope: 'opt-in' | 'cluster-wide';
  /**
   * The watcher's usernames: its own writes skip the webhooks (the webhook passes them anyway; this
   * only saves the call). Empty: no such condition. Only for a registration whose namespace is known
   * when it is built: a name left behind by a move to another namespace would let whoever makes that
   * ServiceAccount skip every webhook.
   */
  watcherUsers: string[];
  /** Namespaces left out by name besides the system ones: the product's own, where it is known when this is built (Helm). */
  excludedNamespaces?: string[];
  timeoutSeconds?: number;
}

export const CONFIGURATION_NAME = 'inplace-gate';

const POD_RULE_BASE = { apiGroups: [''], apiVersions: ['v1'], scope: 'Namespaced' } as const;

/** CEL over the annotations or labels map, '' when absent. */
const celValue = (obj: 'object' | 'oldObject', field: 'labels' | 'annotations', key: string) =>
  `(has(${obj}.metadata.${field}) && '${key}' in ${obj}.metadata.${field} ? ${obj}.metadata.${field}['${key}'] : '')`;
/** CEL: the images of a pod spec's containers or init containers, [] when absent. */
const celImages = (spec: string, list: 'containers' | 'initContainers') =>
  list === 'containers' ? `${spec}.containers.map(c, c.image)` : `(has(${spec}.initContainers) ? ${spec}.initContainers.map(c, c.image) : [])`;
const celImagesDiffer = (spec: (obj: string) => string) =>
  `${celImages(spec('object'), 'containers')} != ${celImages(spec('oldObject'), 'containers')} || ` +
  `${celImages(spec('object'), 'initContainers')} != ${celImages(spec('oldObject'), 'initContainers')}`;

export function webhookConfigurations(opts: RegistrationOptions) {
  const notExcluded = { key: 'kubernetes.io/metadata.name', operator: 'NotIn', values: [...SYSTEM_NAMESPACES, ...(opts.excludedNamespaces ?? [])] };
  // inplace-gate's own namespace, by its label: the name moves with kustomize's namespace transform.
  const notOwn = { key: SYSTEM_NAMESPACE_LABEL, operator: 'NotIn', values: ['true'] };
  const createNamespaceSelector =
    opts.scope === 'opt-in'
      ? { matchLabels: { [ENABLED_LABEL]: 'true' }, matchExpressions: [notExcluded, notOwn] }
      : { matchExpressions: [notExcluded, notOwn, { key: ENABLED_LABEL, operator: 'NotIn', values: ['false'] }] };
  // Managed pods stay managed until they are replaced, even if their namespace opts out later.
  const updateNamespaceSelector = { matchExpressions: [notExcluded, notOwn] };
  const managedPods = { matchLabels: { [MANAGED_LABEL]: 'true' } };
  const common = { admissionReviewVersions: ['v1'], sideEffects: 'None', timeoutSeconds: opts.timeoutSeconds ?? 5, matchPolicy: 'Equivalent' };
  const users = `[${opts.watcherUsers.map((u) => `'${u}'`).join(', ')}]`;
  const notWatcher = opts.watcherUsers.length === 0 ? [] : [{ name: 'not-the-watcher', expression: `!(request.userInfo.username in ${users})` }];

  const imagesChanged = celImagesDiffer((obj) => `${obj}.spec`);
  const templateImagesChanged = celImagesDiffer((obj) => `${obj}.spec.template.spec`);
  // `kubectl rollout resume` of a Deployment inplace-gate holds paused (the webhook refuses it, saying why).
  const heldResumed =
    `request.kind.kind == 'Deployment' && has(oldObject.spec.paused) && oldObject.spec.paused && !(has(object.spec.paused) && object.spec.paused) && ` +
    `${celValue('oldObject', 'annotations', ROLLOUT_STATE_ANNOTATION)} != ''`;
  // A held StatefulSet's own partition changed by its user: the webhook keeps it held and records the value.
  const celPartition = (obj: string) =>
    `(has(${obj}.spec.updateStrategy) && has(${obj}.spec.updateStrategy.rollingUpdate) && has(${obj}.spec.updateStrategy.rollingUpdate.partition) ? ${obj}.spec.updateStrategy.rollingUpdate.partition : 0)`;
  const heldPartitionChanged =
    `request.kind.kind == 'StatefulSet' && ${celValue('oldObject', 'annotations', ROLLOUT_STATE_ANNOTATION)} != '' && ${celPartition('object')} != ${celPartition('oldObject')}`;
  const pendingState = `${celValue('oldObject', 'annotations', UPDATE_ANNOTATION)}.matches('"phase":"(Pending|Draining)"')`;
  const lifecycleKeysChanged =
    `${celValue('object', 'labels', MANAGED_LABEL)} != ${celValue('oldObject', 'labels', MANAGED_LABEL)} || ` +
    `${celValue('object', 'annotations', UPDATE_ANNOTATION)} != ${celValue('oldObject', 'annotations', UPDATE_ANNOTATION)}`;

  const mutating = {
    apiVersion: 'admissionregistration.k8s.io/v1',
    kind: 'MutatingWebhookConfiguration',
    metadata: { name: CONFIGURATION_NAME, labels: { 'app.kubernetes.io/name': 'inplace-gate' } },
    webhooks: [
      {
        name: 'pod-create.inplace-gate.dev',
        clientConfig: opts.clientConfig('/mutate'),
        rules: [{ ...POD_RULE_BASE, operations: ['CREATE'], resources: ['pods'] }],
        namespaceSelector: createNamespaceSelector,
        objectSelector: { matchExpressions: [{ key: ENABLED_LABEL, operator: 'NotIn', values: ['false'] }] },
        matchConditions: [
          { name: 'not-a-mirror-pod', expression: `!has(object.metadata.annotations) || !('${MIRROR_POD_ANNOTATION}' in object.metadata.annotations)` },
          {
            name: 'not-owned-by-kruise',
            expression: `!has(object.metadata.ownerReferences) || !object.metadata.ownerReferences.exists(o, o.apiVersion.startsWith('${KRUISE_API_GROUP}/'))`,
          },
        ],
        // A pod created while the webhook is down is merely unmanaged.
        failurePolicy: 'Ignore',
        reinvocationPolicy: 'IfNeeded',
        ...common,
      },
      {
        name: 'workload-image-update.inplace-gate.dev',
        clientConfig: opts.clientConfig('/mutate'),
        rules: [{ apiGroups: ['apps'], apiVersions: ['v1'], scope: 'Namespaced', operations: ['UPDATE'], resources: ['deployments', 'statefulsets'] }],
        namespaceSelector: createNamespaceSelector,
        matchConditions: [...notWatcher, { name: 'template-images-changed-or-held-resumed-or-repartitioned', expression: `${templateImagesChanged} || (${heldResumed}) || (${heldPartitionChanged})` }],
        // An outage falls back to the native rollout, which is safe, and never blocks a deploy.
        failurePolicy: 'Ignore',
        ...common,
      },
      {
        // While a StatefulSet rolls out in place, its status reads "in progress" to kubectl, kstatus and
        // Argo CD (observedGeneration held below the generation, Reconciling True; core/statefulset-status.ts).
        name: 'statefulset-status.inplace-gate.dev',
        clientConfig: opts.clientConfig('/mutate'),
        rules: [{ apiGroups: ['apps'], apiVersions: ['v1'], scope: 'Namespaced', operations: ['UPDATE'], resources: ['statefulsets/status'] }],
        namespaceSelector: updateNamespaceSelector,
        matchConditions: [...notWatcher, { name: 'rollout-in-progress', expression: `${celValue('oldObject', 'annotations', ROLLOUT_STATE_ANNOTATION)} != ''` }],
        // An outage only lets the tools read the rollout early, as without this webhook.
        failurePolicy: 'Ignore',
        ...common,
      },
      {
        name: 'pod-image-update.inplace-gate.dev',
        clientConfig: opts.clientConfig('/mutate'),
        rules: [{ ...POD_RULE_BASE, operations: ['UPDATE'], resources: ['pods'] }],
        namespaceSelector: updateNamespaceSelector,
        objectSelector: managedPods,
        matchConditions: [...notWatcher, { name: 'images-changed-or-pending', expression: `${imagesChanged} || ${pendingState}` }],
        // An outage must not turn a drained update into an undrained one.
        failurePolicy: 'Fail',
        reinvocationPolicy: 'IfNeeded',
        ...common,
      },
    ],
  };

  const validating = {
    apiVersion: 'admissionregistration.k8s.io/v1',
    kind: 'ValidatingWebhookConfiguration',
    metadata: { name: CONFIGURATION_NAME, labels: { 'app.kubernetes.io/name': 'inplace-gate' } },
    webhooks: [
      {
        name: 'pod-update.inplace-gate.dev',
        clientConfig: opts.clientConfig('/validate'),
        rules: [{ ...POD_RULE_BASE, operations: ['UPDATE'], resources: ['pods', 'pods/status'] }],
        namespaceSelector: updateNamespaceSelector,
        objectSelector: managedPods,
        matchConditions: [
          ...notWatcher,
          // pods/status never changes the spec; both can change the lifecycle keys.
          { name: 'spec-or-lifecycle-keys-changed', expression: `object.spec != oldObject.spec || ${lifecycleKeysChanged}` },
        ],
        failurePolicy: 'Fail',
        ...common,
      },
      {
        name: 'pod-subresources.inplace-gate.dev',
        clientConfig: opts.clientConfig('/validate'),
        rules: [{ ...POD_RULE_BASE, operations: ['UPDATE'], resources: ['pods/resize', 'pods/ephemeralcontainers'] }],
        namespaceSelector: updateNamespaceSelector,
        objectSelector: managedPods,
        matchConditions: notWatcher,
        failurePolicy: 'Fail',
        ...common,
      },
    ],
  };

  return { mutating, validating };
}
