import { describe, expect, it } from 'vitest';
import { Informer, isOlder } from '../../src/watcher/informer.ts';
import { createLogger } from '../../src/log.ts';
import type { KubeClient } from '../../src/kube/client.ts';

interface Obj { metadata: { name: string; namespace: string; resourceVersion: string }; ready: boolean }

describe('Informer.upsert: a write response never overwrites a newer copy', () => {
  const informer = () => new Informer<Obj>({} as unknown as KubeClient, { path: '/x', trim: (raw) => raw as Obj, onChange: () => undefined, log: createLogger('test', 'silent') });

  it('the watch delivered the kubelet\'s change (rv 201) before the watcher\'s own write response (rv 200) was handled: the cache keeps 201', () => {
    const i = informer();
    i.store.set('ns/p', { metadata: { name: 'p', namespace: 'ns', resourceVersion: '201' }, ready: true });
    i.upsert({ metadata: { name: 'p', namespace: 'ns', resourceVersion: '200' }, ready: false });
    expect(i.store.get('ns/p')?.ready).toBe(true);
    i.upsert({ metadata: { name: 'p', namespace: 'ns', resourceVersion: '202' }, ready: false });
    expect(i.store.get('ns/p')?.ready).toBe(false);
  });

  it('compares revisions as integers, and lets the response win where one is not an integer', () => {
    expect(isOlder('99', '100')).toBe(true);
    expect(isOlder('100', '99')).toBe(false);
    expect(isOlder('18446744073709551615', '18446744073709551616')).toBe(true);
    expect(isOlder('abc', '100')).toBe(false);
    expect(isOlder('5', undefined)).toBe(false);
  });
});
