// `kubectl inplace-gate status`: what it says about real pod and workload shapes.

import { describe, expect, it } from 'vitest';
import type { Pod } from '../../src/core/kube-types.ts';
import { PARTITION_ANNOTATION, READINESS_GATE, ROLLOUT_STATE_ANNOTATION, UPDATE_ANNOTATION } from '../../src/core/names.ts';
import {
  formatStatus, formatTable, humanDuration, leaseLine, podsOfWorkload, reportPod, reportWorkload, rolloutVerdict,
} from '../../src/core/status-report.ts';
import type { UpdateState } from '../../src/core/state.ts';
import type { Workload } from '../../src/core/workload-types.ts';
import { parseDuration, parsePluginArgs, UsageError } from '../../src/plugin/args.ts';
import { buildPod, withSpecImages } from '../support/pods.ts';

const V1 = 'registry.example.com:5000/shop/web:1.4.2';
const V2 = 'registry.example.com:5000/shop/web:1.5.0';
const NOW = new Date('2026-11-28T10:10:00Z');

const base = { images: { app: V2 }, requestedBy: 'alice@example.com', requestedAt: '2026-11-28T10:09:00Z' };

function setCondition(pod: Pod, type: string, status: 'True' | 'False'): Pod {
  const conditions = (pod.status?.conditions ?? []).map((c) => (c.type === type ? { ...c, status } : c));
  return { ...pod, status: { ...pod.status, conditions } };
}

