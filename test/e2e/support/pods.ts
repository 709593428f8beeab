// Pod shapes for hollow nodes (exec probes only, no ordinary init containers)
// and readers for what the tests check.

import type { ContainerStatus, Pod } from '../../../src/core/kube-types.ts';
import { READINESS_GATE, UPDATE_ANNOTATION } from '../../../src/core/names.ts';
import { parseUpdateState, type UpdateState } from '../../../src/core/state.ts';
import { eventually, kubectlJson } from './kube.ts';

export const IMAGE = 'registry.k8s.io/pause:3.10';
export const IMAGE_2 = 'registry.k8s.io/pause:3.10.1';
export const IMAGE_3 = 'registry.k8s.io/pause:3.9';

export interface PodOptions {
  containers?: { name: string; image: string }[];
  nativeSidecars?: { name: string; image: string }[];
  labels?: Record<string, string>;
  nodeName?: string;
  annotations?: Record<string, string>;
}

export function podManifest(name: string, namespace: string, o: PodOptions = {}) {
  const probe = { exec: { command: ['true'] }, periodSeconds: 1 };
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name, namespace, labels: { app: name, ...o.labels }, ...(o.annotations ? { annotations: o.annotations } : {}) },
    spec: {
      terminationGracePeriodSeconds: 1,
      ...(o.nodeName ? { nodeName: o.nodeName } : {}),
      ...(o.nativeSidecars ? { initContainers: o.nativeSidecars.map((c) => ({ ...c, restartPolicy: 'Always' })) } : {}),
      containers: (o.containers ?? [{ name: 'app', image: IMAGE }]).map((c) => ({ ...c, readinessProbe: probe })),
    },
  };
}

export const getPod = (namespace: string, name: string) => kubectlJson<Pod>(['-n', namespace, 'get', 'pod', name]);

export function conditionOf(pod: Pod, type: string): string | undefined {
  return pod.status?.conditions?.find((c) => c.type === type)?.status;
}

export function stateOf(pod: Pod): UpdateState | undefined {
  const parsed = parseUpdateState(pod.metadata.annotations?.[UPDATE_ANNOTATION]);
  if (!parsed.ok) throw new Error(parsed.error);
  return parsed.state;
}

export function statusOf(pod: Pod, name: string): ContainerStatus | undefined {
  return [...(pod.status?.containerStatuses ?? []), ...(pod.status?.initContainerStatuses ?? [])].find((s) => s.name === name);
}

/**
 * Waits until the pod is Ready with the gate True, no update in progress, and
 * every container running (the hollow kubelet reports Ready before its fake
 * containers have started).
 */
export function settled(namespace: string, name: string, timeoutMs = 60_000): Promise<Pod> {
  return eventually(`${namespace}/${name} ready and settled`, async () => {
    const pod = await getPod(namespace, name);
    const running = (pod.status?.containerStatuses ?? []).every((s) => s.state?.running !== undefined && s.containerID);
    return running && conditionOf(pod, READINESS_GATE) === 'True' && conditionOf(pod, 'Ready') === 'True' && stateOf(pod) === undefined ? pod : undefined;
  }, timeoutMs);
}

export function phaseIs(namespace: string, name: string, phase: UpdateState['phase'], timeoutMs = 30_000): Promise<Pod> {
  return eventually(`${namespace}/${name} in ${phase}`, async () => {
    const pod = await getPod(namespace, name);
    return stateOf(pod)?.phase === phase ? pod : undefined;
  }, timeoutMs);
}
