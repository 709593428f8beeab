// `inplace-gate watcher`: informers over managed pods and namespaces, the
// work queue, leader election, health and metrics. Standbys keep their caches
// warm; only the leader's queue runs, so failover costs one lease round.

import { createServer, type Server } from 'node:http';
import { MANAGED_LABEL, ROLLOUT_STATE_ANNOTATION, UPDATE_ANNOTATION } from '../core/names.ts';
import type { Workload } from '../core/workload-types.ts';
import { RolloutReconciler } from './rollout-reconciler.ts';
import type { Pod } from '../core/kube-types.ts';
import { drainOverdueSeconds } from '../core/lifecycle.ts';
import { KubeClient, loadKubeConfig } from '../kube/client.ts';
import type { DestinationStream } from 'pino';
import { createLogger } from '../log.ts';
import type { Settings } from '../settings.ts';
import { listenError } from '../startup-error.ts';
import { EventRecorder } from './events.ts';
import { Informer } from './informer.ts';
import { LeaderElector } from './leader.ts';
import { apiRequestObserver, createWatcherMetrics, queueObserver } from './metrics.ts';
import { PodReconciler, phaseOf } from './pod-reconciler.ts';
import { WorkQueue } from './queue.ts';
import { PULL_LABEL, pullPodActive, type PullPod } from '../core/pre-pull.ts';
import { trimBudget, trimEndpointSlice, trimNamespace, trimNode, trimPod, trimPullPod, trimService, trimWorkload, type BudgetMeta, type NamespaceMeta, type NodeMeta } from './trim.ts';
import { EndpointIndex } from './endpoints.ts';
import type { ServiceView, SliceView } from '../core/endpoints.ts';
import { leftoverConditions, type StatusCondition } from '../core/statefulset-status.ts';

export interface RunningWatcher {
  stop(): Promise<void>;
  isLeader(): boolean;
  healthUrl: string | undefined;
}

