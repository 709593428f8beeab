// The webhook exports when its serving certificate expires, and a renewal
// picked up from disk moves the metric: the certificate alert reads it.

import { X509Certificate } from 'node:crypto';
import { mkdtemp, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadSettings } from '../../src/settings.ts';
import { generatePair } from '../../src/webhook/certs.ts';
import { runWebhook, type RunningWebhook } from '../../src/webhook/run.ts';
import { httpsClient } from '../support/https.ts';
import { freePort } from '../support/ports.ts';

let dir: string;
let webhook: RunningWebhook;
let client: ReturnType<typeof httpsClient>;
const NOW = new Date();

const expiry = async (): Promise<number | undefined> => {
  const m = /^inplace_gate_certificate_expiration_timestamp_seconds (\S+)$/m.exec((await client.get('/metrics')).body);
  return m ? Number(m[1]) : undefined;
};

let first: Awaited<ReturnType<typeof generatePair>>;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'inplace-gate-expiry-'));
  first = await generatePair([], NOW);
  await writeFile(join(dir, 'tls.crt'), first.cert);
  await writeFile(join(dir, 'tls.key'), first.key);
  const port = await freePort();
  webhook = await runWebhook(loadSettings([
    '--port', String(port), '--host', '127.0.0.1', '--tls-cert-file', join(dir, 'tls.crt'), '--tls-key-file', join(dir, 'tls.key'),
    '--shutdown-delay-seconds', '0', '--log-level', 'silent',
  ], {}));
  client = httpsClient(`https://127.0.0.1:${port}`, first.ca);
});

afterAll(async () => {
  client.close();
  await webhook.stop();
  await rm(dir, { recursive: true, force: true });
});

describe('inplace_gate_certificate_expiration_timestamp_seconds', () => {
  it('is the serving certificate\'s notAfter, and follows a renewal', async () => {
    expect(await expiry()).toBe(Date.parse(new X509Certificate(first.cert).validTo) / 1000);

    // A renewal a day later, same CA, swapped in as a Secret volume update would.
    const renewed = await generatePair([], new Date(NOW.getTime() + 86_400_000), { cert: first.ca, key: first.caKey });
    await writeFile(join(dir, 'tls.key.new'), renewed.key);
    await writeFile(join(dir, 'tls.crt.new'), renewed.cert);
    await rename(join(dir, 'tls.key.new'), join(dir, 'tls.key'));
    await rename(join(dir, 'tls.crt.new'), join(dir, 'tls.crt'));
    const want = Date.parse(new X509Certificate(renewed.cert).validTo) / 1000;
    expect(want).toBeGreaterThan(Date.parse(new X509Certificate(first.cert).validTo) / 1000);
    const deadline = Date.now() + 10_000;
    while ((await expiry()) !== want && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    expect(await expiry()).toBe(want);
  });
});
