// The shipped manifests on the real apiserver, least-privilege RBAC, and the
// self-managed certificates: a Secret, the caBundle injected, and a rotation
// under steady admission load that loses no request.

import { execFile, spawn } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { closeSync, openSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, relative, resolve } from 'node:path';
import { connect } from 'node:tls';
import { promisify } from 'node:util';
import { loadAll } from 'js-yaml';
import { afterAll, describe, expect, it } from 'vitest';
import type { Pod } from '../../src/core/kube-types.ts';
import { READINESS_GATE } from '../../src/core/names.ts';
import { webhookConfigurations } from '../../src/kube/webhook-configurations.ts';
import { freePort } from '../support/ports.ts';
import { applyManifest, context, createNamespace, eventually, kubectl, kubectlFails } from './support/kube.ts';
import { podManifest } from './support/pods.ts';
import { apiClient } from './support/recorder.ts';

const run = promisify(execFile);
const repo = resolve(import.meta.dirname, '../..');
const id = Date.now().toString(36);
const cleanup: (() => Promise<unknown>)[] = [];

afterAll(async () => {
  for (const step of cleanup.reverse()) await step().catch(() => undefined);
});

describe('manifests on the real apiserver', () => {
  it.each(['namespace-opt-in', 'cluster-wide', 'cert-manager'])('kubectl kustomize %s is accepted by server-side apply (dry run)', async (overlay) => {
    const rendered = await kubectl(['kustomize', join(repo, 'manifests/overlays', overlay)]);
    // cert-manager's own kinds need its CRDs, which this cluster does not have.
    const docs = rendered.split(/^---$/m).filter((d) => !/^apiVersion: cert-manager\.io\//m.test(d));
    const out = await kubectl(['apply', '--server-side', '--force-conflicts', '--dry-run=server', '-f', '-'], docs.join('---\n'));
    expect(out).toMatch(/deployment\.apps\/inplace-gate-webhook serverside-applied \(server dry run\)/);
    expect(out).toMatch(/mutatingwebhookconfiguration\.admissionregistration\.k8s\.io\/inplace-gate serverside-applied/);
    for (const policy of ['inplace-gate-default-deny', 'inplace-gate-webhook', 'inplace-gate-watcher']) {
      expect(out).toMatch(new RegExp(`networkpolicy\\.networking\\.k8s\\.io/${policy} serverside-applied \\(server dry run\\)`));
    }
    if (overlay === 'cert-manager') expect(rendered).toContain('cert-manager.io/inject-ca-from: inplace-gate/inplace-gate-webhook');
  });

  it('the product namespace enforces the restricted Pod Security profile, and the shipped workloads pass it', async () => {
    const { kubectl: bin, kubeconfig } = context();
    await kubectl(['apply', '--server-side', '--force-conflicts', '-f', join(repo, 'manifests/base/namespace.yaml')]);
    const labels = JSON.parse(await kubectl(['get', 'namespace', 'inplace-gate', '-o', 'jsonpath={.metadata.labels}'])) as Record<string, string>;
    expect(labels['pod-security.kubernetes.io/enforce']).toBe('restricted');
    // The apiserver checks workload templates against the namespace's `warn` level and says so on stderr.
    const dryRun = async (manifests: string) => {
      const child = run(bin, ['--kubeconfig', kubeconfig, 'apply', '--server-side', '--force-conflicts', '--dry-run=server', '-f', '-']);
      child.child.stdin?.end(manifests);
      return (await child).stderr;
    };
    const shipped = (await kubectl(['kustomize', join(repo, 'manifests/overlays/namespace-opt-in')]))
      .split(/^---$/m).filter((d) => /^kind: (Deployment|Namespace)$/m.test(d)).join('---\n');
    expect(shipped).toMatch(/name: inplace-gate-webhook/);
    expect(shipped).toMatch(/name: inplace-gate-watcher/);
    expect(await dryRun(shipped)).not.toMatch(/PodSecurity/);
    // The same check finds a template that does not pass.
    const loose = { apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name: `e2e-psa-${id}`, namespace: 'inplace-gate' },
      spec: { selector: { matchLabels: { app: 'x' } }, template: { metadata: { labels: { app: 'x' } }, spec: { containers: [{ name: 'x', image: 'x' }] } } } };
    expect(await dryRun(JSON.stringify(loose))).toMatch(/would violate PodSecurity "restricted:latest"/);
  });

  it('rendered into another namespace, name none of inplace-gate, and the apiserver takes them and their pods under restricted', async () => {
    // An operator's overlay: `namespace: platform-x` over the base, from a directory of its own.
    const ns = `e2e-platform-${id}`;
    const overlay = await mkdtemp(join(tmpdir(), 'inplace-gate-overlay-'));
    cleanup.push(() => rm(overlay, { recursive: true, force: true }));
    await writeFile(join(overlay, 'kustomization.yaml'), `namespace: ${ns}\nresources:\n  - ${relative(overlay, join(repo, 'manifests/base'))}\n`);
    const rendered = await kubectl(['kustomize', overlay]);
    const docs = rendered.split(/^---$/m);
    // Nothing names the default namespace: no object, binding, Service reference, selector or username.
    expect(rendered).not.toMatch(/namespace: inplace-gate$|serviceaccount:inplace-gate:/m);
    const configurations = docs.filter((d) => /^kind: (Mutating|Validating)WebhookConfiguration$/m.test(d)).join('---\n');
    expect(configurations).toMatch(/- key: inplace-gate\.dev\/system/);
    expect(configurations).not.toMatch(/- inplace-gate$/m);
    expect(rendered).toMatch(new RegExp(`^  name: ${ns}$`, 'm'));
    // The Namespace and its ServiceAccounts for real (a dry run of what goes into it, and of its pods,
    // needs them), then everything else as a dry run.
    const real = docs.filter((d) => /^kind: (Namespace|ServiceAccount)$/m.test(d));
    await kubectl(['apply', '--server-side', '-f', '-'], real.join('---\n'));
    cleanup.push(() => kubectl(['delete', 'namespace', ns, '--wait=false']));
    const out = await kubectl(['apply', '--server-side', '--force-conflicts', '--dry-run=server', '-f', '-'], docs.filter((d) => !real.includes(d)).join('---\n'));
    expect(out).toMatch(/deployment\.apps\/inplace-gate-watcher serverside-applied \(server dry run\)/);
    expect(out).toMatch(/networkpolicy\.networking\.k8s\.io\/inplace-gate-watcher serverside-applied \(server dry run\)/);
    const labels = JSON.parse(await kubectl(['get', 'namespace', ns, '-o', 'jsonpath={.metadata.labels}'])) as Record<string, string>;
    expect(labels).toMatchObject({ 'pod-security.kubernetes.io/enforce': 'restricted', 'inplace-gate.dev/system': 'true' });
    // Pod Security admission judges pods, not templates: each Deployment's pod, as its ReplicaSet would create it.
    interface Deployment { kind: string; metadata: { name: string }; spec: { template: { metadata: object; spec: { priorityClassName?: string } } } }
    const deployments = (loadAll(rendered) as Deployment[]).filter((d) => d.kind === 'Deployment');
    expect(deployments.map((d) => d.metadata.name).sort()).toEqual(['inplace-gate-watcher', 'inplace-gate-webhook']);
    for (const d of deployments) {
      // Pod Security does not read the priority class; a critical one outside kube-system needs a
      // ResourceQuota of its own, which is not what this checks.
      const { priorityClassName: _, ...spec } = d.spec.template.spec;
      const pod = { apiVersion: 'v1', kind: 'Pod', metadata: { ...d.spec.template.metadata, name: `${d.metadata.name}-psa`, namespace: ns }, spec };
      const created = await kubectl(['create', '--dry-run=server', '-o', 'name', '-f', '-'], JSON.stringify(pod));
      expect(created.trim()).toBe(`pod/${d.metadata.name}-psa`);
    }
    // The same dry run refuses a pod that does not pass the profile: the enforcement is on.
    const loose = { apiVersion: 'v1', kind: 'Pod', metadata: { name: 'loose', namespace: ns }, spec: { containers: [{ name: 'x', image: 'x' }] } };
    expect(await kubectlFails(['create', '--dry-run=server', '-f', '-'], JSON.stringify(loose))).toMatch(/violates PodSecurity "restricted:latest"/);
  });

  it('gives the webhook only its Secret and the two named configurations, and no pod rights', async () => {
    await kubectl(['apply', '--server-side', '--force-conflicts', '-f', join(repo, 'manifests/base/webhook-rbac.yaml')]);
    const canI = async (as: string, args: string[]) =>
      (await kubectl(['auth', 'can-i', `--as=system:serviceaccount:inplace-gate:${as}`, ...args]).catch((e: unknown) => (e as { stdout: string }).stdout)).trim();
    const can = (...args: string[]) => canI('inplace-gate-webhook', args);
    expect(await can('get', 'secret/inplace-gate-webhook-tls', '-n', 'inplace-gate')).toBe('yes');
    expect(await can('get', 'secret/other', '-n', 'inplace-gate')).toBe('no');
    expect(await can('patch', 'mutatingwebhookconfiguration/inplace-gate')).toBe('yes');
    expect(await can('patch', 'validatingwebhookconfiguration/inplace-gate')).toBe('yes');
    expect(await can('patch', 'mutatingwebhookconfiguration/someone-else')).toBe('no');
    expect(await can('list', 'pods', '-A')).toBe('no');
    const watcher = (...args: string[]) => canI('inplace-gate-watcher', args);
    expect(await watcher('patch', 'pods/status', '-A')).toBe('yes');
    // Pull pods before a drain (core/pre-pull.ts): RBAC cannot narrow delete to them, so the watcher may delete pods.
    expect(await watcher('delete', 'pods', '-A')).toBe('yes');
    expect(await watcher('get', 'secrets', '-A')).toBe('no');
  });
});

