import { describe, expect, it } from 'vitest';
import { imagesToPull, pullPodManifest, pullPodName, pullVerdict, type PullPod } from '../../src/core/pre-pull.ts';
import { buildPod } from '../support/pods.ts';

const now = new Date('2026-11-28T12:00:00Z');
const config = { perNode: 2, deadlineSeconds: 300 };
const APP = 'registry.example.com:5000/shop/web:1.5.0';
const PROXY = 'docker.io/istio/proxyv2:1.25.1';

describe('the pull pod', () => {
  const pod = buildPod({ containers: [{ name: 'app', image: 'registry.example.com:5000/shop/web:1.4.2' }, { name: 'istio-proxy', image: 'docker.io/istio/proxyv2:1.24.0' }] });
  pod.spec.imagePullSecrets = [{ name: 'regcred' }];
  const manifest = pullPodManifest(pod, [APP, PROXY], config);

  it('is pinned to the node, in the namespace, owned by the pod, with its credentials, and never restarts', () => {
    expect(manifest.metadata).toMatchObject({
      namespace: 'shop',
      labels: { 'inplace-gate.dev/pull': 'true', 'inplace-gate.dev/pull-for': pod.metadata.uid, 'inplace-gate.dev/enabled': 'false' },
      ownerReferences: [{ apiVersion: 'v1', kind: 'Pod', name: pod.metadata.name, uid: pod.metadata.uid }],
    });
    expect(manifest.metadata.labels).not.toHaveProperty('app');
    expect(manifest.spec).toMatchObject({
      nodeName: 'node-a', restartPolicy: 'Never', activeDeadlineSeconds: 300, serviceAccountName: 'default',
      automountServiceAccountToken: false, imagePullSecrets: [{ name: 'regcred' }],
    });
    expect(manifest.spec.containers.map((c) => c.image)).toEqual([APP, PROXY]);
  });

  it('meets the restricted Pod Security Standard and asks for next to nothing', () => {
    expect(manifest.spec.volumes).toBeUndefined();
    expect(manifest.spec.securityContext).toEqual({ runAsNonRoot: true, runAsUser: 65534, runAsGroup: 65534, seccompProfile: { type: 'RuntimeDefault' } });
    for (const c of manifest.spec.containers) {
      expect(c.securityContext).toEqual({ allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: { drop: ['ALL'] } });
      expect(c.resources).toEqual({ requests: { cpu: '1m', memory: '8Mi' }, limits: { cpu: '10m', memory: '32Mi' } });
      expect(c.command).toEqual(['/.inplace-gate-pulled']);
    }
  });

  it('has a name a restarted watcher finds again, within the 253 characters of a pod name', () => {
    expect(pullPodName('web-1', [APP])).toBe(pullPodName('web-1', [APP]));
    expect(pullPodName('web-1', [APP])).not.toBe(pullPodName('web-1', [PROXY]));
    const long = pullPodName('a'.repeat(253), [APP]);
    expect(long.length).toBeLessThanOrEqual(253);
    expect(long).toMatch(/^a+-pull-[0-9a-f]{10}$/);
  });
});

describe('imagesToPull', () => {
  it('one image once, not for ordinary init containers (they do not rerun)', () => {
    const pod = buildPod({ containers: [{ name: 'a', image: 'x:1' }, { name: 'b', image: 'x:1' }], initContainers: [{ name: 'migrate', image: 'm:1' }] });
    expect(imagesToPull(pod, { a: APP, b: APP, migrate: 'm:2' }, undefined)).toEqual([APP]);
  });
});

describe('pullVerdict', () => {
  const pull = (state: NonNullable<NonNullable<PullPod['status']>['containerStatuses']>[number]['state'], phase = 'Failed'): PullPod => ({
    metadata: { name: 'p-pull', creationTimestamp: '2026-11-28T11:59:00Z' },
    spec: { containers: [{ name: 'pull-0', image: APP }] },
    status: { phase, containerStatuses: [{ name: 'pull-0', image: APP, state }] },
  });

  it('a container whose status the kubelet lost (ContainerStatusUnknown) proves nothing', () => {
    expect(pullVerdict(pull({ terminated: { reason: 'ContainerStatusUnknown', exitCode: 137 } }), now, config)).toMatchObject({ kind: 'lost' });
  });

  it('with two images, one pulled and one still pulling, it waits', () => {
    const two: PullPod = {
      metadata: { name: 'p-pull', creationTimestamp: '2026-11-28T11:59:00Z' },
      spec: { containers: [{ name: 'pull-0', image: APP }, { name: 'pull-1', image: PROXY }] },
      status: { phase: 'Pending', containerStatuses: [{ name: 'pull-0', image: APP, state: { terminated: { reason: 'StartError' } } }, { name: 'pull-1', image: PROXY, state: { waiting: { reason: 'ContainerCreating' } } }] },
    };
    expect(pullVerdict(two, now, config)).toMatchObject({ kind: 'waiting', why: expect.stringContaining(PROXY) as unknown });
  });
});
