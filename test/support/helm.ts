// The chart as Helm renders it: the Helm CLI built from Go modules on first use
// (test/cluster/build-helm.sh, cached outside the repo), `helm template` and
// `helm lint` on charts/inplace-gate, and the rendered objects, and the kustomize
// base the chart must equal.

import { execFile, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { load, loadAll } from 'js-yaml';

const run = promisify(execFile);
const repo = resolve(import.meta.dirname, '../..');
export const CHART = join(repo, 'charts/inplace-gate');

export interface K8sObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string>; annotations?: Record<string, string> };
  [field: string]: unknown;
}

let built: Promise<string> | undefined;
/** The helm binary; the first call on a machine builds it (minutes; progress on stderr). */
export function helmBinary(): Promise<string> {
  built ??= new Promise((ok, fail) => {
    const child = spawn('bash', [join(repo, 'test/cluster/build-helm.sh')], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => { out += d.toString(); });
    child.on('exit', (code) => { if (code === 0) ok(out.trim()); else fail(new Error(`build-helm.sh failed (exit ${code})`)); });
  });
  return built;
}

/** --set/--set-string pairs and release namespace as flags. */
const flags = (namespace: string, set: Record<string, string | number | boolean> = {}) => [
  '--namespace', namespace,
  ...Object.entries(set).flatMap(([k, v]) => [typeof v === 'string' ? '--set-string' : '--set', `${k}=${String(v)}`]),
];

/** `helm template inplace-gate CHART`: its stdout, or throws with helm's stderr as the message. */
export async function helmTemplate(namespace: string, set?: Record<string, string | number | boolean>, extra: string[] = []): Promise<string> {
  const helm = await helmBinary();
  try {
    return (await run(helm, ['template', 'inplace-gate', CHART, ...flags(namespace, set), ...extra], { maxBuffer: 16 * 1024 * 1024 })).stdout;
  } catch (err) {
    throw new Error((err as { stderr?: string }).stderr ?? String(err), { cause: err });
  }
}

/** `helm lint --strict`: exit code and output together. */
export async function helmLint(namespace: string, set?: Record<string, string | number | boolean>): Promise<{ ok: boolean; output: string }> {
  const helm = await helmBinary();
  try {
    const r = await run(helm, ['lint', '--strict', CHART, ...flags(namespace, set)]);
    return { ok: true, output: r.stdout + r.stderr };
  } catch (err) {
    const e = err as { stdout?: string; stderr?: string };
    return { ok: false, output: `${e.stdout ?? ''}${e.stderr ?? ''}` };
  }
}

export const objects = (yaml: string): K8sObject[] => (loadAll(yaml) as (K8sObject | null)[]).filter((o): o is K8sObject => o !== null);
export const key = (o: K8sObject) => `${o.kind}/${o.metadata.namespace ?? ''}/${o.metadata.name}`;

/** The kustomize base as `kustomize build` gives it: it only lists resources (no transformers). */
export function kustomizeBase(): K8sObject[] {
  const kustomization = load(readFileSync(join(repo, 'manifests/base/kustomization.yaml'), 'utf8')) as Record<string, unknown>;
  const keys = Object.keys(kustomization).sort();
  if (JSON.stringify(keys) !== JSON.stringify(['apiVersion', 'kind', 'resources'])) {
    throw new Error(`manifests/base/kustomization.yaml has ${keys.join(', ')}: render it with kustomize, not by listing its files`);
  }
  return (kustomization.resources as string[]).flatMap((f) => objects(readFileSync(join(repo, 'manifests/base', f), 'utf8')));
}

const HELM_LABELS = ['helm.sh/chart', 'app.kubernetes.io/instance', 'app.kubernetes.io/version', 'app.kubernetes.io/managed-by'];
const HELM_ANNOTATIONS = ['helm.sh/resource-policy'];

/**
 * The chart's objects with what only Helm adds taken out, so that they compare with kustomize's: its
 * labels and annotations (checked present), the hook resources (returned apart), and in the webhook
 * configurations what a render that knows its namespace writes in: the watcher's username condition
 * and the namespace's name in the exclusions (both checked to name `namespace`).
 */
export function withoutHelm(rendered: K8sObject[], namespace: string): { objects: K8sObject[]; hooks: K8sObject[] } {
  const hooks = rendered.filter((o) => o.metadata.annotations?.['helm.sh/hook'] !== undefined);
  const plain = rendered.filter((o) => !hooks.includes(o)).map((o) => {
    const c = structuredClone(o);
    for (const l of HELM_LABELS) {
      if (c.metadata.labels?.[l] === undefined) throw new Error(`${key(o)}: no label ${l}`);
      delete c.metadata.labels[l];
    }
    for (const a of HELM_ANNOTATIONS) delete c.metadata.annotations?.[a];
    if (c.metadata.annotations && Object.keys(c.metadata.annotations).length === 0) delete c.metadata.annotations;
    if (c.kind === 'MutatingWebhookConfiguration' || c.kind === 'ValidatingWebhookConfiguration') {
      interface Webhook { name: string; matchConditions: { name: string; expression: string }[]; namespaceSelector: { matchExpressions: { key: string; values: string[] }[] } }
      for (const w of c.webhooks as Webhook[]) {
        // Where src/kube/webhook-configurations.ts puts it (not on pod CREATE: test/server/chart.test.ts).
        const watcher = w.matchConditions.find((m) => m.name === 'not-the-watcher');
        if (watcher && watcher.expression !== `!(request.userInfo.username in ['system:serviceaccount:${namespace}:inplace-gate-watcher'])`) {
          throw new Error(`${w.name}: not-the-watcher condition is ${JSON.stringify(watcher)}`);
        }
        w.matchConditions = w.matchConditions.filter((m) => m !== watcher);
        const names = w.namespaceSelector.matchExpressions.find((e) => e.key === 'kubernetes.io/metadata.name');
        if (names?.values.at(-1) !== namespace) throw new Error(`${w.name}: ${namespace} is not the last excluded name: ${JSON.stringify(names)}`);
        names.values = names.values.slice(0, -1);
      }
    }
    return c;
  });
  return { objects: plain, hooks };
}