function servedFingerprint(port: number, ca: string): Promise<string> {
  return new Promise((ok, fail) => {
    const socket = connect({ host: '127.0.0.1', port, ca, servername: 'localhost' }, () => {
      ok(socket.getPeerX509Certificate()?.fingerprint256 ?? '');
      socket.end();
    });
    socket.on('error', fail);
  });
}

describe('self-managed certificates', () => {
  it('fill the caBundle, and a rotation under steady admission load loses no request', async () => {
    const { kubeconfig, clusterDir } = context();
    const ns = `e2e-certs-${id}`;
    const label = `e2e-certs-${id}`;
    const name = `inplace-gate-certs-${id}`;
    const secret = `e2e-webhook-tls-${id}`;
    const dir = await mkdtemp(join(tmpdir(), 'inplace-gate-certs-'));
    cleanup.push(() => rm(dir, { recursive: true, force: true }));
    await createNamespace(ns, { [label]: 'true' });
    cleanup.push(() => kubectl(['delete', 'namespace', ns, '--wait=false']));

    // A configuration of its own (this test's namespace only, failing closed), pointing at a second webhook.
    const port = await freePort();
    const { mutating } = webhookConfigurations({ clientConfig: (p) => ({ url: `https://127.0.0.1:${port}${p}` }), scope: 'opt-in', watcherUsers: [] });
    const create = { ...mutating.webhooks[0]!, namespaceSelector: { matchLabels: { [label]: 'true' } }, failurePolicy: 'Fail' };
    await applyManifest({ ...mutating, metadata: { name }, webhooks: [create] });
    await applyManifest({ apiVersion: 'admissionregistration.k8s.io/v1', kind: 'ValidatingWebhookConfiguration', metadata: { name }, webhooks: [] });
    cleanup.push(() => kubectl(['delete', 'mutatingwebhookconfiguration,validatingwebhookconfiguration', name, '--ignore-not-found']));
    cleanup.push(() => kubectl(['-n', 'inplace-gate', 'delete', 'secret', secret, '--ignore-not-found']));

    const certs = (...extra: string[]) =>
      run(process.execPath, [join(repo, 'src/cli.ts'), 'certs', '--kubeconfig', kubeconfig, '--namespace', 'inplace-gate', '--cert-secret', secret,
        '--webhook-configuration', name, '--cert-dir', dir, ...extra]);
    await certs();
    const caBundle = (await kubectl(['get', 'mutatingwebhookconfiguration', name, '-o', 'jsonpath={.webhooks[0].clientConfig.caBundle}'])).trim();
    const ca = await readFile(join(dir, 'ca.crt'), 'utf8');
    expect(Buffer.from(caBundle, 'base64').toString()).toBe(ca);
    expect((await kubectl(['-n', 'inplace-gate', 'get', 'secret', secret, '-o', 'jsonpath={.type}'])).trim()).toBe('kubernetes.io/tls');

    const fd = openSync(join(clusterDir, 'logs', `e2e-certs-webhook-${id}.log`), 'a');
    const webhook = spawn(process.execPath, [join(repo, 'src/cli.ts'), 'webhook', '--port', String(port), '--host', '127.0.0.1',
      '--tls-cert-file', join(dir, 'tls.crt'), '--tls-key-file', join(dir, 'tls.key'), '--shutdown-delay-seconds', '0'], { stdio: ['ignore', fd, fd] });
    closeSync(fd);
    cleanup.push(() => Promise.resolve(webhook.kill('SIGTERM')));
    await eventually('the second webhook', async () => (await servedFingerprint(port, ca).catch(() => undefined)) || undefined, 20_000);
    const before = await servedFingerprint(port, ca);

    // Steady load: dry-run creates through the apiserver, which calls the webhook (failing closed).
    const client = await apiClient();
    let ok = 0;
    const failures: string[] = [];
    let loading = true;
    const load = Promise.all(Array.from({ length: 4 }, async () => {
      while (loading) {
        try {
          const pod = await client.post<Pod>(`/api/v1/namespaces/${ns}/pods?dryRun=All`, podManifest(`load-${ok % 1000}`, ns));
          if (pod.spec.readinessGates?.some((g) => g.conditionType === READINESS_GATE)) ok++;
          else failures.push('answered without the gate');
        } catch (err) {
          failures.push((err as Error).message);
        }
      }
    }));
    await new Promise((r) => setTimeout(r, 2000));
    // Renew: a new name in the certificate forces a new serving certificate from the same CA.
    await certs('--dns-names', `rotated-${id}.example`);
    const after = await eventually('the new certificate served', async () => {
      const fp = await servedFingerprint(port, ca);
      return fp !== before ? fp : undefined;
    }, 20_000);
    await new Promise((r) => setTimeout(r, 2000));
    loading = false;
    await load;

    expect(after).toBe(new X509Certificate(await readFile(join(dir, 'tls.crt'))).fingerprint256);
    expect(Buffer.from((await kubectl(['get', 'mutatingwebhookconfiguration', name, '-o', 'jsonpath={.webhooks[0].clientConfig.caBundle}'])).trim(), 'base64').toString()).toBe(ca);
    console.log(`certificate rotation under load: ${ok} admissions, ${failures.length} failed`);
    expect(failures).toEqual([]);
    expect(ok).toBeGreaterThan(20);
  });
});
