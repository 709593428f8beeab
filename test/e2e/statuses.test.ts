// Shapes the hollow kubelet never produces, on a Node with no kubelet: the
// test writes the statuses a kubelet would (pull failures, crash loops, no
// progress, native sidecars, a change while Updating) and checks the watcher.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Pod } from '../../src/core/kube-types.ts';
import { READINESS_GATE } from '../../src/core/names.ts';
import { ensureFakeNode, runningOnFakeNode, writeStatus, type ContainerShape } from './support/fake-kubelet.ts';
import { createNamespace, eventually, kubectl } from './support/kube.ts';
import { IMAGE, IMAGE_2, IMAGE_3, conditionOf, getPod, phaseIs, podManifest, stateOf } from './support/pods.ts';
import { startLeadingWatcher, type WatcherProcess } from './support/watcher.ts';

const NS = `e2e-statuses-${Date.now().toString(36)}`;
const PROGRESS_DEADLINE_S = 6;
let watcher: WatcherProcess;

beforeAll(async () => {
  await ensureFakeNode();
  await createNamespace(NS, { 'inplace-gate.dev/enabled': 'true' });
  watcher = await startLeadingWatcher(['--progress-deadline-seconds', String(PROGRESS_DEADLINE_S)]);
});

afterAll(async () => {
  await watcher.stop();
  await kubectl(['delete', 'namespace', NS, '--wait=false']);
});

const running = (image: string, id: string, restartCount = 0): ContainerShape => ({ state: 'running', ready: true, image, id, restartCount });

function gate(name: string, status: 'True' | 'False', timeoutMs = 20_000): Promise<Pod> {
  return eventually(`${name}: ${READINESS_GATE}=${status}`, async () => {
    const pod = await getPod(NS, name);
    return conditionOf(pod, READINESS_GATE) === status ? pod : undefined;
  }, timeoutMs);
}

/** A pod bound to the kubelet-less node, running and admitted (condition True). */
async function runningPod(name: string, opts: Parameters<typeof podManifest>[2] = {}): Promise<Pod> {
  await runningOnFakeNode(NS, name, opts);
  return gate(name, 'True');
}

async function events(name: string): Promise<string[]> {
  const out = await kubectl(['-n', NS, 'get', 'events.events.k8s.io', '--field-selector', `regarding.name=${name}`, '-o', 'jsonpath={range .items[*]}{.type}/{.reason}{"\\n"}{end}']);
  return out.split('\n').filter(Boolean);
}

describe('failures are loud, and a rollback recovers', () => {
  it.each<[string, ContainerShape]>([
    ['ErrImagePull', { state: 'waiting', reason: 'ErrImagePull', message: 'manifest unknown', image: IMAGE_2 }],
    ['ImagePullBackOff', { state: 'waiting', reason: 'ImagePullBackOff', message: 'Back-off pulling image', image: IMAGE_2 }],
    ['CrashLoopBackOff', { state: 'waiting', reason: 'CrashLoopBackOff', message: 'back-off 10s restarting failed container', image: IMAGE_2, id: 'x-2', restartCount: 2 }],
  ])('%s: Stalled, Warning event, condition stays False; rolling back completes', async (reason, failing) => {
    const name = `fail-${reason.toLowerCase()}`;
    await runningPod(name);
    await kubectl(['-n', NS, 'set', 'image', `pod/${name}`, `app=${IMAGE_2}`]);
    const updating = await phaseIs(NS, name, 'Updating');
    expect(updating.spec.containers[0]!.image).toBe(IMAGE_2);
    await writeStatus(updating, updating.metadata.generation!, { app: failing });

    const stalled = await phaseIs(NS, name, 'Stalled');
    expect(stateOf(stalled)?.stalled?.reason).toBe(reason);
    expect(conditionOf(stalled, READINESS_GATE)).toBe('False');
    await eventually('the Warning event', async () => ((await events(name)).includes('Warning/InPlaceUpdateStalled') ? true : undefined));

    // The rollback: a new request while Stalled, no new drain, written at once.
    await kubectl(['-n', NS, 'set', 'image', `pod/${name}`, `app=${IMAGE}`]);
    const back = await eventually('the rollback written', async () => {
      const p = await getPod(NS, name);
      return stateOf(p)?.phase === 'Updating' && p.spec.containers[0]!.image === IMAGE ? p : undefined;
    });
    expect(conditionOf(back, READINESS_GATE)).toBe('False');
    await writeStatus(back, back.metadata.generation!, { app: running(IMAGE, `${name}-app-3`, 1) });
    const done = await gate(name, 'True');
    expect(stateOf(done)).toBeUndefined();
  });

  it('no progress before the deadline: Stalled with ProgressDeadlineExceeded', async () => {
    await runningPod('slow');
    await kubectl(['-n', NS, 'set', 'image', 'pod/slow', `app=${IMAGE_2}`]);
    await phaseIs(NS, 'slow', 'Updating');
    const stalled = await phaseIs(NS, 'slow', 'Stalled', (PROGRESS_DEADLINE_S + 10) * 1000);
    expect(stateOf(stalled)?.stalled?.reason).toBe('ProgressDeadlineExceeded');
    expect(conditionOf(stalled, READINESS_GATE)).toBe('False');
  });

  it("an old container's crash loop does not stall the update that replaces it", async () => {
    await runningPod('fixme');
    const pod = await getPod(NS, 'fixme');
    await writeStatus(pod, 1, { app: { state: 'waiting', reason: 'CrashLoopBackOff', image: IMAGE, id: 'fixme-app-1', restartCount: 5 } });
    await kubectl(['-n', NS, 'set', 'image', 'pod/fixme', `app=${IMAGE_2}`]);
    const updating = await phaseIs(NS, 'fixme', 'Updating');
    await new Promise((r) => setTimeout(r, 1000));
    expect(stateOf(await getPod(NS, 'fixme'))?.phase).toBe('Updating');
    await writeStatus(updating, updating.metadata.generation!, { app: running(IMAGE_2, 'fixme-app-2', 6) });
    await gate('fixme', 'True');
  });
});

