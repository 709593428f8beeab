// What CI (kubectl rollout status), Flux (kstatus) and Argo CD (its built-in
// health, and with integrations/argocd installed) say during in-place rollouts,
// next to the truth from the pods: none may say done before every pod runs the
// new image and is Ready, each must say done within 10 s after, and a stalled
// rollout must read failed wherever the tool has a word for it. The verdicts
// come from test/verdicts (kubectl's and kstatus's own Go code), which watches
// the workload; the truth from a watch of its pods. Both carry resourceVersions
// from the one etcd, so "before" is decided by revision, not by clocks.

import { execFile, spawn } from 'node:child_process';
import { mkdir, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Pod } from '../../src/core/kube-types.ts';
import { READINESS_GATE } from '../../src/core/names.ts';
import type { Workload } from '../../src/core/workload-types.ts';
import { FAKE_NODE, ensureFakeNode, writeStatus } from './support/fake-kubelet.ts';
import { applyManifest, context, createNamespace, eventually, kubectl, kubectlJson } from './support/kube.ts';
import { IMAGE, IMAGE_2, conditionOf, stateOf } from './support/pods.ts';
import { record, type Recorder } from './support/recorder.ts';
import { startLeadingWatcher, type WatcherProcess } from './support/watcher.ts';

const run = promisify(execFile);
const VERDICTS = resolve(import.meta.dirname, '../verdicts');
const LUA = resolve(import.meta.dirname, '../../integrations/argocd/lua');
const NS = `e2e-verdicts-${Date.now().toString(36)}`;
const LATE_MS = 10_000;

let watcher: WatcherProcess;
let pods: Recorder<Pod>;
let binary: string;

beforeAll(async () => {
  binary = (await run('bash', [join(VERDICTS, 'build.sh')], { maxBuffer: 16 * 1024 * 1024 })).stdout.trim();
  await ensureFakeNode();
  await createNamespace(NS, { 'inplace-gate.dev/enabled': 'true' });
  watcher = await startLeadingWatcher();
  pods = await record(`/api/v1/namespaces/${NS}/pods`);
});

afterAll(async () => {
  pods.stop();
  await watcher.stop();
  await kubectl(['delete', 'namespace', NS, '--wait=false']);
});

// ------------------------------------------------------------ verdicts ---

type Tool = 'kubectl' | 'kstatus' | 'argocd' | 'argocdLua';
type Verdict = 'done' | 'failed' | 'in progress' | 'suspended';

interface Line {
  at: number;
  resourceVersion: string;
  generation: number;
  kubectl: { done: boolean; message: string; error?: string };
  kstatus: { status: string; message: string };
  argocd: { status: string; message: string };
  argocdLua?: { status: string; message: string };
  object: Workload;
}

/** What a pipeline gating on the tool would make of it. */
function verdictOf(line: Line, tool: Tool): { verdict: Verdict; said: string } {
  switch (tool) {
    case 'kubectl':
      return line.kubectl.error !== undefined
        ? { verdict: 'failed', said: `error: ${line.kubectl.error}` }
        : { verdict: line.kubectl.done ? 'done' : 'in progress', said: line.kubectl.message };
    case 'kstatus': {
      const { status, message } = line.kstatus;
      return { verdict: status === 'Current' ? 'done' : status === 'Failed' ? 'failed' : 'in progress', said: `${status}: ${message}` };
    }
    default: {
      const h = line[tool];
      if (!h) throw new Error(`no ${tool} verdict in ${line.resourceVersion}`);
      // Suspended tells a person that someone paused the rollout: while pods are being moved, that is untrue.
      const verdict = ({ Healthy: 'done', Degraded: 'failed', Suspended: 'suspended' } as Record<string, Verdict>)[h.status] ?? 'in progress';
      return { verdict, said: `${h.status}: ${h.message}` };
    }
  }
}

interface VerdictWatch {
  lines: Line[];
  stop(): Promise<void>;
}

