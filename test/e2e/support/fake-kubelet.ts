// Failure shapes the hollow kubelet cannot produce (it never fails a pull or a
// container): a Node with no kubelet behind it, and pods bound to it whose
// statuses the test writes as a kubelet would.

import type { ContainerStatus, Pod } from '../../../src/core/kube-types.ts';
import { applyManifest, kubectl } from './kube.ts';
import { getPod, podManifest, type PodOptions } from './pods.ts';

export const FAKE_NODE = 'no-kubelet-0';

export async function ensureFakeNode(): Promise<void> {
  await applyManifest({
    apiVersion: 'v1',
    kind: 'Node',
    metadata: { name: FAKE_NODE, labels: { 'kubernetes.io/hostname': FAKE_NODE, 'inplace-gate.dev/test': 'no-kubelet' } },
    // Nothing schedules here by accident; the tests bind pods with spec.nodeName.
    spec: { taints: [{ key: 'inplace-gate.dev/no-kubelet', effect: 'NoSchedule' }] },
  });
}

export type ContainerShape =
  | { state: 'running'; ready: boolean; image: string; id: string; restartCount?: number; startedAt?: string }
  | { state: 'waiting'; reason: string; message?: string; image: string; id?: string; restartCount?: number };

function containerStatus(name: string, c: ContainerShape): ContainerStatus {
  return {
    name,
    image: c.image,
    imageID: `${c.image.split(':')[0] ?? c.image}@sha256:${Buffer.from(c.image).toString('hex').padEnd(64, '0').slice(0, 64)}`,
    ...(c.id ? { containerID: `containerd://${c.id}` } : {}),
    ready: c.state === 'running' && c.ready,
    started: c.state === 'running',
    restartCount: c.restartCount ?? 0,
    // Strategic merge keeps what a patch leaves out: the other states are cleared explicitly.
    state: (c.state === 'running'
      ? { running: { startedAt: c.startedAt ?? new Date().toISOString().replace(/\.\d+Z$/, 'Z') }, waiting: null, terminated: null }
      : { waiting: { reason: c.reason, ...(c.message ? { message: c.message } : {}) }, running: null, terminated: null }) as unknown as ContainerStatus['state'],
  };
}

/** Writes the pod's status as a kubelet would after acting on `observedGeneration`. */
export async function writeStatus(pod: Pod, observedGeneration: number, containers: Record<string, ContainerShape>, initContainers: Record<string, ContainerShape> = {}): Promise<void> {
  const ready = Object.values({ ...containers, ...initContainers }).every((c) => c.state === 'running' && c.ready);
  const now = new Date().toISOString().replace(/\.\d+Z$/, 'Z');
  const cond = (type: string, status: boolean) => ({ type, status: status ? 'True' : 'False', lastProbeTime: null, lastTransitionTime: now, observedGeneration });
  const status = {
    phase: 'Running',
    observedGeneration,
    hostIP: '127.0.0.1',
    podIP: '127.0.0.1',
    startTime: now,
    conditions: [cond('PodScheduled', true), cond('Initialized', true), cond('ContainersReady', ready)],
    containerStatuses: Object.entries(containers).map(([n, c]) => containerStatus(n, c)),
    ...(Object.keys(initContainers).length > 0 ? { initContainerStatuses: Object.entries(initContainers).map(([n, c]) => containerStatus(n, c)) } : {}),
  };
  // A strategic merge, as the kubelet's: conditions by type and statuses by name, the watcher's condition kept.
  await kubectl(['-n', pod.metadata.namespace ?? '', 'patch', 'pod', pod.metadata.name ?? '', '--subresource=status', '--type=strategic', '-p', JSON.stringify({ status })]);
}

/** A pod bound to the kubelet-less node, its containers written as running and ready. */
export async function runningOnFakeNode(namespace: string, name: string, opts: PodOptions = {}): Promise<void> {
  const manifest = podManifest(name, namespace, { ...opts, nodeName: FAKE_NODE });
  await applyManifest({ ...manifest, spec: { ...manifest.spec, tolerations: [{ key: 'inplace-gate.dev/no-kubelet', operator: 'Exists' }] } });
  const pod = await getPod(namespace, name);
  const running = (c: { name: string; image?: string }) => [c.name, { state: 'running', ready: true, image: c.image ?? '', id: `${name}-${c.name}-1`, restartCount: 0 }] as const;
  await writeStatus(pod, pod.metadata.generation ?? 1, Object.fromEntries(pod.spec.containers.map(running)), Object.fromEntries((pod.spec.initContainers ?? []).map(running)));
}