// The kubelet publishes the new observedGeneration in its first status after it receives the spec,
// before it acts, with the old container statuses as they are.
describe("the kubelet's first status for the new generation", () => {
  it('the old container crash-looping there is no failed new one: still Updating, then done on the new container', async () => {
    await runningPod('first-crash');
    await kubectl(['-n', NS, 'set', 'image', 'pod/first-crash', `app=${IMAGE_2}`]);
    const updating = await phaseIs(NS, 'first-crash', 'Updating');
    const gen = updating.metadata.generation!;
    await writeStatus(updating, gen, { app: { state: 'waiting', reason: 'CrashLoopBackOff', message: 'back-off 40s restarting failed container=app', image: IMAGE, id: 'first-crash-app-2', restartCount: 6 } });
    await new Promise((r) => setTimeout(r, 1500));
    const still = await getPod(NS, 'first-crash');
    expect(stateOf(still)?.phase).toBe('Updating');
    expect(conditionOf(still, READINESS_GATE)).toBe('False');
    await writeStatus(updating, gen, { app: running(IMAGE_2, 'first-crash-app-3', 7) });
    await gate('first-crash', 'True');
  });

  it('the old container restarted on its own before the write, running and ready there, is not done', async () => {
    const started = new Date(Date.now() - 60_000).toISOString().replace(/\.\d+Z$/, 'Z');
    await runningPod('first-restart');
    await kubectl(['-n', NS, 'set', 'image', 'pod/first-restart', `app=${IMAGE_2}`]);
    const updating = await phaseIs(NS, 'first-restart', 'Updating');
    const gen = updating.metadata.generation!;
    await writeStatus(updating, gen, { app: { state: 'running', ready: true, image: IMAGE, id: 'first-restart-app-2', restartCount: 1, startedAt: started } });
    await new Promise((r) => setTimeout(r, 1500));
    const still = await getPod(NS, 'first-restart');
    expect(stateOf(still)?.phase).toBe('Updating');
    expect(conditionOf(still, READINESS_GATE)).toBe('False');
    await writeStatus(updating, gen, { app: running(IMAGE_2, 'first-restart-app-3', 2) });
    await gate('first-restart', 'True');
  });
});

describe('proof of completion', () => {
  it('waits for the new container, running and ready, at the written generation', async () => {
    await runningPod('proof');
    await kubectl(['-n', NS, 'set', 'image', 'pod/proof', `app=${IMAGE_2}`]);
    const updating = await phaseIs(NS, 'proof', 'Updating');
    const gen = updating.metadata.generation!;
    // The kubelet has not acted yet: old container, old generation.
    await writeStatus(updating, gen - 1, { app: running(IMAGE, 'proof-app-1') });
    // Restarted but not ready yet.
    await writeStatus(updating, gen, { app: { state: 'running', ready: false, image: IMAGE_2, id: 'proof-app-2', restartCount: 1 } });
    await new Promise((r) => setTimeout(r, 1000));
    expect(conditionOf(await getPod(NS, 'proof'), READINESS_GATE)).toBe('False');
    await writeStatus(updating, gen, { app: running(IMAGE_2, 'proof-app-2', 1) });
    await gate('proof', 'True');
  });

  it('a second change while Updating starts over without a new drain', async () => {
    await runningPod('twice');
    await kubectl(['-n', NS, 'set', 'image', 'pod/twice', `app=${IMAGE_2}`]);
    await phaseIs(NS, 'twice', 'Updating');
    await kubectl(['-n', NS, 'set', 'image', 'pod/twice', `app=${IMAGE_3}`]);
    const again = await eventually('IMAGE_3 written', async () => {
      const p = await getPod(NS, 'twice');
      return stateOf(p)?.phase === 'Updating' && p.spec.containers[0]!.image === IMAGE_3 ? p : undefined;
    }, 5_000);
    expect(stateOf(again)?.drainSeconds).toBeUndefined();
    await writeStatus(again, again.metadata.generation!, { app: running(IMAGE_3, 'twice-app-3', 1) });
    await gate('twice', 'True');
  });

  it('a native sidecar is proven like a container', async () => {
    await runningPod('native', { nativeSidecars: [{ name: 'log', image: IMAGE }] });
    await kubectl(['-n', NS, 'set', 'image', 'pod/native', `log=${IMAGE_2}`]);
    const updating = await phaseIs(NS, 'native', 'Updating');
    expect(updating.spec.initContainers?.[0]?.image).toBe(IMAGE_2);
    await writeStatus(updating, updating.metadata.generation!, { app: running(IMAGE, 'native-app-1') }, { log: running(IMAGE_2, 'native-log-2', 1) });
    await gate('native', 'True');
  });
});
