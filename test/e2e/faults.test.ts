// Faults on the real control plane while 100+ in-place updates are under way at
// once (single pods, and a Deployment rolling out in place, on hollow kubelets):
// the watcher SIGKILLed every few seconds for a minute (leader and standby), the
// webhook killed and started again, its serving certificate rotated,
// kube-apiserver restarted, etcd restarted. After each: every pod Ready on the
// images last asked for, none NotReady or Pending, no request lost, and no image
// written before its drain. All of it is judged from a pod watch this test keeps
// itself, never from the product's own state.

import { join, resolve } from 'node:path';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Pod } from '../../src/core/kube-types.ts';
import { READINESS_GATE, ROLLOUT_STATE_ANNOTATION, UPDATE_ANNOTATION } from '../../src/core/names.ts';
import type { Workload } from '../../src/core/workload-types.ts';
import { ApiError } from '../../src/kube/client.ts';
import { applyManifest, context, createNamespace, eventually, kubectl } from './support/kube.ts';
import { IMAGE, IMAGE_2, IMAGE_3, podManifest } from './support/pods.ts';
import { apiClient } from './support/recorder.ts';
import { startLeadingWatcher, startWatcher, type WatcherProcess } from './support/watcher.ts';
import { startOwnWebhook, type OwnWebhook } from './support/webhook.ts';

const run = promisify(execFile);
const repo = resolve(import.meta.dirname, '../..');
const NS = `e2e-faults-${Date.now().toString(36)}`;
/** 76 single pods and a Deployment of 30: 106 in-place updates at once. */
const SINGLES = Number(process.env.FAULTS_PODS ?? 76);
const REPLICAS = Number(process.env.FAULTS_REPLICAS ?? 30);
const DEPLOYMENT = 'web';
const LEASE = ['--lease-duration-seconds', '6', '--renew-deadline-seconds', '4', '--retry-period-seconds', '1', '--concurrency', '32'];
const ROTATION = [IMAGE, IMAGE_2, IMAGE_3];
const singles = Array.from({ length: SINGLES }, (_, i) => `single-${String(i).padStart(3, '0')}`);

/** What the test's own watch saw of a pod, one entry per event. */
interface Seen { type: string; image: string | undefined; gate: string | undefined; ready: string | undefined }

/**
 * Every pod event in the namespace, per pod uid, from one watch resumed at its
 * last resourceVersion whenever it breaks (the apiserver going away). A watch
 * that cannot resume (410 Gone) lists again: the versions in between are not
 * seen, so a write among them is counted (unseenWrites), not judged.
 */
class PodHistory {
  readonly byUid = new Map<string, { name: string; seen: Seen[] }>();
  gaps = 0;
  resumes = 0;
  private readonly abort = new AbortController();
  private done: Promise<void> = Promise.resolve();

  async start(): Promise<void> {
    const client = await apiClient();
    const path = `/api/v1/namespaces/${NS}/pods`;
    let rv = (await client.get<{ metadata: { resourceVersion: string } }>(path)).metadata.resourceVersion;
    const loop = async () => {
      while (!this.abort.signal.aborted) {
        try {
          await client.watch<Pod>(`${path}?watch=true&allowWatchBookmarks=true&resourceVersion=${rv}`, ({ type, object }) => {
            rv = object.metadata.resourceVersion ?? rv;
            if (type !== 'BOOKMARK') this.add(type, object);
          }, this.abort.signal, 30_000);
        } catch (err) {
          if (err instanceof ApiError && err.status === 410) {
            // A kube-apiserver just restarted: its new watch cache begins after our place (seen once
            // in two runs). List again; what changed in between was not seen, and an image write in
            // it is counted as unseen, not judged.
            const list = await client.get<{ metadata: { resourceVersion: string }; items: Pod[] }>(path).catch(() => undefined);
            if (list !== undefined) {
              this.gaps++;
              rv = list.metadata.resourceVersion;
              for (const pod of list.items) this.add('RELISTED', pod);
            }
          }
        }
        this.resumes++;
        await new Promise((r) => setTimeout(r, 250));
      }
    };
    this.done = loop();
  }

  private add(type: string, pod: Pod): void {
    const uid = pod.metadata.uid ?? '';
    const entry = this.byUid.get(uid) ?? { name: pod.metadata.name ?? '', seen: [] };
    const cond = (t: string) => pod.status?.conditions?.find((c) => c.type === t)?.status;
    entry.seen.push({ type, image: pod.spec.containers[0]?.image, gate: cond(READINESS_GATE), ready: cond('Ready') });
    this.byUid.set(uid, entry);
  }

  /** Image writes to a running pod whose previous version was not drained: gate False and Ready False. */
  undrainedWrites(): string[] {
    const bad: string[] = [];
    for (const { name, seen } of this.byUid.values()) {
      for (let i = 1; i < seen.length; i++) {
        const [before, after] = [seen[i - 1]!, seen[i]!];
        if (after.type === 'DELETED' || after.type === 'RELISTED' || before.image === after.image) continue;
        if (before.gate !== 'False' || before.ready !== 'False') bad.push(`${name}: ${before.image ?? ''} -> ${after.image ?? ''} while gate ${before.gate ?? '-'}, Ready ${before.ready ?? '-'}`);
      }
    }
    return bad;
  }

