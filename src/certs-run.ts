// `inplace-gate certs`: self-managed certificates in a cluster (see
// webhook/cert-secret.ts). Once, or with --watch as the webhook pod's native
// sidecar: it re-checks every ten minutes and renews 30 days before expiry.

import { KubeClient, loadKubeConfig } from './kube/client.ts';
import { createLogger } from './log.ts';
import type { Settings } from './settings.ts';
import { CertSecretManager } from './webhook/cert-secret.ts';
import { sleep } from './watcher/informer.ts';

const RECHECK_MS = 10 * 60_000;
const RETRY_MS = 10_000;

export function serviceDnsNames(service: string, namespace: string): string[] {
  return [service, `${service}.${namespace}`, `${service}.${namespace}.svc`, `${service}.${namespace}.svc.cluster.local`];
}

export async function runCerts(settings: Settings, watch: boolean, signal: AbortSignal): Promise<void> {
  const log = createLogger('certs', settings.logLevel);
  const client = await KubeClient.create(loadKubeConfig(settings.watcher.kubeconfig), 'inplace-gate-certs');
  const namespace = settings.admission.ownNamespace;
  const manager = new CertSecretManager(
    client,
    {
      namespace,
      secret: settings.certs.secret,
      dnsNames: [...serviceDnsNames(settings.certs.service, namespace), ...settings.dnsNames],
      configuration: settings.certs.webhookConfiguration,
      outDir: settings.certDir,
    },
    log,
  );
  try {
    do {
      try {
        const expires = await manager.reconcile();
        log.debug({ expires: expires.toISOString() }, 'certificates current');
        if (watch) await sleep(RECHECK_MS, signal);
      } catch (err) {
        log.warn({ err: (err as Error).message, retryInMs: RETRY_MS }, 'certificate round failed');
        if (!watch) throw err;
        await sleep(RETRY_MS, signal);
      }
    } while (watch && !signal.aborted);
  } finally {
    client.close();
  }
}
