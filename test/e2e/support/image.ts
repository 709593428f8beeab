// The product's image as `npm run image` builds it (image/build.sh; cached by
// its inputs, so the suite pays the build once), what is in its OCI layout, and
// the Dockerfile's final stage read the way Docker reads it.

import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { loadAll } from 'js-yaml';
import { mutate, validate } from '../../../src/core/admission/index.ts';
import type { AdmissionRequest } from '../../../src/core/admission/request.ts';
import { defaultAdmissionConfig } from '../../../src/core/config.ts';
import { completeResponse } from '../../../src/webhook/review.ts';

const run = promisify(execFile);
const repo = resolve(import.meta.dirname, '../../..');

export interface ImageConfig {
  User?: string;
  WorkingDir?: string;
  Entrypoint?: string[];
  Cmd?: string[];
  Env?: string[];
  ExposedPorts?: Record<string, object>;
  Labels?: Record<string, string>;
}
export interface Built {
  /** The OCI layout directory. */
  layout: string;
  tag: string;
  /** The manifest's digest. */
  digest: string;
  /** `oci:<layout>:<tag>`, as skopeo names it. */
  ref: string;
  manifest: { config: { digest: string }; layers: { digest: string; size: number }[]; annotations?: Record<string, string> };
  config: { architecture: string; os: string; config: ImageConfig; rootfs: { diff_ids: string[] } };
}

const blob = (layout: string, digest: string): unknown => JSON.parse(readFileSync(join(layout, 'blobs', digest.replace(':', '/')), 'utf8'));

/** Builds (or takes from the cache) the image into `out`; `fresh` builds it again without the cache. */
export async function buildImage(out: string, { fresh = false } = {}): Promise<Built> {
  const { stdout } = await run('bash', [join(repo, 'image/build.sh'), '--out', out, ...(fresh ? ['--no-cache'] : [])],
    { maxBuffer: 1 << 20, timeout: 900_000 });
  const m = /^oci:(.+):([^:\s]+) (sha256:[0-9a-f]{64})$/m.exec(stdout);
  if (!m) throw new Error(`image/build.sh printed no "oci:<dir>:<tag> <digest>" line: ${stdout}`);
  const [, layout, tag, digest] = m as unknown as [string, string, string, string];
  const manifest = blob(layout, digest) as Built['manifest'];
  return { layout, tag, digest, ref: `oci:${layout}:${tag}`, manifest, config: blob(layout, manifest.config.digest) as Built['config'] };
}

export interface DockerStage {
  from: string;
  entrypoint?: string[];
  cmd?: string[];
  user?: string;
  workdir?: string;
  env: Record<string, string>;
  expose: string[];
  labels: Record<string, string>;
  /** Destinations of COPY, absolute. */
  copies: string[];
}

/** The final stage of a Dockerfile: the instructions that end up in the image's config. */
export function finalStage(dockerfile: string): DockerStage {
  const lines = dockerfile.replace(/\\\n/g, ' ').split('\n').map((l) => l.trim()).filter((l) => l !== '' && !l.startsWith('#'));
  let stage: DockerStage | undefined;
  const words = (s: string) => s.split(/\s+/).filter((w) => w !== '');
  const json = (s: string) => {
    const parsed = JSON.parse(s) as unknown;
    if (!Array.isArray(parsed)) throw new Error(`only the exec (JSON) form is compared: ${s}`);
    return parsed as string[];
  };
  const pairs = (s: string) => Object.fromEntries(words(s).map((w) => {
    const i = w.indexOf('=');
    return [w.slice(0, i), w.slice(i + 1)];
  }));
  for (const line of lines) {
    const [instruction = '', ...rest] = words(line);
    const args = line.slice(instruction.length).trim();
    if (instruction.toUpperCase() === 'FROM') {
      stage = { from: rest[0] ?? '', env: {}, expose: [], labels: {}, copies: [] };
      continue;
    }
    if (!stage) continue;
    switch (instruction.toUpperCase()) {
      case 'ENTRYPOINT': stage.entrypoint = json(args); break;
      case 'CMD': stage.cmd = json(args); break;
      case 'USER': stage.user = args; break;
      case 'WORKDIR': stage.workdir = args.startsWith('/') ? args : join(stage.workdir ?? '/', args); break;
      case 'ENV': Object.assign(stage.env, pairs(args)); break;
      case 'LABEL': Object.assign(stage.labels, pairs(args)); break;
      case 'EXPOSE': stage.expose.push(...words(args).map((p) => (p.includes('/') ? p : `${p}/tcp`))); break;
      case 'COPY': {
        const paths = words(args).filter((w) => !w.startsWith('--'));
        const to = paths.pop() ?? '';
        const dest = to.startsWith('/') ? to : join(stage.workdir ?? '/', to);
        // into a directory (a trailing slash): each source keeps its name
        stage.copies.push(...(to.endsWith('/') ? paths.map((p) => join(dest, basename(p))) : [dest]));
        break;
      }
    }
  }
  if (!stage) throw new Error('no FROM in the Dockerfile');
  return stage;
}

