// End-to-end set-up: a real control plane (its own, started with
// test/cluster/cluster.sh; an existing one only with USE_EXISTING_CLUSTER=true
// and KUBECONFIG, printed first), the webhook as a real process over real TLS,
// and the webhook configurations registered with a `url` clientConfig and the
// CA in caBundle, built by the same code as the shipped manifests.

import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, readFile, writeFile, open } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import type { TestProject } from 'vitest/node';
import { webhookConfigurations } from '../../src/kube/webhook-configurations.ts';
import { DEFAULT_WATCHER_USER } from '../../src/core/names.ts';
import type { E2EContext } from './support/context.ts';
import { e2eTarget } from '../../src/core/cluster-target.ts';
import { describeKubeConfig } from '../../src/kube/client.ts';
import { freePort } from '../support/ports.ts';

const run = promisify(execFile);
const repo = resolve(import.meta.dirname, '../..');

async function waitForHealthy(url: string, caFile: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      await run('curl', ['-sf', '--cacert', caFile, `${url}/readyz`]);
      return;
    } catch (err) {
      if (Date.now() > deadline) throw new Error(`webhook not healthy at ${url}: ${(err as Error).message}`, { cause: err });
      await new Promise((r) => setTimeout(r, 200));
    }
  }
}

export default async function setup(project: TestProject) {
  const clusterDir = process.env.CLUSTER_DIR ?? join(repo, '.cluster');
  const target = e2eTarget(process.env);
  let kubeconfig: string;
  let startedCluster = false;
  if (target.kind === 'existing' && target.kubeconfig !== undefined) {
    kubeconfig = target.kubeconfig;
    console.error(`e2e: USE_EXISTING_CLUSTER=true: testing on ${describeKubeConfig(kubeconfig)}`);
  } else {
    if (target.kind === 'local' && target.ignored !== undefined) {
      console.error(`e2e: ignoring ${target.ignored}: the suite runs on its own local cluster (USE_EXISTING_CLUSTER=true to use that one)`);
    }
    const env = { ...process.env, CLUSTER_DIR: clusterDir };
    const status = await run('bash', [join(repo, 'test/cluster/cluster.sh'), 'status'], { env }).then(() => true, () => false);
    if (!status) {
      // Builds the control plane on first use (about 15 minutes cold); its progress goes to stderr.
      const up = spawn('bash', [join(repo, 'test/cluster/cluster.sh'), 'up'], { env, stdio: ['ignore', 'ignore', 'inherit'] });
      const code = await new Promise<number | null>((ok) => up.on('exit', ok));
      if (code !== 0) throw new Error(`cluster.sh up failed (exit ${code}); logs in ${clusterDir}/logs`);
      startedCluster = true;
    }
    kubeconfig = join(clusterDir, 'kubeconfig');
  }
  const kubectl = existsSync(join(clusterDir, 'bin', 'kubectl')) ? join(clusterDir, 'bin', 'kubectl') : 'kubectl';

  // The webhook, as users run it, on a free port with certificates of its own.
  const certDir = join(clusterDir, 'e2e-certs');
  const logs = join(clusterDir, 'logs');
  await mkdir(logs, { recursive: true });
  const port = await freePort();
  const log = await open(join(logs, 'e2e-webhook.log'), 'a');
  const webhook: ChildProcess = spawn(
    process.execPath,
    [join(repo, 'src/cli.ts'), 'webhook', '--port', String(port), '--host', '127.0.0.1', '--cert-dir', certDir, '--shutdown-delay-seconds', '0', '--log-level', 'debug'],
    { stdio: ['ignore', log.fd, log.fd] },
  );
  const webhookUrl = `https://127.0.0.1:${port}`;
  webhook.once('exit', (code, signal) => {
    if (code !== 0) console.error(`e2e: the webhook exited early (${code ?? signal ?? ''}); see ${join(logs, 'e2e-webhook.log')}`);
  });
  const caFile = join(certDir, 'ca.crt');
  await waitForHealthy(webhookUrl, caFile, 30_000);

  const caBundle = Buffer.from(await readFile(caFile)).toString('base64');
  const { mutating, validating } = webhookConfigurations({
    clientConfig: (path) => ({ url: `${webhookUrl}${path}`, caBundle }),
    scope: 'opt-in',
    watcherUsers: [DEFAULT_WATCHER_USER],
  });
  // The product's namespace and the watcher's RBAC, as shipped.
  await run(kubectl, ['--kubeconfig', kubeconfig, 'apply', '--server-side', '--force-conflicts',
    '-f', join(repo, 'manifests/base/namespace.yaml'), '-f', join(repo, 'manifests/base/watcher-rbac.yaml')]);

  const manifest = join(clusterDir, 'e2e-webhooks.json');
  await writeFile(manifest, JSON.stringify({ apiVersion: 'v1', kind: 'List', items: [mutating, validating] }));
  await run(kubectl, ['--kubeconfig', kubeconfig, 'apply', '--server-side', '--force-conflicts', '-f', manifest]);

  project.provide('e2e', { kubeconfig, kubectl, clusterDir, webhookUrl, caFile } satisfies E2EContext);

  return async () => {
    await run(kubectl, ['--kubeconfig', kubeconfig, 'delete', '--ignore-not-found', '-f', manifest]).catch(() => undefined);
    if (webhook.exitCode === null && webhook.signalCode === null) {
      const exited = new Promise((ok) => webhook.once('exit', ok));
      webhook.kill('SIGTERM');
      await exited;
    }
    await log.close();
    if (startedCluster && process.env.E2E_KEEP_CLUSTER !== '1') {
      await run('bash', [join(repo, 'test/cluster/cluster.sh'), 'down'], { env: { ...process.env, CLUSTER_DIR: clusterDir } });
    }
  };
}
