// `kubectl inplace-gate status` and `rollout status`, found and run by the
// real kubectl as a plugin (bin/ on PATH), against the real control plane: a
// pod stalled on an ImagePullBackOff (written on the kubelet-less node), a
// StatefulSet rollout held by its partition annotation, and one stalled.

import { execFile } from 'node:child_process';
import { resolve } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FAKE_NODE, ensureFakeNode, runningOnFakeNode, writeStatus } from './support/fake-kubelet.ts';
import { applyManifest, context, createNamespace, eventually, kubectl } from './support/kube.ts';
import { IMAGE, IMAGE_2, conditionOf, getPod, phaseIs } from './support/pods.ts';
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
