// Installed in another namespace (kustomize `namespace: platform-system`), the webhook runs with the
// arguments the shipped Deployment gives it, --namespace from the downward API, and no --watcher-users:
// the watcher of that namespace passes untouched, and a ServiceAccount of the same name elsewhere
// (the default namespace's) is an ordinary client whose image change is deferred.

import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { loadAll } from 'js-yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadSettings } from '../../src/settings.ts';
import { runWebhook, type RunningWebhook } from '../../src/webhook/run.ts';
import { httpsClient } from '../support/https.ts';
import { buildPod, review, updateRequest, withSpecImages } from '../support/pods.ts';
import { freePort } from '../support/ports.ts';

const repo = resolve(import.meta.dirname, '../..');
const NAMESPACE = 'platform-system';
let dir: string;
let webhook: RunningWebhook;
let client: ReturnType<typeof httpsClient>;

interface Container { name: string; args: string[] }
interface Doc { kind: string; spec?: { template: { spec: { containers: Container[] } } } }

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'inplace-gate-namespace-'));
  const docs = loadAll(await readFile(join(repo, 'manifests/base/webhook.yaml'), 'utf8')) as Doc[];
  const container = docs.find((d) => d.kind === 'Deployment')?.spec?.template.spec.containers.find((c) => c.name === 'webhook');
  expect(container?.args[0]).toBe('webhook');
  // What the kubelet runs: $(POD_NAMESPACE) expanded; the certificate from a directory of our own.
  const args = container!.args.slice(1)
    .filter((a) => !a.startsWith('--tls-'))
    .map((a) => a.replace('$(POD_NAMESPACE)', NAMESPACE));
  expect(args).toContain(`--namespace=${NAMESPACE}`);
  const settings = loadSettings([...args, '--cert-dir', dir, '--port', String(await freePort()), '--host', '127.0.0.1', '--log-level', 'silent',
    '--shutdown-delay-seconds', '0'], {});
  webhook = await runWebhook(settings);
  client = httpsClient(webhook.url, await readFile(join(dir, 'ca.crt'), 'utf8'));
});

afterAll(async () => {
  client.close();
  await webhook.stop();
  await rm(dir, { recursive: true, force: true });
});

const imageUpdateBy = (username: string) => {
  const old = buildPod();
  return review(updateRequest(old, withSpecImages(old, { app: 'web:2' }), {
    userInfo: { username, groups: ['system:serviceaccounts', `system:serviceaccounts:${username.split(':')[2] ?? ''}`, 'system:authenticated'] },
  }));
};

interface ReviewReply { response: { allowed: boolean; patch?: string; warnings?: string[] } }

describe(`the webhook as shipped, in ${NAMESPACE}`, () => {
  it("lets that namespace's watcher write images untouched (no deferral loop)", async () => {
    const reply = await client.post('/mutate', imageUpdateBy(`system:serviceaccount:${NAMESPACE}:inplace-gate-watcher`));
    expect(reply.status).toBe(200);
    const { response } = reply.json<ReviewReply>();
    expect(response).toMatchObject({ allowed: true });
    expect(response.patch).toBeUndefined();
  });

  it('defers the same write by inplace-gate-watcher of any other namespace, as any client', async () => {
    for (const namespace of ['inplace-gate', 'tenant-a']) {
      const { response } = (await client.post('/mutate', imageUpdateBy(`system:serviceaccount:${namespace}:inplace-gate-watcher`))).json<ReviewReply>();
      expect(response.allowed).toBe(true);
      const ops = JSON.parse(Buffer.from(response.patch ?? 'W10=', 'base64').toString()) as { path: string }[];
      expect(ops.map((o) => o.path).sort(), namespace).toEqual(['/metadata/annotations', '/spec/containers/0/image']);
    }
  });
});
