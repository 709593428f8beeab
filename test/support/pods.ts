// Pods shaped as the apiserver stores them: defaulted fields, the projected
// service-account volume, managedFields and a kubelet's status. Tests and
// benchmarks build their reviews from these, so sizes are realistic too.

import type { Container, ContainerStatus, Pod } from '../../src/core/kube-types.ts';
import type { AdmissionRequest } from '../../src/core/admission/request.ts';
import { MANAGED_LABEL, READINESS_GATE, UPDATE_ANNOTATION } from '../../src/core/names.ts';
import type { UpdateState } from '../../src/core/state.ts';

export interface ContainerShape {
  name: string;
  image: string;
  /** `Always` makes an init container a native sidecar. */
  restartPolicy?: 'Always';
}

export interface PodShape {
  name?: string;
  namespace?: string;
  containers?: ContainerShape[];
  initContainers?: ContainerShape[];
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  readinessGates?: string[];
  managed?: boolean;
  owner?: { apiVersion: string; kind: string; name: string };
  generation?: number;
  state?: UpdateState;
  /** Give the pod a running status (containerIDs, imageIDs, ready) as a kubelet reports it. */
  running?: boolean;
}

const VOLUME_MOUNT = { name: 'kube-api-access-x7k2p', readOnly: true, mountPath: '/var/run/secrets/kubernetes.io/serviceaccount' };

function container(shape: ContainerShape, i: number): Container {
  return {
    name: shape.name,
    image: shape.image,
    ...(shape.restartPolicy ? { restartPolicy: shape.restartPolicy } : {}),
    ports: i === 0 ? [{ name: 'http', containerPort: 8080, protocol: 'TCP' }] : [],
    env: [
      { name: 'POD_NAME', valueFrom: { fieldRef: { apiVersion: 'v1', fieldPath: 'metadata.name' } } },
      { name: 'LOG_LEVEL', value: 'info' },
    ],
    resources: { limits: { memory: '256Mi' }, requests: { cpu: '100m', memory: '128Mi' } },
    readinessProbe: { exec: { command: ['/bin/true'] }, timeoutSeconds: 1, periodSeconds: 5, successThreshold: 1, failureThreshold: 3 },
    volumeMounts: [VOLUME_MOUNT],
    terminationMessagePath: '/dev/termination-log',
    terminationMessagePolicy: 'File',
    imagePullPolicy: 'IfNotPresent',
    securityContext: { allowPrivilegeEscalation: false, runAsNonRoot: true, capabilities: { drop: ['ALL'] } },
  };
}

function status(shape: ContainerShape, podUid: string, podName: string): ContainerStatus {
  return {
    name: shape.name,
    image: shape.image,
    imageID: `docker.io/library/${shape.name}@sha256:${'a'.repeat(64)}`,
    containerID: `containerd://${podUid.replaceAll('-', '')}${shape.name}${podName.length}`,
    ready: true,
    started: true,
    restartCount: 0,
    state: { running: { startedAt: '2026-11-28T10:00:05Z' } },
  };
}

