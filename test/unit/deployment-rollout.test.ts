import { describe, expect, it } from 'vitest';
import { canonical, currentReplicaSet, historyStep, isSurgeOf, replicaSetView, rewindStep, sameTemplate, surgeReplicaSet, templateHash, type ReplicaSetView } from '../../src/core/deployment-rollout.ts';
import type { PodTemplate, Workload } from '../../src/core/workload-types.ts';

const template = (image: string, hash?: string, extra: Record<string, string> = {}): PodTemplate => ({
  metadata: { labels: { app: 'web', ...(hash ? { 'pod-template-hash': hash } : {}) }, annotations: extra },
  spec: { containers: [{ name: 'app', image, imagePullPolicy: 'IfNotPresent', resources: {} }], restartPolicy: 'Always', dnsPolicy: 'ClusterFirst' },
});

const deployment = (image: string): Workload => ({
  metadata: { name: 'web', namespace: 'ns', uid: 'd-uid' },
  spec: { replicas: 3, selector: { matchLabels: { app: 'web' } }, template: template(image) },
});

function rs(name: string, image: string, replicas: number, revision: number, observed = replicas, annotations: Record<string, string> = {}): ReplicaSetView {
  return replicaSetView({
    metadata: { name, uid: `${name}-uid`, resourceVersion: '7', annotations: { 'deployment.kubernetes.io/revision': String(revision), ...annotations }, ownerReferences: [{ apiVersion: 'apps/v1', kind: 'Deployment', name: 'web', uid: 'd-uid', controller: true }] },
    spec: { replicas, template: template(image, name.slice(4)) },
    status: { replicas: observed },
  });
}

describe('currentReplicaSet: the one that runs pods, as the controller sees it', () => {
  it('after a native undo the highest revision is the one without pods: the one with pods is current', () => {
    // web-b (revision 2) was rolled in place; a native undo made web-a revision 3 and moved the pods there.
    const set = [rs('web-b', 'app:2', 0, 2), rs('web-a', 'app:1', 3, 3)];
    expect(currentReplicaSet(set)).toMatchObject({ kind: 'one', rs: { name: 'web-a' } });
    const reversed = [rs('web-a', 'app:1', 3, 1), rs('web-b', 'app:2', 0, 4)];
    expect(currentReplicaSet(reversed)).toMatchObject({ kind: 'one', rs: { name: 'web-a' } });
  });

  it('a ReplicaSet scaled to 0 whose pods are still going counts as running', () => {
    expect(currentReplicaSet([rs('web-a', 'app:1', 0, 1, 2), rs('web-b', 'app:2', 3, 2)])).toEqual({ kind: 'several', names: ['web-a', 'web-b'] });
  });

  it('none running: scaled to zero', () => {
    expect(currentReplicaSet([rs('web-a', 'app:1', 0, 1)])).toEqual({ kind: 'none' });
  });
});

describe('sameTemplate: EqualIgnoreHash', () => {
  it('ignores pod-template-hash, the rollout marker, key order and empty maps', () => {
    const a = template('app:1', 'abc');
    const b: PodTemplate = { spec: { dnsPolicy: 'ClusterFirst', restartPolicy: 'Always', containers: [{ resources: {}, imagePullPolicy: 'IfNotPresent', image: 'app:1', name: 'app' }] }, metadata: { labels: { app: 'web', 'pod-template-hash': 'xyz' } } };
    expect(sameTemplate(a, b)).toBe(true);
    expect(sameTemplate(template('app:1', 'abc', { 'inplace-gate.dev/rollout-in-progress': 'true' }), a)).toBe(true);
  });

  it('tells images, annotations and labels apart', () => {
    expect(sameTemplate(template('app:1'), template('app:2'))).toBe(false);
    expect(sameTemplate(template('app:1'), template('app:1', undefined, { 'kubectl.kubernetes.io/restartedAt': 'now' }))).toBe(false);
  });

  it('canonical keeps array order (container order matters)', () => {
    expect(canonical([1, 2])).not.toBe(canonical([2, 1]));
  });
});

