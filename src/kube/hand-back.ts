// The shell around core/hand-back.ts: read the objects, plan, apply the plan's
// writes in order (each guarded by the resourceVersion it was decided on),
// then read and plan again until nothing is left to write. A conflict (the
// watcher, a controller or a user wrote first) is simply planned again, so the
// commands are safe at any moment, idempotent, and never fight the watcher:
// the first write of a release removes the rollout state, after which the
// watcher leaves the workload alone.

import { hostname } from 'node:os';
import {
  cancelRequest, releasePlan, type PodWrite, type ReleasePlan, type ReleaseWrite, type WorkloadKind,
} from '../core/hand-back.ts';
import type { Pod } from '../core/kube-types.ts';
import { WATCHER_FIELD_MANAGER, conditionFor, type LifecycleConfig } from '../core/lifecycle.ts';
import { MANAGED_LABEL, ROLLOUT_STATE_ANNOTATION, UPDATE_ANNOTATION } from '../core/names.ts';
import type { Workload } from '../core/workload-types.ts';
import { eventBody } from '../watcher/events.ts';
import { ApiError, type KubeClient } from './client.ts';

export interface HandBackOptions {
  client: KubeClient;
  config: LifecycleConfig;
  /** One line per object: what was done, or why not. */
  out: (line: string) => void;
  /** How long to wait for pods whose written images are not proven yet (0: do not wait). */
  waitSeconds: number;
  clock?: () => Date;
}

interface List<T> { items: T[] }

const RESOURCE: Record<WorkloadKind, string> = { Deployment: 'deployments', StatefulSet: 'statefulsets' };
const POLL_MS = 1000;
/** Rounds of writes before giving up: each round re-reads; a handful always suffices (rewind steps, a conflict or two). */
const MAX_ROUNDS = 12;

let sequence = 0;
const instance = `kubectl-inplace_gate-${hostname()}`;

const nsPath = (ns: string) => `/namespaces/${encodeURIComponent(ns)}`;
const managedPods = (client: KubeClient, scope: string) =>
  client.get<List<Pod>>(`/api/v1${scope}/pods?labelSelector=${encodeURIComponent(`${MANAGED_LABEL}=true`)}`).then((l) => l.items);

/** Who this client is (a request made while Updating is cancelled under the writer's name); undefined if the cluster will not say. */
export async function whoAmI(client: KubeClient): Promise<string | undefined> {
  try {
    const review = await client.post<{ status?: { userInfo?: { username?: string } } }>('/apis/authentication.k8s.io/v1/selfsubjectreviews',
      { apiVersion: 'authentication.k8s.io/v1', kind: 'SelfSubjectReview' });
    return review.status?.userInfo?.username;
  } catch {
    return undefined;
  }
}

const ignoreGone = (err: unknown) => {
  if (!(err instanceof ApiError && err.status === 404)) throw err;
};

/** One pod's writes: the guarded pods patch, then the condition guarded by what that returned, then the Event. */
async function applyPodWrite(client: KubeClient, w: PodWrite, now: Date): Promise<void> {
  const path = `/api/v1${nsPath(w.pod.metadata.namespace ?? '')}/pods/${encodeURIComponent(w.pod.metadata.name ?? '')}`;
  let pod = w.pod;
  if (w.patch) pod = await client.patch<Pod>(path, w.patch, 'strategic', WATCHER_FIELD_MANAGER);
  if (w.condition || w.clearState) {
    const body = {
      metadata: { resourceVersion: pod.metadata.resourceVersion, ...(w.clearState ? { annotations: { [UPDATE_ANNOTATION]: null } } : {}) },
      ...(w.condition ? { status: { conditions: [conditionFor(pod, w.condition, now)] } } : {}),
    };
    await client.patch(`${path}/status`, body, 'strategic', WATCHER_FIELD_MANAGER).catch((err: unknown) => {
      // Written since the first write (a running watcher sets the condition True itself once the state
      // is gone): the next round reads the pod again and writes the condition only if it is still needed.
      if (!(err instanceof ApiError && err.status === 409) || !w.patch) throw err;
    });
  }
  if (w.event) {
    // An Event that cannot be written (RBAC) does not undo the cancel: the note still says it.
    await client.post(`/apis/events.k8s.io/v1${nsPath(pod.metadata.namespace ?? '')}/events`, eventBody({ apiVersion: 'v1', kind: 'Pod', metadata: pod.metadata }, w.event, now, instance, ++sequence)).catch(() => undefined);
  }
}

