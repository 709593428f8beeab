// Which cluster `npm start` and the e2e suite act on: never one only because it is in the environment.

import { describe, expect, it } from 'vitest';
import { ClusterTargetError, e2eTarget, startTarget, type ClusterTarget } from '../../src/core/cluster-target.ts';

const KC = '/home/me/.kube/prod';

describe('npm start', () => {
  const cases: { name: string; attach: boolean; setting?: string; env: Record<string, string>; want: ClusterTarget | 'error' }[] = [
    { name: 'nothing set: local', attach: false, env: {}, want: { kind: 'local', ignored: undefined } },
    { name: 'exported KUBECONFIG is ignored', attach: false, env: { KUBECONFIG: KC }, want: { kind: 'local', ignored: `KUBECONFIG=${KC}` } },
    { name: 'inside a pod is ignored', attach: false, env: { KUBERNETES_SERVICE_HOST: '10.0.0.1' }, want: { kind: 'local', ignored: 'the in-cluster configuration' } },
    { name: '--kubeconfig without --attach is refused', attach: false, setting: KC, env: {}, want: 'error' },
    { name: '--attach with KUBECONFIG', attach: true, env: { KUBECONFIG: KC }, want: { kind: 'existing', kubeconfig: KC, reason: '--attach with KUBECONFIG' } },
    { name: '--attach --kubeconfig wins over KUBECONFIG', attach: true, setting: '/x', env: { KUBECONFIG: KC }, want: { kind: 'existing', kubeconfig: '/x', reason: '--attach with --kubeconfig' } },
    { name: '--attach in a pod', attach: true, env: { KUBERNETES_SERVICE_HOST: '10.0.0.1' }, want: { kind: 'existing', kubeconfig: undefined, reason: '--attach in a cluster' } },
    { name: '--attach with nothing to attach to', attach: true, env: {}, want: 'error' },
  ];
  it.each(cases)('$name', ({ attach, setting, env, want }) => {
    if (want === 'error') expect(() => startTarget(attach, setting, env)).toThrow(ClusterTargetError);
    else expect(startTarget(attach, setting, env)).toEqual(want);
  });
});

describe('e2e suite', () => {
  const cases: { name: string; env: Record<string, string>; want: ClusterTarget | 'error' }[] = [
    { name: 'nothing set: local', env: {}, want: { kind: 'local', ignored: undefined } },
    { name: 'exported KUBECONFIG is ignored', env: { KUBECONFIG: KC }, want: { kind: 'local', ignored: `KUBECONFIG=${KC}` } },
    { name: 'USE_EXISTING_CLUSTER=false', env: { KUBECONFIG: KC, USE_EXISTING_CLUSTER: 'false' }, want: { kind: 'local', ignored: `KUBECONFIG=${KC}` } },
    { name: 'USE_EXISTING_CLUSTER=true with KUBECONFIG', env: { KUBECONFIG: KC, USE_EXISTING_CLUSTER: 'true' }, want: { kind: 'existing', kubeconfig: KC, reason: 'USE_EXISTING_CLUSTER=true with KUBECONFIG' } },
    { name: 'USE_EXISTING_CLUSTER=TRUE', env: { KUBECONFIG: KC, USE_EXISTING_CLUSTER: 'TRUE' }, want: { kind: 'existing', kubeconfig: KC, reason: 'USE_EXISTING_CLUSTER=true with KUBECONFIG' } },
    { name: 'USE_EXISTING_CLUSTER=true without KUBECONFIG', env: { USE_EXISTING_CLUSTER: 'true' }, want: 'error' },
    { name: 'USE_EXISTING_CLUSTER=1 is not guessed at', env: { KUBECONFIG: KC, USE_EXISTING_CLUSTER: '1' }, want: 'error' },
  ];
  it.each(cases)('$name', ({ env, want }) => {
    if (want === 'error') expect(() => e2eTarget(env)).toThrow(ClusterTargetError);
    else expect(e2eTarget(env)).toEqual(want);
  });
});
