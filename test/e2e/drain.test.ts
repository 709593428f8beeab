// Drain confirmed, not assumed (issue 17), on the real control plane: the
// image write waits for the EndpointSlices to stop listing the pod ready, not
// just for the grace period. The EndpointSlice controller is slowed by pausing
// the kube-controller-manager (SIGSTOP); a second Service's slice is written
// by the test itself, so that it can lag on purpose.

import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Pod } from '../../src/core/kube-types.ts';
import { READINESS_GATE } from '../../src/core/names.ts';
import { freePort } from '../support/ports.ts';
import { applyManifest, context, createNamespace, eventually, kubectl, kubectlJson } from './support/kube.ts';
import { IMAGE, IMAGE_2, conditionOf, getPod, phaseIs, podManifest, settled, stateOf } from './support/pods.ts';
import { record, type Recorder } from './support/recorder.ts';
import { startLeadingWatcher, type WatcherProcess } from './support/watcher.ts';

const NS = `e2e-drain-${Date.now().toString(36)}`;
const DRAIN_DEADLINE_S = 15;
let watcher: WatcherProcess;
let metricsUrl: string;
let pods: Recorder<Pod>;

interface Endpoint { conditions?: { ready?: boolean }; targetRef?: { kind?: string; name?: string; uid?: string } }
interface Slice { metadata: { name: string; labels?: Record<string, string> }; endpoints?: Endpoint[] | null }
let slices: Recorder<Slice>;

beforeAll(async () => {
  await createNamespace(NS, { 'inplace-gate.dev/enabled': 'true' });
  const port = await freePort();
  metricsUrl = `http://127.0.0.1:${port}/metrics`;
  watcher = await startLeadingWatcher(['--drain-deadline-seconds', String(DRAIN_DEADLINE_S), '--health-port', String(port)]);
  pods = await record(`/api/v1/namespaces/${NS}/pods`);
  slices = await record<Slice>(`/apis/discovery.k8s.io/v1/namespaces/${NS}/endpointslices`);
});

afterAll(async () => {
  await controllerManager('SIGCONT').catch(() => undefined);
  pods.stop();
  slices.stop();
  await watcher.stop();
  await kubectl(['delete', 'namespace', NS, '--wait=false']);
});

/** Pauses or resumes the cluster's kube-controller-manager (its own process group, as cluster.sh starts it). */
async function controllerManager(signal: 'SIGSTOP' | 'SIGCONT'): Promise<void> {
  const pid = Number((await readFile(join(context().clusterDir, 'pids', 'kube-controller-manager.pid'), 'utf8')).trim());
  process.kill(-pid, signal);
}

const seenOf = (name: string) => pods.seen.filter((s) => s.object.metadata.name === name);
const firstAt = (name: string, pred: (p: Pod) => boolean) => seenOf(name).find((s) => pred(s.object))?.at;
const written = (p: Pod) => p.spec.containers[0]?.image === IMAGE_2;
const readyIn = (pod: string, s: Slice) => s.endpoints?.find((e) => e.targetRef?.name === pod)?.conditions?.ready;
/** When a slice of `service` first showed `pod` not ready after `since`. */
const sliceDroppedAt = (service: string, pod: string, since: number) =>
  slices.seen.find((s) => s.at >= since && s.object.metadata.labels?.['kubernetes.io/service-name'] === service && readyIn(pod, s.object) === false)?.at;

async function listedReady(service: string, pod: string): Promise<boolean | undefined> {
  const list = await kubectlJson<{ items: Slice[] }>(['-n', NS, 'get', 'endpointslices', '-l', `kubernetes.io/service-name=${service}`]);
  return list.items.map((s) => readyIn(pod, s)).find((r) => r !== undefined);
}

const service = (name: string, selector?: Record<string, string>, extra: Record<string, unknown> = {}) =>
  applyManifest({ apiVersion: 'v1', kind: 'Service', metadata: { name, namespace: NS }, spec: { ...(selector ? { selector } : {}), ports: [{ port: 80 }], ...extra } });

