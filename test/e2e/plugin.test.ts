// `kubectl inplace-gate status` and `rollout status`, found and run by the
// real kubectl as a plugin (bin/ on PATH), against the real control plane: a
// pod stalled on an ImagePullBackOff (written on the kubelet-less node), a
// StatefulSet rollout held by its partition annotation, and one stalled.

import { execFile } from 'node:child_process';
import { resolve } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FAKE_NODE, ensureFakeNode, runningOnFakeNode, writeStatus } from './support/fake-kubelet.ts';
import { applyManifest, context, createNamespace, eventually, kubectl, kubectlJson } from './support/kube.ts';
import type { Pod } from '../../src/core/kube-types.ts';
import { IMAGE, IMAGE_2, conditionOf, getPod, phaseIs, podManifest, settled, stateOf } from './support/pods.ts';
import { startLeadingWatcher, type WatcherProcess } from './support/watcher.ts';

const run = promisify(execFile);
const repo = resolve(import.meta.dirname, '../..');
const NS = `e2e-plugin-${Date.now().toString(36)}`;
let watcher: WatcherProcess;

beforeAll(async () => {
  await ensureFakeNode();
  await createNamespace(NS, { 'inplace-gate.dev/enabled': 'true' });
  watcher = await startLeadingWatcher();
});

afterAll(async () => {
  await watcher.stop();
  await kubectl(['delete', 'namespace', NS, '--wait=false']);
});

