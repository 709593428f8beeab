// The two servers of bench/webhook.ts, each run in a child process of its own
// so the load generator does not share its event loop:
//   inplace-gate  the product's server, as `npm run webhook` builds it (logs to /dev/null at info)
//   bare          node:https alone: parse the review, answer allowed, nothing else
// Prints the port it listens on, on one line, once ready.

import { createServer } from 'node:https';
import { createWriteStream } from 'node:fs';
import { pino } from 'pino';
import { readFile } from 'node:fs/promises';
import { defaultAdmissionConfig } from '../src/core/config.ts';
import { createWebhookMetrics } from '../src/webhook/metrics.ts';
import { buildWebhookServer } from '../src/webhook/server.ts';

// A clean exit on SIGTERM lets --cpu-prof write its profile.
process.on('SIGTERM', () => process.exit(0));

const [which, certFile, keyFile] = process.argv.slice(2);
if (!which || !certFile || !keyFile) throw new Error('usage: servers.ts inplace-gate|bare <cert> <key>');
const tls = { cert: await readFile(certFile, 'utf8'), key: await readFile(keyFile, 'utf8') };

if (which === 'bare') {
  const server = createServer({ ...tls, minVersion: 'TLSv1.2', keepAliveTimeout: 120_000 }, (req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const review = JSON.parse(Buffer.concat(chunks).toString()) as { request: { uid: string } };
      const body = JSON.stringify({ apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', response: { uid: review.request.uid, allowed: true } });
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
      res.end(body);
    });
  });
  server.listen(0, '127.0.0.1', () => {
    const address = server.address();
    process.stdout.write(`${typeof address === 'object' && address ? address.port : 0}\n`);
  });
} else {
  const logger = pino({ level: 'info', base: { component: 'webhook' } }, createWriteStream('/dev/null'));
  const server = buildWebhookServer({ tls, admission: defaultAdmissionConfig, metrics: createWebhookMetrics(), logger });
  const url = await server.app.listen({ port: 0, host: '127.0.0.1' });
  process.stdout.write(`${new URL(url).port}\n`);
}
