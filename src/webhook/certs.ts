// Serving certificates: generated into a folder on first start (a CA and a
// serving certificate it signs), reused afterwards, and watched so a renewed
// certificate (a Secret update, cert-manager) is picked up without a restart.

import { X509Certificate } from 'node:crypto';
import { watch, type FSWatcher } from 'node:fs';
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { isIP } from 'node:net';
import { join } from 'node:path';
import { createSecureContext } from 'node:tls';
import { generate } from 'selfsigned';

export interface CertificateFiles {
  certFile: string;
  keyFile: string;
  caFile?: string;
}

export interface KeyPair {
  cert: string;
  key: string;
}

const DAY_MS = 86_400_000;
const CA_VALIDITY_DAYS = 3650;
const SERVING_VALIDITY_DAYS = 365;
/** A generated certificate closer than this to its end is replaced on start. */
const RENEW_BEFORE_DAYS = 30;
const ALWAYS_NAMES = ['localhost', '127.0.0.1'];

export function filesIn(dir: string): Required<CertificateFiles> {
  return { certFile: join(dir, 'tls.crt'), keyFile: join(dir, 'tls.key'), caFile: join(dir, 'ca.crt') };
}

async function readIfExists(path: string): Promise<string | undefined> {
  try {
    return await readFile(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

async function writeAtomically(path: string, content: string, mode: number): Promise<void> {
  const tmp = `${path}.tmp-${process.pid}`;
  await writeFile(tmp, content, { mode });
  await rename(tmp, path);
}

function stillGood(pem: string, now: Date, names: string[] = []): boolean {
  try {
    const cert = new X509Certificate(pem);
    if (Date.parse(cert.validTo) - now.getTime() < RENEW_BEFORE_DAYS * DAY_MS) return false;
    return names.every((n) => (isIP(n) ? cert.checkIP(n) : cert.checkHost(n)) !== undefined);
  } catch {
    return false;
  }
}

/** The end of a certificate's validity, in Unix seconds (the first certificate of a PEM chain). */
export function notAfterSeconds(pem: string): number {
  return Date.parse(new X509Certificate(pem).validTo) / 1000;
}

export interface GeneratedPair {
  ca: string;
  caKey: string;
  cert: string;
  key: string;
}

/** A CA worth keeping: readable and not close to its end (renewals keep the caBundle). */
export function caStillGood(caPem: string, now = new Date()): boolean {
  return stillGood(caPem, now);
}

/** True when the serving certificate is unreadable, close to its end, or misses a name. */
export function needsRenewal(pair: Pick<GeneratedPair, 'cert'>, dnsNames: string[], now = new Date()): boolean {
  return !stillGood(pair.cert, now, [...new Set([...ALWAYS_NAMES, ...dnsNames])]);
}

async function generateCA(now: Date): Promise<KeyPair> {
  const generated = await generate([{ name: 'commonName', value: 'inplace-gate-ca' }], {
    algorithm: 'sha256',
    keySize: 2048,
    notBeforeDate: new Date(now.getTime() - 60_000),
    notAfterDate: new Date(now.getTime() + CA_VALIDITY_DAYS * DAY_MS),
    extensions: [
      { name: 'basicConstraints', cA: true, critical: true },
      { name: 'keyUsage', keyCertSign: true, cRLSign: true, digitalSignature: true, critical: true },
    ],
  });
  return { cert: generated.cert, key: generated.private };
}

async function generateServing(ca: KeyPair, names: string[], now: Date): Promise<KeyPair> {
  const serving = await generate([{ name: 'commonName', value: 'inplace-gate-webhook' }], {
    algorithm: 'sha256',
    keySize: 2048,
    notBeforeDate: new Date(now.getTime() - 60_000),
    notAfterDate: new Date(now.getTime() + SERVING_VALIDITY_DAYS * DAY_MS),
    ca: { cert: ca.cert, key: ca.key },
    extensions: [
      { name: 'basicConstraints', cA: false },
      { name: 'keyUsage', digitalSignature: true, keyEncipherment: true, critical: true },
      { name: 'extKeyUsage', serverAuth: true },
      { name: 'subjectAltName', altNames: names.map((n) => (isIP(n) ? { type: 7 as const, ip: n } : { type: 2 as const, value: n })) },
    ],
  });
  return { cert: serving.cert, key: serving.private };
}

/** A serving certificate for the names (localhost and 127.0.0.1 always), signed by `ca` or a new CA. */
export async function generatePair(dnsNames: string[], now = new Date(), ca?: KeyPair): Promise<GeneratedPair> {
  const authority = ca ?? (await generateCA(now));
  const serving = await generateServing(authority, [...new Set([...ALWAYS_NAMES, ...dnsNames])], now);
  return { ca: authority.cert, caKey: authority.key, cert: serving.cert, key: serving.key };
}

/**
 * Makes sure `dir` holds ca.crt, tls.crt and tls.key for the given names and
 * says whether it wrote anything. An existing CA is kept, so a caBundle
 * already registered with the apiserver stays valid across renewals.
 */
export async function ensureCertificates(dir: string, dnsNames: string[], now = new Date()): Promise<{ generated: boolean; files: Required<CertificateFiles> }> {
  const files = filesIn(dir);
  const names = [...new Set([...ALWAYS_NAMES, ...dnsNames])];
  const [caPem, certPem, keyPem] = await Promise.all([readIfExists(files.caFile), readIfExists(files.certFile), readIfExists(files.keyFile)]);
  const caKeyFile = join(dir, 'ca.key');
  const caKeyPem = await readIfExists(caKeyFile);
  if (caPem && certPem && keyPem && stillGood(certPem, now, names)) return { generated: false, files };

  await mkdir(dir, { recursive: true });
  let ca: KeyPair;
  if (caPem && caKeyPem && stillGood(caPem, now)) {
    ca = { cert: caPem, key: caKeyPem };
  } else {
    ca = await generateCA(now);
    await writeAtomically(caKeyFile, ca.key, 0o600);
    await writeAtomically(files.caFile, ca.cert, 0o644);
  }
  const serving = await generateServing(ca, names, now);
  // Key before certificate: a watcher that sees the new certificate finds its key.
  await writeAtomically(files.keyFile, serving.key, 0o600);
  await writeAtomically(files.certFile, serving.cert, 0o644);
  return { generated: true, files };
}

export async function readKeyPair(files: CertificateFiles): Promise<KeyPair> {
  const [cert, key] = await Promise.all([readFile(files.certFile, 'utf8'), readFile(files.keyFile, 'utf8')]);
  // Throws on a mismatched or half-written pair, before a server ever uses it.
  createSecureContext({ cert, key });
  return { cert, key };
}

/**
 * Calls `onChange` with the new pair whenever the files change. Kubernetes
 * swaps Secret volumes through a symlink, so the folder is watched, and a
 * slow poll catches what a watch misses. A pair that does not load is
 * reported and skipped: the server keeps serving the previous one.
 */
export class CertificateWatcher {
  private watcher: FSWatcher | undefined;
  private poll: NodeJS.Timeout | undefined;
  private debounce: NodeJS.Timeout | undefined;
  private current: string;
  private readonly files: CertificateFiles;
  private readonly dir: string;
  private readonly onChange: (pair: KeyPair) => void;
  private readonly onError: (err: Error) => void;

  constructor(dir: string, files: CertificateFiles, initial: KeyPair, onChange: (pair: KeyPair) => void, onError: (err: Error) => void) {
    this.dir = dir;
    this.files = files;
    this.current = initial.cert + initial.key;
    this.onChange = onChange;
    this.onError = onError;
  }

  start(pollMs = 30_000): void {
    try {
      this.watcher = watch(this.dir, () => { this.schedule(); });
      this.watcher.on('error', (err) => { this.onError(err); });
    } catch (err) {
      this.onError(err as Error);
    }
    this.poll = setInterval(() => { this.schedule(); }, pollMs);
    this.poll.unref();
  }

  stop(): void {
    this.watcher?.close();
    clearInterval(this.poll);
    clearTimeout(this.debounce);
  }

  private schedule(): void {
    clearTimeout(this.debounce);
    this.debounce = setTimeout(() => { void this.check(); }, 200);
    this.debounce.unref();
  }

  async check(): Promise<void> {
    try {
      const pair = await readKeyPair(this.files);
      if (pair.cert + pair.key === this.current) return;
      this.current = pair.cert + pair.key;
      this.onChange(pair);
    } catch (err) {
      this.onError(err as Error);
    }
  }
}