async function applyWrite(client: KubeClient, ns: string, kind: WorkloadKind, name: string, w: ReleaseWrite, now: Date): Promise<void> {
  const base = `/apis/apps/v1${nsPath(ns)}`;
  switch (w.op) {
    case 'delete-replicaset':
      await client.request('DELETE', `${base}/replicasets/${encodeURIComponent(w.name)}`, w.options).catch(ignoreGone);
      return;
    case 'patch-replicaset':
      await client.patch(`${base}/replicasets/${encodeURIComponent(w.name)}`, w.body, 'strategic', WATCHER_FIELD_MANAGER);
      return;
    case 'patch-workload':
      await client.patch(`${base}/${RESOURCE[kind]}/${encodeURIComponent(name)}`, w.body, 'strategic', WATCHER_FIELD_MANAGER);
      return;
    case 'workload-conditions': {
      const at = now.toISOString().replace(/\.\d{3}Z$/, 'Z');
      await client.patch(`${base}/${RESOURCE[kind]}/${encodeURIComponent(name)}/status`,
        { status: { conditions: w.conditions.map((c) => ({ ...c, lastTransitionTime: at })) } }, 'strategic', WATCHER_FIELD_MANAGER);
      return;
    }
    case 'pod':
      await applyPodWrite(client, w, now).catch(ignoreGone);
  }
}

/**
 * Applies a plan's writes in order and says what each did. False when a write
 * met a conflict (decided on a stale copy): the caller reads and plans again.
 */
async function applyPlan(opts: HandBackOptions, plan: ReleasePlan, apply: (w: ReleaseWrite) => Promise<void>): Promise<boolean> {
  for (const w of plan.writes) {
    try {
      await apply(w);
    } catch (err) {
      if (err instanceof ApiError && err.status === 409) return false;
      // Gone meanwhile (a pod the controller replaced, a namespace being deleted): nothing left to hand back.
      if (err instanceof ApiError && err.status === 404) continue;
      throw new Error(`${w.note.split(':')[0] ?? ''}: ${(err as Error).message}`, { cause: err });
    }
    opts.out(w.note);
  }
  return true;
}

/**
 * Plans and applies until a plan has nothing to write, then waits (up to
 * waitSeconds) for pods whose written images are still unproven. Prints what
 * was done, then what stays as it is. 0 when nothing is left waiting.
 */
async function converge(opts: HandBackOptions, plan: () => Promise<ReleasePlan>, apply: (w: ReleaseWrite) => Promise<void>): Promise<{ code: number; notes: string[] }> {
  const clock = opts.clock ?? (() => new Date());
  const until = clock().getTime() + opts.waitSeconds * 1000;
  let said = '';
  for (let round = 0; ; round++) {
    const next = await plan();
    if (next.writes.length > 0) {
      if (round >= MAX_ROUNDS) throw new Error(`still changing after ${String(MAX_ROUNDS)} rounds of writes: ${next.writes.map((w) => w.note).join('; ')}`);
      await applyPlan(opts, next, apply);
      continue;
    }
    if (next.waiting.length === 0 || clock().getTime() >= until) {
      for (const note of [...next.notes, ...next.waiting]) opts.out(note);
      return { code: next.waiting.length === 0 ? 0 : 1, notes: next.notes };
    }
    const waiting = next.waiting.join('\n');
    if (waiting !== said) opts.out(`waiting for ${next.waiting.length} pod(s) restarting on images already written...`);
    said = waiting;
    await new Promise((r) => setTimeout(r, POLL_MS));
  }
}

async function readWorkload(client: KubeClient, ns: string, kind: WorkloadKind, name: string) {
  const workload = await client.get<Workload>(`/apis/apps/v1${nsPath(ns)}/${RESOURCE[kind]}/${encodeURIComponent(name)}`);
  const [replicaSets, pods] = await Promise.all([
    kind === 'Deployment' ? client.get<List<Workload>>(`/apis/apps/v1${nsPath(ns)}/replicasets`).then((l) => l.items) : Promise.resolve([]),
    managedPods(client, nsPath(ns)),
  ]);
  return { workload, replicaSets, pods };
}

/** `release deployment/NAME`: that workload back to its native controller, its pods' requests not yet written dropped. */
export async function releaseWorkload(opts: HandBackOptions, ns: string, kind: WorkloadKind, name: string, user?: string): Promise<number> {
  const { client, config } = opts;
  const clock = opts.clock ?? (() => new Date());
  const who = user ?? (await whoAmI(client));
  // Set once this run marked the Deployment recreate: the end of the release removes the mark again.
  let marked = false;
  const plan = async () => {
    const read = await readWorkload(client, ns, kind, name);
    return releasePlan({ kind, ...read, ctx: { now: clock(), config, user: who }, marked });
  };
  const result = await converge(opts, plan, async (w) => {
    await applyWrite(client, ns, kind, name, w, clock());
    if (w.op === 'patch-workload' && w.marks === true) marked = true;
  });
  return result.code;
}