async function watchVerdicts(kind: 'Deployment' | 'StatefulSet', name: string): Promise<VerdictWatch> {
  const child = spawn(binary, ['watch', '--kubeconfig', context().kubeconfig, '--kind', kind, '--namespace', NS, '--name', name, '--lua', LUA, '--objects'], { stdio: ['ignore', 'pipe', 'pipe'] });
  const lines: Line[] = [];
  let stderr = '';
  child.stderr.on('data', (b: Buffer) => { stderr += b.toString(); });
  createInterface({ input: child.stdout }).on('line', (l) => lines.push(JSON.parse(l) as Line));
  const exited = new Promise<number | null>((ok) => child.once('exit', ok));
  await eventually(`verdicts watching ${kind}/${name}`, () => Promise.resolve(lines.length > 0 ? true : undefined), 30_000);
  return {
    lines,
    async stop() {
      child.kill('SIGTERM');
      const code = await exited;
      if (code !== 0) throw new Error(`verdicts exited ${code}: ${stderr}`);
    },
  };
}

// --------------------------------------------------------------- truth ---

const rv = (o: { metadata: { resourceVersion?: string } }) => Number(o.metadata.resourceVersion);

/** Every container the target names runs its image, and the pod is Ready. */
function podDone(p: Pod, images: Record<string, string>): boolean {
  if (p.metadata.deletionTimestamp !== undefined || conditionOf(p, 'Ready') !== 'True') return false;
  return Object.entries(images).every(([name, image]) => {
    const s = p.status?.containerStatuses?.find((c) => c.name === name);
    return p.spec.containers.find((c) => c.name === name)?.image === image && s?.image === image && s.state?.running !== undefined;
  });
}

interface Truth { at: number; rv: number; done: boolean; stalled: boolean }

/** The pods' truth after each pod event of `app`. */
function truthOf(app: string, replicas: number, images: Record<string, string>): Truth[] {
  const live = new Map<string, Pod>();
  const out: Truth[] = [];
  for (const s of pods.seen) {
    if (s.object.metadata.labels?.app !== app) continue;
    if (s.type === 'DELETED') live.delete(s.object.metadata.name ?? '');
    else live.set(s.object.metadata.name ?? '', s.object);
    const current = [...live.values()].filter((p) => p.metadata.deletionTimestamp === undefined);
    out.push({
      at: s.at,
      rv: rv(s.object),
      done: current.length === replicas && current.every((p) => podDone(p, images)),
      stalled: current.some((p) => stateOf(p)?.phase === 'Stalled'),
    });
  }
  return out;
}

/** The first entry of the last run in which `holds` stays true, if the timeline ends in it. */
function settledAt<T>(timeline: T[], holds: (t: T) => boolean): T | undefined {
  let i = timeline.length;
  while (i > 0 && holds(timeline[i - 1]!)) i--;
  return i < timeline.length ? timeline[i] : undefined;
}

/** The tool's record against the truth: 'ok', or what it said wrong and when. */
function judge(lines: Line[], tool: Tool, truth: Truth): string {
  const earlies = lines.filter((l) => rv(l.object) < truth.rv && verdictOf(l, tool).verdict === 'done');
  const early = earlies[0];
  if (early) {
    const counts = [...new Set(earlies.map((l) => l.object.status?.updatedReplicas ?? 0))].join(', ');
    return `early: done at resourceVersion ${early.resourceVersion}, ${truth.at - early.at} ms before every pod ran the new image Ready (${describeStatus(early.object)}): "${verdictOf(early, tool).said}"; done at ${earlies.length} states before the truth, at updatedReplicas ${counts}`;
  }
  const paused = lines.find((l) => rv(l.object) < truth.rv && verdictOf(l, tool).verdict === 'suspended');
  if (paused) return `suspended while the rollout was under way, at resourceVersion ${paused.resourceVersion} (${describeStatus(paused.object)}): "${verdictOf(paused, tool).said}"`;
  const done = settledAt(lines, (l) => verdictOf(l, tool).verdict === 'done');
  const last = lines.at(-1);
  if (!done) return `never done: last said "${last ? verdictOf(last, tool).said : 'nothing'}" (${last ? describeStatus(last.object) : ''})`;
  if (done.at - truth.at > LATE_MS) return `late: done ${done.at - truth.at} ms after the pods: "${verdictOf(done, tool).said}"`;
  console.log(`verdicts: ${tool} said done ${done.at - truth.at} ms after the pods (${done.object.kind ?? ''})`);
  return 'ok';
}

