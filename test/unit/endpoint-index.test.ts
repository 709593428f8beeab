import { describe, expect, it } from 'vitest';
import type { ServiceView, SliceView } from '../../src/core/endpoints.ts';
import { EndpointIndex } from '../../src/watcher/endpoints.ts';
import { trimEndpointSlice, trimService } from '../../src/watcher/trim.ts';
import { buildPod } from '../support/pods.ts';

const pod = buildPod({ name: 'web-1', namespace: 'shop' });
const uid = pod.metadata.uid!;
const t = (s: number) => new Date(Date.UTC(2026, 10, 28, 12, 0, s));

/** An EndpointSlice as the endpoint controller writes it. */
function rawSlice(name: string, service: string | undefined, endpoints: { pod: string; uid?: string; ready: boolean; kind?: string }[]) {
  return {
    apiVersion: 'discovery.k8s.io/v1',
    kind: 'EndpointSlice',
    metadata: {
      name,
      namespace: 'shop',
      resourceVersion: '900',
      generateName: `${service ?? 'x'}-`,
      labels: { ...(service ? { 'kubernetes.io/service-name': service } : {}), 'endpointslice.kubernetes.io/managed-by': 'endpointslice-controller.k8s.io' },
      ownerReferences: [{ apiVersion: 'v1', kind: 'Service', name: service ?? 'x', uid: 'svc-uid', controller: true, blockOwnerDeletion: true }],
      managedFields: [{ manager: 'kube-controller-manager', operation: 'Update' }],
    },
    addressType: 'IPv4',
    endpoints: endpoints.map((e) => ({
      addresses: ['10.244.1.17'],
      conditions: { ready: e.ready, serving: e.ready, terminating: false },
      nodeName: 'node-a',
      targetRef: { kind: e.kind ?? 'Pod', namespace: 'shop', name: e.pod, uid: e.uid ?? uid },
      zone: 'zone-a',
    })),
    ports: [{ name: '', port: 8080, protocol: 'TCP' }],
  };
}

function index(services: Record<string, ServiceView> = {}, tracked = true) {
  return new EndpointIndex((key) => services[key], () => tracked);
}
const slice = (...args: Parameters<typeof rawSlice>): SliceView => trimEndpointSlice(rawSlice(...args));

describe('trimEndpointSlice and trimService', () => {
  it('keep the Service and, per Pod endpoint, who and its conditions; nothing else', () => {
    const raw = rawSlice('web-x7k2p', 'web', [{ pod: 'web-1', ready: true }, { pod: 'node-proxy', ready: true, kind: 'Node' }]);
    expect(trimEndpointSlice(raw)).toEqual({
      metadata: { name: 'web-x7k2p', namespace: 'shop', resourceVersion: '900' },
      service: 'web',
      endpoints: [{ pod: { uid, name: 'web-1' }, ready: true, serving: true, terminating: false }],
    });
    expect(trimEndpointSlice({ metadata: { name: 'empty', namespace: 'shop' }, endpoints: null })).toEqual({ metadata: { name: 'empty', namespace: 'shop', resourceVersion: undefined }, endpoints: [] });
  });

  it('a Service keeps only publishNotReadyAddresses', () => {
    const raw = { metadata: { name: 'db', namespace: 'shop', resourceVersion: '7', labels: { a: 'b' } }, spec: { selector: { app: 'db' }, clusterIP: 'None', publishNotReadyAddresses: true, ports: [{ port: 5432 }] } };
    expect(trimService(raw)).toEqual({ metadata: { name: 'db', namespace: 'shop', resourceVersion: '7' }, publishNotReadyAddresses: true });
    expect(trimService({ ...raw, spec: { selector: { app: 'db' } } })).toEqual({ metadata: { name: 'db', namespace: 'shop', resourceVersion: '7' } });
  });
});

