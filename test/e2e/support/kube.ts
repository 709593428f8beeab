// kubectl as a user types it, against the cluster under test.

import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { inject } from 'vitest';
import './context.ts';

const run = promisify(execFile);

export function context() {
  return inject('e2e');
}

export async function kubectl(args: string[], input?: string): Promise<string> {
  const { kubectl: bin, kubeconfig } = context();
  const child = run(bin, ['--kubeconfig', kubeconfig, ...args], { maxBuffer: 64 * 1024 * 1024 });
  if (input !== undefined) {
    child.child.stdin?.end(input);
  }
  return (await child).stdout;
}

export async function kubectlJson<T>(args: string[]): Promise<T> {
  return JSON.parse(await kubectl([...args, '-o', 'json'])) as T;
}

/** Runs kubectl expecting it to fail; returns what it printed on stderr. */
export async function kubectlFails(args: string[], input?: string): Promise<string> {
  try {
    await kubectl(args, input);
  } catch (err) {
    return (err as { stderr: string }).stderr;
  }
  throw new Error(`kubectl ${args.join(' ')} succeeded, but was expected to fail`);
}

export async function applyManifest(manifest: unknown, extra: string[] = []): Promise<string> {
  return kubectl(['apply', ...extra, '-f', '-'], JSON.stringify(manifest));
}

export async function eventually<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 30_000, everyMs = 200): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const value = await probe();
      if (value !== undefined) return value;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}${last instanceof Error ? `: ${last.message}` : ''}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

export async function createNamespace(name: string, labels: Record<string, string> = {}): Promise<void> {
  await applyManifest({ apiVersion: 'v1', kind: 'Namespace', metadata: { name, labels } });
  // Pods need the namespace's default service account (the controller-manager makes it).
  await eventually(`serviceaccount default in ${name}`, async () => (await kubectl(['-n', name, 'get', 'serviceaccount', 'default', '-o', 'name'])).trim() || undefined);
}