/** `cancel POD`: its request not yet written dropped; refused (1) once its images are written. */
export async function cancelPod(opts: HandBackOptions, ns: string, name: string): Promise<number> {
  const { client, config } = opts;
  const clock = opts.clock ?? (() => new Date());
  const who = await whoAmI(client);
  const path = `/api/v1${nsPath(ns)}/pods/${encodeURIComponent(name)}`;
  const last = { refused: false, wrote: false };
  const plan = async (): Promise<ReleasePlan> => {
    const pod = await client.get<Pod>(path);
    const result = cancelRequest(pod, { now: clock(), config, user: who });
    last.refused = result.action === 'refuse' || result.action === 'wait';
    if (result.action === 'write') {
      last.wrote = true;
      return { writes: [result.write], notes: [], waiting: [] };
    }
    // A pod restarting on written images is not waited for: cancel says why it cannot and stops.
    // After a write, "nothing pending" is what that write did, said already.
    return { writes: [], notes: result.action === 'none' && last.wrote ? [] : [result.note], waiting: [] };
  };
  const lines: string[] = [];
  const result = await converge({ ...opts, waitSeconds: 0, out: (l) => { lines.push(l); } }, plan, (w) => applyWrite(client, ns, 'Deployment', '', w, clock()));
  // Refused: only the reason, for stderr, and exit 1.
  if (last.refused) throw new CancelRefused(lines[lines.length - 1] ?? `pod/${name}: cannot cancel`);
  for (const l of lines) opts.out(l);
  const rollout = await heldRolloutOf(client, ns, await client.get<Pod>(path));
  if (rollout) opts.out(`note: ${rollout} rolls out in place and will start pod/${name} again; cancel or release ${rollout} to stop it`);
  return result.code;
}

export class CancelRefused extends Error {}

/** The held workload a pod belongs to (a Deployment through its ReplicaSet, or a StatefulSet), as kind/name. */
async function heldRolloutOf(client: KubeClient, ns: string, pod: Pod): Promise<string | undefined> {
  const owner = pod.metadata.ownerReferences?.find((o) => o.controller === true);
  if (!owner) return undefined;
  let kind: WorkloadKind;
  let name = owner.name;
  if (owner.kind === 'StatefulSet') kind = 'StatefulSet';
  else if (owner.kind === 'ReplicaSet') {
    const rs = await client.get<Workload>(`/apis/apps/v1${nsPath(ns)}/replicasets/${encodeURIComponent(owner.name)}`).catch(() => undefined);
    const dep = rs?.metadata.ownerReferences?.find((o) => o.kind === 'Deployment');
    if (!dep) return undefined;
    kind = 'Deployment';
    name = dep.name;
  } else return undefined;
  const w = await client.get<Workload>(`/apis/apps/v1${nsPath(ns)}/${RESOURCE[kind]}/${encodeURIComponent(name)}`).catch(() => undefined);
  return w?.metadata.annotations?.[ROLLOUT_STATE_ANNOTATION] === undefined ? undefined : `${kind.toLowerCase()}/${name}`;
}

/**
 * `inplace-gate release` (before an uninstall, or as a Helm pre-delete hook):
 * every held Deployment and StatefulSet back to its controller, then every
 * managed pod's request not yet written dropped and its condition given back.
 * `namespace` undefined: every namespace.
 */
export async function releaseAll(opts: HandBackOptions, namespace?: string): Promise<number> {
  const { client, config } = opts;
  const clock = opts.clock ?? (() => new Date());
  const scope = namespace === undefined ? '' : nsPath(namespace);
  const who = await whoAmI(client);
  let code = 0;
  let workloads = 0;
  for (const kind of ['Deployment', 'StatefulSet'] as const) {
    const held = (await client.get<List<Workload>>(`/apis/apps/v1${scope}/${RESOURCE[kind]}`)).items
      .filter((w) => w.metadata.annotations?.[ROLLOUT_STATE_ANNOTATION] !== undefined);
    for (const w of held) {
      workloads++;
      const ns = w.metadata.namespace ?? '';
      const prefixed: HandBackOptions = { ...opts, waitSeconds: 0, out: (l) => { opts.out(namespace === undefined ? `${ns}/${l}` : l); } };
      code = Math.max(code, await releaseWorkload(prefixed, ns, kind, w.metadata.name ?? '', who).catch((err: unknown) => {
        if (err instanceof ApiError && err.status === 404) return 0;
        throw err;
      }));
    }
  }
  if (workloads === 0) opts.out('no workload held by inplace-gate');
  // Then every managed pod (a workload's, or a pod's own image change): nothing left pending or drained.
  const where = (pod: Pod) => (namespace === undefined ? `${pod.metadata.namespace ?? ''}/` : '');
  const podsPlan = async (): Promise<ReleasePlan> => {
    const plan: ReleasePlan = { writes: [], notes: [], waiting: [] };
    for (const pod of await managedPods(client, scope)) {
      const r = cancelRequest(pod, { now: clock(), config, user: who });
      if (r.action === 'write') plan.writes.push({ ...r.write, note: `${where(pod)}${r.write.note}` });
      else if (r.action === 'wait') plan.waiting.push(`${where(pod)}${r.note}`);
      else if (r.action === 'refuse') plan.notes.push(`${where(pod)}${r.note}`);
    }
    return plan;
  };
  let touched = 0;
  const pods = await converge(opts, podsPlan, async (w) => {
    touched++;
    if (w.op === 'pod') await applyPodWrite(client, w, clock()).catch(ignoreGone);
  });
  if (touched === 0 && pods.notes.length === 0) opts.out('no managed pod with an image change pending or its condition False');
  return Math.max(code, pods.code);
}