/** A slice for a Service without a selector, written as a controller of one's own would (mirrors, meshes, operators). */
function ownSlice(name: string, svc: string, pod: Pod, ready: boolean) {
  return applyManifest({
    apiVersion: 'discovery.k8s.io/v1',
    kind: 'EndpointSlice',
    metadata: { name, namespace: NS, labels: { 'kubernetes.io/service-name': svc, 'endpointslice.kubernetes.io/managed-by': 'e2e.inplace-gate.dev' } },
    addressType: 'IPv4',
    ports: [{ name: '', port: 80, protocol: 'TCP' }],
    endpoints: [{ addresses: [pod.status?.podIP ?? '192.168.192.168'], conditions: { ready, serving: ready, terminating: false }, targetRef: { kind: 'Pod', namespace: NS, name: pod.metadata.name, uid: pod.metadata.uid } }],
  });
}

/** A sample of the watcher's /metrics, by its full name. */
async function metric(name: string): Promise<number> {
  const line = (await (await fetch(metricsUrl)).text()).split('\n').find((l) => l.startsWith(`${name} `));
  return Number(line?.split(' ')[1] ?? NaN);
}

const graceZero = { 'inplace-gate.dev/grace-period-seconds': '0' };
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('the image write waits for the EndpointSlices', () => {
  it('a paused EndpointSlice controller holds the write until the slice shows the pod not ready', async () => {
    await service('held', { app: 'held' });
    await applyManifest(podManifest('held', NS, { annotations: graceZero }));
    await settled(NS, 'held');
    await eventually('held listed ready', async () => ((await listedReady('held', 'held')) === true ? true : undefined));

    await controllerManager('SIGSTOP');
    let resumedAt: number;
    try {
      const requested = Date.now();
      await kubectl(['-n', NS, 'set', 'image', 'pod/held', `app=${IMAGE_2}`]);
      await eventually('the gate False', async () => (conditionOf(await getPod(NS, 'held'), READINESS_GATE) === 'False' ? true : undefined));
      // Grace 0 is long over; the kubelet publishes Ready False, but no controller updates the slice.
      await sleep(4000);
      const held = await getPod(NS, 'held');
      expect(held.spec.containers[0]!.image).toBe(IMAGE);
      expect(stateOf(held)?.phase).toBe('Draining');
      expect(await listedReady('held', 'held')).toBe(true);
      expect(sliceDroppedAt('held', 'held', requested)).toBeUndefined();
    } finally {
      resumedAt = Date.now();
      await controllerManager('SIGCONT');
    }
    const after = await settled(NS, 'held');
    expect(after.spec.containers[0]!.image).toBe(IMAGE_2);
    const droppedAt = sliceDroppedAt('held', 'held', resumedAt);
    const writtenAt = firstAt('held', written);
    expect(droppedAt).toBeDefined();
    expect(writtenAt).toBeGreaterThan(droppedAt!);
    // Once the slice said so, the write followed at once (no grace period left to wait).
    expect(writtenAt! - droppedAt!).toBeLessThan(2000);
    // The watcher's own account: the real drain took the pause (4 s and more), the margin after it little.
    expect(await metric('inplace_gate_drain_endpoints_seconds_count')).toBe(1);
    expect(await metric('inplace_gate_drain_endpoints_seconds_sum')).toBeGreaterThanOrEqual(4);
    expect(await metric('inplace_gate_drain_margin_seconds_sum')).toBeLessThan(2);
  });

  it('a pod no Service selects is written after the grace period alone', async () => {
    await applyManifest(podManifest('alone', NS, { annotations: { 'inplace-gate.dev/grace-period-seconds': '1' } }));
    await settled(NS, 'alone');
    await kubectl(['-n', NS, 'set', 'image', 'pod/alone', `app=${IMAGE_2}`]);
    await settled(NS, 'alone');
    const falseAt = firstAt('alone', (p) => conditionOf(p, READINESS_GATE) === 'False')!;
    const writtenAt = firstAt('alone', written)!;
    expect(writtenAt - falseAt).toBeGreaterThanOrEqual(1000 - 250);
    expect(writtenAt - falseAt).toBeLessThan(3000);
  });

  it('a pod in two Services waits for both slices', async () => {
    await service('both-a', { app: 'both' });
    await service('both-b');
    await applyManifest(podManifest('both', NS, { annotations: graceZero }));
    const pod = await settled(NS, 'both');
    await ownSlice('both-b-1', 'both-b', pod, true);
    await eventually('both listed ready by both-a', async () => ((await listedReady('both-a', 'both')) === true ? true : undefined));

    const requested = Date.now();
    await kubectl(['-n', NS, 'set', 'image', 'pod/both', `app=${IMAGE_2}`]);
    // The controller's slice drops the pod; the other Service's still lists it.
    await eventually('both-a drops the pod', async () => ((await listedReady('both-a', 'both')) === false ? true : undefined), 30_000);
    await sleep(3000);
    const waiting = await getPod(NS, 'both');
    expect(waiting.spec.containers[0]!.image).toBe(IMAGE);
    expect(stateOf(waiting)?.phase).toBe('Draining');

    const releasedAt = Date.now();
    await ownSlice('both-b-1', 'both-b', pod, false);
    const after = await settled(NS, 'both');
    expect(after.spec.containers[0]!.image).toBe(IMAGE_2);
    const writtenAt = firstAt('both', written)!;
    expect(writtenAt).toBeGreaterThan(sliceDroppedAt('both-a', 'both', requested)!);
    expect(writtenAt).toBeGreaterThanOrEqual(releasedAt);
  });

  it('a Service that publishes not-ready addresses does not hold the drain', async () => {
    await service('peers', { app: 'peer' }, { clusterIP: 'None', publishNotReadyAddresses: true });
    await applyManifest(podManifest('peer', NS, { annotations: graceZero }));
    await settled(NS, 'peer');
    await eventually('peer listed by peers', async () => ((await listedReady('peers', 'peer')) === true ? true : undefined));
    await kubectl(['-n', NS, 'set', 'image', 'pod/peer', `app=${IMAGE_2}`]);
    const after = await settled(NS, 'peer');
    expect(after.spec.containers[0]!.image).toBe(IMAGE_2);
    // Listed ready throughout, as the endpoint controller does for such Services; never Stalled.
    expect(await listedReady('peers', 'peer')).toBe(true);
    expect(seenOf('peer').some((s) => stateOf(s.object)?.phase === 'Stalled')).toBe(false);
    const falseAt = firstAt('peer', (p) => conditionOf(p, READINESS_GATE) === 'False')!;
    expect(firstAt('peer', written)! - falseAt).toBeLessThan(DRAIN_DEADLINE_S * 1000);
  });
});

