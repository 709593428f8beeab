// The rollout's pure step (src/core/rollout-step.ts) fed with what this
// control plane holds, trimmed as the watcher's caches trim it: held by the
// webhook it begins as the tables in test/unit/rollout-step.test.ts say, and
// at every moment looked at during the real rollout that follows it never
// plans more pods out than maxUnavailable, nor a fallback. With
// CAPTURE_FIXTURES=1 the shapes are kept as those tables' fixtures
// (test/fixtures/rollout/).

import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Pod } from '../../src/core/kube-types.ts';
import { READINESS_GATE, ROLLOUT_STATE_ANNOTATION } from '../../src/core/names.ts';
import { parseRolloutState } from '../../src/core/rollout-state.ts';
import { rolloutStep, type RolloutAction } from '../../src/core/rollout-step.ts';
import { rolloutPod } from '../../src/core/rollout.ts';
import type { Workload } from '../../src/core/workload-types.ts';
import { trimPod, trimWorkload } from '../../src/watcher/trim.ts';
import { applyManifest, createNamespace, eventually, kubectl, kubectlJson } from './support/kube.ts';
import { IMAGE, IMAGE_2, conditionOf } from './support/pods.ts';
import { startLeadingWatcher, type WatcherProcess } from './support/watcher.ts';

const NS = `e2e-shapes-${Date.now().toString(36)}`;
const fixtures = join(import.meta.dirname, '..', 'fixtures', 'rollout');
let watcher: WatcherProcess | undefined;

beforeAll(async () => {
  await createNamespace(NS, { 'inplace-gate.dev/enabled': 'true' });
});

afterAll(async () => {
  await watcher?.stop();
  await kubectl(['delete', 'namespace', NS, '--wait=false']);
});

/** What the apiserver returns: the workload, its namespace's ReplicaSets and pods (kept as fixtures so). */
interface Shape { workload: unknown; replicaSets: unknown[]; pods: unknown[] }

async function shape(kind: 'deployment' | 'statefulset', name: string): Promise<Shape> {
  const [workload, replicaSets, pods] = await Promise.all([
    kubectlJson<unknown>(['-n', NS, 'get', kind, name]),
    kubectlJson<{ items: unknown[] }>(['-n', NS, 'get', 'replicasets']),
    kubectlJson<{ items: unknown[] }>(['-n', NS, 'get', 'pods']),
  ]);
  return { workload, replicaSets: replicaSets.items, pods: pods.items };
}

/** The step as the watcher would take it from that shape at `now`. */
function stepOf(kind: 'Deployment' | 'StatefulSet', s: Shape, now = Date.now()) {
  const workload = trimWorkload(s.workload);
  const parsed = parseRolloutState(workload.metadata.annotations?.[ROLLOUT_STATE_ANNOTATION]);
  if (!parsed.ok) throw new Error(parsed.error);
  return rolloutStep({
    kind, workload, state: parsed.state, now,
    replicaSets: s.replicaSets.map(trimWorkload),
    pods: s.pods.map(trimPod),
    order: { priority: undefined, scatterKey: undefined, nodeLabels: () => undefined },
  });
}

const kinds = (actions: RolloutAction[]) => actions.map((a) => a.do);

async function keep(name: string, s: Shape): Promise<void> {
  if (process.env.CAPTURE_FIXTURES !== '1') return;
  await mkdir(fixtures, { recursive: true });
  await writeFile(join(fixtures, `${name}.json`), `${JSON.stringify(s, null, 2)}\n`);
}

const probe = { exec: { command: ['true'] }, periodSeconds: 1 };
const template = (app: string, image: string) => ({
  metadata: { labels: { app }, annotations: { 'inplace-gate.dev/grace-period-seconds': '1' } },
  spec: { terminationGracePeriodSeconds: 1, containers: [{ name: 'app', image, readinessProbe: probe }] },
});

const ready = (p: Pod, image: string) => p.spec.containers[0]?.image === image && conditionOf(p, 'Ready') === 'True' && conditionOf(p, READINESS_GATE) === 'True';

async function allReady(app: string, replicas: number, image: string): Promise<void> {
  await eventually(`${app}: ${replicas} pods ready on ${image}`, async () => {
    const pods = (await kubectlJson<{ items: Pod[] }>(['-n', NS, 'get', 'pods', '-l', `app=${app}`])).items.filter((p) => p.metadata.deletionTimestamp === undefined);
    return pods.length === replicas && pods.every((p) => ready(p, image) && p.metadata.annotations?.['inplace-gate.dev/update'] === undefined) ? true : undefined;
  }, 120_000, 500);
}

/**
 * Looks at the rollout until the state is gone: at each look, the pods the
 * step would start plus those already out stay within `maxUnavailable`.
 */
