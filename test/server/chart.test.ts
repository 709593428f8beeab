// The Helm chart (charts/inplace-gate) with the Helm CLI built from Go modules:
// `helm lint` on the defaults and on operators' value sets, the default render
// equal to the kustomize base object by object, the release namespace followed
// by the watcher's identity and the exclusions, the values, and the schema
// refusing bad values with a message naming them.

import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import jsonpatch, { type Operation } from 'fast-json-patch';
import { load } from 'js-yaml';
import { beforeAll, describe, expect, it } from 'vitest';
import { webhookConfigurations } from '../../src/kube/webhook-configurations.ts';
import { CHART, helmBinary, helmLint, helmTemplate, key, kustomizeBase, objects, withoutHelm, type K8sObject } from '../support/helm.ts';

const repo = join(import.meta.dirname, '../..');
const NS = 'inplace-gate';
const T = 60_000;

interface Webhook { name: string; failurePolicy: string; clientConfig: { service: { namespace: string } }; matchConditions: { name: string; expression: string }[]; namespaceSelector: { matchExpressions: { key: string; values: string[] }[] } }
interface Configuration extends K8sObject { webhooks: Webhook[] }
interface Container { name: string; image: string; imagePullPolicy?: string; args: string[] }
interface PodSpec { containers: Container[]; initContainers?: Container[]; priorityClassName?: string; topologySpreadConstraints?: { topologyKey: string; whenUnsatisfiable: string }[]; automountServiceAccountToken?: boolean; volumes?: unknown[] }
interface Workload extends K8sObject { spec: { template: { spec: PodSpec } } }

const specOf = <T = unknown>(o: K8sObject | undefined): T => o?.spec as T;
const render = async (namespace = NS, set?: Record<string, string | number | boolean>) => objects(await helmTemplate(namespace, set));
const byKey = (list: K8sObject[]) => new Map(list.map((o) => [key(o), o]));
const configurations = (list: K8sObject[]) => list.filter((o): o is Configuration => o.kind.endsWith('WebhookConfiguration'));
const webhooks = (list: K8sObject[]) => configurations(list).flatMap((c) => c.webhooks);
const workloads = (list: K8sObject[]) => list.filter((o): o is Workload => o.kind === 'Deployment' || o.kind === 'Job');
const containers = (list: K8sObject[]) => workloads(list).flatMap((w) => [...(w.spec.template.spec.initContainers ?? []), ...w.spec.template.spec.containers]);

beforeAll(async () => { await helmBinary(); }, 30 * 60_000);