function managedFields(shape: PodShape) {
  const fieldsV1 = (names: string[]) =>
    Object.fromEntries(
      names.map((n) => [
        `k:{"name":"${n}"}`,
        {
          '.': {}, 'f:env': { '.': {}, 'k:{"name":"LOG_LEVEL"}': { '.': {}, 'f:name': {}, 'f:value': {} }, 'k:{"name":"POD_NAME"}': { '.': {}, 'f:name': {}, 'f:valueFrom': { '.': {}, 'f:fieldRef': {} } } },
          'f:image': {}, 'f:imagePullPolicy': {}, 'f:name': {}, 'f:ports': { '.': {}, 'k:{"containerPort":8080,"protocol":"TCP"}': { '.': {}, 'f:containerPort': {}, 'f:name': {}, 'f:protocol': {} } },
          'f:readinessProbe': { '.': {}, 'f:exec': { '.': {}, 'f:command': {} }, 'f:failureThreshold': {}, 'f:periodSeconds': {}, 'f:successThreshold': {}, 'f:timeoutSeconds': {} },
          'f:resources': { '.': {}, 'f:limits': { '.': {}, 'f:memory': {} }, 'f:requests': { '.': {}, 'f:cpu': {}, 'f:memory': {} } },
          'f:securityContext': { '.': {}, 'f:allowPrivilegeEscalation': {}, 'f:capabilities': { '.': {}, 'f:drop': {} }, 'f:runAsNonRoot': {} },
          'f:terminationMessagePath': {}, 'f:terminationMessagePolicy': {},
        },
      ]),
    );
  const names = (shape.containers ?? []).map((c) => c.name);
  return [
    {
      manager: 'kube-controller-manager', operation: 'Update', apiVersion: 'v1', time: '2026-11-28T10:00:00Z', fieldsType: 'FieldsV1',
      fieldsV1: {
        'f:metadata': { 'f:generateName': {}, 'f:labels': { '.': {}, 'f:app': {}, 'f:pod-template-hash': {} }, 'f:ownerReferences': { '.': {}, 'k:{"uid":"5f0c8a52-3b1e-4d0e-9a57-0d7b1f1f2c11"}': {} } },
        'f:spec': { 'f:containers': fieldsV1(names), 'f:dnsPolicy': {}, 'f:enableServiceLinks': {}, 'f:restartPolicy': {}, 'f:schedulerName': {}, 'f:securityContext': {}, 'f:terminationGracePeriodSeconds': {} },
      },
    },
    {
      manager: 'kubelet', operation: 'Update', apiVersion: 'v1', time: '2026-11-28T10:00:06Z', fieldsType: 'FieldsV1', subresource: 'status',
      fieldsV1: {
        'f:status': {
          'f:conditions': Object.fromEntries(['ContainersReady', 'Initialized', 'PodReadyToStartContainers', 'Ready'].map((t) => [`k:{"type":"${t}"}`, { '.': {}, 'f:lastProbeTime': {}, 'f:lastTransitionTime': {}, 'f:observedGeneration': {}, 'f:status': {}, 'f:type': {} }])),
          'f:containerStatuses': {}, 'f:hostIP': {}, 'f:hostIPs': {}, 'f:observedGeneration': {}, 'f:phase': {}, 'f:podIP': {}, 'f:podIPs': { '.': {}, 'k:{"ip":"10.244.1.17"}': { '.': {}, 'f:ip': {} } }, 'f:startTime': {},
        },
      },
    },
  ];
}

export function buildPod(shape: PodShape = {}): Pod {
  const name = shape.name ?? 'web-7d9c6b5f4-x2x8q';
  const namespace = shape.namespace ?? 'shop';
  const uid = '0b3c6f7e-6a55-4c5e-8f0e-2c1d9b8a7f61';
  const containers = shape.containers ?? [{ name: 'app', image: 'registry.example.com:5000/shop/web:1.4.2' }];
  const initContainers = shape.initContainers ?? [];
  const managed = shape.managed ?? true;
  const gates = shape.readinessGates ?? (managed ? [READINESS_GATE] : []);
  const annotations = { ...shape.annotations, ...(shape.state ? { [UPDATE_ANNOTATION]: JSON.stringify(shape.state) } : {}) };
  const owner = shape.owner ?? { apiVersion: 'apps/v1', kind: 'ReplicaSet', name: 'web-7d9c6b5f4' };
  const pod: Pod = {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: {
      name,
      generateName: 'web-7d9c6b5f4-',
      namespace,
      uid,
      resourceVersion: '48213',
      generation: shape.generation ?? 1,
      creationTimestamp: '2026-11-28T10:00:00Z',
      labels: { app: 'web', 'pod-template-hash': '7d9c6b5f4', ...(managed ? { [MANAGED_LABEL]: 'true' } : {}), ...shape.labels },
      ...(Object.keys(annotations).length > 0 ? { annotations } : {}),
      ownerReferences: [{ ...owner, uid: '5f0c8a52-3b1e-4d0e-9a57-0d7b1f1f2c11', controller: true, blockOwnerDeletion: true }],
      managedFields: managedFields({ ...shape, containers }),
    },
    spec: {
      volumes: [
        {
          name: 'kube-api-access-x7k2p',
          projected: {
            sources: [
              { serviceAccountToken: { expirationSeconds: 3607, path: 'token' } },
              { configMap: { name: 'kube-root-ca.crt', items: [{ key: 'ca.crt', path: 'ca.crt' }] } },
              { downwardAPI: { items: [{ path: 'namespace', fieldRef: { apiVersion: 'v1', fieldPath: 'metadata.namespace' } }] } },
            ],
            defaultMode: 420,
          },
        },
      ],
      ...(initContainers.length > 0 ? { initContainers: initContainers.map(container) } : {}),
      containers: containers.map(container),
      restartPolicy: 'Always',
      terminationGracePeriodSeconds: 30,
      dnsPolicy: 'ClusterFirst',
      serviceAccountName: 'default',
      serviceAccount: 'default',
      nodeName: 'node-a',
      securityContext: { runAsNonRoot: true },
      schedulerName: 'default-scheduler',
      tolerations: [
        { key: 'node.kubernetes.io/not-ready', operator: 'Exists', effect: 'NoExecute', tolerationSeconds: 300 },
        { key: 'node.kubernetes.io/unreachable', operator: 'Exists', effect: 'NoExecute', tolerationSeconds: 300 },
      ],
      ...(gates.length > 0 ? { readinessGates: gates.map((conditionType) => ({ conditionType })) } : {}),
      priority: 0,
      enableServiceLinks: true,
      preemptionPolicy: 'PreemptLowerPriority',
    },
  };
  if (shape.running ?? true) {
    pod.status = {
      observedGeneration: shape.generation ?? 1,
      phase: 'Running',
      conditions: [
        { type: 'PodReadyToStartContainers', status: 'True', lastProbeTime: null, lastTransitionTime: '2026-11-28T10:00:02Z' },
        { type: 'Initialized', status: 'True', lastProbeTime: null, lastTransitionTime: '2026-11-28T10:00:02Z' },
        { type: 'Ready', status: 'True', lastProbeTime: null, lastTransitionTime: '2026-11-28T10:00:06Z' },
        { type: 'ContainersReady', status: 'True', lastProbeTime: null, lastTransitionTime: '2026-11-28T10:00:06Z' },
        ...(gates.includes(READINESS_GATE) ? [{ type: READINESS_GATE, status: 'True' as const, lastProbeTime: null, lastTransitionTime: '2026-11-28T10:00:03Z' }] : []),
      ],
      hostIP: '172.18.0.3',
      hostIPs: [{ ip: '172.18.0.3' }],
      podIP: '10.244.1.17',
      podIPs: [{ ip: '10.244.1.17' }],
      startTime: '2026-11-28T10:00:00Z',
      ...(initContainers.length > 0 ? { initContainerStatuses: initContainers.map((c) => status(c, uid, name)) } : {}),
      containerStatuses: containers.map((c) => status(c, uid, name)),
      qosClass: 'Burstable',
    };
  }
  return pod;
}