  /** In-place image writes seen so far (a pod's spec image changing). */
  writes(): number {
    let n = 0;
    for (const { seen } of this.byUid.values()) for (let i = 1; i < seen.length; i++) if (seen[i]!.type !== 'DELETED' && seen[i - 1]!.image !== seen[i]!.image) n++;
    return n;
  }

  /** Image writes that fell into a gap of the watch (seen only as a changed image in the list after it). */
  unseenWrites(): number {
    let n = 0;
    for (const { seen } of this.byUid.values()) for (let i = 1; i < seen.length; i++) if (seen[i]!.type === 'RELISTED' && seen[i - 1]!.image !== seen[i]!.image) n++;
    return n;
  }

  async stop(): Promise<void> {
    this.abort.abort();
    await this.done;
  }
}

const history = new PodHistory();
const watchers: WatcherProcess[] = [];
let webhook: OwnWebhook;
let round = 0;

/** A write as a client makes it, retried while the control plane refuses it (a fault is under way): never given up. */
async function persist<T>(what: string, write: () => Promise<T>): Promise<T> {
  for (let attempt = 0; ; attempt++) {
    try {
      return await write();
    } catch (err) {
      // A conflict or a refusal that is not the fault's would repeat for ever: the deadline ends it.
      if (attempt > 600) throw new Error(`${what}: still refused after ${attempt} attempts: ${(err as Error).message}`, { cause: err });
      await new Promise((r) => setTimeout(r, 250));
    }
  }
}

/** Asks for `image` on every single pod (16 at a time) and on the Deployment's template, as `kubectl set image` would. */
async function requestImages(image: string): Promise<void> {
  const client = await apiClient();
  const containers = { spec: { template: { spec: { containers: [{ name: 'app', image }] } } } };
  await persist('the Deployment bump', () => client.patch(`/apis/apps/v1/namespaces/${NS}/deployments/${DEPLOYMENT}`, containers, 'strategic', 'kubectl-set'));
  const queue = [...singles];
  await Promise.all(Array.from({ length: 16 }, async () => {
    for (let name = queue.shift(); name !== undefined; name = queue.shift()) {
      const pod = name;
      await persist(`${pod}'s request`, () => client.patch(`/api/v1/namespaces/${NS}/pods/${pod}`, { spec: { containers: [{ name: 'app', image }] } }, 'strategic', 'kubectl-set'));
    }
  }));
}

const condition = (p: Pod, type: string) => p.status?.conditions?.find((c) => c.type === type)?.status;

/** Why the namespace is not yet where it must end up, or undefined when every pod is Ready on `image` and the Deployment is released. */
async function notSettled(image: string): Promise<string | undefined> {
  const client = await apiClient();
  const pods = (await client.get<{ items: Pod[] }>(`/api/v1/namespaces/${NS}/pods`)).items.filter((p) => p.metadata.deletionTimestamp === undefined);
  const web = pods.filter((p) => p.metadata.labels?.app === DEPLOYMENT);
  const single = pods.filter((p) => p.metadata.labels?.group === 'singles');
  if (single.length !== SINGLES || web.length !== REPLICAS) return `${single.length} single pods, ${web.length} Deployment pods`;
  for (const p of pods) {
    const status = p.status?.containerStatuses?.[0];
    const name = p.metadata.name ?? '';
    if (p.spec.containers[0]?.image !== image) return `${name} asks for ${p.spec.containers[0]?.image ?? '-'}`;
    if (status?.image !== image || status.state?.running === undefined) return `${name} runs ${status?.image ?? '-'}`;
    if (p.status?.phase !== 'Running' || condition(p, 'Ready') !== 'True' || condition(p, READINESS_GATE) !== 'True') return `${name} is ${p.status?.phase ?? '-'}, Ready ${condition(p, 'Ready') ?? '-'}`;
    if (p.metadata.annotations?.[UPDATE_ANNOTATION] !== undefined) return `${name} still updating`;
  }
  const d = await client.get<Workload>(`/apis/apps/v1/namespaces/${NS}/deployments/${DEPLOYMENT}`);
  if (d.spec.paused === true || d.metadata.annotations?.[ROLLOUT_STATE_ANNOTATION] !== undefined) return 'the Deployment is still held';
  return undefined;
}

/**
 * One round: the next image asked for everywhere while `fault` runs, then the
 * checks. Returns the image, for the log.
 */