describe('a pod', () => {
  it('at rest: Ready and the gate True, nothing in flight', () => {
    const r = reportPod(buildPod(), NOW);
    expect(r).toMatchObject({ ready: 'True', gate: 'True', phase: '-', images: `app=${V1}`, waitingFor: '-', inFlight: false });
  });

  it('Pending: waits for the watcher to start the drain, since the request', () => {
    const r = reportPod(buildPod({ state: { ...base, phase: 'Pending' } }), NOW);
    expect(r).toMatchObject({ phase: 'Pending', since: base.requestedAt, images: `app: ${V1} -> ${V2}`, waitingFor: 'the watcher to start the drain', inFlight: true });
  });

  it('Pending while already drained: waits for the image write', () => {
    const r = reportPod(buildPod({ state: { ...base, phase: 'Pending', drained: true } }), NOW);
    expect(r.waitingFor).toMatch(/^the watcher to write the images/);
  });

  it('Draining: READY True but the gate False (kubectl get pods says 1/1), with the time left', () => {
    const state: UpdateState = { ...base, phase: 'Draining', drainStartedAt: '2026-11-28T10:09:55Z', drainDeadline: '2026-11-28T10:10:07Z' };
    const r = reportPod(setCondition(buildPod({ state }), READINESS_GATE, 'False'), NOW);
    expect(r).toMatchObject({ ready: 'True', gate: 'False', phase: 'Draining', since: state.drainStartedAt, waitingFor: 'the grace period: images written in 7s' });
  });

  it('Draining past its deadline says where to look', () => {
    const state: UpdateState = { ...base, phase: 'Draining', drainStartedAt: '2026-11-28T10:00:00Z', drainDeadline: '2026-11-28T10:00:10Z' };
    expect(reportPod(buildPod({ state }), NOW).waitingFor).toMatch(/^the watcher to write the images, due 9m50s ago \(its log says why/);
  });

  it('Updating: names the container that has not restarted yet (the watcher\'s own progress rule)', () => {
    const pod = withSpecImages(buildPod(), { app: V2 });
    const s = pod.status!.containerStatuses![0]!;
    const state: UpdateState = {
      ...base, phase: 'Updating', updatedAt: '2026-11-28T10:09:30Z', generation: 2,
      before: { app: { image: V1, containerID: s.containerID, imageID: s.imageID, restartCount: 0 } },
    };
    const r = reportPod({ ...pod, metadata: { ...pod.metadata, annotations: { [UPDATE_ANNOTATION]: JSON.stringify(state) } } }, NOW);
    expect(r).toMatchObject({ phase: 'Updating', since: state.updatedAt, images: `app: ${V1} -> ${V2}`, waitingFor: 'container app has not restarted yet' });
  });

  it('Updating with a pull failure the watcher has not recorded yet', () => {
    const pod = withSpecImages(buildPod(), { app: V2 });
    const status = { ...pod.status!.containerStatuses![0]!, image: V2, containerID: '', ready: false, state: { waiting: { reason: 'ImagePullBackOff', message: 'Back-off pulling image' } } };
    const state: UpdateState = { ...base, phase: 'Updating', updatedAt: '2026-11-28T10:09:30Z', before: { app: { image: V1, containerID: 'containerd://old', restartCount: 0 } } };
    const r = reportPod({
      ...pod,
      metadata: { ...pod.metadata, annotations: { [UPDATE_ANNOTATION]: JSON.stringify(state) } },
      status: { ...pod.status, containerStatuses: [status] },
    }, NOW);
    expect(r.waitingFor).toBe('container app: ImagePullBackOff: Back-off pulling image (the watcher marks it Stalled)');
  });

  it('Stalled: why, since when, and what to do', () => {
    const state: UpdateState = {
      ...base, phase: 'Stalled', updatedAt: '2026-11-28T10:09:30Z',
      before: { app: { image: V1 } },
      stalled: { reason: 'ErrImagePull', message: 'container app: ErrImagePull: manifest unknown', since: '2026-11-28T10:09:40Z' },
    };
    const r = reportPod(buildPod({ state }), NOW);
    expect(r).toMatchObject({ phase: 'Stalled', since: '2026-11-28T10:09:40Z', images: `app: ${V1} -> ${V2}` });
    expect(r.waitingFor).toBe('container app: ErrImagePull: manifest unknown; set the image again (a rollback, say) to start over');
  });

  it('a new pod the watcher has not taken in yet: the gate unset', () => {
    const pod = buildPod();
    const conditions = pod.status!.conditions!.filter((c) => c.type !== READINESS_GATE);
    const r = reportPod({ ...pod, status: { ...pod.status, conditions } }, NOW);
    expect(r).toMatchObject({ gate: 'unset', inFlight: true });
    expect(r.waitingFor).toMatch(/is a watcher leading\?/);
  });

  it('an unreadable annotation is said, not taken for "no change"', () => {
    const r = reportPod(buildPod({ annotations: { [UPDATE_ANNOTATION]: '{"phase":"Sleeping"}' } }), NOW);
    expect(r).toMatchObject({ phase: 'Unreadable', inFlight: true });
    expect(r.waitingFor).toContain('phase must be one of');
  });

  it('a pod without the gate shows - for it', () => {
    expect(reportPod(buildPod({ managed: false }), NOW)).toMatchObject({ gate: '-', phase: '-', inFlight: false });
  });

  it('not Ready for the kubelet\'s reasons, the gate True: says which container', () => {
    const pod = setCondition(buildPod(), 'Ready', 'False');
    pod.status!.containerStatuses![0]!.ready = false;
    expect(reportPod(pod, NOW)).toMatchObject({ ready: 'False', gate: 'True', waitingFor: 'the kubelet: containers not ready: app', inFlight: false });
  });
});

function statefulSet(replicas: number, extra: { annotations?: Record<string, string>; partition?: number; maxUnavailable?: number | string } = {}): Workload {
  return {
    apiVersion: 'apps/v1', kind: 'StatefulSet',
    metadata: { name: 'db', namespace: 'shop', uid: 'sts-uid', ...(extra.annotations ? { annotations: extra.annotations } : {}) },
    spec: {
      replicas,
      template: { spec: { containers: [{ name: 'app', image: V2 }] } },
      updateStrategy: { type: 'RollingUpdate', rollingUpdate: { partition: extra.partition ?? 0, ...(extra.maxUnavailable === undefined ? {} : { maxUnavailable: extra.maxUnavailable }) } },
    },
    status: { replicas, readyReplicas: replicas, updatedReplicas: 0 },
  };
}

function stsPod(ordinal: number, image: string, state?: UpdateState): Pod {
  const pod = withSpecImages(buildPod({ name: `db-${ordinal}`, owner: { apiVersion: 'apps/v1', kind: 'StatefulSet', name: 'db' }, ...(state ? { state } : {}) }), { app: image });
  pod.metadata.ownerReferences = [{ apiVersion: 'apps/v1', kind: 'StatefulSet', name: 'db', uid: 'sts-uid', controller: true }];
  return pod;
}

const rolloutState = (extra: object = {}) => JSON.stringify({ images: { app: V2 }, requestedBy: 'flux', startedAt: '2026-11-28T10:05:00Z', ...extra });

describe('a workload', () => {
  it('StatefulSet mid-rollout: updated of those in scope, in flight, strategy (the user\'s partition, not the hold), age', () => {
    const w = statefulSet(3, { annotations: { [ROLLOUT_STATE_ANNOTATION]: rolloutState({ partition: 0 }) }, partition: 3 });
    const pods = [stsPod(0, V1), stsPod(1, V1, { ...base, phase: 'Draining', drainDeadline: '2026-11-28T10:10:05Z' }), stsPod(2, V2)];
    const r = reportWorkload('StatefulSet', w, pods);
    expect(r).toMatchObject({ rollout: 'in place', updated: '2/3', inFlight: 1, stalled: [], since: '2026-11-28T10:05:00Z', images: `app=${V2}`, strategy: 'RollingUpdate: 1 at a time' });
    expect(r.state).toBe('progressing: 1 out of service (at most 1)');
  });

  it('a stalled pod stops the rollout and is named', () => {
    const stalled: UpdateState = { ...base, phase: 'Stalled', stalled: { reason: 'ImagePullBackOff', message: 'x', since: '2026-11-28T10:09:00Z' } };
    const w = statefulSet(2, { annotations: { [ROLLOUT_STATE_ANNOTATION]: rolloutState() } });
    const r = reportWorkload('StatefulSet', w, [stsPod(0, V1), stsPod(1, V2, stalled)]);
    expect(r.stalled).toEqual(['db-1']);
    expect(r.state).toMatch(/^stalled: db-1 /);
  });

  it('held by the partition annotation: says how many stay on the old images', () => {
    const w = statefulSet(3, { annotations: { [ROLLOUT_STATE_ANNOTATION]: rolloutState(), [PARTITION_ANNOTATION]: '1' } });
    const r = reportWorkload('StatefulSet', w, [stsPod(0, V1), stsPod(1, V2), stsPod(2, V2)]);
    expect(r).toMatchObject({ updated: '2/2' });
    expect(r.state).toBe(`held: ${PARTITION_ANNOTATION} 1 keeps 1 pods on the old images (lower it to go on)`);
  });

  it('no in-place rollout: the native status, and a Deployment its user paused', () => {
    const d: Workload = {
      metadata: { name: 'web', namespace: 'shop', uid: 'd-uid' },
      spec: { replicas: 2, paused: true, template: { spec: { containers: [{ name: 'app', image: V1 }] } } },
      status: { replicas: 2, readyReplicas: 2, updatedReplicas: 2 },
    };
    expect(reportWorkload('Deployment', d, [])).toMatchObject({ rollout: 'native', updated: '2/2', state: 'paused (by its user: left to the native controller)', strategy: 'RollingUpdate: 1 surge pod(s) first, then 1 at a time per surge pod' });
    expect(reportWorkload('Deployment', { ...d, spec: { ...d.spec, paused: false, replicas: 8 } }, [])).toMatchObject({ strategy: 'RollingUpdate: 2 at a time' });
  });

  it('an OnDelete StatefulSet and a recreate opt-out read as native', () => {
    const w = statefulSet(2);
    expect(reportWorkload('StatefulSet', { ...w, spec: { ...w.spec, updateStrategy: { type: 'OnDelete' } } }, []).strategy).toBe('OnDelete: native');
    expect(reportWorkload('StatefulSet', statefulSet(2, { annotations: { 'inplace-gate.dev/rollout': 'recreate' } }), []).strategy).toBe('native (inplace-gate.dev/rollout: recreate)');
  });

  it('a Deployment\'s pods are found through the ReplicaSets it controls', () => {
    const d: Workload = { metadata: { name: 'web', uid: 'd-uid' }, spec: { template: { spec: { containers: [] } } } };
    const mine = buildPod({ name: 'web-a' });
    mine.metadata.ownerReferences = [{ apiVersion: 'apps/v1', kind: 'ReplicaSet', name: 'web-1', uid: 'rs-1', controller: true }];
    const other = buildPod({ name: 'api-a' });
    other.metadata.ownerReferences = [{ apiVersion: 'apps/v1', kind: 'ReplicaSet', name: 'api-1', uid: 'rs-2', controller: true }];
    const replicaSets = [
      { metadata: { uid: 'rs-1', ownerReferences: [{ uid: 'd-uid', controller: true }] } },
      { metadata: { uid: 'rs-2', ownerReferences: [{ uid: 'other', controller: true }] } },
    ];
    expect(podsOfWorkload('Deployment', d, [mine, other], replicaSets).map((p) => p.metadata.name)).toEqual(['web-a']);
  });
});

describe('rollout status', () => {
  const stalled: UpdateState = { ...base, phase: 'Stalled', stalled: { reason: 'ImagePullBackOff', message: 'container app: ImagePullBackOff: Back-off pulling image', since: '2026-11-28T10:09:00Z' } };
  const inPlace = (extra: { annotations?: Record<string, string> } = {}) =>
    statefulSet(3, { annotations: { [ROLLOUT_STATE_ANNOTATION]: rolloutState(), ...extra.annotations } });

  it.each<[string, Workload, Pod[], string | undefined, 'waiting' | 'done' | 'failed', string]>([
    ['in place, under way', inPlace(), [stsPod(0, V1), stsPod(1, V1), stsPod(2, V2)], undefined, 'waiting',
      'Waiting for in-place rollout of statefulset/db to finish: 1 of 3 pods updated, 0 in flight...'],
    ['a stalled pod fails it at once, with why', inPlace(), [stsPod(0, V1), stsPod(1, V1), stsPod(2, V2, stalled)], undefined, 'failed',
      'statefulset/db: in-place rollout stalled (db-2: container app: ImagePullBackOff: Back-off pulling image; set the image again (a rollback, say) to start over)'],
    ['held by the partition annotation: done, as kubectl says for a partition', inPlace({ annotations: { [PARTITION_ANNOTATION]: '2' } }), [stsPod(0, V1), stsPod(1, V1), stsPod(2, V2)], undefined, 'done',
      `partitioned in-place roll out complete: 1/1 pods updated; held: ${PARTITION_ANNOTATION} 2 keeps 2 pods on the old images (lower it to go on)`],
    ['every pod through: waits for the hand-back', inPlace(), [stsPod(0, V2), stsPod(1, V2), stsPod(2, V2)], undefined, 'waiting',
      'Waiting for statefulset/db to be handed back to its controller...'],
    ['a fallback fails it', inPlace(), [], '2 of 3 pods are not managed by inplace-gate', 'failed',
      'statefulset/db fell back to the native rollout: 2 of 3 pods are not managed by inplace-gate'],
  ])('%s', (_, w, pods, fallback, state, message) => {
    expect(rolloutVerdict('StatefulSet', w, pods, NOW, fallback)).toEqual({ state, message });
  });

  it('handed back: the native status decides, as kubectl\'s StatefulSet and Deployment viewers do', () => {
    const sts = statefulSet(3);
    const done = { ...sts, status: { observedGeneration: 2, replicas: 3, readyReplicas: 3, updatedReplicas: 3, currentRevision: 'db-2', updateRevision: 'db-2' } };
    expect(rolloutVerdict('StatefulSet', { ...done, metadata: { ...done.metadata, generation: 2 } }, [], NOW, undefined))
      .toEqual({ state: 'done', message: 'statefulset/db rolling update complete 3 pods at revision db-2...' });
    expect(rolloutVerdict('StatefulSet', { ...done, metadata: { ...done.metadata, generation: 3 } }, [], NOW, undefined).state).toBe('waiting');
    const d: Workload = {
      metadata: { name: 'web', generation: 4 },
      spec: { replicas: 4, template: { spec: { containers: [] } } },
      status: { observedGeneration: 4, replicas: 4, updatedReplicas: 4, readyReplicas: 4, availableReplicas: 4 },
    };
    expect(rolloutVerdict('Deployment', d, [], NOW, undefined)).toEqual({ state: 'done', message: 'deployment/web successfully rolled out' });
    expect(rolloutVerdict('Deployment', { ...d, status: { ...d.status, updatedReplicas: 2 } }, [], NOW, undefined).message)
      .toBe('Waiting for deployment/web rollout to finish: 2 out of 4 new replicas have been updated...');
    expect(rolloutVerdict('Deployment', { ...d, status: { ...d.status, conditions: [{ type: 'Progressing', status: 'False', reason: 'ProgressDeadlineExceeded' }] } }, [], NOW, undefined))
      .toEqual({ state: 'failed', message: 'deployment/web exceeded its progress deadline' });
  });
});

describe('the watcher line', () => {
  it.each([
    ['led', { spec: { holderIdentity: 'w-1', leaseDurationSeconds: 10, renewTime: '2026-11-28T10:09:58.000000Z' } }, 'watcher: w-1 leads (renewed 2s ago)'],
    ['expired', { spec: { holderIdentity: 'w-1', leaseDurationSeconds: 10, renewTime: '2026-11-28T10:05:00.000000Z' } }, 'watcher: none leading: w-1 last renewed Lease ns/l 5m ago'],
    ['released', { spec: { holderIdentity: null, renewTime: '2026-11-28T10:09:00.000000Z' } }, 'watcher: none leading (Lease ns/l released 60s ago)'],
    ['absent', 'absent' as const, 'watcher: no Lease ns/l: no watcher has run here (pods wait NotReady, image changes stay Pending)'],
    ['forbidden', 'forbidden' as const, 'watcher: Lease ns/l not readable with these credentials'],
  ])('%s', (_, lease, want) => {
    expect(leaseLine(lease, 'ns/l', NOW)).toBe(want);
  });
});

describe('formatting', () => {
  it.each([[0, '0s'], [119_000, '119s'], [200_000, '3m20s'], [600_000, '10m'], [7_500_000, '125m'], [14_700_000, '4h5m'], [30 * 3600_000, '30h'], [72 * 3600_000, '3d'], [76 * 3600_000, '3d4h'], [240 * 3600_000, '10d']])('%d ms is %s', (ms, want) => {
    expect(humanDuration(ms)).toBe(want);
  });

  it('columns as kubectl prints them', () => {
    expect(formatTable(['NAME', 'PHASE', 'WAITING FOR'], [['web-1', 'Draining', 'x'], ['w', '-', 'yy']])).toBe(
      'NAME    PHASE      WAITING FOR\nweb-1   Draining   x\nw       -          yy\n',
    );
  });

  it('status: lists only pods in flight unless a pod or workload was named', () => {
    const pods = [reportPod(buildPod({ name: 'quiet' }), NOW), reportPod(buildPod({ name: 'busy', state: { ...base, phase: 'Pending' } }), NOW)];
    const out = formatStatus({ pods, workloads: [], lease: 'watcher: w-1 leads (renewed 1s ago)', allPods: false, namespaceColumn: false, now: NOW });
    const images = `app: ${V1} -> ${V2}`;
    expect(out).toBe(
      'watcher: w-1 leads (renewed 1s ago)\n\n' +
        `POD    READY   GATE   PHASE     SINCE   ${'IMAGES'.padEnd(images.length)}   WAITING FOR\n` +
        `busy   True    True   Pending   60s     ${images}   the watcher to start the drain\n`,
    );
    expect(formatStatus({ pods, workloads: [], lease: undefined, allPods: true, namespaceColumn: true, now: NOW })).toMatch(/^NAMESPACE {3}POD {5}.*\nshop {8}quiet .*\nshop {8}busy /);
    expect(formatStatus({ pods: [pods[0]!], workloads: [], lease: undefined, allPods: false, namespaceColumn: false, now: NOW })).toBe('No image change in flight.\n');
  });
});

describe('the plugin\'s command line (kubectl hands it every word)', () => {
  it.each<[string[], object]>([
    [['status'], { command: 'status', namespace: undefined, allNamespaces: false, target: undefined }],
    [['status', '-n', 'shop', 'web-1'], { namespace: 'shop', target: { kind: 'Pod', name: 'web-1' } }],
    [['status', '--namespace=shop', 'deploy/web'], { namespace: 'shop', target: { kind: 'Deployment', name: 'web' } }],
    [['status', '-nshop', 'statefulset.apps/db'], { namespace: 'shop', target: { kind: 'StatefulSet', name: 'db' } }],
    [['status', '-A', '--kubeconfig', '/k', '--context', 'c'], { allNamespaces: true, kubeconfig: '/k', context: 'c' }],
    [['status', '--gate-namespace', 'platform'], { gateNamespace: 'platform' }],
    [['--help'], { command: 'help' }],
    [['rollout', 'status', 'sts/db', '-n', 'shop', '--timeout', '2m'], { command: 'rollout-status', namespace: 'shop', target: { kind: 'StatefulSet', name: 'db' }, timeoutSeconds: 120 }],
    [['rollout', 'status', 'deployment/web'], { command: 'rollout-status', target: { kind: 'Deployment', name: 'web' }, timeoutSeconds: 0 }],
    [['status', '-h'], { command: 'help' }],
    [['cancel', '-n', 'x', 'web-1'], { command: 'cancel', namespace: 'x', target: { kind: 'Pod', name: 'web-1' }, timeoutSeconds: 60 }],
    [['cancel', 'deploy/web'], { command: 'cancel', target: { kind: 'Deployment', name: 'web' } }],
    [['release', 'sts/db', '--timeout=0'], { command: 'release', target: { kind: 'StatefulSet', name: 'db' }, timeoutSeconds: 0 }],
  ])('%j', (argv, want) => {
    expect(parsePluginArgs(argv)).toMatchObject(want);
  });

  it.each([
    [['rollout'], 'unknown command "rollout": only rollout status'],
    [['undo'], 'unknown command "undo"'],
    [['status', '--bogus'], 'unknown flag --bogus'],
    [['status', '-n'], '-n needs a value'],
    [['status', '-n', '-A'], '-n needs a value'],
    [['status', 'a', 'b'], 'one pod or workload at a time'],
    [['status', 'job/x'], 'cannot show "job/x"'],
    [['status', '-A', '-n', 'x'], '-n and -A go one at a time'],
    [['status', '-A', 'web-1'], 'needs a namespace'],
    [['rollout', 'undo', 'deployment/web'], 'only rollout status'],
    [['rollout', 'status', 'web-1'], 'rollout status needs deployment/NAME or statefulset/NAME'],
    [['rollout', 'status', 'deploy/web', '--timeout', 'soon'], '--timeout must be a duration'],
    [['status', '--timeout', '5m'], 'unknown flag --timeout'],
    [['cancel'], 'cancel needs a pod, deployment/NAME or statefulset/NAME'],
    [['release', 'web-1'], 'release hands back a workload: deployment/NAME or statefulset/NAME (for a pod: cancel web-1)'],
    [['release', '-A', 'deploy/web'], 'release acts on one workload: -n, not -A'],
    [['cancel', 'web-1', '--timeout', '1m'], 'unknown flag --timeout'],
  ])('%j is refused: %s', (argv, message) => {
    expect(() => parsePluginArgs(argv)).toThrow(UsageError);
    expect(() => parsePluginArgs(argv)).toThrow(message);
  });
});

describe('--timeout', () => {
  it.each([['90', 90], ['30s', 30], ['5m', 300], ['1h', 3600], ['1m30s', 90], ['0', 0]])('%s is %d s', (text, want) => {
    expect(parseDuration(text)).toBe(want);
  });
});
