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

  it('register the same rules as the end-to-end tests and npm start, but for the clientConfig', async () => {
    const shipped = (await readFile(join(repo, 'manifests/base/webhook-configurations.yaml'), 'utf8'))
      .split('\n---\n')
      .map((doc) => load(doc) as { webhooks: { clientConfig: unknown }[] });
    const local = webhookConfigurations({
      clientConfig: (path) => ({ url: `https://127.0.0.1:9443${path}`, caBundle: 'x' }),
      scope: 'opt-in',
      ownNamespace: 'inplace-gate',
      watcherUsers: [DEFAULT_WATCHER_USER],
    });
    const strip = (c: { webhooks: { clientConfig: unknown }[] }) => ({ ...c, webhooks: c.webhooks.map((w) => ({ ...w, clientConfig: undefined })) });
    expect(shipped.map(strip)).toEqual([local.mutating, local.validating].map((c) => strip(c as { webhooks: { clientConfig: unknown }[] })));
  });

  it('use matchConditions and the failure policies of DESIGN.md', () => {
    const { mutating, validating } = webhookConfigurations({ clientConfig: () => ({ url: 'https://x' }), scope: 'opt-in', ownNamespace: 'inplace-gate', watcherUsers: [] });
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
      expect(w.matchConditions.length).toBeGreaterThan(0);
    }
  });
});