function judgeStall(lines: Line[], tool: Tool, stalledAt: Truth, expected: Verdict): string {
  const doneLine = lines.find((l) => verdictOf(l, tool).verdict === 'done');
  if (doneLine) return `done while stalled at resourceVersion ${doneLine.resourceVersion} (${describeStatus(doneLine.object)}): "${verdictOf(doneLine, tool).said}"`;
  const failed = settledAt(lines, (l) => verdictOf(l, tool).verdict === expected);
  const last = lines.at(-1);
  if (!failed) return `never ${expected}: last said "${last ? verdictOf(last, tool).said : 'nothing'}" (${last ? describeStatus(last.object) : ''})`;
  if (failed.at - stalledAt.at > LATE_MS) return `late: ${expected} ${failed.at - stalledAt.at} ms after the pod stalled`;
  console.log(`verdicts: ${tool} said ${expected} ${failed.at - stalledAt.at} ms after the pod stalled (${failed.object.kind ?? ''})`);
  return 'ok';
}

/** The fields the tools read, for failure messages. */
function describeStatus(w: Workload): string {
  const s = w.status ?? {};
  const spec = w.spec as Workload['spec'] & { paused?: boolean };
  const partition = w.spec.updateStrategy?.rollingUpdate?.partition;
  return [
    `generation=${w.metadata.generation ?? 0}`, `observedGeneration=${s.observedGeneration ?? 0}`, `spec.replicas=${w.spec.replicas ?? 1}`,
    ...(spec.paused !== undefined ? [`spec.paused=${String(spec.paused)}`] : []),
    ...(partition !== undefined ? [`partition=${partition}`] : []),
    `status.replicas=${s.replicas ?? 0}`, `updatedReplicas=${s.updatedReplicas ?? 0}`, `readyReplicas=${s.readyReplicas ?? 0}`,
    ...(typeof s.availableReplicas === 'number' ? [`availableReplicas=${s.availableReplicas}`] : []),
    ...(s.currentRevision !== undefined ? [`currentRevision=${s.currentRevision}`, `updateRevision=${s.updateRevision ?? ''}`] : []),
    `rollout-state=${w.metadata.annotations?.['inplace-gate.dev/rollout-state'] ?? 'none'}`,
  ].join(' ');
}

/**
 * With VERDICTS_FIXTURES=1, keeps one object per distinct set of verdicts as a
 * fixture for test/verdicts' table tests, with the truth at its revision.
 */
async function keepFixtures(scenario: string, lines: Line[], truths: Truth[]): Promise<void> {
  if (process.env.VERDICTS_FIXTURES !== '1') return;
  const dir = join(VERDICTS, 'testdata');
  await mkdir(dir, { recursive: true });
  const seen = new Set<string>();
  let n = 0;
  for (const l of lines) {
    const key = JSON.stringify([l.kubectl.done, l.kubectl.error, l.kstatus.status, l.argocd.status, l.argocdLua?.status, l.object.metadata.annotations?.['inplace-gate.dev/rollout-state'] !== undefined]);
    if (seen.has(key)) continue;
    seen.add(key);
    const at = [...truths].reverse().find((t) => t.rv <= rv(l.object));
    const { managedFields: _m, ...metadata } = l.object.metadata as Workload['metadata'] & { managedFields?: unknown };
    const truth = at?.stalled ? 'stalled' : at?.done ? 'done' : 'in progress';
    await writeFile(join(dir, `${scenario}-${String(++n).padStart(2, '0')}.json`), `${JSON.stringify({ scenario, truth, object: { ...l.object, metadata } }, null, 2)}\n`);
  }
}