describe('the Helm chart', () => {
  it('passes helm lint --strict on the defaults and on the value sets operators use', async () => {
    const sets: Record<string, string | number | boolean>[] = [
      {},
      { scope: 'cluster-wide' },
      { 'certificates.mode': 'cert-manager' },
      { 'certificates.mode': 'cert-manager', 'certificates.certManager.issuerRef.name': 'corp-ca', 'certificates.certManager.issuerRef.kind': 'ClusterIssuer' },
      { 'monitoring.podMonitor.enabled': true, 'monitoring.serviceMonitor.enabled': true },
      { 'networkPolicy.enabled': false, 'namespace.create': false, priorityClassName: '', 'releaseHook.enabled': false },
      { 'image.digest': `sha256:${'a'.repeat(64)}`, 'image.pullPolicy': 'Always', 'topologySpread.zone.enabled': true, 'topologySpread.host.whenUnsatisfiable': 'DoNotSchedule' },
      { 'webhook.replicas': 3, 'watcher.replicas': 3, 'releaseHook.onUpgrade': true, 'failurePolicy.pod-image-update': 'Ignore' },
    ];
    for (const set of sets) {
      const lint = await helmLint(NS, set);
      expect(lint.output, JSON.stringify(set)).toMatch(/1 chart\(s\) linted, 0 chart\(s\) failed/);
      expect(lint.ok, `${JSON.stringify(set)}: ${lint.output}`).toBe(true);
    }
  }, 4 * T);

  it('renders the kustomize base at the default values, object by object, plus the release hook', async () => {
    const { objects: chart, hooks } = withoutHelm(await render(), NS);
    const base = byKey(kustomizeBase());
    const rendered = byKey(chart);
    expect([...rendered.keys()].sort()).toEqual([...base.keys()].sort());
    for (const [k, o] of base) expect(rendered.get(k), k).toEqual(o);
    // The hook: `inplace-gate release` before the uninstall deletes anything, with rights of its own.
    expect(hooks.map((h) => `${key(h)} ${h.metadata.annotations?.['helm.sh/hook'] ?? ''}`).sort()).toEqual([
      'ClusterRole//inplace-gate-release pre-delete',
      'ClusterRoleBinding//inplace-gate-release pre-delete',
      'Job/inplace-gate/inplace-gate-release pre-delete',
      'NetworkPolicy/inplace-gate/inplace-gate-release pre-delete',
      'ServiceAccount/inplace-gate/inplace-gate-release pre-delete',
    ]);
    const job = hooks.find((h): h is Workload => h.kind === 'Job');
    expect(job?.spec.template.spec.containers.map((c) => c.args)).toEqual([['release', '--release-timeout-seconds=60']]);
  }, T);

  it('writes the watcher condition into the webhooks the code gives it to, and no other', async () => {
    const code = webhookConfigurations({ clientConfig: () => ({ url: 'https://x' }), scope: 'opt-in', watcherUsers: ['x'] });
    const want = [...code.mutating.webhooks, ...code.validating.webhooks].filter((w) => w.matchConditions.some((m) => m.name === 'not-the-watcher')).map((w) => w.name);
    const got = webhooks(await render()).filter((w) => w.matchConditions.some((m) => m.name === 'not-the-watcher')).map((w) => w.name);
    expect(got).toEqual(want);
    expect(got.length).toBeGreaterThan(0);
  }, T);

  it('in namespace platform-system, the watcher identity, the exclusions and every reference follow it', async () => {
    const ns = 'platform-system';
    const text = await helmTemplate(ns, { 'certificates.mode': 'cert-manager' });
    const list = objects(text);
    for (const w of webhooks(list)) {
      expect(w.clientConfig.service.namespace, w.name).toBe(ns);
      expect(w.namespaceSelector.matchExpressions.find((e) => e.key === 'kubernetes.io/metadata.name')?.values, w.name).toContain(ns);
    }
    const watcherConditions = webhooks(list).flatMap((w) => w.matchConditions).filter((m) => m.name === 'not-the-watcher');
    expect(watcherConditions.length).toBeGreaterThan(0);
    for (const m of watcherConditions) expect(m.expression).toBe("!(request.userInfo.username in ['system:serviceaccount:platform-system:inplace-gate-watcher'])");
    // Nothing names the default namespace: no object, subject, Service reference, DNS name or username.
    expect(text).not.toMatch(/namespace: inplace-gate$|serviceaccount:inplace-gate:|inplace-gate-webhook\.inplace-gate\b|inject-ca-from: inplace-gate\//m);
    expect(text).toContain('cert-manager.io/inject-ca-from: platform-system/inplace-gate-webhook');
    expect(text).toContain('- inplace-gate-webhook.platform-system.svc');
    expect(list.find((o) => o.kind === 'Namespace')?.metadata.name).toBe(ns);
    // Every webhook names it as the last exclusion, and the watcher condition only this username (withoutHelm checks).
    expect(() => withoutHelm(list, ns)).not.toThrow();
  }, T);

  it('renders the cluster-wide overlay with scope cluster-wide: the base with its generated patch applied', async () => {
    const patch = load(readFileSync(join(repo, 'manifests/overlays/cluster-wide/namespace-selector.patch.yaml'), 'utf8')) as Operation[];
    const base = kustomizeBase().find((o) => o.kind === 'MutatingWebhookConfiguration');
    const want = jsonpatch.applyPatch(structuredClone(base), patch, true, false).newDocument;
    const chart = withoutHelm(await render(NS, { scope: 'cluster-wide' }), NS).objects.find((o) => o.kind === 'MutatingWebhookConfiguration');
    expect(chart).toEqual(want);
    expect(chart).not.toEqual(base);
  }, T);

  it('sets what the values say', async () => {
    const digest = `sha256:${'b'.repeat(64)}`;
    const list = await render(NS, {
      'image.repository': 'registry.example.com/inplace-gate', 'image.digest': digest, 'image.pullPolicy': 'Always',
      'failurePolicy.pod-image-update': 'Ignore', 'excludedNamespaces[0]': 'legacy', priorityClassName: '',
      'topologySpread.zone.enabled': true, 'topologySpread.host.enabled': false, 'webhook.replicas': 3, 'namespace.podSecurity': 'baseline',
      'watcher.extraArgs[0]': '--pre-pull', 'webhook.podDisruptionBudget.enabled': false,
    });
    const all = containers(list);
    expect(all.map((c) => c.name).sort()).toEqual(['certs', 'release', 'watcher', 'webhook']);
    for (const c of all) expect([c.name, c.image, c.imagePullPolicy]).toEqual([c.name, `registry.example.com/inplace-gate@${digest}`, 'Always']);
    expect(webhooks(list).find((w) => w.name === 'pod-image-update.inplace-gate.dev')?.failurePolicy).toBe('Ignore');
    expect(webhooks(list).find((w) => w.name === 'pod-update.inplace-gate.dev')?.failurePolicy).toBe('Fail');
    for (const w of webhooks(list)) expect(w.namespaceSelector.matchExpressions[0]?.values).toEqual(['kube-system', 'kube-public', 'kube-node-lease', NS, 'legacy']);
    for (const d of workloads(list).filter((w) => w.kind === 'Deployment')) {
      expect(d.spec.template.spec.priorityClassName).toBeUndefined();
      expect(d.spec.template.spec.topologySpreadConstraints?.map((t) => t.topologyKey)).toEqual(['topology.kubernetes.io/zone']);
    }
    expect(list.some((o) => o.kind === 'ResourceQuota')).toBe(false);
    expect(list.find((o) => o.kind === 'Namespace')?.metadata.labels?.['pod-security.kubernetes.io/enforce']).toBe('baseline');
    expect(list.filter((o) => o.kind === 'PodDisruptionBudget').map((o) => o.metadata.name)).toEqual(['inplace-gate-watcher']);
    expect(containers(list).find((c) => c.name === 'watcher')?.args.at(-1)).toBe('--pre-pull');
    expect(specOf<{ replicas: number }>(list.find((o) => o.metadata.name === 'inplace-gate-webhook' && o.kind === 'Deployment')).replicas).toBe(3);
  }, T);

  it('with cert-manager: Issuers, the Certificate and the cainjector annotation, no sidecar, no token and no certificate rights', async () => {
    const list = await render(NS, { 'certificates.mode': 'cert-manager' });
    expect(list.filter((o) => o.apiVersion === 'cert-manager.io/v1').map(key).sort()).toEqual([
      'Certificate/inplace-gate/inplace-gate-ca', 'Certificate/inplace-gate/inplace-gate-webhook', 'Issuer/inplace-gate/inplace-gate-ca', 'Issuer/inplace-gate/inplace-gate-selfsigned',
    ]);
    for (const c of configurations(list)) expect(c.metadata.annotations?.['cert-manager.io/inject-ca-from']).toBe('inplace-gate/inplace-gate-webhook');
    const webhook = workloads(list).find((w) => w.metadata.name === 'inplace-gate-webhook')!.spec.template.spec;
    expect(webhook.initContainers).toBeUndefined();
    expect(webhook.automountServiceAccountToken).toBe(false);
    expect(webhook.volumes).toEqual([{ name: 'tls', secret: { secretName: 'inplace-gate-webhook-tls' } }]);
    expect(list.filter((o) => o.kind.includes('Role')).map((o) => o.metadata.name).sort()).toEqual([
      'inplace-gate-release', 'inplace-gate-release', 'inplace-gate-watcher', 'inplace-gate-watcher', 'inplace-gate-watcher-lease', 'inplace-gate-watcher-lease']);
    // An issuer of the operator's: no CA of the chart's own.
    const own = await render(NS, { 'certificates.mode': 'cert-manager', 'certificates.certManager.issuerRef.name': 'corp-ca', 'certificates.certManager.issuerRef.kind': 'ClusterIssuer' });
    expect(own.filter((o) => o.apiVersion === 'cert-manager.io/v1').map(key)).toEqual(['Certificate/inplace-gate/inplace-gate-webhook']);
    expect(specOf<{ issuerRef: unknown }>(own.find((o) => o.kind === 'Certificate')).issuerRef).toEqual({ name: 'corp-ca', kind: 'ClusterIssuer' });
  }, T);

  it('renders the monitors only when asked, with job names the rules select', async () => {
    expect((await render()).some((o) => o.apiVersion.startsWith('monitoring.coreos.com/'))).toBe(false);
    const list = await render('platform-system', { 'monitoring.podMonitor.enabled': true, 'monitoring.serviceMonitor.enabled': true });
    expect(list.filter((o) => o.apiVersion.startsWith('monitoring.coreos.com/')).map(key).sort()).toEqual([
      'PodMonitor/platform-system/inplace-gate-watcher', 'PodMonitor/platform-system/inplace-gate-webhook',
      'ServiceMonitor/platform-system/inplace-gate-watcher', 'ServiceMonitor/platform-system/inplace-gate-webhook',
    ]);
    const shipped = objects(readFileSync(join(repo, 'integrations/prometheus/monitors.yaml'), 'utf8'));
    for (const m of shipped) {
      const chart = list.find((o) => o.kind === m.kind && o.metadata.name === m.metadata.name);
      expect(JSON.parse(JSON.stringify(specOf(chart)).replace(/platform-system/g, 'inplace-gate'))).toEqual(specOf(m));
    }
  }, T);

  it('refuses bad values, naming them', async () => {
    const bad: [Record<string, string | number | boolean>, RegExp][] = [
      [{ scope: 'everywhere' }, /\/scope/],
      [{ 'certificates.mode': 'vault' }, /\/certificates\/mode/],
      [{ 'failurePolicy.pod-create': 'Sometimes' }, /\/failurePolicy\/pod-create/],
      [{ 'failurePolicy.pod-creat': 'Fail' }, /pod-creat/],
      [{ 'image.digest': 'abc' }, /\/image\/digest/],
      [{ 'image.repository': 'ghcr.io/x:1.0' }, /\/image\/repository/],
      [{ 'webhook.replicas': 0 }, /\/webhook\/replicas/],
      [{ 'watcher.replicas': 'two' }, /\/watcher\/replicas/],
      [{ 'topologySpread.zone.whenUnsatisfiable': 'Maybe' }, /\/topologySpread\/zone\/whenUnsatisfiable/],
      [{ 'excludedNamespaces[0]': 'Not_A_Name' }, /\/excludedNamespaces\/0/],
      [{ 'namespace.podSecurity': 'strict' }, /\/namespace\/podSecurity/],
      [{ replicas: 2 }, /replicas/],
    ];
    for (const [set, message] of bad) {
      const lint = await helmLint(NS, set);
      expect(lint.ok, JSON.stringify(set)).toBe(false);
      expect(lint.output, JSON.stringify(set)).toMatch(message);
      await expect(helmTemplate(NS, set), JSON.stringify(set)).rejects.toThrow(message);
    }
    // A namespace shared with others is never relabelled restricted and out of scope.
    await expect(helmTemplate('default')).rejects.toThrow(/namespace\.create would label the namespace "default" restricted/);
    expect(objects(await helmTemplate('default', { 'namespace.create': false })).some((o) => o.kind === 'Namespace')).toBe(false);
    // What the schema cannot say, the template does (helm lint only logs a template's fail; template and install stop).
    await expect(helmTemplate(NS, { 'resourceQuota.pods': 3 })).rejects.toThrow(/resourceQuota\.pods \(3\) is below .* = 6/);
    await expect(helmTemplate(NS, { 'resourceQuota.pods': 6, 'webhook.replicas': 3 })).rejects.toThrow(/\(6\) is below .* = 7/);
  }, 4 * T);

  it('keeps its version, its values file, its schema and its README table in step', () => {
    const pkg = JSON.parse(readFileSync(join(repo, 'package.json'), 'utf8')) as { version: string };
    const chart = load(readFileSync(join(CHART, 'Chart.yaml'), 'utf8')) as { version: string; appVersion: string };
    expect([chart.version, chart.appVersion]).toEqual([pkg.version, pkg.version]);
    // Every leaf of values.yaml is in the schema and in the README's table, and the schema has no value values.yaml lacks.
    const values = load(readFileSync(join(CHART, 'values.yaml'), 'utf8')) as Record<string, unknown>;
    const leaves = (o: unknown, at: string[] = []): string[] =>
      o !== null && typeof o === 'object' && !Array.isArray(o) && Object.keys(o).length > 0 && !['requests', 'limits', 'matchLabels'].includes(at.at(-1) ?? '')
        ? Object.entries(o).flatMap(([k, v]) => leaves(v, [...at, k])) : [at.join('.')];
    interface Schema { properties?: Record<string, Schema>; $ref?: string; definitions?: Record<string, Schema> }
    const schema = JSON.parse(readFileSync(join(CHART, 'values.schema.json'), 'utf8')) as Schema;
    const resolve = (s: Schema): Schema => (s.$ref ? schema.definitions![s.$ref.replace('#/definitions/', '')]! : s);
    const schemaLeaves = (s: Schema, at: string[] = []): string[] => {
      const r = resolve(s);
      return r.properties && !['resources', 'certsResources', 'metricsNamespaceSelector'].includes(at.at(-1) ?? '') && at.at(-1) !== 'issuerRef'
        ? Object.entries(r.properties).flatMap(([k, v]) => schemaLeaves(v, [...at, k])) : [at.join('.')];
    };
    const listed = leaves(values).map((l) => l.replace(/\.(requests|limits)(\..*)?$/, '').replace(/\.matchLabels.*$/, ''));
    const inSchema = schemaLeaves(schema).filter((l) => l !== 'global');
    expect([...new Set(listed)].sort()).toEqual([...new Set(inSchema)].sort());
    const readme = readFileSync(join(CHART, 'README.md'), 'utf8');
    const table = readme.split('\n').filter((l) => l.startsWith('| `')).map((l) => /^\| `([^`]+)`/.exec(l)?.[1]);
    expect(table.sort()).toEqual([...new Set(inSchema)].sort());
  });
});