/** The same pod with other images in its spec, as a client's update sends it. */
export function withSpecImages(pod: Pod, images: Record<string, string>): Pod {
  const set = (cs: Container[] | undefined) => cs?.map((c) => (c.name in images ? { ...c, image: images[c.name] } : c));
  const spec = { ...pod.spec, containers: set(pod.spec.containers) ?? [] };
  if (pod.spec.initContainers) spec.initContainers = set(pod.spec.initContainers) ?? [];
  return { ...pod, spec };
}

export const USER = { username: 'alice@example.com', groups: ['system:authenticated', 'platform-team'] };

export function createRequest(pod: Pod, extra: Partial<AdmissionRequest> = {}): AdmissionRequest<Pod> {
  const { metadata } = pod;
  return {
    uid: '705ab4f5-6393-11e8-b7cc-42010a800002',
    kind: { group: '', version: 'v1', kind: 'Pod' },
    resource: { group: '', version: 'v1', resource: 'pods' },
    requestKind: { group: '', version: 'v1', kind: 'Pod' },
    requestResource: { group: '', version: 'v1', resource: 'pods' },
    name: metadata.name ?? '',
    ...(metadata.namespace === undefined ? {} : { namespace: metadata.namespace }),
    operation: 'CREATE',
    userInfo: { username: 'system:serviceaccount:kube-system:replicaset-controller', uid: 'a7f2', groups: ['system:serviceaccounts', 'system:serviceaccounts:kube-system', 'system:authenticated'] },
    object: pod,
    oldObject: null,
    dryRun: false,
    options: { kind: 'CreateOptions', apiVersion: 'meta.k8s.io/v1' },
    ...extra,
  } as AdmissionRequest<Pod>;
}

export function updateRequest(old: Pod, pod: Pod, extra: Partial<AdmissionRequest> = {}): AdmissionRequest<Pod> {
  return createRequest(pod, {
    operation: 'UPDATE',
    oldObject: old,
    userInfo: USER,
    options: { kind: 'UpdateOptions', apiVersion: 'meta.k8s.io/v1', fieldManager: 'kubectl-set' },
    ...extra,
  });
}

export function review(request: AdmissionRequest): { apiVersion: string; kind: string; request: AdmissionRequest } {
  return { apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', request };
}
