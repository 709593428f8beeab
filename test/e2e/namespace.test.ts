// inplace-gate installed in another namespace, as kustomize's `namespace:` puts it: the webhook runs
// with --namespace of that namespace and no --watcher-users, registered as the shipped configurations
// are (no watcher username in their matchConditions), and the watcher runs with a real ServiceAccount
// token of that namespace's inplace-gate-watcher. Its own image write must pass the webhook (not be
// deferred again, in a loop), so an image change goes all the way through.

import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, openSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, relative, resolve } from 'node:path';
import { dump, load, loadAll } from 'js-yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { webhookConfigurations } from '../../src/kube/webhook-configurations.ts';
import { freePort } from '../support/ports.ts';
import { applyManifest, context, createNamespace, eventually, kubectl } from './support/kube.ts';
import { IMAGE, IMAGE_2, podManifest, settled, stateOf } from './support/pods.ts';
import { startLeadingWatcher, type WatcherProcess } from './support/watcher.ts';

const repo = resolve(import.meta.dirname, '../..');
const id = Date.now().toString(36);
const PLATFORM = `e2e-platform-${id}`;
const APP = `e2e-platform-app-${id}`;
const SCOPE_LABEL = `e2e-platform-${id}`;
const NAME = `e2e-platform-${id}`;
const cleanup: (() => Promise<unknown>)[] = [];
let dir: string;
let webhook: ChildProcess;
let watcher: WatcherProcess | undefined;

beforeAll(async () => {
  const { kubeconfig, clusterDir } = context();
  dir = await mkdtemp(join(tmpdir(), 'inplace-gate-platform-'));
  cleanup.push(() => rm(dir, { recursive: true, force: true }));

  // The product's Namespace and the watcher's namespaced RBAC as an operator's overlay renders them.
  await writeFile(join(dir, 'kustomization.yaml'), `namespace: ${PLATFORM}\nresources:\n  - ${relative(dir, join(repo, 'manifests/base'))}\n`);
  interface Doc { kind: string; metadata: { name: string; namespace?: string } }
  const rendered = loadAll(await kubectl(['kustomize', dir])) as Doc[];
  const ours = rendered.filter((d) => d.kind === 'Namespace' || (d.metadata.namespace === PLATFORM && ['ServiceAccount', 'Role', 'RoleBinding'].includes(d.kind)));
  expect(ours.map((d) => `${d.kind}/${d.metadata.name}`)).toContain('ServiceAccount/inplace-gate-watcher');
  await kubectl(['apply', '--server-side', '-f', '-'], ours.map((d) => dump(d)).join('---\n'));
  cleanup.push(() => kubectl(['delete', 'namespace', PLATFORM, '--wait=false']));
  // The cluster-wide rights: the shipped ClusterRole, bound to this namespace's watcher under a name of
  // this test's (the shipped binding serves the other tests' watcher).
  await applyManifest({
    apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'ClusterRoleBinding', metadata: { name: NAME },
    roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'inplace-gate-watcher' },
    subjects: [{ kind: 'ServiceAccount', name: 'inplace-gate-watcher', namespace: PLATFORM }],
  });
  cleanup.push(() => kubectl(['delete', 'clusterrolebinding', NAME, '--ignore-not-found']));

  // A real token of that ServiceAccount: the apiserver names it system:serviceaccount:PLATFORM:inplace-gate-watcher.
  const token = (await kubectl(['-n', PLATFORM, 'create', 'token', 'inplace-gate-watcher', '--duration=1h'])).trim();
  interface KubeConfig { clusters: { name: string }[]; contexts: unknown[]; users: unknown[]; 'current-context': string }
  const admin = load(await readFile(kubeconfig, 'utf8')) as KubeConfig;
  const cluster = admin.clusters[0]!;
  const watcherKubeconfig = join(dir, 'watcher.kubeconfig');
  await writeFile(watcherKubeconfig, dump({
    apiVersion: 'v1', kind: 'Config', clusters: [cluster],
    users: [{ name: 'watcher', user: { token } }],
    contexts: [{ name: 'watcher', context: { cluster: cluster.name, user: 'watcher' } }], 'current-context': 'watcher',
  }));
  expect((await kubectl(['--kubeconfig', watcherKubeconfig, 'auth', 'whoami', '-o', 'jsonpath={.status.userInfo.username}'])).trim())
    .toBe(`system:serviceaccount:${PLATFORM}:inplace-gate-watcher`);

  // The webhook as the Deployment runs it there: --namespace from the downward API, no --watcher-users.
  const port = await freePort();
  const fd = openSync(join(clusterDir, 'logs', `e2e-platform-webhook-${id}.log`), 'a');
  webhook = spawn(process.execPath, [join(repo, 'src/cli.ts'), 'webhook', `--namespace=${PLATFORM}`, '--port', String(port), '--host', '127.0.0.1',
    '--cert-dir', join(dir, 'certs'), '--shutdown-delay-seconds', '0', '--log-level', 'debug'], { stdio: ['ignore', fd, fd] });
  closeSync(fd);
  cleanup.push(() => new Promise((ok) => { webhook.once('exit', ok); webhook.kill('SIGTERM'); }));
  const caBundle = await eventually('the webhook certificate', async () => (await readFile(join(dir, 'certs', 'ca.crt')).catch(() => undefined))?.toString('base64'));

  // Registered as shipped (no watcher username), but only for this test's app namespace.
  const { mutating, validating } = webhookConfigurations({ clientConfig: (p) => ({ url: `https://127.0.0.1:${port}${p}`, caBundle }), scope: 'opt-in', watcherUsers: [] });
  const scoped = <T extends { webhooks: object[] }>(c: T) => ({ ...c, metadata: { name: NAME }, webhooks: c.webhooks.map((w) => ({ ...w, namespaceSelector: { matchLabels: { [SCOPE_LABEL]: 'true' } } })) });
  expect(JSON.stringify([mutating, validating])).not.toContain('not-the-watcher');
  await applyManifest({ apiVersion: 'v1', kind: 'List', items: [scoped(mutating), scoped(validating)] });
  cleanup.push(() => kubectl(['delete', 'mutatingwebhookconfiguration,validatingwebhookconfiguration', NAME, '--ignore-not-found']));

  // The suite's own registration (the default namespace's webhook and watcher) leaves out namespaces
  // labelled as the product's: only this test's webhook sees the app namespace.
  await createNamespace(APP, { [SCOPE_LABEL]: 'true', 'inplace-gate.dev/system': 'true' });
  cleanup.push(() => kubectl(['delete', 'namespace', APP, '--wait=false']));
  await eventually('the webhook serving', async () => {
    const pod = JSON.parse(await kubectl(['-n', APP, 'create', '--dry-run=server', '-o', 'json', '-f', '-'], JSON.stringify(podManifest('probe', APP)))) as { spec: { readinessGates?: unknown[] } };
    return pod.spec.readinessGates?.length ? true : undefined;
  });

  watcher = await startLeadingWatcher(['--kubeconfig', watcherKubeconfig, `--namespace=${PLATFORM}`]);
});

