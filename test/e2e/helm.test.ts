// The Helm chart on the real apiserver: `helm template | kubectl apply
// --server-side --dry-run=server` in the default namespace and in another one,
// with cert-manager's and prometheus-operator's CRDs installed from their Go
// modules so that their objects are checked too; the chart equal to what
// kustomize renders; and the release hook's own identity running `inplace-gate
// release` with exactly the rights the hook gives it.

import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, relative, resolve } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { helmBinary, helmTemplate, key, objects, withoutHelm, type K8sObject } from '../support/helm.ts';
import { context, kubectl } from './support/kube.ts';

const run = promisify(execFile);
const repo = resolve(import.meta.dirname, '../..');
const id = Date.now().toString(36);
const cleanup: (() => Promise<unknown>)[] = [];
const yaml = (list: K8sObject[]) => list.map((o) => JSON.stringify(o)).join('\n---\n');

/** kubectl apply --server-side --dry-run=server of the objects: its stdout and stderr (Pod Security warnings). */
async function dryRun(list: K8sObject[]): Promise<{ out: string; err: string }> {
  const { kubectl: bin, kubeconfig } = context();
  const child = run(bin, ['--kubeconfig', kubeconfig, 'apply', '--server-side', '--force-conflicts', '--dry-run=server', '-f', '-'], { maxBuffer: 16 * 1024 * 1024 });
  child.child.stdin?.end(yaml(list));
  const r = await child;
  return { out: r.stdout, err: r.stderr };
}

/** Each object named in kubectl's output as applied (server dry run). */
function expectAllApplied(out: string, list: K8sObject[]) {
  const lines = out.trim().split('\n');
  expect(lines.length, out).toBe(list.length);
  for (const line of lines) expect(line).toMatch(/ serverside-applied \(server dry run\)$/);
  for (const o of list) expect(out, key(o)).toMatch(new RegExp(`^${o.kind.toLowerCase()}[.a-z0-9-]*/${o.metadata.name} `, 'm'));
}

beforeAll(async () => {
  await helmBinary();
  // cert-manager's Issuer and Certificate, prometheus-operator's PodMonitor and ServiceMonitor: their
  // real schemas, from the Go modules at the versions test/cluster/crds.sh pins.
  const files = (await run('bash', [join(repo, 'test/cluster/crds.sh')])).stdout.trim().split('\n');
  await kubectl(['apply', '--server-side', ...files.flatMap((f) => ['-f', f])]);
  cleanup.push(() => kubectl(['delete', '--ignore-not-found', '--wait=false', ...files.flatMap((f) => ['-f', f])]));
  await kubectl(['wait', '--for=condition=Established', '--timeout=60s', ...files.flatMap((f) => ['-f', f])]);
}, 30 * 60_000);

afterAll(async () => {
  for (const step of cleanup.reverse()) await step().catch(() => undefined);
});