// ----------------------------------------------------------- workloads ---

const probe = { exec: { command: ['true'] }, periodSeconds: 1 };
const TOOLS: Tool[] = ['kubectl', 'kstatus', 'argocd', 'argocdLua'];

// The tools held to the truth here. Argo CD's built-in check calls the paused Deployment Suspended
// (docs/DESIGN.md, "What the users' tools read"). kubectl and kstatus see a Deployment's stall through the
// Progressing condition the watcher sets. For a StatefulSet all of them read the observedGeneration the
// status webhook holds below the generation while the rollout runs (and not while it is stalled, so that
// kstatus reaches the Stalled condition).
const HELD: Record<'rollout' | 'stall', Record<'Deployment' | 'StatefulSet', Tool[]>> = {
  rollout: { Deployment: ['kubectl', 'kstatus', 'argocdLua'], StatefulSet: ['kubectl', 'kstatus', 'argocd', 'argocdLua'] },
  stall: { Deployment: ['kubectl', 'kstatus', 'argocdLua'], StatefulSet: ['kubectl', 'kstatus', 'argocd', 'argocdLua'] },
};

function template(app: string, image: string, fake = false) {
  return {
    metadata: { labels: { app }, annotations: { 'inplace-gate.dev/grace-period-seconds': '1' } },
    spec: {
      terminationGracePeriodSeconds: 1,
      // On the kubelet-less node the test writes the statuses a kubelet would (a pull that fails).
      ...(fake ? { nodeName: FAKE_NODE, tolerations: [{ operator: 'Exists' }] } : {}),
      containers: [{ name: 'app', image, readinessProbe: probe }],
    },
  };
}

function workload(kind: 'Deployment' | 'StatefulSet', name: string, replicas: number, fake = false) {
  const spec = kind === 'Deployment'
    ? { strategy: { type: 'RollingUpdate', rollingUpdate: { maxUnavailable: 1, maxSurge: 1 } } }
    : { serviceName: name, podManagementPolicy: 'Parallel', updateStrategy: { type: 'RollingUpdate' } };
  return {
    apiVersion: 'apps/v1', kind, metadata: { name, namespace: NS },
    spec: { replicas, selector: { matchLabels: { app: name } }, ...spec, template: template(name, IMAGE, fake) },
  };
}

const listPods = async (app: string) => (await kubectlJson<{ items: Pod[] }>(['-n', NS, 'get', 'pods', '-l', `app=${app}`])).items.filter((p) => p.metadata.deletionTimestamp === undefined);

/** Changes the image as a user would; returns the workload's generation after the change. */
async function setImage(kind: string, name: string, image: string): Promise<number> {
  const w = JSON.parse(await kubectl(['-n', NS, 'set', 'image', `${kind.toLowerCase()}/${name}`, `app=${image}`, '-o', 'json'])) as Workload;
  return w.metadata.generation ?? 0;
}

/** Plays the kubelet for a pod on the kubelet-less node: container statuses and the Ready condition. */
async function kubeletWrites(p: Pod, app: { state: 'running'; image: string; id: string; restartCount?: number } | { state: 'waiting'; reason: string; message: string; image: string }): Promise<void> {
  const now = new Date().toISOString().replace(/\.\d+Z$/, 'Z');
  // Ready as the kubelet computes it: containers ready and every readiness gate True.
  const gates = (p.spec.readinessGates ?? []).every((g) => conditionOf(p, g.conditionType) === 'True');
  const ready = app.state === 'running' && gates ? 'True' : 'False';
  const writeReady = () => kubectl(['-n', NS, 'patch', 'pod', p.metadata.name ?? '', '--subresource=status', '--type=strategic', '-p', JSON.stringify({ status: { conditions: [{ type: 'Ready', status: ready, lastTransitionTime: now }] } })]);
  // A kubelet never shows a failed container in a Ready pod (it recomputes Ready as the gate goes False
  // in the drain): not Ready first, then the container that does not start.
  if (ready === 'False') await writeReady();
  await writeStatus(p, p.metadata.generation ?? 1, { app: app.state === 'running' ? { ...app, ready: true } : app });
  if (ready === 'True') await writeReady();
}

