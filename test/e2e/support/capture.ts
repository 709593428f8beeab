// A second webhook that only records what the apiserver sends, so tests can
// feed real AdmissionReviews to the product and keep them as fixtures.
// Its configuration's name sorts before `inplace-gate`, so it sees requests
// before the product's mutation, as the product does.

import { createServer, type Server } from 'node:https';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { context, applyManifest, kubectl } from './kube.ts';

export const CAPTURE_CONFIGURATION = '00-inplace-gate-capture';

export interface Capture {
  reviews: { path: string; body: Record<string, unknown>; headers: Record<string, unknown> }[];
  stop(): Promise<void>;
}

/** Pods by default; `workloads` adds UPDATEs of apps Deployments and StatefulSets (the workload webhook's rule). */
export async function startCapture(namespace: string, opts: { workloads?: boolean } = {}): Promise<Capture> {
  const { caFile } = context();
  const dir = join(caFile, '..');
  const reviews: Capture['reviews'] = [];
  const server: Server = createServer(
    { cert: await readFile(join(dir, 'tls.crt')), key: await readFile(join(dir, 'tls.key')) },
    (req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const body = JSON.parse(Buffer.concat(chunks).toString()) as { request: { uid: string } };
        reviews.push({ path: req.url ?? '', body, headers: req.headers });
        res.setHeader('content-type', 'application/json');
        res.end(JSON.stringify({ apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', response: { uid: body.request.uid, allowed: true } }));
      });
    },
  );
  await new Promise<void>((ok) => server.listen(0, '127.0.0.1', ok));
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : 0;
  const caBundle = (await readFile(caFile)).toString('base64');
  // A name of its own, so a workload capture runs beside a test file's pod capture.
  const name = opts.workloads === true ? `${CAPTURE_CONFIGURATION}-workloads` : CAPTURE_CONFIGURATION;
  await applyManifest({
    apiVersion: 'admissionregistration.k8s.io/v1',
    kind: 'MutatingWebhookConfiguration',
    metadata: { name },
    webhooks: [
      {
        name: 'capture.inplace-gate.dev',
        clientConfig: { url: `https://127.0.0.1:${port}/capture`, caBundle },
        rules: [
          { apiGroups: [''], apiVersions: ['v1'], operations: ['CREATE', 'UPDATE'], resources: ['pods'], scope: 'Namespaced' },
          ...(opts.workloads === true ? [{ apiGroups: ['apps'], apiVersions: ['v1'], operations: ['UPDATE'], resources: ['deployments', 'statefulsets'], scope: 'Namespaced' }] : []),
        ],
        namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': namespace } },
        admissionReviewVersions: ['v1'],
        sideEffects: 'None',
        failurePolicy: 'Ignore',
        timeoutSeconds: 5,
      },
    ],
  });
  return {
    reviews,
    async stop() {
      await kubectl(['delete', 'mutatingwebhookconfiguration', name, '--ignore-not-found']);
      await new Promise<void>((ok) => { server.close(() => { ok(); }); server.closeAllConnections(); });
    },
  };
}
