// The product's image on a real node: built by `npm run image`, pushed to the
// lab's registry with the README's `skopeo copy`, pulled by containerd, and
// the shipped webhook container (manifests/base/webhook.yaml: its user,
// read-only root, probes, resources) serving admission reviews as a pod; its
// memory against the manifest's limit, from the container's cgroup.

import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Pod } from '../../src/core/kube-types.ts';
import { applyManifest, createNamespace, eventually, kubectl, kubectlJson } from './support/kube.ts';
import { coreAnswer, fixture, mebibytes, webhookTemplate, type Built } from './support/image.ts';
import { containerProcess, lab, onRealNodes, pushProductImage, type Lab } from './support/lab.ts';

const run = promisify(execFile);
const repo = resolve(import.meta.dirname, '../..');
const NS = `e2e-image-${Date.now().toString(36)}`;
let L: Lab;
let image: Built;
let pushed: string;

beforeAll(async () => {
  L = lab();
  ({ image, pushed } = await pushProductImage(L));
  await createNamespace(NS);
}, 900_000);

afterAll(async () => {
  await kubectl(['delete', 'namespace', NS, '--wait=false', '--ignore-not-found']);
});

type Placed = Pod & { spec: { nodeName?: string }; status?: { podIP?: string } };

describe('the image as the webhook pod on a real node', () => {
  let pod: Placed;
  let pid: string;
  let memoryCgroup: string;

  beforeAll(async () => {
    // The shipped webhook container alone, as it is but for its certificates:
    // it makes its own into the (then writable) memory volume, without the
    // certs sidecar (installed.test.ts runs the whole install).
    const template = webhookTemplate();
    const webhook = template.spec.containers.find((c) => c.name === 'webhook');
    if (!webhook) throw new Error('no webhook container in manifests/base/webhook.yaml');
    await applyManifest({
      apiVersion: 'v1', kind: 'Pod', metadata: { name: 'webhook', namespace: NS },
      spec: {
        ...onRealNodes,
        securityContext: template.spec.securityContext,
        automountServiceAccountToken: false,
        containers: [{
          ...webhook,
          // by tag, as the overlays name it; the digest it resolves to is checked below
          image: pushed,
          args: ['webhook', '--cert-dir=/tls', '--namespace=$(POD_NAMESPACE)'],
          volumeMounts: webhook.volumeMounts?.map((m) => ({ ...m, readOnly: false })),
        }],
        volumes: template.spec.volumes,
      },
    });
    pod = await eventually('the webhook pod Ready on a real node', async () => {
      const p = await kubectlJson<Placed>(['-n', NS, 'get', 'pod', 'webhook']);
      return p.status?.conditions?.find((c) => c.type === 'Ready')?.status === 'True' ? p : undefined;
    }, 120_000, 500);
    const containerId = pod.status?.containerStatuses?.[0]?.containerID?.replace(/^containerd:\/\//, '') ?? '';
    ({ pid, memoryCgroup } = await containerProcess(containerId));
  }, 180_000);

  it('runs the pushed digest, pulled by containerd', () => {
    expect(pod.spec.nodeName).toMatch(/^real-node-/);
    expect(pod.status?.containerStatuses?.[0]?.imageID).toMatch(new RegExp(`@${image.digest}$`));
  });

  it('answers an admission review from inside the lab over TLS, as the core decides', async () => {
    // the CA the webhook made, in its memory volume (no kubectl exec on real nodes: the apiserver cannot reach them)
    const ca = await readFile(`/proc/${pid}/root/tls/ca.crt`, 'utf8');
    expect(ca).toContain('BEGIN CERTIFICATE');
    // the serving certificate names localhost: curl connects to the pod's IP under that name
    const { stdout } = await run('nsenter', [`--net=/run/netns/${L.netns}`, '--', 'bash', '-c',
      'curl -sS --fail-with-body --cacert <(printf %s "$CA") --connect-to "localhost:9443:$IP:9443" -H "content-type: application/json" --data-binary "@$FIXTURE" https://localhost:9443/mutate'],
    { env: { ...process.env, CA: ca, IP: pod.status?.podIP ?? '', FIXTURE: join(repo, 'test/fixtures/create-pod.json') } });
    expect(JSON.parse(stdout)).toEqual(coreAnswer('/mutate', fixture('create-pod')));
  });

  it('stays within the memory limit of the manifest, which its cgroup enforces', async () => {
    const status = await readFile(`/proc/${pid}/status`, 'utf8');
    expect(/^Uid:\s+(\d+)/m.exec(status)?.[1]).toBe('65532');
    const rssMiB = Number(/^VmRSS:\s+(\d+) kB/m.exec(status)?.[1]) / 1024;
    expect((await readFile(`/proc/${pid}/cmdline`, 'utf8')).split('\0').slice(0, 3)).toEqual(['node', '/app/src/cli.ts', 'webhook']);
    const dir = memoryCgroup;
    const limitBytes = Number(await readFile(join(dir, 'memory.limit_in_bytes'), 'utf8'));
    const usageMiB = Number(await readFile(join(dir, 'memory.usage_in_bytes'), 'utf8')) / 2 ** 20;
    const wanted = mebibytes(webhookTemplate().spec.containers.find((c) => c.name === 'webhook')?.resources?.limits?.memory ?? '');
    console.error(`image on ${pod.spec.nodeName ?? ''}: webhook VmRSS ${rssMiB.toFixed(0)} MiB, cgroup usage ${usageMiB.toFixed(0)} MiB, limit ${limitBytes / 2 ** 20} MiB (manifest ${wanted}Mi)`);
    expect(limitBytes).toBe(wanted * 2 ** 20);
    expect(rssMiB).toBeLessThan(wanted);
  });
});