// --------------------------------------------------------------- tests ---

describe.each([
  ['Deployment', 'dep', 4],
  ['StatefulSet', 'sts', 3],
] as const)('%s rolled out in place', (kind, name, replicas) => {
  let lines: Line[] = [];
  let truth: Truth | undefined;

  beforeAll(async () => {
    await applyManifest(workload(kind, name, replicas));
    await eventually(`${name}: ${replicas} pods Ready on ${IMAGE}`, async () => {
      const ps = await listPods(name);
      return ps.length === replicas && ps.every((p) => podDone(p, { app: IMAGE })) ? true : undefined;
    }, 120_000, 500);
    const verdicts = await watchVerdicts(kind, name);
    const generation = await setImage(kind, name, IMAGE_2);
    const timeline = await eventually(`${name}: every pod on ${IMAGE_2} and Ready`, () => {
      const t = truthOf(name, replicas, { app: IMAGE_2 });
      return Promise.resolve(t.at(-1)?.done ? t : undefined);
    }, 180_000, 500);
    truth = settledAt(timeline, (t) => t.done);
    // Room for a late verdict to show, and no longer than the bound plus a margin.
    await eventually('every tool done, or the bound passed', () => {
      const last = verdicts.lines.at(-1);
      const allDone = last !== undefined && TOOLS.every((t) => verdictOf(last, t).verdict === 'done');
      return Promise.resolve(allDone || Date.now() - (truth?.at ?? 0) > LATE_MS + 3000 ? true : undefined);
    }, LATE_MS + 10_000, 250);
    await verdicts.stop();
    lines = verdicts.lines.filter((l) => l.generation >= generation);
    await keepFixtures(`${kind.toLowerCase()}-rollout`, lines, timeline);
  }, 300_000);

  it.each(HELD.rollout[kind])('%s: in progress until every pod runs the new image Ready, done within 10 s after', (tool) => {
    expect(truth).toBeDefined();
    expect(lines.length).toBeGreaterThan(0);
    expect(judge(lines, tool, truth!)).toBe('ok');
  });

  if (kind === 'StatefulSet') {
    it('the controller\'s status writes for the new template are stored with observedGeneration below the generation until the end', () => {
      // updateRevision changes only in a controller write of the new generation's status.
      const start = lines[0]?.object.status?.updateRevision;
      const observed = lines.filter((l) => rv(l.object) < truth!.rv && l.object.status?.updateRevision !== start);
      expect(observed.length).toBeGreaterThan(0);
      expect(observed.filter((l) => (l.object.status?.observedGeneration ?? 0) >= (l.object.metadata.generation ?? 0)).map((l) => describeStatus(l.object))).toEqual([]);
      const last = lines.at(-1)!.object;
      expect(last.status?.observedGeneration).toBe(last.metadata.generation);
    });
  }
});