/** `kubectl inplace-gate ...` as a user types it: kubectl finds bin/kubectl-inplace_gate on PATH. */
async function plugin(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const { kubectl: bin, kubeconfig } = context();
  const env = { ...process.env, KUBECONFIG: kubeconfig, PATH: `${resolve(repo, 'bin')}:${process.env.PATH ?? ''}` };
  try {
    const { stdout, stderr } = await run(bin, ['inplace-gate', ...args], { env });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

const line = (out: string, word: string) => out.split('\n').find((l) => l.split(/\s+/).includes(word));

describe('kubectl inplace-gate status', () => {
  it('a stalled pod: gate False, Stalled, the pull failure and what to do; the leading watcher', async () => {
    await runningOnFakeNode(NS, 'stuck');
    await eventually('gate True', async () => (conditionOf(await getPod(NS, 'stuck'), 'InPlaceUpdateReady') === 'True' ? true : undefined));
    await kubectl(['-n', NS, 'set', 'image', 'pod/stuck', `app=${IMAGE_2}`]);
    const updating = await phaseIs(NS, 'stuck', 'Updating');
    await writeStatus(updating, updating.metadata.generation ?? 1, {
      app: { state: 'waiting', reason: 'ImagePullBackOff', message: 'Back-off pulling image', image: IMAGE_2 },
    });
    await phaseIs(NS, 'stuck', 'Stalled');

    const all = await plugin(['status', '-n', NS]);
    expect(all.code, all.stderr).toBe(0);
    console.log(`kubectl inplace-gate status -n ${NS}\n${all.stdout}`);
    expect(all.stdout).toContain(`watcher: ${watcher.identity} leads`);
    const row = line(all.stdout, 'stuck');
    expect(row).toBeDefined();
    // READY `-`: no kubelet here to write the pod's Ready condition; the gate is False.
    expect(row!.split(/\s+/).slice(0, 4)).toEqual(['stuck', '-', 'False', 'Stalled']);
    expect(row).toContain(`app: ${IMAGE} -> ${IMAGE_2}`);
    expect(row).toContain('container app: ImagePullBackOff: Back-off pulling image; set the image again');

    // The same row for the pod by name (but SINCE, which moves on).
    const one = await plugin(['status', `--namespace=${NS}`, 'stuck']);
    const withoutSince = (l: string | undefined) => l?.split(/\s{3,}/).filter((_, i) => i !== 4);
    expect(withoutSince(line(one.stdout, 'stuck'))).toEqual(withoutSince(row));
  });

  it('a StatefulSet held by inplace-gate.dev/partition: updated of those in scope, held, its pods', async () => {
    const probe = { exec: { command: ['true'] }, periodSeconds: 1 };
    await applyManifest({
      apiVersion: 'apps/v1', kind: 'StatefulSet',
      metadata: { name: 'db', namespace: NS, annotations: { 'inplace-gate.dev/partition': '1' } },
      spec: {
        replicas: 2, serviceName: 'db', selector: { matchLabels: { app: 'db' } }, podManagementPolicy: 'Parallel',
        template: {
          metadata: { labels: { app: 'db' }, annotations: { 'inplace-gate.dev/grace-period-seconds': '1' } },
          spec: { terminationGracePeriodSeconds: 1, containers: [{ name: 'app', image: IMAGE, readinessProbe: probe }] },
        },
      },
    });
    const ready = async (name: string, image: string) => {
      const p = await getPod(NS, name);
      return p.spec.containers[0]?.image === image && conditionOf(p, 'Ready') === 'True' && conditionOf(p, 'InPlaceUpdateReady') === 'True' &&
        p.metadata.annotations?.['inplace-gate.dev/update'] === undefined;
    };
    await eventually('db-0 and db-1 ready', async () => ((await ready('db-0', IMAGE)) && (await ready('db-1', IMAGE)) ? true : undefined), 120_000, 500);
    await kubectl(['-n', NS, 'set', 'image', 'statefulset/db', `app=${IMAGE_2}`]);
    await eventually('db-1 updated in place', async () => ((await ready('db-1', IMAGE_2)) ? true : undefined), 120_000, 500);

    const out = await eventually('the held rollout reported', async () => {
      const r = await plugin(['status', '-n', NS, 'statefulset/db']);
      return r.code === 0 && line(r.stdout, 'statefulset/db')?.includes('held:') ? r.stdout : undefined;
    });
    console.log(`kubectl inplace-gate status -n ${NS} statefulset/db\n${out}`);
    const row = line(out, 'statefulset/db')!;
    expect(row.split(/\s+/).slice(0, 4)).toEqual(['statefulset/db', 'in', 'place', '1/1']);
    expect(row).toContain(`app=${IMAGE_2}`);
    expect(row).toContain('held: inplace-gate.dev/partition 1 keeps 1 pods on the old images (lower it to go on)');
    // A named workload lists all its pods, db-0 still on the old image.
    expect(line(out, 'db-0')).toContain(`app=${IMAGE}`);
    expect(line(out, 'db-1')).toContain(`app=${IMAGE_2}`);

    // rollout status: done, as kubectl says of a partitioned rollout.
    const waited = await plugin(['rollout', 'status', '-n', NS, 'statefulset/db', '--timeout', '60s']);
    expect(waited.code, waited.stderr).toBe(0);
    expect(waited.stdout).toContain('partitioned in-place roll out complete: 1/1 pods updated; held: inplace-gate.dev/partition 1');
  });

  it('rollout status fails on a stalled pod, naming it and why', async () => {
    await applyManifest({
      apiVersion: 'apps/v1', kind: 'StatefulSet', metadata: { name: 'sdb', namespace: NS },
      spec: {
        replicas: 1, serviceName: 'sdb', selector: { matchLabels: { app: 'sdb' } },
        template: {
          metadata: { labels: { app: 'sdb' }, annotations: { 'inplace-gate.dev/grace-period-seconds': '1' } },
          spec: {
            // Bound by name (a Node with no kubelet reports no capacity for the scheduler to fit);
            // every taint tolerated (the node controller marks it unreachable).
            terminationGracePeriodSeconds: 1, nodeName: FAKE_NODE, tolerations: [{ operator: 'Exists' }],
            containers: [{ name: 'app', image: IMAGE, readinessProbe: { exec: { command: ['true'] }, periodSeconds: 1 } }],
          },
        },
      },
    });
    const created = await eventually('sdb-0 bound to the kubelet-less node', async () => {
      const p = await getPod(NS, 'sdb-0').catch(() => undefined);
      return p?.spec.nodeName === FAKE_NODE ? p : undefined;
    });
    await writeStatus(created, created.metadata.generation ?? 1, { app: { state: 'running', ready: true, image: IMAGE, id: 'sdb-0-app-1' } });
    await eventually('sdb-0 gate True', async () => (conditionOf(await getPod(NS, 'sdb-0'), 'InPlaceUpdateReady') === 'True' ? true : undefined));
    await kubectl(['-n', NS, 'set', 'image', 'statefulset/sdb', `app=${IMAGE_2}`]);
    const updating = await phaseIs(NS, 'sdb-0', 'Updating', 60_000);
    await writeStatus(updating, updating.metadata.generation ?? 1, {
      app: { state: 'waiting', reason: 'ImagePullBackOff', message: 'Back-off pulling image', image: IMAGE_2 },
    });
    await phaseIs(NS, 'sdb-0', 'Stalled');
    const r = await plugin(['rollout', 'status', '-n', NS, 'sts/sdb', '--timeout', '60s']);
    expect(r.code).toBe(1);
    expect(r.stderr).toBe('error: statefulset/sdb: in-place rollout stalled (sdb-0: container app: ImagePullBackOff: Back-off pulling image; set the image again (a rollback, say) to start over)\n');
  });

  it('a bad word is one line and exit code 2; a missing pod is one line and exit code 1', async () => {
    const bad = await plugin(['status', '--bogus']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toBe('kubectl-inplace_gate: unknown flag --bogus (see kubectl inplace-gate --help)\n');
    const missing = await plugin(['status', '-n', NS, 'nope']);
    expect(missing.code).toBe(1);
    expect(missing.stderr.trim().split('\n')).toHaveLength(1);
    expect(missing.stderr).toContain('pods "nope" not found');
  });
});

// ---- cancel and release: each mid-drain is held there by a grace period of 10 minutes, so the test
// acts while the pod is out of its endpoints, whatever the machine's speed. ----

const LONG_GRACE = { 'inplace-gate.dev/grace-period-seconds': '600' };
const probe = { exec: { command: ['true'] }, periodSeconds: 1 };
const template = (app: string) => ({
  metadata: { labels: { app }, annotations: LONG_GRACE },
  spec: { terminationGracePeriodSeconds: 1, containers: [{ name: 'app', image: IMAGE, readinessProbe: probe }] },
});
interface PodList { items: Pod[] }
interface WorkloadObject { metadata: { annotations?: Record<string, string> }; spec: { paused?: boolean; updateStrategy?: { rollingUpdate?: { partition?: number } } }; status?: { currentRevision?: string; updateRevision?: string; updatedReplicas?: number; readyReplicas?: number } }
const getWorkload = (kind: string, name: string) => kubectlJson<WorkloadObject>(['-n', NS, 'get', kind, name]);
const STATE = 'inplace-gate.dev/rollout-state';

/** Every pod of `app` (none terminating, `count` of them) on `image`, Ready, gate True, nothing in flight. */
const allOn = (app: string, count: number, image: string) => eventually(`${app}: ${String(count)} pods on ${image}, Ready, gate True`, async () => {
  const pods = (await kubectlJson<PodList>(['-n', NS, 'get', 'pods', '-l', `app=${app}`])).items;
  const fine = pods.filter((p) => p.metadata.deletionTimestamp === undefined && p.spec.containers[0]?.image === image &&
    conditionOf(p, 'Ready') === 'True' && conditionOf(p, 'InPlaceUpdateReady') === 'True' && stateOf(p) === undefined);
  return fine.length === count && pods.length === count ? pods : undefined;
}, 120_000, 500);

const draining = (app: string, count: number) => eventually(`${String(count)} pods of ${app} Draining`, async () => {
  const pods = (await kubectlJson<PodList>(['-n', NS, 'get', 'pods', '-l', `app=${app}`])).items;
  const out = pods.filter((p) => stateOf(p)?.phase === 'Draining' && conditionOf(p, 'InPlaceUpdateReady') === 'False');
  return out.length === count ? out : undefined;
}, 60_000, 300);

/** `inplace-gate release`, the CLI an operator runs before an uninstall. */
async function releaseAllCli(): Promise<{ code: number; stdout: string; stderr: string }> {
  const { kubeconfig } = context();
  try {
    const { stdout, stderr } = await run(process.execPath, [resolve(repo, 'src/cli.ts'), 'release', '--kubeconfig', kubeconfig, '--release-timeout-seconds', '0']);
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

describe('kubectl inplace-gate cancel', () => {
  it('a Draining pod: the request dropped, the old image kept, the gate True again, an Event', async () => {
    await applyManifest(podManifest('drn', NS, { annotations: LONG_GRACE }));
    await settled(NS, 'drn');
    await kubectl(['-n', NS, 'set', 'image', 'pod/drn', `app=${IMAGE_2}`]);
    await phaseIs(NS, 'drn', 'Draining');
    expect(conditionOf(await getPod(NS, 'drn'), 'InPlaceUpdateReady')).toBe('False');

    const r = await plugin(['cancel', '-n', NS, 'drn']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain(`pod/drn: Draining app=${IMAGE_2} dropped; keeps app=${IMAGE}; InPlaceUpdateReady True`);
    const after = await getPod(NS, 'drn');
    expect(stateOf(after)).toBeUndefined();
    expect(after.spec.containers[0]?.image).toBe(IMAGE);
    expect(conditionOf(after, 'InPlaceUpdateReady')).toBe('True');
    const reasons = await kubectl(['-n', NS, 'get', 'events.events.k8s.io', '--field-selector', 'regarding.name=drn', '-o', 'jsonpath={.items[*].reason}']);
    expect(reasons.split(' ')).toContain('InPlaceUpdateCancelled');
    // Nothing comes back: the watcher finds no request and leaves the pod serving its image.
    await settled(NS, 'drn');
    expect((await getPod(NS, 'drn')).spec.containers[0]?.image).toBe(IMAGE);

    // Again: nothing to cancel, exit 0.
    const again = await plugin(['cancel', '-n', NS, 'drn']);
    expect(again.code, again.stderr).toBe(0);
    expect(again.stdout).toContain('pod/drn: no image change pending');
  });

  it('a Pending pod held by a disruption budget: dropped, the gate True, the old image kept', async () => {
    await applyManifest({ apiVersion: 'policy/v1', kind: 'PodDisruptionBudget', metadata: { name: 'pnd', namespace: NS }, spec: { maxUnavailable: 0, selector: { matchLabels: { app: 'pnd' } } } });
    await applyManifest(podManifest('pnd', NS));
    await settled(NS, 'pnd');
    await eventually('the budget computed', async () => {
      const pdb = await kubectlJson<{ status?: { currentHealthy?: number; disruptionsAllowed?: number } }>(['-n', NS, 'get', 'pdb', 'pnd']);
      return pdb.status?.currentHealthy === 1 && pdb.status.disruptionsAllowed === 0 ? true : undefined;
    });
    await kubectl(['-n', NS, 'set', 'image', 'pod/pnd', `app=${IMAGE_2}`]);
    await eventually('pnd waiting for its budget', async () => {
      const p = await getPod(NS, 'pnd');
      return stateOf(p)?.phase === 'Pending' && p.status?.conditions?.some((c) => c.type === 'InPlaceUpdateReady' && c.reason === 'WaitingForDisruptionBudget') ? true : undefined;
    });
    const r = await plugin(['cancel', '-n', NS, 'pod/pnd']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain(`pod/pnd: Pending app=${IMAGE_2} dropped; keeps app=${IMAGE}`);
    const after = await getPod(NS, 'pnd');
    expect(stateOf(after)).toBeUndefined();
    expect(after.spec.containers[0]?.image).toBe(IMAGE);
    expect(conditionOf(after, 'InPlaceUpdateReady')).toBe('True');
  });

  it('an Updating pod (the image written) is refused, one line, exit 1: the gate stays False until proven', async () => {
    await runningOnFakeNode(NS, 'upd');
    await eventually('gate True', async () => (conditionOf(await getPod(NS, 'upd'), 'InPlaceUpdateReady') === 'True' ? true : undefined));
    await kubectl(['-n', NS, 'set', 'image', 'pod/upd', `app=${IMAGE_2}`]);
    await phaseIs(NS, 'upd', 'Updating');
    const r = await plugin(['cancel', '-n', NS, 'upd']);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(new RegExp(`^error: pod/upd: cannot cancel: app=${IMAGE_2.replaceAll('.', '\\.')} is written and the kubelet restarts the container .*set the previous images\n$`));
    const after = await getPod(NS, 'upd');
    expect(stateOf(after)?.phase).toBe('Updating');
    expect(conditionOf(after, 'InPlaceUpdateReady')).toBe('False');
    // No kubelet will ever prove it: out of the way of the release tests below.
    await kubectl(['-n', NS, 'delete', 'pod', 'upd', '--grace-period=0', '--force']);
  });

  it('a Deployment mid-rollout: its pods\' requests dropped, the rollout handed to the controller, which finishes it; not held again', async () => {
    await applyManifest({
      apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name: 'cw', namespace: NS },
      spec: { replicas: 2, selector: { matchLabels: { app: 'cw' } }, strategy: { type: 'RollingUpdate', rollingUpdate: { maxUnavailable: 2, maxSurge: 0 } }, template: template('cw') },
    });
    await allOn('cw', 2, IMAGE);
    await kubectl(['-n', NS, 'set', 'image', 'deployment/cw', `app=${IMAGE_2}`]);
    const held = await draining('cw', 2);
    expect((await getWorkload('deployment', 'cw')).spec.paused).toBe(true);

    const r = await plugin(['cancel', '-n', NS, 'deployment/cw']);
    expect(r.code, r.stderr).toBe(0);
    console.log(`kubectl inplace-gate cancel -n ${NS} deployment/cw\n${r.stdout}`);
    expect(r.stdout).toContain(`deployment/cw: unpaused and its rollout state removed: the Deployment controller rolls out app=${IMAGE_2} natively`);
    // maxUnavailable 2: the controller may delete both old pods before their requests are dropped (a
    // pod being deleted has nothing to cancel), so the lines are not asserted; the end state is.

    const pods = await allOn('cw', 2, IMAGE_2);
    // The controller replaced them: no pod of the rollout's was kept.
    expect(pods.map((p) => p.metadata.uid).filter((u) => held.some((h) => h.metadata.uid === u))).toEqual([]);
    const d = await getWorkload('deployment', 'cw');
    expect(d.spec.paused).not.toBe(true);
    expect(d.metadata.annotations?.[STATE]).toBeUndefined();
    expect(d.metadata.annotations?.['inplace-gate.dev/rollout']).toBeUndefined();
    await kubectl(['-n', NS, 'rollout', 'status', 'deployment/cw', '--timeout=60s']);
  });
});

describe('release', () => {
  it('a StatefulSet mid-rollout: partition restored, the drained pod back in service, the controller finishes; twice is a no-op', async () => {
    await applyManifest({
      apiVersion: 'apps/v1', kind: 'StatefulSet', metadata: { name: 'rdb', namespace: NS },
      spec: { replicas: 2, serviceName: 'rdb', podManagementPolicy: 'Parallel', selector: { matchLabels: { app: 'rdb' } }, template: template('rdb') },
    });
    await allOn('rdb', 2, IMAGE);
    await kubectl(['-n', NS, 'set', 'image', 'statefulset/rdb', `app=${IMAGE_2}`]);
    await draining('rdb', 1);
    expect((await getWorkload('statefulset', 'rdb')).spec.updateStrategy?.rollingUpdate?.partition).toBe(2);

    const r = await plugin(['release', '-n', NS, 'sts/rdb']);
    expect(r.code, r.stderr).toBe(0);
    console.log(`kubectl inplace-gate release -n ${NS} sts/rdb\n${r.stdout}`);
    expect(r.stdout).toContain('statefulset/rdb: partition 0 restored, rollout state removed: the StatefulSet controller goes on natively');
    expect(r.stdout).toContain(`pod/rdb-1: Draining app=${IMAGE_2} dropped; keeps app=${IMAGE}; InPlaceUpdateReady True`);

    await allOn('rdb', 2, IMAGE_2);
    const s = await eventually('the controller done', async () => {
      const w = await getWorkload('statefulset', 'rdb');
      return w.status?.currentRevision === w.status?.updateRevision && w.status?.updatedReplicas === 2 && w.status.readyReplicas === 2 ? w : undefined;
    }, 60_000, 500);
    expect(s.metadata.annotations?.[STATE]).toBeUndefined();
    expect(s.spec.updateStrategy?.rollingUpdate?.partition).toBe(0);

    const again = await plugin(['release', '-n', NS, 'statefulset/rdb']);
    expect(again.code, again.stderr).toBe(0);
    expect(again.stdout).toBe('statefulset/rdb: nothing to release (not held by inplace-gate)\n');
  });

  it('inplace-gate release, a Deployment mid-rollout with surge pods: surge removed, unpaused, pods back in service, the controller finishes; twice is a no-op', async () => {
    // 2 replicas, the default 25%/25%: maxUnavailable 0, so the in-place rollout surges first.
    await applyManifest({ apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name: 'rw', namespace: NS }, spec: { replicas: 2, selector: { matchLabels: { app: 'rw' } }, template: template('rw') } });
    await allOn('rw', 2, IMAGE);
    await kubectl(['-n', NS, 'set', 'image', 'deployment/rw', `app=${IMAGE_2}`]);
    const [drained] = await draining('rw', 1);
    const surges = await kubectl(['-n', NS, 'get', 'replicasets', '-l', 'inplace-gate.dev/surge-for=rw', '-o', 'name']);
    expect(surges.trim()).not.toBe('');

    const r = await releaseAllCli();
    // Cluster-wide: pods of other tests may still restart on written images (exit 1, said); nothing failed.
    expect(r.stderr).toMatch(/^inplace-gate: releasing on context "[^"]+", server https:\/\/\S+ \(kubeconfig \S+\)\n$/);
    expect(r.code).toBe(r.stdout.includes('is written and the kubelet restarts') ? 1 : 0);
    console.log(`inplace-gate release\n${r.stdout}`);
    // Marked first, so the running watcher makes the same writes (whichever deletes the surge ReplicaSet).
    expect(r.stdout).toContain(`${NS}/deployment/rw: marked inplace-gate.dev/rollout=recreate while it is handed back`);
    expect(r.stdout).toContain(`${NS}/deployment/rw: unpaused and its rollout state removed`);
    // The drained pod's request is dropped by whichever gets there first: this command, or the watcher
    // making the same hand-back once it sees the mark (seen in CI: then this command has nothing to drop).
    const droppedHere = r.stdout.includes(`${NS}/pod/${drained?.metadata.name ?? ''}: Draining app=${IMAGE_2} dropped`);
    // Or the native rollout that follows has already replaced the pod (it is gone).
    const pod = await getPod(NS, drained?.metadata.name ?? '').catch(() => undefined);
    expect(droppedHere || pod?.metadata.annotations?.['inplace-gate.dev/update'] === undefined).toBe(true);

    await allOn('rw', 2, IMAGE_2);
    const d = await getWorkload('deployment', 'rw');
    expect(d.spec.paused).not.toBe(true);
    expect(d.metadata.annotations?.[STATE]).toBeUndefined();
    // The mark went again: the next image change rolls out in place.
    expect(d.metadata.annotations?.['inplace-gate.dev/rollout']).toBeUndefined();
    expect((await kubectl(['-n', NS, 'get', 'replicasets', '-l', 'inplace-gate.dev/surge-for=rw', '-o', 'name'])).trim()).toBe('');
    await kubectl(['-n', NS, 'rollout', 'status', 'deployment/rw', '--timeout=60s']);

    const again = await releaseAllCli();
    expect(again.stdout).not.toContain('deployment/rw');
    expect(again.stdout).not.toContain('pod/rw-');
  });
});