/** A review the apiserver sent (test/fixtures). */
export const fixture = (name: string) => JSON.parse(readFileSync(join(repo, 'test/fixtures', `${name}.json`), 'utf8')) as { request: AdmissionRequest };

/** What the webhook must answer to a review: the pure core's decision in the response envelope. */
export function coreAnswer(endpoint: '/mutate' | '/validate', review: { request: AdmissionRequest }): unknown {
  const req = review.request;
  const judged = endpoint === '/mutate' ? mutate(req, defaultAdmissionConfig, new Date()) : validate(req, defaultAdmissionConfig);
  if (judged.type === 'invalid') throw new Error(`the fixture ${req.uid} is no review the core judges: ${judged.message}`);
  return { apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', response: completeResponse(req.uid, judged, req.object) };
}

interface Container { name: string; image: string; args?: string[]; resources?: { limits?: { memory?: string } }; volumeMounts?: { name: string; mountPath: string; readOnly?: boolean }[] }
/** The shipped webhook Deployment's pod template (manifests/base/webhook.yaml). */
export function webhookTemplate(): { spec: { securityContext: object; containers: Container[]; initContainers: Container[]; volumes: object[] } } {
  const docs = loadAll(readFileSync(join(repo, 'manifests/base/webhook.yaml'), 'utf8')) as { kind: string; spec: { template: ReturnType<typeof webhookTemplate> } }[];
  const deployment = docs.find((d) => d.kind === 'Deployment');
  if (!deployment) throw new Error('no Deployment in manifests/base/webhook.yaml');
  return deployment.spec.template;
}

/** Mebibytes of a Kubernetes quantity in Mi or Gi. */
export function mebibytes(quantity: string): number {
  const m = /^(\d+)(Mi|Gi)$/.exec(quantity);
  if (!m) throw new Error(`not a quantity in Mi or Gi: ${quantity}`);
  return Number(m[1]) * (m[2] === 'Gi' ? 1024 : 1);
}

/** Installs the Debian packages of the commands missing (as root, the way test/cluster/lab.sh does). */
export async function ensureCommands(packages: Record<string, string>): Promise<void> {
  const missing: string[] = [];
  for (const [command, pkg] of Object.entries(packages)) {
    if (!(await run('sh', ['-c', `command -v ${command}`]).then(() => true, () => false))) missing.push(pkg);
  }
  if (missing.length === 0) return;
  if (process.getuid?.() !== 0) throw new Error(`missing Debian packages: ${missing.join(' ')} (apt-get install them, or run as root)`);
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  const install = () => run('apt-get', ['install', '-y', '--no-install-recommends', ...missing], { env, maxBuffer: 1 << 24 });
  // (an out-of-date package list is refreshed once)
  await install().catch(async () => { await run('apt-get', ['update'], { maxBuffer: 1 << 24 }); await install(); });
}