describe.each([
  ['Deployment', 'dep-stall'],
  ['StatefulSet', 'sts-stall'],
] as const)('%s whose in-place rollout stalls (the new image never pulls)', (kind, name) => {
  let lines: Line[] = [];
  let stalled: Truth | undefined;

  beforeAll(async () => {
    await applyManifest(workload(kind, name, 2, true));
    const initial = await eventually(`${name}: 2 pods on ${FAKE_NODE}`, async () => {
      const ps = await listPods(name);
      return ps.length === 2 ? ps : undefined;
    }, 60_000);
    for (const p of initial) await kubeletWrites(p, { state: 'running', image: IMAGE, id: `${p.metadata.name ?? ''}-1` });
    // The gate goes True once the watcher has seen the pods run; then Ready follows it.
    const admitted = await eventually(`${name}: pods admitted`, async () => {
      const ps = await listPods(name);
      return ps.every((p) => conditionOf(p, READINESS_GATE) === 'True') ? ps : undefined;
    }, 30_000);
    for (const p of admitted) await kubeletWrites(p, { state: 'running', image: IMAGE, id: `${p.metadata.name ?? ''}-1` });
    await eventually(`${name}: workload sees 2 Ready`, async () => {
      const w = await kubectlJson<Workload>(['-n', NS, 'get', kind.toLowerCase(), name]);
      return w.status?.readyReplicas === 2 ? true : undefined;
    });

    const verdicts = await watchVerdicts(kind, name);
    const generation = await setImage(kind, name, IMAGE_2);
    // The watcher drains one pod and writes the new image to it; the pull fails.
    const updating = await eventually(`${name}: a pod given ${IMAGE_2}`, async () => (await listPods(name)).find((p) => p.spec.containers[0]?.image === IMAGE_2 && stateOf(p)?.phase === 'Updating'), 60_000);
    await kubeletWrites(updating, { state: 'waiting', reason: 'ErrImagePull', message: 'manifest unknown', image: IMAGE_2 });
    const timeline = await eventually(`${name}: the pod Stalled`, () => {
      const t = truthOf(name, 2, { app: IMAGE_2 });
      return Promise.resolve(t.at(-1)?.stalled ? t : undefined);
    }, 60_000);
    stalled = timeline.find((t) => t.stalled);
    await new Promise((r) => setTimeout(r, LATE_MS + 3000));
    await verdicts.stop();
    lines = verdicts.lines.filter((l) => l.generation >= generation);
    await keepFixtures(`${kind.toLowerCase()}-stall`, lines, timeline);
  }, 300_000);

  // What each tool can say of a failure: kubectl only knows a Deployment's progress deadline; Argo CD's
  // built-in StatefulSet check has no Degraded at all.
  const canFail: Record<Tool, Verdict> = kind === 'Deployment'
    ? { kubectl: 'failed', kstatus: 'failed', argocd: 'failed', argocdLua: 'failed' }
    : { kubectl: 'in progress', kstatus: 'failed', argocd: 'in progress', argocdLua: 'failed' };
  it.each(HELD.stall[kind].map((t) => [t, canFail[t]] as const))('%s reads %s within 10 s of the pod stalling, never done', (tool, expected) => {
    expect(stalled).toBeDefined();
    expect(judgeStall(lines, tool, stalled!, expected)).toBe('ok');
  });
});

