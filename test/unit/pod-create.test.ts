import { describe, expect, it } from 'vitest';
import { mutate } from '../../src/core/admission/index.ts';
import { defaultAdmissionConfig } from '../../src/core/config.ts';
import { MANAGED_LABEL, READINESS_GATE, SERVING_CONTAINERS_ANNOTATION, UPDATE_ANNOTATION } from '../../src/core/names.ts';
import { applied, expectDecision, patchOf } from '../support/apply.ts';
import { buildPod, createRequest } from '../support/pods.ts';

const now = new Date('2026-11-28T12:00:00Z');
const config = defaultAdmissionConfig;
const fresh = (shape: Parameters<typeof buildPod>[0] = {}) => buildPod({ managed: false, running: false, ...shape });

describe('CREATE pods', () => {
  it('adds the readiness gate and the managed label to a new pod', () => {
    const pod = fresh();
    const decision = expectDecision(mutate(createRequest(pod), config, now));
    expect(decision).toMatchObject({ type: 'patch', reason: 'gate-added' });
    const stored = applied(pod, decision);
    expect(stored.spec.readinessGates).toEqual([{ conditionType: READINESS_GATE }]);
    expect(stored.metadata.labels?.[MANAGED_LABEL]).toBe('true');
    expect(patchOf(pod, decision)).toEqual([
      { op: 'add', path: '/spec/readinessGates', value: [{ conditionType: READINESS_GATE }] },
      { op: 'add', path: '/metadata/labels/inplace-gate.dev~1managed', value: 'true' },
    ]);
  });

  it('keeps the readiness gates a pod already has, and adds its own after them', () => {
    const pod = fresh({ readinessGates: ['cloud.google.com/load-balancer-neg-ready'] });
    const stored = applied(pod, mutate(createRequest(pod), config, now));
    expect(stored.spec.readinessGates).toEqual([
      { conditionType: 'cloud.google.com/load-balancer-neg-ready' },
      { conditionType: READINESS_GATE },
    ]);
  });

  it('is idempotent under reinvocation: a pod that has both gets no patch', () => {
    const pod = fresh();
    const once = applied(pod, mutate(createRequest(pod), config, now));
    const again = expectDecision(mutate(createRequest(once), config, now));
    expect(again).toMatchObject({ type: 'allow', reason: 'already-managed' });
    expect(patchOf(once, again)).toEqual([]);
  });

  it('adds only what is missing', () => {
    const gated = fresh({ readinessGates: [READINESS_GATE] });
    expect(patchOf(gated, mutate(createRequest(gated), config, now))).toEqual([
      { op: 'add', path: '/metadata/labels/inplace-gate.dev~1managed', value: 'true' },
    ]);
    const labelled = fresh({ labels: { [MANAGED_LABEL]: 'true' } });
    expect(patchOf(labelled, mutate(createRequest(labelled), config, now))).toEqual([
      { op: 'add', path: '/spec/readinessGates', value: [{ conditionType: READINESS_GATE }] },
    ]);
  });

  it('takes in pods with several containers, native sidecars and init containers alike', () => {
    const pod = fresh({
      containers: [
        { name: 'app', image: 'registry.example.com:5000/shop/web:1.4.2' },
        { name: 'istio-proxy', image: 'docker.io/istio/proxyv2:1.24.0' },
      ],
      initContainers: [
        { name: 'migrate', image: 'registry.example.com:5000/shop/migrate:1.4.2' },
        { name: 'log-shipper', image: 'fluent/fluent-bit:3.2', restartPolicy: 'Always' },
      ],
    });
    const stored = applied(pod, mutate(createRequest(pod), config, now));
    expect(stored.spec.readinessGates).toEqual([{ conditionType: READINESS_GATE }]);
    expect(stored.spec.containers).toEqual(pod.spec.containers);
  });

  it.each([
    ['a new pod', {}],
    ['a pod that already has the gate and the label (reinvocation, or copied from a managed pod)', { readinessGates: [READINESS_GATE], labels: { [MANAGED_LABEL]: 'true' } }],
  ])('strips a lifecycle annotation from %s: nobody may create a pod in Updating or Draining', (_what, shape) => {
    const forged = JSON.stringify({ phase: 'Updating', images: { app: 'x:2' }, requestedBy: 'mallory', requestedAt: '2026-11-28T12:00:00Z', immediate: true });
    const pod = fresh({ ...shape, annotations: { [UPDATE_ANNOTATION]: forged, note: 'kept' } });
    const decision = expectDecision(mutate(createRequest(pod), config, now));
    expect(decision.type).toBe('patch');
    const stored = applied(pod, decision);
    expect(stored.metadata.annotations?.[UPDATE_ANNOTATION]).toBeUndefined();
    expect(stored.metadata.annotations?.note).toBe('kept');
    expect(stored.spec.readinessGates).toEqual([{ conditionType: READINESS_GATE }]);
  });

  it('answers a dry run exactly as the real request', () => {
    const pod = fresh();
    const real = patchOf(pod, mutate(createRequest(pod), config, now));
    const dry = patchOf(pod, mutate(createRequest(pod, { dryRun: true, options: { dryRun: ['All'] } }), config, now));
    expect(dry).toEqual(real);
  });

  it('takes in pods created with generateName (request.name empty)', () => {
    const pod = fresh();
    delete pod.metadata.name;
    const decision = expectDecision(mutate(createRequest(pod, { name: '' }), config, now));
    expect(decision.type).toBe('patch');
  });

  it.each([
    ['kube-system', fresh({ namespace: 'kube-system' }), 'excluded-namespace'],
    ['kube-public', fresh({ namespace: 'kube-public' }), 'excluded-namespace'],
    ['kube-node-lease', fresh({ namespace: 'kube-node-lease' }), 'excluded-namespace'],
    ["inplace-gate's own namespace", fresh({ namespace: 'inplace-gate' }), 'excluded-namespace'],
    ['a pod labelled enabled=false', fresh({ labels: { 'inplace-gate.dev/enabled': 'false' } }), 'opted-out'],
    ['a mirror pod', fresh({ annotations: { 'kubernetes.io/config.mirror': 'f3b1c2' } }), 'mirror-pod'],
    ['a pod of a Kruise CloneSet', fresh({ owner: { apiVersion: 'apps.kruise.io/v1alpha1', kind: 'CloneSet', name: 'web' } }), 'kruise-owned'],
    ['a pod of a Kruise Advanced StatefulSet', fresh({ owner: { apiVersion: 'apps.kruise.io/v1beta1', kind: 'StatefulSet', name: 'db' } }), 'kruise-owned'],
  ])('leaves alone %s', (_what, pod, reason) => {
    const decision = expectDecision(mutate(createRequest(pod), config, now));
    expect(decision).toMatchObject({ type: 'allow', reason });
  });

  it('honours a custom own namespace', () => {
    const pod = fresh({ namespace: 'platform' });
    const decision = expectDecision(mutate(createRequest(pod), { ...config, ownNamespace: 'platform' }, now));
    expect(decision).toMatchObject({ type: 'allow', reason: 'excluded-namespace' });
  });

  it('takes in a pod whose enabled label says "true"', () => {
    const pod = fresh({ labels: { 'inplace-gate.dev/enabled': 'true' } });
    expect(expectDecision(mutate(createRequest(pod), config, now)).type).toBe('patch');
  });

  it('refuses a review of something that is not a Pod', () => {
    const req = { ...createRequest(fresh()), kind: { group: '', version: 'v1', kind: 'ConfigMap' } };
    expect(mutate(req, config, now)).toMatchObject({ type: 'invalid', message: expect.stringContaining('ConfigMap') as string });
  });

  it('refuses a CREATE review with no object', () => {
    const req = { ...createRequest(fresh()), object: undefined };
    expect(mutate(req, config, now)).toMatchObject({ type: 'invalid', message: expect.stringContaining('request.object') as string });
  });
});

describe('CREATE pods: the serving-containers annotation', () => {
  const withServing = (value: string) => fresh({ containers: [{ name: 'app', image: 'web:1' }, { name: 'shipper', image: 'fluent-bit:3.2' }], annotations: { [SERVING_CONTAINERS_ANNOTATION]: value } });

  it('names containers of the pod: taken in with no warning', () => {
    expect(expectDecision(mutate(createRequest(withServing('app')), config, now))).toMatchObject({ type: 'patch', reason: 'gate-added', warnings: [] });
  });

  it('names something that is no container of the pod: a warning says it is ignored and every change drains', () => {
    const decision = expectDecision(mutate(createRequest(withServing('ap')), config, now));
    expect(decision).toMatchObject({ type: 'patch', reason: 'gate-added' });
    expect(decision.warnings).toEqual([`inplace-gate: ${SERVING_CONTAINERS_ANNOTATION} names ap, not a container of this pod, so it is ignored: every container counts as serving and every image change drains`]);
  });
});