async function roundUnder(fault: () => Promise<void>): Promise<string> {
  const image = ROTATION[++round % ROTATION.length]!;
  const writesBefore = history.writes();
  const started = Date.now();
  await Promise.all([requestImages(image), fault()]);
  let why: string | undefined = 'not looked yet';
  await eventually(`every pod Ready on ${image}`, async () => {
    why = await notSettled(image);
    return why === undefined ? true : undefined;
  }, 240_000, 1000).catch((err: unknown) => { throw new Error(`${(err as Error).message}; last: ${why ?? ''}`, { cause: err }); });
  // For the record only (timings are not asserted): how long the round took to settle.
  console.log(`round ${round} (${image}): settled ${((Date.now() - started) / 1000).toFixed(1)} s after the first request, ${history.writes() - writesBefore} in-place writes; ` +
    `the watch so far: ${history.gaps} gaps, ${history.unseenWrites()} writes in them`);
  expect(history.undrainedWrites()).toEqual([]);
  // Every single pod and every Deployment pod that stayed was written in place once.
  expect(history.writes() - writesBefore).toBeGreaterThanOrEqual(SINGLES);
  return image;
}

async function cluster(args: string[]): Promise<void> {
  const { clusterDir } = context();
  await run('bash', [join(repo, 'test/cluster/cluster.sh'), ...args], { env: { ...process.env, CLUSTER_DIR: clusterDir } });
}

beforeAll(async () => {
  await createNamespace(NS, { 'inplace-gate.dev/enabled': 'true' });
  webhook = await startOwnWebhook('e2e-faults-webhook');
  watchers.push(await startLeadingWatcher(LEASE), await startWatcher(LEASE));
  await history.start();
  const service = (name: string, selector: Record<string, string>) => ({ apiVersion: 'v1', kind: 'Service', metadata: { name, namespace: NS }, spec: { selector, ports: [{ port: 80 }] } });
  const template = podManifest(DEPLOYMENT, NS);
  await applyManifest({
    apiVersion: 'v1',
    kind: 'List',
    items: [
      service('singles', { group: 'singles' }),
      service(DEPLOYMENT, { app: DEPLOYMENT }),
      { apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name: DEPLOYMENT, namespace: NS }, spec: { replicas: REPLICAS, selector: { matchLabels: { app: DEPLOYMENT } }, template: { metadata: { labels: { app: DEPLOYMENT } }, spec: template.spec } } },
      ...singles.map((name) => podManifest(name, NS, { labels: { group: 'singles' } })),
    ],
  });
  await eventually('every pod Ready', async () => ((await notSettled(IMAGE)) === undefined ? true : undefined), 240_000, 1000);
}, 300_000);

afterAll(async () => {
  await history.stop();
  for (const w of watchers) await w.stop();
  await webhook.restore();
  await kubectl(['delete', 'namespace', NS, '--wait=false']);
});

describe(`faults during ${SINGLES + REPLICAS} in-place updates at once`, () => {
  it('the watcher SIGKILLed every 5 s for a minute, leader and standby in turn', async () => {
    const end = Date.now() + 60_000;
    let kills = 0;
    const loop = async () => {
      while (Date.now() < end) {
        await new Promise((r) => setTimeout(r, 5000));
        // Even turns the leader, odd turns the standby; a new replica takes the killed one's place at once.
        const led = await Promise.all(watchers.map(async (w) => (await w.ledAt()) !== undefined));
        const index = kills % 2 === 0 ? Math.max(0, led.indexOf(true)) : Math.max(0, led.indexOf(false));
        const [victim] = watchers.splice(index, 1);
        await victim!.stop('SIGKILL');
        kills++;
        watchers.push(await startWatcher(LEASE));
      }
    };
    const killing = loop();
    const rounds: string[] = [];
    // Rounds back to back while the kills go on, and one more after the last kill's round settles.
    while (Date.now() < end) rounds.push(await roundUnder(() => Promise.resolve()));
    await killing;
    console.log(`watcher kills: ${kills} SIGKILLs in 60 s, ${rounds.length} rounds (${rounds.join(', ')}) settled under them; ${history.writes()} in-place writes so far, watch resumed ${history.resumes} times`);
    expect(kills).toBeGreaterThanOrEqual(10);
  }, 600_000);

  it('the webhook SIGKILLed and started again while the requests come in', async () => {
    await roundUnder(async () => {
      await new Promise((r) => setTimeout(r, 1000));
      await webhook.restart();
    });
  }, 300_000);

  it('the webhook\'s serving certificate rotated while the requests come in', async () => {
    const before = await webhook.servedFingerprint();
    await roundUnder(async () => {
      await new Promise((r) => setTimeout(r, 1000));
      await webhook.rotateCertificate();
    });
    expect(await webhook.servedFingerprint()).not.toBe(before);
  }, 300_000);

  it('kube-apiserver restarted while the pods drain', async () => {
    await roundUnder(async () => {
      await new Promise((r) => setTimeout(r, 2000));
      await cluster(['restart', 'kube-apiserver']);
    });
  }, 300_000);

  it('etcd restarted while the pods drain', async () => {
    await roundUnder(async () => {
      await new Promise((r) => setTimeout(r, 2000));
      await cluster(['restart', 'etcd']);
    });
    console.log(`after every fault: ${history.writes()} in-place writes, none seen before its drain (${history.unseenWrites()} in gaps of the watch); the test's watch resumed ${history.resumes} times, ${history.gaps} gaps`);
  }, 300_000);
});