describe('EndpointIndex', () => {
  it('a slice listing the pod ready holds it; the flip to not ready releases it and notes when', () => {
    const i = index();
    expect(i.update('shop/web-x7k2p', slice('web-x7k2p', 'web', [{ pod: 'web-1', ready: true }]), t(0))).toEqual(['shop/web-1']);
    expect(i.listings(pod)).toEqual([{ slice: 'shop/web-x7k2p', service: 'web' }]);
    expect(i.update('shop/web-x7k2p', slice('web-x7k2p', 'web', [{ pod: 'web-1', ready: false }]), t(3))).toEqual(['shop/web-1']);
    expect(i.listings(pod)).toEqual([]);
    expect(i.goneAtOf(pod)).toEqual(t(3));
  });

  it('a pod in two Services stays listed until both slices drop it', () => {
    const i = index();
    i.update('shop/web-a', slice('web-a', 'web', [{ pod: 'web-1', ready: true }]), t(0));
    i.update('shop/admin-b', slice('admin-b', 'admin', [{ pod: 'web-1', ready: true }]), t(0));
    i.update('shop/web-a', slice('web-a', 'web', [{ pod: 'web-1', ready: false }]), t(1));
    expect(i.listings(pod)).toEqual([{ slice: 'shop/admin-b', service: 'admin' }]);
    expect(i.goneAtOf(pod)).toBeUndefined();
    i.update('shop/admin-b', undefined, t(4)); // the slice deleted (its Service too)
    expect(i.listings(pod)).toEqual([]);
    expect(i.goneAtOf(pod)).toEqual(t(4));
  });

  it('a slice of a Service that publishes not-ready addresses never holds the drain', () => {
    const i = index({ 'shop/peers': { metadata: { name: 'peers', namespace: 'shop' }, publishNotReadyAddresses: true } });
    i.update('shop/web-a', slice('web-a', 'web', [{ pod: 'web-1', ready: true }]), t(0));
    i.update('shop/peers-c', slice('peers-c', 'peers', [{ pod: 'web-1', ready: true }]), t(0));
    expect(i.listings(pod)).toEqual([{ slice: 'shop/web-a', service: 'web' }]);
    i.update('shop/web-a', slice('web-a', 'web', [{ pod: 'web-1', ready: false }]), t(2));
    expect(i.listings(pod)).toEqual([]);
    expect(i.goneAtOf(pod)).toEqual(t(2));
  });

  it('an endpoint of an older pod under the same name (another uid) is not this pod', () => {
    const i = index();
    i.update('shop/web-a', slice('web-a', 'web', [{ pod: 'web-1', uid: 'old-uid', ready: true }]), t(0));
    expect(i.listings(pod)).toEqual([]);
  });

  it('a slice change that leaves a pod as it was does not requeue it', () => {
    const i = index();
    i.update('shop/web-a', slice('web-a', 'web', [{ pod: 'web-1', ready: true }, { pod: 'web-2', uid: 'u2', ready: true }]), t(0));
    expect(i.update('shop/web-a', slice('web-a', 'web', [{ pod: 'web-1', ready: true }, { pod: 'web-2', uid: 'u2', ready: false }]), t(1))).toEqual(['shop/web-2']);
  });

  it('a pod it does not manage gets no drain time noted; a forgotten one loses it', () => {
    const untracked = index({}, false);
    untracked.update('shop/web-a', slice('web-a', 'web', [{ pod: 'web-1', ready: true }]), t(0));
    untracked.update('shop/web-a', slice('web-a', 'web', [{ pod: 'web-1', ready: false }]), t(1));
    expect(untracked.goneAtOf(pod)).toBeUndefined();
    const i = index();
    i.update('shop/web-a', slice('web-a', 'web', [{ pod: 'web-1', ready: true }]), t(0));
    i.update('shop/web-a', slice('web-a', 'web', []), t(1));
    i.forget('shop/web-1');
    expect(i.goneAtOf(pod)).toBeUndefined();
  });

  it('listed again after going: the noted time is dropped (the next drain measures afresh)', () => {
    const i = index();
    i.update('shop/web-a', slice('web-a', 'web', [{ pod: 'web-1', ready: true }]), t(0));
    i.update('shop/web-a', slice('web-a', 'web', [{ pod: 'web-1', ready: false }]), t(1));
    i.update('shop/web-a', slice('web-a', 'web', [{ pod: 'web-1', ready: true }]), t(2));
    expect(i.goneAtOf(pod)).toBeUndefined();
    expect(i.listings(pod)).toHaveLength(1);
  });
});
