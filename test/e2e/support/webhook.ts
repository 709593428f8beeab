// A webhook process of a test's own, registered in place of the suite's one
// (same configurations, built by the same code), so the test can kill it,
// start it again on the same port, and rotate its serving certificate.
// restore() registers the suite's webhook again.

import { spawn, type ChildProcess } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { open, readFile, rename, writeFile } from 'node:fs/promises';
import { connect } from 'node:tls';
import { join, resolve } from 'node:path';
import { DEFAULT_WATCHER_USER } from '../../../src/core/names.ts';
import { webhookConfigurations } from '../../../src/kube/webhook-configurations.ts';
import { ensureCertificates, filesIn, generatePair } from '../../../src/webhook/certs.ts';
import { freePort } from '../../support/ports.ts';
import { applyManifest, context, eventually, kubectl } from './kube.ts';

const repo = resolve(import.meta.dirname, '../../..');

export interface OwnWebhook {
  /** SIGKILL, then the same command again on the same port; resolves once it is ready. */
  restart(): Promise<void>;
  /** A new serving certificate from the same CA, written as a renewal writes it; resolves once new connections get it. */
  rotateCertificate(): Promise<void>;
  /** Fingerprint of the certificate a new TLS connection is served. */
  servedFingerprint(): Promise<string>;
  /** Stops it and registers the suite's webhook again. */
  restore(): Promise<void>;
}

const alive = new Set<ChildProcess>();
process.once('exit', () => {
  for (const child of alive) child.kill('SIGKILL');
});

export async function startOwnWebhook(name: string): Promise<OwnWebhook> {
  const { clusterDir } = context();
  const certDir = join(clusterDir, `${name}-certs`);
  const files = filesIn(certDir);
  await ensureCertificates(certDir, []);
  const port = await freePort();
  const url = `https://127.0.0.1:${port}`;
  const log = await open(join(clusterDir, 'logs', `${name}.log`), 'a');
  let child: ChildProcess | undefined;
  let exited: Promise<void> = Promise.resolve();

  // Ready once it serves its certificate (it listens only when it can answer reviews).
  const readyOverTls = () => eventually(`${name} ready`, () => served().then(() => true, () => undefined), 30_000, 100);
  const served = async () => {
    const ca = await readFile(files.caFile, 'utf8');
    return new Promise<string>((ok, fail) => {
      const socket = connect({ host: '127.0.0.1', port, ca, servername: 'localhost' }, () => {
        const cert = socket.getPeerX509Certificate();
        socket.end();
        if (cert) ok(cert.fingerprint256);
        else fail(new Error('no certificate'));
      });
      socket.on('error', fail);
    });
  };

  const start = async () => {
    const c = spawn(process.execPath, [join(repo, 'src/cli.ts'), 'webhook', '--port', String(port), '--host', '127.0.0.1', '--cert-dir', certDir,
      '--shutdown-delay-seconds', '0', '--log-level', 'info'], { stdio: ['ignore', log.fd, log.fd] });
    alive.add(c);
    exited = new Promise((ok) => c.once('exit', () => { alive.delete(c); ok(); }));
    child = c;
    await readyOverTls();
  };
  const stop = async () => {
    if (child && child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    await exited;
  };

  await start();
  const caBundle = (await readFile(files.caFile)).toString('base64');
  const { mutating, validating } = webhookConfigurations({
    clientConfig: (path) => ({ url: `${url}${path}`, caBundle }), scope: 'opt-in', watcherUsers: [DEFAULT_WATCHER_USER],
  });
  await applyManifest({ apiVersion: 'v1', kind: 'List', items: [mutating, validating] }, ['--server-side', '--force-conflicts']);

  return {
    async restart() {
      await stop();
      await start();
    },
    async rotateCertificate() {
      const before = await served();
      const ca = { cert: await readFile(files.caFile, 'utf8'), key: await readFile(join(certDir, 'ca.key'), 'utf8') };
      const next = await generatePair([], new Date(), ca);
      // As ensureCertificates renews: key first, each file replaced atomically.
      for (const [path, content] of [[files.keyFile, next.key], [files.certFile, next.cert]] as const) {
        await writeFile(`${path}.tmp`, content, { mode: 0o600 });
        await rename(`${path}.tmp`, path);
      }
      const wanted = new X509Certificate(next.cert).fingerprint256;
      await eventually(`${name} serving the rotated certificate`, async () => ((await served()) === wanted && wanted !== before ? true : undefined), 30_000, 100);
    },
    servedFingerprint: served,
    async restore() {
      await stop();
      await log.close();
      await kubectl(['apply', '--server-side', '--force-conflicts', '-f', join(clusterDir, 'e2e-webhooks.json')]);
    },
  };
}
