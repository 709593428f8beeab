// Self-managed certificates in a cluster: one Secret holds the CA and the
// serving certificate for every webhook replica; the caBundle of both webhook
// configurations is kept equal to that CA; the pair is renewed well before it
// expires. Each replica's sidecar writes the Secret's files into a folder the
// webhook watches, so a renewal is served without a restart or a dropped
// connection. Replicas race safely: creates and updates carry resourceVersions.

import { mkdir, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { X509Certificate } from 'node:crypto';
import { ApiError, type KubeClient } from '../kube/client.ts';
import type { Logger } from '../log.ts';
import { caStillGood, generatePair, needsRenewal, type GeneratedPair } from './certs.ts';

export interface CertSecretOptions {
  namespace: string;
  secret: string;
  dnsNames: string[];
  /** MutatingWebhookConfiguration and ValidatingWebhookConfiguration of this name get the caBundle. */
  configuration: string;
  /** Where the webhook reads ca.crt, tls.crt, tls.key. */
  outDir: string;
}

interface Secret {
  metadata: { name: string; namespace: string; resourceVersion?: string };
  type?: string;
  data?: Record<string, string>;
}

const b64 = (s: string) => Buffer.from(s).toString('base64');
const unb64 = (s: string | undefined) => (s === undefined ? undefined : Buffer.from(s, 'base64').toString());

function pairOf(secret: Secret | undefined): GeneratedPair | undefined {
  const d = secret?.data;
  const ca = unb64(d?.['ca.crt']);
  const caKey = unb64(d?.['ca.key']);
  const cert = unb64(d?.['tls.crt']);
  const key = unb64(d?.['tls.key']);
  return ca && caKey && cert && key ? { ca, caKey, cert, key } : undefined;
}

export class CertSecretManager {
  private readonly client: KubeClient;
  private readonly opts: CertSecretOptions;
  private readonly log: Logger;
  private written = '';

  constructor(client: KubeClient, opts: CertSecretOptions, log: Logger) {
    this.client = client;
    this.opts = opts;
    this.log = log;
  }

  private get path(): string {
    return `/api/v1/namespaces/${this.opts.namespace}/secrets/${this.opts.secret}`;
  }

  /** One round: make the Secret current, inject the caBundle, write the files. Returns when the certificate expires. */
  async reconcile(now = new Date()): Promise<Date> {
    let secret: Secret | undefined;
    try {
      secret = await this.client.get<Secret>(this.path);
    } catch (err) {
      if (!(err instanceof ApiError && err.status === 404)) throw err;
    }
    let pair = pairOf(secret);
    if (!pair || needsRenewal(pair, this.opts.dnsNames, now)) {
      const next = await generatePair(this.opts.dnsNames, now, pair && caStillGood(pair.ca, now) ? { cert: pair.ca, key: pair.caKey } : undefined);
      const body: Secret = {
        metadata: { name: this.opts.secret, namespace: this.opts.namespace, ...(secret?.metadata.resourceVersion ? { resourceVersion: secret.metadata.resourceVersion } : {}) },
        type: 'kubernetes.io/tls',
        data: { 'ca.crt': b64(next.ca), 'ca.key': b64(next.caKey), 'tls.crt': b64(next.cert), 'tls.key': b64(next.key) },
      };
      try {
        secret = secret
          ? await this.client.put<Secret>(this.path, body)
          : await this.client.post<Secret>(`/api/v1/namespaces/${this.opts.namespace}/secrets`, body);
        pair = next;
        this.log.info({ secret: `${this.opts.namespace}/${this.opts.secret}`, expires: new X509Certificate(next.cert).validTo }, 'serving certificate written');
      } catch (err) {
        // Another replica won the race: take what it wrote.
        if (!(err instanceof ApiError && (err.status === 409 || err.status === 422))) throw err;
        return this.reconcile(now);
      }
    }
    await this.injectCABundle(pair.ca);
    await this.writeFiles(pair);
    return new Date(Date.parse(new X509Certificate(pair.cert).validTo));
  }

  private async injectCABundle(ca: string): Promise<void> {
    const caBundle = b64(ca);
    for (const kind of ['mutatingwebhookconfigurations', 'validatingwebhookconfigurations']) {
      const path = `/apis/admissionregistration.k8s.io/v1/${kind}/${this.opts.configuration}`;
      let config: { webhooks?: { clientConfig?: { caBundle?: string } }[] };
      try {
        config = await this.client.get(path);
      } catch (err) {
        if (err instanceof ApiError && err.status === 404) {
          this.log.warn({ configuration: `${kind}/${this.opts.configuration}` }, 'webhook configuration not found; caBundle not injected');
          continue;
        }
        throw err;
      }
      const ops = (config.webhooks ?? []).flatMap((w, i) =>
        w.clientConfig?.caBundle === caBundle ? [] : [{ op: 'add', path: `/webhooks/${i}/clientConfig/caBundle`, value: caBundle }],
      );
      if (ops.length > 0) {
        await this.client.patch(path, ops, 'json', 'inplace-gate-certs');
        this.log.info({ configuration: `${kind}/${this.opts.configuration}`, webhooks: ops.length }, 'caBundle injected');
      }
    }
  }

  private async writeFiles(pair: GeneratedPair): Promise<void> {
    const content = pair.ca + pair.cert + pair.key;
    if (content === this.written) return;
    await mkdir(this.opts.outDir, { recursive: true });
    const put = async (name: string, text: string, mode: number) => {
      const tmp = join(this.opts.outDir, `.${name}.tmp`);
      await writeFile(tmp, text, { mode });
      await rename(tmp, join(this.opts.outDir, name));
    };
    // Key first: a watcher that sees the new certificate finds its key.
    await put('ca.crt', pair.ca, 0o644);
    await put('tls.key', pair.key, 0o600);
    await put('tls.crt', pair.cert, 0o644);
    this.written = content;
  }
}