describe('the Helm chart on the real apiserver', () => {
  it('helm template | kubectl apply --server-side --dry-run=server: every object accepted in the default namespace', async () => {
    const list = objects(await helmTemplate('inplace-gate'));
    expect(list.some((o) => o.kind === 'Job' && o.metadata.annotations?.['helm.sh/hook'] === 'pre-delete')).toBe(true);
    const { out } = await dryRun(list);
    expectAllApplied(out, list);
  });

  it('in another namespace, with cert-manager certificates and the monitors: every object accepted, every pod template passes restricted', async () => {
    const ns = `e2e-helm-${id}`;
    const list = objects(await helmTemplate(ns, { 'certificates.mode': 'cert-manager', 'monitoring.podMonitor.enabled': true, 'monitoring.serviceMonitor.enabled': true }));
    expect(list.filter((o) => o.apiVersion === 'cert-manager.io/v1').length).toBe(4);
    // The Namespace (restricted) and its ServiceAccounts for real: a dry run of what goes into it needs them.
    const real = list.filter((o) => o.kind === 'Namespace' || o.kind === 'ServiceAccount');
    await kubectl(['apply', '--server-side', '-f', '-'], yaml(real));
    cleanup.push(() => kubectl(['delete', 'namespace', ns, '--wait=false']));
    const labels = JSON.parse(await kubectl(['get', 'namespace', ns, '-o', 'jsonpath={.metadata.labels}'])) as Record<string, string>;
    expect(labels).toMatchObject({ 'pod-security.kubernetes.io/enforce': 'restricted', 'pod-security.kubernetes.io/warn': 'restricted', 'inplace-gate.dev/system': 'true' });
    const rest = list.filter((o) => !real.includes(o));
    const { out, err } = await dryRun(rest);
    expectAllApplied(out, rest);
    // The apiserver checks workload templates (the Deployments and the hook's Job) against `warn` and says so on stderr.
    expect(err).not.toMatch(/PodSecurity/);
    const loose = { apiVersion: 'batch/v1', kind: 'Job', metadata: { name: 'loose', namespace: ns },
      spec: { template: { spec: { restartPolicy: 'Never', containers: [{ name: 'x', image: 'x' }] } } } };
    expect((await dryRun([loose as unknown as K8sObject])).err).toMatch(/would violate PodSecurity "restricted:latest"/);
    // A Certificate the apiserver's schema refuses: the CRDs check what the chart renders.
    const broken = { ...list.find((o) => o.kind === 'Certificate' && o.metadata.name === 'inplace-gate-webhook'), spec: { secretName: 3 } };
    await expect(dryRun([broken as K8sObject])).rejects.toThrow(/spec\.secretName|issuerRef/);
  });

  it('equals what kustomize renders: the base moved to another namespace, and the cert-manager overlay', async () => {
    const ns = `e2e-helm-kustomize-${id}`;
    const overlay = await mkdtemp(join(tmpdir(), 'inplace-gate-overlay-'));
    cleanup.push(() => rm(overlay, { recursive: true, force: true }));
    await writeFile(join(overlay, 'kustomization.yaml'), `namespace: ${ns}\nresources:\n  - ${relative(overlay, join(repo, 'manifests/base'))}\n`);
    const cases: [string, string, Record<string, string>][] = [
      [overlay, ns, {}],
      [join(repo, 'manifests/overlays/cert-manager'), 'inplace-gate', { 'certificates.mode': 'cert-manager' }],
    ];
    for (const [dir, namespace, set] of cases) {
      const kustomized = new Map(objects(await kubectl(['kustomize', dir])).map((o) => [key(o), o]));
      const chart = new Map(withoutHelm(objects(await helmTemplate(namespace, set)), namespace).objects.map((o) => [key(o), o]));
      expect([...chart.keys()].sort(), dir).toEqual([...kustomized.keys()].sort());
      for (const [k, o] of kustomized) expect(chart.get(k), `${dir}: ${k}`).toEqual(o);
    }
  });

  it('the release hook\'s ServiceAccount may make the writes `inplace-gate release` makes and no others, and release runs under it', async () => {
    const ns = `e2e-helm-release-${id}`;
    const hooks = withoutHelm(objects(await helmTemplate(ns)), ns).hooks;
    await kubectl(['create', 'namespace', ns]);
    cleanup.push(() => kubectl(['delete', 'namespace', ns, '--wait=false']));
    const identity = hooks.filter((o) => ['ServiceAccount', 'ClusterRole', 'ClusterRoleBinding'].includes(o.kind));
    expect(identity.length).toBe(3);
    await kubectl(['apply', '--server-side', '-f', '-'], yaml(identity));
    cleanup.push(() => kubectl(['delete', 'clusterrolebinding,clusterrole', 'inplace-gate-release', '--ignore-not-found']));
    const can = async (...args: string[]) =>
      (await kubectl(['auth', 'can-i', `--as=system:serviceaccount:${ns}:inplace-gate-release`, ...args]).catch((e: unknown) => (e as { stdout: string }).stdout)).trim();
    for (const allowed of [['patch', 'deployments'], ['patch', 'statefulsets'], ['patch', 'deployments', '--subresource=status'], ['delete', 'replicasets'],
      ['list', 'pods'], ['patch', 'pods'], ['patch', 'pods', '--subresource=status'], ['create', 'events.events.k8s.io']]) {
      expect(await can(...allowed, '-A'), allowed.join(' ')).toBe('yes');
    }
    for (const denied of [['get', 'secrets'], ['create', 'pods'], ['delete', 'pods'], ['create', 'replicasets'], ['update', 'deployments'], ['delete', 'deployments']]) {
      expect(await can(...denied, '-A'), denied.join(' ')).toBe('no');
    }
    expect(await can('patch', 'mutatingwebhookconfigurations/inplace-gate')).toBe('no');
    // `inplace-gate release` as the Job runs it, with that ServiceAccount's token: it reads every namespace.
    const token = (await kubectl(['create', 'token', 'inplace-gate-release', '-n', ns, '--duration=10m'])).trim();
    const admin = JSON.parse(await kubectl(['config', 'view', '--raw', '--minify', '-o', 'json'])) as { clusters: { cluster: Record<string, string> }[] };
    const kubeconfig = join(await mkdtemp(join(tmpdir(), 'inplace-gate-release-')), 'kubeconfig');
    cleanup.push(() => rm(join(kubeconfig, '..'), { recursive: true, force: true }));
    await writeFile(kubeconfig, JSON.stringify({
      apiVersion: 'v1', kind: 'Config', 'current-context': 'release',
      clusters: [{ name: 'e2e', cluster: admin.clusters[0]!.cluster }],
      users: [{ name: 'release', user: { token } }],
      contexts: [{ name: 'release', context: { cluster: 'e2e', user: 'release' } }],
    }));
    const r = await run(process.execPath, [join(repo, 'src/cli.ts'), 'release', '--kubeconfig', kubeconfig, '--release-timeout-seconds=0']);
    expect(r.stderr).toContain('inplace-gate: releasing on');
    // Exit 0 (run throws otherwise): it listed Deployments, StatefulSets and managed pods in every namespace.
    expect(r.stderr).not.toMatch(/forbidden/i);
  });
});