// Facts for the rollout's mechanism: which status conditions written by someone other than the
// controller survive the controller's own status writes, and what the tools then read.
describe('status conditions a rollout could write, as kube-controller-manager keeps them', () => {
  async function verdictsOnce(kind: 'Deployment' | 'StatefulSet', name: string): Promise<Line> {
    const { stdout } = await run(binary, ['once', '--kubeconfig', context().kubeconfig, '--kind', kind, '--namespace', NS, '--name', name, '--lua', LUA, '--objects']);
    return JSON.parse(stdout) as Line;
  }
  const writeConditions = (kind: string, name: string, conditions: unknown[]) =>
    kubectl(['-n', NS, 'patch', kind.toLowerCase(), name, '--subresource=status', '--type=merge', '-p', JSON.stringify({ status: { conditions } })]);
  const now = () => new Date().toISOString().replace(/\.\d+Z$/, 'Z');

  it('a paused Deployment keeps Progressing=False ProgressDeadlineExceeded through a scale; kubectl and kstatus read failed', async () => {
    await applyManifest(workload('Deployment', 'cond-dep', 2));
    await kubectl(['-n', NS, 'rollout', 'pause', 'deployment/cond-dep']);
    const w = await kubectlJson<Workload>(['-n', NS, 'get', 'deployment', 'cond-dep']);
    const kept = (w.status?.conditions as { type: string }[] | undefined ?? []).filter((c) => c.type !== 'Progressing');
    await writeConditions('Deployment', 'cond-dep', [...kept, { type: 'Progressing', status: 'False', reason: 'ProgressDeadlineExceeded', message: 'written by the test', lastUpdateTime: now(), lastTransitionTime: now() }]);
    // A scale makes the controller sync the paused Deployment and write its status.
    await kubectl(['-n', NS, 'scale', 'deployment/cond-dep', '--replicas=3']);
    const line = await eventually('the scale reflected in status', async () => {
      const l = await verdictsOnce('Deployment', 'cond-dep');
      return l.object.status?.replicas === 3 && l.object.status.observedGeneration === l.object.metadata.generation ? l : undefined;
    }, 60_000);
    expect(JSON.stringify(line.object.status?.conditions)).toContain('ProgressDeadlineExceeded');
    expect(line.kubectl.error).toContain('exceeded its progress deadline');
    expect(line.kstatus.status).toBe('Failed');
    expect(line.argocd.status).toBe('Suspended');
  });

  it('a StatefulSet held at partition = replicas keeps Reconciling=True through a scale: kstatus reads InProgress, kubectl and Argo CD still done', async () => {
    const manifest = workload('StatefulSet', 'cond-held', 2);
    await applyManifest(manifest);
    await eventually('cond-held ready', async () => ((await kubectlJson<Workload>(['-n', NS, 'get', 'statefulset', 'cond-held'])).status?.readyReplicas === 2 ? true : undefined), 60_000);
    // The hold as the webhook writes it (partition = replicas) with an image change, outside inplace-gate's opt-in.
    await kubectl(['-n', NS, 'annotate', 'statefulset/cond-held', 'inplace-gate.dev/rollout=recreate']);
    await kubectl(['-n', NS, 'patch', 'statefulset', 'cond-held', '--type=merge', '-p', JSON.stringify({ spec: { updateStrategy: { rollingUpdate: { partition: 2 } }, template: { spec: { containers: [{ name: 'app', image: IMAGE_2 }] } } } })]);
    await eventually('the change observed', async () => {
      const w = await kubectlJson<Workload>(['-n', NS, 'get', 'statefulset', 'cond-held']);
      return w.status?.observedGeneration === w.metadata.generation && w.status?.updateRevision !== w.status?.currentRevision ? true : undefined;
    }, 60_000);
    await writeConditions('StatefulSet', 'cond-held', [{ type: 'Reconciling', status: 'True', reason: 'InPlaceRollout', message: 'written by the test', lastTransitionTime: now() }]);
    // A scale makes the controller write the status again (the new ordinal, past the partition, on the new revision).
    await kubectl(['-n', NS, 'scale', 'statefulset/cond-held', '--replicas=3']);
    const line = await eventually('the scale reflected in status', async () => {
      const l = await verdictsOnce('StatefulSet', 'cond-held');
      return l.object.status?.readyReplicas === 3 && l.object.status.updatedReplicas === 1 ? l : undefined;
    }, 60_000);
    expect(JSON.stringify(line.object.status?.conditions ?? [])).toContain('InPlaceRollout');
    expect(line.kstatus.status).toBe('InProgress');
    expect(line.kubectl.done).toBe(true);
    expect(line.argocd.status).toBe('Healthy');
  });

  it('a StatefulSet keeps a Stalled=True condition through a scale; kstatus reads Failed', async () => {
    await applyManifest(workload('StatefulSet', 'cond-sts', 2));
    await eventually('cond-sts ready', async () => ((await kubectlJson<Workload>(['-n', NS, 'get', 'statefulset', 'cond-sts'])).status?.readyReplicas === 2 ? true : undefined), 60_000);
    await writeConditions('StatefulSet', 'cond-sts', [{ type: 'Stalled', status: 'True', reason: 'InPlaceRolloutStalled', message: 'written by the test', lastTransitionTime: now() }]);
    await kubectl(['-n', NS, 'scale', 'statefulset/cond-sts', '--replicas=3']);
    const line = await eventually('the scale reflected in status', async () => {
      const l = await verdictsOnce('StatefulSet', 'cond-sts');
      return l.object.status?.readyReplicas === 3 ? l : undefined;
    }, 60_000);
    expect(JSON.stringify(line.object.status?.conditions ?? [])).toContain('InPlaceRolloutStalled');
    expect(line.kstatus.status).toBe('Failed');
  });
});
