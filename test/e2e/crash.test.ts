// Nothing lost on a crash: the watcher SIGKILLed in each phase and started
// again; and two replicas, where the standby takes over when the leader dies.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Pod } from '../../src/core/kube-types.ts';
import { READINESS_GATE } from '../../src/core/names.ts';
import { FAKE_NODE, ensureFakeNode, writeStatus } from './support/fake-kubelet.ts';
import { applyManifest, createNamespace, eventually, kubectl } from './support/kube.ts';
import { IMAGE, IMAGE_2, conditionOf, getPod, phaseIs, podManifest, settled, stateOf } from './support/pods.ts';
import { startLeadingWatcher, startWatcher, type WatcherProcess } from './support/watcher.ts';

const NS = `e2e-crash-${Date.now().toString(36)}`;
const LEASE = ['--lease-duration-seconds', '6', '--renew-deadline-seconds', '4', '--retry-period-seconds', '1'];
const running: WatcherProcess[] = [];

/** The one watcher of a test: any earlier one is stopped first (and hands over its lease). */
async function watcher(extra: string[] = []): Promise<WatcherProcess> {
  for (const old of running.splice(0)) await old.stop();
  const w = await startLeadingWatcher([...LEASE, ...extra]);
  running.push(w);
  return w;
}

beforeAll(async () => {
  await ensureFakeNode();
  await createNamespace(NS, { 'inplace-gate.dev/enabled': 'true' });
});

afterAll(async () => {
  for (const w of running) await w.stop();
  await kubectl(['delete', 'namespace', NS, '--wait=false']);
});

describe('the watcher SIGKILLed in each phase, then started again', () => {
  it('a new pod created while no watcher runs waits NotReady, then becomes Ready', async () => {
    const w = await watcher();
    await w.stop('SIGKILL');
    running.splice(0);
    await applyManifest(podManifest('born-alone', NS));
    await new Promise((r) => setTimeout(r, 3000));
    const waiting = await getPod(NS, 'born-alone');
    expect(conditionOf(waiting, READINESS_GATE)).toBeUndefined();
    expect(conditionOf(waiting, 'Ready')).not.toBe('True');
    await watcher();
    await settled(NS, 'born-alone');
  });

  it('killed with a request Pending: the restarted watcher drains and completes it', async () => {
    await applyManifest(podManifest('pending', NS));
    const w = await watcher();
    await settled(NS, 'pending');
    await w.stop('SIGKILL');
    running.splice(0);
    await kubectl(['-n', NS, 'set', 'image', 'pod/pending', `app=${IMAGE_2}`]);
    expect(stateOf(await getPod(NS, 'pending'))?.phase).toBe('Pending');
    await watcher();
    const done = await settled(NS, 'pending');
    expect(done.spec.containers[0]!.image).toBe(IMAGE_2);
  });

  it('killed while Draining: the deadline in the annotation is honoured after the restart', async () => {
    // The grace period must outlast the takeover (up to one lease duration after the kill): with a
    // shorter one, a restarted watcher that ignored the deadline would still write after it.
    const GRACE_SECONDS = 20;
    await applyManifest(podManifest('draining', NS));
    const w = await watcher(['--grace-period-seconds', String(GRACE_SECONDS)]);
    await settled(NS, 'draining');
    await kubectl(['-n', NS, 'set', 'image', 'pod/draining', `app=${IMAGE_2}`]);
    const draining = await phaseIs(NS, 'draining', 'Draining');
    const recorded = stateOf(draining)!.drainDeadline!;
    await w.stop('SIGKILL');
    running.splice(0);
    // Restarted with the default grace period (2 s): only the annotation knows the deadline.
    const restarted = await watcher();
    const deadline = Date.parse(recorded);
    const ledAt = (await restarted.ledAt())!;
    // The restarted watcher leads well before the deadline, so writing early is possible here.
    expect(deadline - ledAt).toBeGreaterThan(5000);
    const written = await eventually('the image written', async () => {
      const p = await getPod(NS, 'draining');
      return p.spec.containers[0]!.image === IMAGE_2 ? Date.now() : undefined;
    }, GRACE_SECONDS * 1000 + 30_000, 100);
    // Not before the recorded deadline (clock skew between processes is nil here), and not
    // a drain started over: soon after it, with the deadline it had before the kill.
    expect(written).toBeGreaterThanOrEqual(deadline);
    expect(written - deadline).toBeLessThan(5000);
    await settled(NS, 'draining');
  });

  it('killed while Updating: the restarted watcher proves the restart from the recorded baseline', async () => {
    const w = await watcher();
    const manifest = podManifest('updating', NS, { nodeName: FAKE_NODE });
    await applyManifest({ ...manifest, spec: { ...manifest.spec, tolerations: [{ key: 'inplace-gate.dev/no-kubelet', operator: 'Exists' }] } });
    const fresh = await getPod(NS, 'updating');
    await writeStatus(fresh, 1, { app: { state: 'running', ready: true, image: IMAGE, id: 'updating-app-1' } });
    await eventually('admitted', async () => (conditionOf(await getPod(NS, 'updating'), READINESS_GATE) === 'True' ? true : undefined));
    await kubectl(['-n', NS, 'set', 'image', 'pod/updating', `app=${IMAGE_2}`]);
    const updating = await phaseIs(NS, 'updating', 'Updating');
    await w.stop('SIGKILL');
    running.splice(0);
    await writeStatus(updating, updating.metadata.generation!, { app: { state: 'running', ready: true, image: IMAGE_2, id: 'updating-app-2', restartCount: 1 } });
    await watcher();
    await eventually('done', async () => {
      const p = await getPod(NS, 'updating');
      return conditionOf(p, READINESS_GATE) === 'True' && stateOf(p) === undefined ? p : undefined;
    });
  });
});

