// The shipped webhook configurations are generated from the same code the
// end-to-end tests and `npm start` register: this fails when they drift.

import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { load } from 'js-yaml';
import { renderedManifests } from '../../src/manifests.ts';
import { loadSettings } from '../../src/settings.ts';
import { webhookConfigurations } from '../../src/kube/webhook-configurations.ts';
import { DEFAULT_WATCHER_USER } from '../../src/core/names.ts';

const repo = join(import.meta.dirname, '..', '..');

describe('manifests', () => {
  it('match what `npm run manifests` renders (run it after changing the webhook rules)', async () => {
    for (const file of renderedManifests(loadSettings([], {}))) {
      expect(await readFile(join(repo, file.path), 'utf8'), file.path).toBe(file.content);
    }
  });

  it('register the same rules as the end-to-end tests and npm start, but for the clientConfig and the watcher username they know', async () => {
    const shipped = (await readFile(join(repo, 'manifests/base/webhook-configurations.yaml'), 'utf8'))
      .split('\n---\n')
      .map((doc) => load(doc) as { webhooks: { clientConfig: unknown }[] });
    const local = webhookConfigurations({
      clientConfig: (path) => ({ url: `https://127.0.0.1:9443${path}`, caBundle: 'x' }),
      scope: 'opt-in',
      watcherUsers: [DEFAULT_WATCHER_USER],
    });
    type Webhook = { clientConfig: unknown; matchConditions?: { name: string }[] };
    const strip = (c: { webhooks: Webhook[] }) => ({
      ...c,
      webhooks: c.webhooks.map((w) => ({ ...w, clientConfig: undefined, matchConditions: w.matchConditions?.filter((m) => m.name !== 'not-the-watcher') })),
    });
    expect(shipped.map(strip)).toEqual([local.mutating, local.validating].map((c) => strip(c as { webhooks: Webhook[] })));
  });

  it('name no namespace of their own inside a selector or a CEL expression, so that kustomize can move them', async () => {
    // kustomize's namespace transform rewrites metadata.namespace and clientConfig.service.namespace,
    // never a string inside a selector or an expression: a name there would stay behind.
    const shipped = await readFile(join(repo, 'manifests/base/webhook-configurations.yaml'), 'utf8');
    expect(shipped).not.toMatch(/system:serviceaccount:/);
    const configs = shipped.split('\n---\n').map((doc) => load(doc) as { webhooks: { namespaceSelector: unknown; matchConditions?: unknown }[] });
    for (const w of configs.flatMap((c) => c.webhooks)) {
      expect(JSON.stringify([w.namespaceSelector, w.matchConditions])).not.toContain('inplace-gate"');
      expect(JSON.stringify(w.namespaceSelector)).toContain('{"key":"inplace-gate.dev/system","operator":"NotIn","values":["true"]}');
    }
    const namespace = load(await readFile(join(repo, 'manifests/base/namespace.yaml'), 'utf8')) as { metadata: { labels: Record<string, string> } };
    expect(namespace.metadata.labels['inplace-gate.dev/system']).toBe('true');
  });

  it('use matchConditions and the failure policies of DESIGN.md', () => {
    const { mutating, validating } = webhookConfigurations({ clientConfig: () => ({ url: 'https://x' }), scope: 'opt-in', watcherUsers: [] });
    const policy = Object.fromEntries([...mutating.webhooks, ...validating.webhooks].map((w) => [w.name, w.failurePolicy]));
    expect(policy).toEqual({
      'pod-create.inplace-gate.dev': 'Ignore',
      'workload-image-update.inplace-gate.dev': 'Ignore',
      'statefulset-status.inplace-gate.dev': 'Ignore',
      'pod-image-update.inplace-gate.dev': 'Fail',
      'pod-update.inplace-gate.dev': 'Fail',
      'pod-subresources.inplace-gate.dev': 'Fail',
    });
    for (const w of [...mutating.webhooks, ...validating.webhooks]) {
      expect(w.sideEffects).toBe('None');
      expect(w.timeoutSeconds).toBeLessThanOrEqual(10);
      // The subresources are rare and all of them matter: no condition to narrow them by.
      if (w.name !== 'pod-subresources.inplace-gate.dev') expect(w.matchConditions.length).toBeGreaterThan(0);
    }
  });
});