export async function runWatcher(settings: Settings, logTo?: DestinationStream): Promise<RunningWatcher> {
  const w = settings.watcher;
  const log = createLogger('watcher', settings.logLevel, logTo);
  const kc = loadKubeConfig(w.kubeconfig);
  const client = await KubeClient.create(kc, 'inplace-gate-watcher');
  const abort = new AbortController();

  // The collect callbacks run at scrape time, after `pods` and `queue` exist.
  const metrics = createWatcherMetrics(
    () => {
      const byPhase: Record<string, number> = {};
      let drainOverdue = 0;
      const now = new Date();
      for (const pod of pods.store.values()) {
        byPhase[phaseOf(pod)] = (byPhase[phaseOf(pod)] ?? 0) + 1;
        drainOverdue = Math.max(drainOverdue, drainOverdueSeconds(pod, now));
      }
      return { byPhase, drainOverdueSeconds: drainOverdue };
    },
    () => ({ pods: queue.depth, rollouts: rolloutQueue.depth }),
  );
  client.observer = apiRequestObserver(metrics, client.server.host);

  let leading = !w.leaderElect;
  const pods: Informer<Pod> = new Informer<Pod>(client, {
    path: '/api/v1/pods',
    labelSelector: `${MANAGED_LABEL}=true`,
    trim: trimPod,
    log,
    resyncMs: w.resyncSeconds * 1000,
    onChange: (key, pod) => {
      if (pod === undefined) {
        queue.forget(key);
        endpoints.forget(key);
      }
      // A pod whose new container may be proven goes first: it ends an outage, a drain only starts one.
      else if (leading) queue.add(key, pod.metadata.annotations?.[UPDATE_ANNOTATION]?.includes('"phase":"Updating"') ?? false);
      const rollout = pod ? rollouts.rolloutOf(pod) : undefined;
      if (leading && rollout) rolloutQueue.add(rollout);
    },
  });
  const namespaces = new Informer<NamespaceMeta>(client, {
    path: '/api/v1/namespaces',
    trim: trimNamespace,
    log,
    resyncMs: w.resyncSeconds * 1000,
    onChange: () => undefined,
  });
  // What the EndpointSlices say about each pod: the drain is confirmed there, not assumed.
  const services = new Informer<ServiceView>(client, { path: '/api/v1/services', trim: trimService, log, resyncMs: w.resyncSeconds * 1000, onChange: () => undefined });
  const endpoints = new EndpointIndex((key) => services.store.get(key), (key) => pods.store.has(key));
  const slices = new Informer<SliceView>(client, {
    path: '/apis/discovery.k8s.io/v1/endpointslices',
    trim: trimEndpointSlice,
    log,
    resyncMs: w.resyncSeconds * 1000,
    onChange: (key, slice) => {
      // A pod the slices stopped (or started) listing is decided again at once: its write may be due.
      for (const podKey of endpoints.update(key, slice, new Date())) if (leading && pods.store.has(podKey)) queue.add(podKey);
    },
  });
  // Workload rollouts: a queue of their own, fed by workload changes and by their pods' changes.
  const onWorkload = (kind: 'Deployment' | 'StatefulSet') => (key: string, obj: Workload | undefined) => {
    const leftover = kind === 'StatefulSet' && leftoverConditions(obj?.status?.conditions as StatusCondition[] | undefined);
    if (leading && (obj?.metadata.annotations?.[ROLLOUT_STATE_ANNOTATION] !== undefined || leftover)) rolloutQueue.add(`${kind}/${key}`);
  };
  const deployments: Informer<Workload> = new Informer<Workload>(client, { path: '/apis/apps/v1/deployments', trim: trimWorkload, log, resyncMs: w.resyncSeconds * 1000, onChange: onWorkload('Deployment') });
  const statefulSets: Informer<Workload> = new Informer<Workload>(client, { path: '/apis/apps/v1/statefulsets', trim: trimWorkload, log, resyncMs: w.resyncSeconds * 1000, onChange: onWorkload('StatefulSet') });
  const replicaSets: Informer<Workload> = new Informer<Workload>(client, { path: '/apis/apps/v1/replicasets', trim: trimWorkload, log, resyncMs: w.resyncSeconds * 1000, onChange: () => undefined });
  // Disruption budgets hold drains back; a budget's change may let a waiting drain start.
  const budgets = new Informer<BudgetMeta>(client, {
    path: '/apis/policy/v1/poddisruptionbudgets',
    trim: trimBudget,
    log,
    resyncMs: w.resyncSeconds * 1000,
    onChange: (_key, b) => {
      if (!leading || !b) return;
      for (const [key, pod] of pods.store) {
        if (pod.metadata.namespace === b.metadata.namespace && pod.metadata.annotations?.[UPDATE_ANNOTATION]?.includes('"phase":"Pending"')) queue.add(key);
      }
    },
  });
  const nodes = new Informer<NodeMeta>(client, { path: '/api/v1/nodes', trim: trimNode, log, resyncMs: w.resyncSeconds * 1000, onChange: () => undefined });
  // Pull pods (core/pre-pull.ts): a change of one is its owner's to decide on.
  const pulls = new Informer<PullPod>(client, {
    path: '/api/v1/pods',
    labelSelector: `${PULL_LABEL}=true`,
    trim: trimPullPod,
    log,
    resyncMs: w.resyncSeconds * 1000,
    onChange: (key, pull) => {
      const owner = pull?.metadata.ownerReferences?.find((o) => o.kind === 'Pod')?.name;
      const ownerKey = owner === undefined ? undefined : `${key.split('/')[0] ?? ''}/${owner}`;
      if (leading && ownerKey !== undefined && pods.store.has(ownerKey)) queue.add(ownerKey);
      // A pull that ended frees a slot on its node: the pods waiting there need not wait for their retry.
      if (leading && pull && !pullPodActive(pull)) {
        for (const [k, p] of pods.store) if (p.spec.nodeName === pull.spec.nodeName && p.metadata.annotations?.[UPDATE_ANNOTATION]?.includes('"phase":"Pending"')) queue.add(k);
      }
    },
  });
  // Everything the leader writes goes through `work`: losing the lease aborts its signal, so no
  // write is sent after, and one in flight is cut off (the new leader decides from the pods again).
  let term = new AbortController();
  const work = client.guarded(() => term.signal);
  const events = new EventRecorder(work, w.identity, log, metrics);
  const reconciler = new PodReconciler({
    client: work,
    pods,
    namespaces,
    endpoints,
    events,
    metrics,
    log,
    config: {
      defaultGraceSeconds: settings.gracePeriodSeconds,
      progressDeadlineSeconds: w.progressDeadlineSeconds,
      drainDeadlineSeconds: w.drainDeadlineSeconds,
      // A pull gets as long as a written image gets to come up.
      ...(w.prePull ? { prePull: { perNode: w.prePullPerNode, deadlineSeconds: w.progressDeadlineSeconds } } : {}),
    },
    clock: () => new Date(),
    budgets,
    pulls,
    nodes,
  });
  const rollouts = new RolloutReconciler({
    client: work, pods, deployments, statefulSets, replicaSets, events, metrics, log, clock: () => new Date(), nodes,
    startUpdate: (pod, request, labels) => reconciler.startRequest(pod, request, labels),
  });
  const rolloutQueue: WorkQueue = new WorkQueue({
    concurrency: 4,
    observer: queueObserver(metrics, 'rollouts'),
    handler: (key) => rollouts.reconcile(key),
    onError: (key, err, retryInMs) => {
      log.warn({ workload: key, err: (err as Error).message, retryInMs }, 'rollout reconcile failed; retrying');
    },
  });
  const queue: WorkQueue = new WorkQueue({
    concurrency: w.concurrency,
    observer: queueObserver(metrics, 'pods'),
    handler: (key) => reconciler.reconcile(key),
    onError: (key, err, retryInMs) => {
      log.warn({ pod: key, err: (err as Error).message, retryInMs }, 'reconcile failed; retrying');
    },
  });

  const informers = [pods, namespaces, services, slices, deployments, statefulSets, replicaSets, budgets, nodes, ...(w.prePull ? [pulls] : [])];
  const informersDone = Promise.all(informers.map((i) => i.run(abort.signal)));
  await Promise.all(informers.map((i) => i.waitForSync()));
  log.info({ pods: pods.store.size, namespaces: namespaces.store.size }, 'caches synced');

  const startLeading = () => {
    if (term.signal.aborted) term = new AbortController();
    leading = true;
    metrics.leader.set({ name: w.leaseName }, 1);
    queue.start();
    rolloutQueue.start();
    // Timers are rebuilt from the annotations: every pod and rollout is decided again.
    for (const key of pods.store.keys()) queue.add(key);
    for (const [kind, informer] of [['Deployment', deployments], ['StatefulSet', statefulSets]] as const) {
      for (const [key, obj] of informer.store) if (obj.metadata.annotations?.[ROLLOUT_STATE_ANNOTATION] !== undefined) rolloutQueue.add(`${kind}/${key}`);
    }
  };
  const stopLeading = () => {
    term.abort(new Error('no longer leading'));
    leading = false;
    metrics.leader.set({ name: w.leaseName }, 0);
    queue.stop();
    rolloutQueue.stop();
  };

  let elector: LeaderElector | undefined;
  let electorDone: Promise<void> = Promise.resolve();
  // Stopped before the lease is released, so no renewal races the release.
  const electorAbort = new AbortController();
  if (w.leaderElect) {
    metrics.leader.set({ name: w.leaseName }, 0);
    elector = new LeaderElector(client, {
      namespace: settings.admission.ownNamespace,
      name: w.leaseName,
      identity: w.identity,
      leaseDurationSeconds: w.leaseDurationSeconds,
      renewDeadlineSeconds: w.renewDeadlineSeconds,
      retryPeriodSeconds: w.retryPeriodSeconds,
      onStartedLeading: startLeading,
      onStoppedLeading: stopLeading,
      log,
    });
    electorDone = elector.run(electorAbort.signal);
  } else {
    startLeading();
  }

  let server: Server | undefined;
  let healthUrl: string | undefined;
  const stop = async () => {
    term.abort(new Error('stopping'));
    queue.stop();
    rolloutQueue.stop();
    electorAbort.abort();
    await electorDone;
    await elector?.release();
    abort.abort();
    await informersDone;
    server?.closeAllConnections();
    await new Promise<void>((resolve) => { if (server) server.close(() => { resolve(); }); else resolve(); });
    client.close();
    log.info('watcher stopped');
  };
  if (w.healthPort > 0) {
    server = createServer((req, res) => {
      if (req.url === '/healthz') {
        res.end('ok');
      } else if (req.url === '/readyz') {
        const ready = informers.every((i) => i.hasSynced);
        res.statusCode = ready ? 200 : 503;
        res.end(ready ? 'ok' : 'caches not synced');
      } else if (req.url === '/metrics') {
        metrics.registry.metrics().then(
          (body) => { res.setHeader('content-type', metrics.registry.contentType); res.end(body); },
          (err: unknown) => { res.statusCode = 500; res.end(String(err)); },
        );
      } else {
        res.statusCode = 404;
        res.end('not found');
      }
    });
    const health = server;
    try {
      await new Promise<void>((resolve, reject) => {
        health.once('error', reject);
        health.listen(w.healthPort, () => { health.off('error', reject); resolve(); });
      });
    } catch (err) {
      // Not listening, so nothing to close there; everything else started is stopped.
      server = undefined;
      await stop();
      throw listenError('watcher health endpoint', undefined, w.healthPort, err);
    }
    const address = server.address();
    healthUrl = `http://127.0.0.1:${typeof address === 'object' && address ? address.port : w.healthPort}`;
  }
  log.info({ identity: w.identity, leaderElection: w.leaderElect, health: healthUrl, server: client.server.origin }, 'watcher running');

  return {
    healthUrl,
    isLeader: () => leading,
    stop,
  };
}