describe('historyStep: what to write before the current ReplicaSet takes the new template', () => {
  it('keeps the current template in a new ReplicaSet with no replicas, its revision and change-cause', () => {
    const current = rs('web-a', 'app:1', 3, 4, 3, { 'kubernetes.io/change-cause': 'bump to 1', 'inplace-gate.dev/partition': '2', 'deployment.kubernetes.io/revision-history': '1,2' });
    const step = historyStep(deployment('app:2'), current, []);
    expect(step.action).toBe('keep-history');
    if (step.action !== 'keep-history') return;
    const h = step.replicaSet;
    expect(h.spec.replicas).toBe(0);
    // Its annotations as the controller copied them from the Deployment (undo restores them), less its history.
    expect(h.metadata.annotations).toEqual({ 'deployment.kubernetes.io/revision': '4', 'kubernetes.io/change-cause': 'bump to 1', 'inplace-gate.dev/partition': '2' });
    const hash = h.metadata.labels?.['pod-template-hash'];
    expect(hash).toMatch(/^[bcdfghjklmnpqrstvwxz2456789]{10}$/);
    expect(h.metadata.name).toBe(`web-${hash}`);
    // Its own hash in the selector and template: it selects none of the current pods.
    expect(h.spec.selector).toEqual({ matchLabels: { app: 'web', 'pod-template-hash': hash } });
    expect(h.spec.template.metadata?.labels).toEqual({ app: 'web', 'pod-template-hash': hash });
    expect(sameTemplate(h.spec.template, current.template)).toBe(true);
    expect(h.metadata.ownerReferences).toEqual([expect.objectContaining({ kind: 'Deployment', uid: 'd-uid', controller: true })]);
  });

  it('deletes a ReplicaSet with no pods that already holds the target template (a rollback), before anything else', () => {
    const step = historyStep(deployment('app:1'), rs('web-a', 'app:2', 3, 3), [rs('web-b', 'app:1', 0, 2)]);
    expect(step).toMatchObject({ action: 'delete-replicaset', name: 'web-b', uid: 'web-b-uid', resourceVersion: '7' });
  });

  it('never deletes or writes a ReplicaSet that runs pods', () => {
    const step = historyStep(deployment('app:1'), rs('web-a', 'app:2', 3, 3), [rs('web-b', 'app:1', 0, 2, 1)]);
    expect(step.action).not.toBe('delete-replicaset');
  });

  it('no second copy of a template another ReplicaSet already keeps', () => {
    expect(historyStep(deployment('app:3'), rs('web-a', 'app:2', 3, 3), [rs('web-b', 'app:2', 0, 2)])).toEqual({ action: 'retarget' });
  });

  it('a name already taken (the current ReplicaSet is itself a kept one, after a native undo) gets the next collision count', () => {
    const current = rs('web-a', 'app:1', 3, 3);
    const first = `web-${templateHash(current.template, 0)}`;
    const named = { ...current, name: first };
    const step = historyStep(deployment('app:2'), named, []);
    expect(step.action).toBe('keep-history');
    if (step.action === 'keep-history') expect(step.replicaSet.metadata.name).toBe(`web-${templateHash(current.template, 1)}`);
  });
});

describe('rewindStep: a begun rollout handed back to the controller', () => {
  const MARK = { 'inplace-gate.dev/rollout-in-progress': 'true' };
  const marked = (): ReplicaSetView => ({ ...rs('web-a', 'app:2', 3, 4), template: template('app:2', 'a', MARK) });

  it('puts the images of its own revision back from the kept copy, marker off', () => {
    const kept = rs('web-k', 'app:1', 0, 4);
    expect(rewindStep(marked(), [kept, rs('web-o', 'app:0', 0, 2)])).toEqual({ action: 'restore-template', containers: [{ name: 'app', image: 'app:1' }], initContainers: [], from: 'web-k' });
  });

  it('then the kept copy, a duplicate now, goes; then release', () => {
    const restored = rs('web-a', 'app:1', 3, 4);
    expect(rewindStep(restored, [rs('web-k', 'app:1', 0, 4)])).toMatchObject({ action: 'delete-replicaset', name: 'web-k' });
    expect(rewindStep(restored, [rs('web-o', 'app:0', 0, 2)])).toEqual({ action: 'release' });
  });

  it('a kept copy of another revision, or one that runs pods, is not used', () => {
    expect(rewindStep(marked(), [rs('web-k', 'app:1', 0, 3)])).toEqual({ action: 'release' });
    expect(rewindStep(marked(), [rs('web-k', 'app:1', 0, 4, 1)])).toEqual({ action: 'release' });
  });
});

describe('surgeReplicaSet: surge pods beside a Deployment with maxUnavailable 0', () => {
  it('the target template with its own pod-template-hash, not adoptable by the Deployment, owned for garbage collection only', () => {
    const current: ReplicaSetView = { ...rs('web-a', 'app:2', 3, 3), template: template('app:2', 'a', { 'inplace-gate.dev/rollout-in-progress': 'true' }) };
    const s = surgeReplicaSet(deployment('app:2'), current, 1);
    const hash = s.spec.template.metadata?.labels?.['pod-template-hash'];
    expect(hash).toMatch(/^[bcdfghjklmnpqrstvwxz2456789]{10}$/);
    expect(hash).not.toBe('a');
    expect(s.spec.replicas).toBe(1);
    expect(s.metadata.generateName).toBe('web-surge-');
    // Its own labels do not match the Deployment's selector (app=web): the controller never adopts it.
    expect(s.metadata.labels).toEqual({ 'inplace-gate.dev/surge-for': 'web' });
    expect(s.metadata.ownerReferences).toEqual([expect.objectContaining({ uid: 'd-uid', controller: false })]);
    expect(s.spec.selector).toEqual({ matchLabels: { app: 'web', 'pod-template-hash': hash } });
    // Its pods serve (the template's labels) and carry no rollout marker.
    expect(s.spec.template.metadata?.labels).toEqual({ app: 'web', 'pod-template-hash': hash });
    expect(s.spec.template.metadata?.annotations).toEqual({});
    expect(isSurgeOf(s, 'd-uid')).toBe(true);
    expect(isSurgeOf({ ...s, metadata: { ...s.metadata, ownerReferences: [{ apiVersion: 'apps/v1', kind: 'Deployment', name: 'web', uid: 'd-uid', controller: true }] } }, 'd-uid')).toBe(false);
  });
});