describe('two replicas', () => {
  it('the standby takes over within seconds when the leader is SIGKILLed', async () => {
    for (const w of running.splice(0)) await w.stop();
    await applyManifest(podManifest('failover', NS));
    const a = await startLeadingWatcher(LEASE);
    const b = await startWatcher(LEASE);
    running.push(a, b);
    await settled(NS, 'failover');
    await new Promise((r) => setTimeout(r, 1500)); // b is a warm standby by now
    expect(await b.ledAt()).toBeUndefined();

    const killedAt = Date.now();
    await a.stop('SIGKILL');
    await kubectl(['-n', NS, 'set', 'image', 'pod/failover', `app=${IMAGE_2}`]);
    const ledAt = await eventually('the standby to lead', () => b.ledAt(), 30_000, 100);
    const actedAt = await eventually('the standby to drain the pod', async () => {
      const p: Pod = await getPod(NS, 'failover');
      return conditionOf(p, READINESS_GATE) === 'False' ? Date.now() : undefined;
    }, 30_000, 100);
    console.log(`failover: standby led ${((ledAt - killedAt) / 1000).toFixed(1)}s after SIGKILL, drained the pod ${((actedAt - killedAt) / 1000).toFixed(1)}s after (lease 6s, retry 1s)`);
    // At most one lease duration plus a retry period, and a little for the process.
    expect(ledAt - killedAt).toBeLessThan(6000 + 1000 + 2000);
    await settled(NS, 'failover');
  });

  it('a leader stopped on purpose hands over in about one retry period', async () => {
    // The survivor of the test above leads; a fresh standby joins, then the leader stops.
    const leader = running.find((w) => w.child.exitCode === null && w.child.signalCode === null)!;
    const standby = await startWatcher(LEASE);
    running.push(standby);
    await new Promise((r) => setTimeout(r, 2000));
    expect(await standby.ledAt()).toBeUndefined();
    const stoppedAt = Date.now();
    await leader.stop('SIGTERM');
    const ledAt = await eventually('the standby to lead', () => standby.ledAt(), 30_000, 100);
    console.log(`handover: standby led ${((ledAt - stoppedAt) / 1000).toFixed(1)}s after SIGTERM`);
    expect(ledAt - stoppedAt).toBeLessThan(3000);
    await applyManifest(podManifest('after-handover', NS));
    await settled(NS, 'after-handover');
  });
});