describe('the drain deadline', () => {
  it('past it the pod is Stalled with its images not written, and goes on once the slice drops it', async () => {
    await service('stuck');
    await applyManifest(podManifest('stuck', NS, { annotations: graceZero }));
    const pod = await settled(NS, 'stuck');
    await ownSlice('stuck-1', 'stuck', pod, true);
    await sleep(500); // the watcher sees the slice before the request
    const requested = Date.now();
    await kubectl(['-n', NS, 'set', 'image', 'pod/stuck', `app=${IMAGE_2}`]);
    const stalled = await phaseIs(NS, 'stuck', 'Stalled', (DRAIN_DEADLINE_S + 10) * 1000);
    expect(Date.now() - requested).toBeGreaterThanOrEqual(DRAIN_DEADLINE_S * 1000 - 500);
    expect(stalled.spec.containers[0]!.image).toBe(IMAGE);
    expect(stateOf(stalled)?.stalled).toMatchObject({ reason: 'DrainDeadlineExceeded', message: expect.stringContaining(`EndpointSlice ${NS}/stuck-1 (Service stuck)`) as unknown });
    expect(conditionOf(stalled, READINESS_GATE)).toBe('False');
    expect(seenOf('stuck').some((s) => written(s.object))).toBe(false);
    const events = await eventually('the Warning event', async () => {
      const out = await kubectl(['-n', NS, 'get', 'events.events.k8s.io', '--field-selector', 'regarding.name=stuck,type=Warning', '-o', 'jsonpath={range .items[*]}{.reason}: {.note}{"\\n"}{end}']);
      return out.includes('InPlaceUpdateStalled') ? out : undefined;
    });
    expect(events).toContain('drain not confirmed');

    await ownSlice('stuck-1', 'stuck', pod, false);
    const after = await settled(NS, 'stuck');
    expect(after.spec.containers[0]!.image).toBe(IMAGE_2);
  });
});