afterAll(async () => {
  await watcher?.stop();
  for (const step of cleanup.reverse()) await step().catch(() => undefined);
});

describe(`installed in another namespace`, () => {
  it("the watcher's own image write passes the webhook: the change goes through, drained and proven", async () => {
    await applyManifest(podManifest('web', APP, { annotations: { 'inplace-gate.dev/grace-period-seconds': '0' } }));
    const before = await settled(APP, 'web');
    expect(before.metadata.labels?.['inplace-gate.dev/managed']).toBe('true');
    expect(before.spec.containers[0]?.image).toBe(IMAGE);
    await kubectl(['-n', APP, 'set', 'image', 'pod/web', `app=${IMAGE_2}`]);
    // Through the lifecycle (deferred, drained, written by the watcher, proven), not let through:
    // the watcher's Events say so.
    const reasons = await eventually('InPlaceUpdateSucceeded on web', async () => {
      const events = JSON.parse(await kubectl(['-n', APP, 'get', 'events.events.k8s.io', '--field-selector', 'regarding.name=web', '-o', 'json'])) as { items: { reason: string }[] };
      const seen = events.items.map((e) => e.reason);
      return seen.includes('InPlaceUpdateSucceeded') ? seen : undefined;
    }, 60_000);
    expect(reasons).toEqual(expect.arrayContaining(['InPlaceUpdateStarted', 'InPlaceUpdateDrained', 'InPlaceUpdateSucceeded']));
    const after = await settled(APP, 'web');
    expect(after.spec.containers[0]?.image).toBe(IMAGE_2);
    expect(stateOf(after)).toBeUndefined();
  });
});
