// `inplace-gate webhook`: certificates, the server, reloads and signals.

import { resolve } from 'node:path';
import type { DestinationStream } from 'pino';
import { createLogger } from '../log.ts';
import type { Settings } from '../settings.ts';
import { listenError } from '../startup-error.ts';
import { CertificateWatcher, ensureCertificates, notAfterSeconds, readKeyPair, type CertificateFiles } from './certs.ts';
import { createWebhookMetrics } from './metrics.ts';
import { buildWebhookServer, type WebhookServer } from './server.ts';

export interface RunningWebhook {
  server: WebhookServer;
  url: string;
  caFile: string | undefined;
  stop(): Promise<void>;
}

export async function runWebhook(settings: Settings, logTo?: DestinationStream): Promise<RunningWebhook> {
  const logger = createLogger('webhook', settings.logLevel, logTo);
  let files: CertificateFiles;
  let watchDir: string;
  if (settings.tlsCertFile !== undefined && settings.tlsKeyFile !== undefined) {
    files = { certFile: resolve(settings.tlsCertFile), keyFile: resolve(settings.tlsKeyFile) };
    watchDir = resolve(settings.tlsCertFile, '..');
  } else {
    watchDir = resolve(settings.certDir);
    const ensured = await ensureCertificates(watchDir, settings.dnsNames);
    files = ensured.files;
    if (ensured.generated) logger.info({ dir: watchDir, ca: ensured.files.caFile }, 'generated a CA and a serving certificate');
    else logger.info({ dir: watchDir }, 'reusing the serving certificate');
  }
  const pair = await readKeyPair(files);
  const metrics = createWebhookMetrics();
  metrics.certificateExpiry.set(notAfterSeconds(pair.cert));
  const server = buildWebhookServer({ tls: pair, admission: settings.admission, metrics, logger });

  const certificates = new CertificateWatcher(
    watchDir,
    files,
    pair,
    (next) => {
      server.setCertificate(next);
      metrics.certificateReloads.inc({ result: 'success' });
      metrics.certificateExpiry.set(notAfterSeconds(next.cert));
      logger.info({ cert: files.certFile }, 'serving certificate reloaded');
    },
    (err) => {
      metrics.certificateReloads.inc({ result: 'error' });
      logger.warn({ err: err.message, cert: files.certFile }, 'serving certificate not reloaded; keeping the current one');
    },
  );

  let address: string;
  try {
    address = await server.app.listen({ port: settings.port, host: settings.host });
  } catch (err) {
    // Nothing may outlive a failed start: the process would stay up doing nothing.
    await server.app.close().catch(() => undefined);
    throw listenError('webhook', settings.host, settings.port, err);
  }
  // Watched only once serving: a watch is a handle that keeps the process alive.
  certificates.start();
  logger.info({ address, mode: settings.admission.mode }, 'webhook serving /mutate and /validate');

  return {
    server,
    url: address,
    caFile: files.caFile,
    async stop() {
      certificates.stop();
      await server.shutdown(settings.shutdownDelaySeconds * 1000);
      logger.info('webhook stopped');
    },
  };
}