async function watchRollout(kind: 'Deployment' | 'StatefulSet', name: string, maxUnavailable: number, keepMid: string): Promise<number> {
  let looks = 0;
  let kept = false;
  for (let deadline = Date.now() + 120_000; Date.now() < deadline;) {
    const s = await shape(kind === 'Deployment' ? 'deployment' : 'statefulset', name);
    const w = s.workload as Workload;
    if (w.metadata.annotations?.[ROLLOUT_STATE_ANNOTATION] === undefined) return looks;
    const step = stepOf(kind, s);
    looks++;
    expect(kinds(step.actions)).not.toContain('fall-back');
    const start = step.actions.find((a) => a.do === 'start');
    if (start?.do === 'start') {
      const pods = s.pods.map(trimPod).map((p) => rolloutPod(p));
      const newlyOut = start.plan.start.filter((n) => { const p = pods.find((q) => q.name === n); return p !== undefined && p.update === undefined && p.ready; }).length;
      expect(start.plan.unavailable + newlyOut, `look ${looks}: ${JSON.stringify(start.plan)}`).toBeLessThanOrEqual(maxUnavailable);
      if (!kept && start.plan.unavailable > 0 && start.plan.updated > 0) {
        await keep(keepMid, s);
        kept = true;
      }
    }
  }
  throw new Error(`${kind} ${name}: the rollout did not end in 120 s`);
}

describe('the rollout step on this control plane', () => {
  it('Deployment: held by the webhook it checks, keeps history, retargets and starts maxUnavailable pods; the live rollout never plans past it', async () => {
    watcher = await startLeadingWatcher();
    await applyManifest({
      apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name: 'web', namespace: NS },
      spec: { replicas: 4, selector: { matchLabels: { app: 'web' } }, strategy: { type: 'RollingUpdate', rollingUpdate: { maxUnavailable: 1, maxSurge: 1 } }, template: template('web', IMAGE) },
    });
    await allReady('web', 4, IMAGE);
    await keep('deployment-before', await shape('deployment', 'web'));
    // No watcher while the webhook holds the bump: the shape stays as held.
    await watcher.stop();
    await kubectl(['-n', NS, 'set', 'image', 'deployment/web', `app=${IMAGE_2}`]);
    const held = await eventually('the bump held', async () => {
      const s = await shape('deployment', 'web');
      return (s.workload as Workload).metadata.annotations?.[ROLLOUT_STATE_ANNOTATION] !== undefined ? s : undefined;
    });
    await keep('deployment-held', held);
    const begin = stepOf('Deployment', held);
    expect(kinds(begin.actions)).toEqual(['check-managed', 'history', 'retarget', 'start', 'progressing']);
    const start = begin.actions.find((a) => a.do === 'start');
    expect(start?.do === 'start' ? start.plan.start : []).toEqual([expect.stringMatching(/^web-/)]);

    watcher = await startLeadingWatcher();
    const looks = await watchRollout('Deployment', 'web', 1, 'deployment-mid');
    expect(looks).toBeGreaterThan(0);
    await allReady('web', 4, IMAGE_2);
    const after = await shape('deployment', 'web');
    await keep('deployment-after', after);
    expect(stepOf('Deployment', after).actions).toEqual([]);
    await watcher.stop();
    watcher = undefined;
  });

  it('StatefulSet: held, it waits for the controller to observe the template, then starts the highest ordinal; the live rollout never plans past maxUnavailable', async () => {
    watcher = await startLeadingWatcher();
    await applyManifest({
      apiVersion: 'apps/v1', kind: 'StatefulSet', metadata: { name: 'db', namespace: NS },
      spec: { replicas: 3, serviceName: 'db', selector: { matchLabels: { app: 'db' } }, podManagementPolicy: 'Parallel', updateStrategy: { type: 'RollingUpdate' }, template: template('db', IMAGE) },
    });
    await allReady('db', 3, IMAGE);
    await watcher.stop();
    await kubectl(['-n', NS, 'set', 'image', 'statefulset/db', `app=${IMAGE_2}`]);
    const held = await eventually('the bump held and seen by the controller', async () => {
      const s = await shape('statefulset', 'db');
      const w = s.workload as Workload;
      const revisions = await kubectlJson<{ items: { metadata: { name: string } }[] }>(['-n', NS, 'get', 'controllerrevisions']);
      return w.metadata.annotations?.[ROLLOUT_STATE_ANNOTATION] !== undefined && revisions.items.some((r) => r.metadata.name === w.status?.updateRevision) ? s : undefined;
    });
    await keep('statefulset-held', held);
    const begin = stepOf('StatefulSet', held);
    expect(kinds(begin.actions)).toEqual(expect.arrayContaining(['check-observed', 'check-managed', 'start', 'report']));
    expect(kinds(begin.actions).indexOf('check-observed')).toBeLessThan(kinds(begin.actions).indexOf('start'));
    const start = begin.actions.find((a) => a.do === 'start');
    expect(start?.do === 'start' ? start.plan.start : []).toEqual(['db-2']);

    watcher = await startLeadingWatcher();
    const looks = await watchRollout('StatefulSet', 'db', 1, 'statefulset-mid');
    expect(looks).toBeGreaterThan(0);
    await allReady('db', 3, IMAGE_2);
    await keep('statefulset-after', await shape('statefulset', 'db'));
  });
});
