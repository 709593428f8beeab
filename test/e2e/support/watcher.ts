// The watcher as a real process under its own identity (a client certificate
// for system:serviceaccount:inplace-gate:inplace-gate-watcher, bound by the
// shipped RBAC), started and killed by the tests.

import { spawn, type ChildProcess } from 'node:child_process';
import { open } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { context, eventually } from './kube.ts';

const repo = resolve(import.meta.dirname, '../../..');

export interface WatcherProcess {
  child: ChildProcess;
  identity: string;
  /** Milliseconds since the epoch at which the log first said "became the leader", if it did. */
  ledAt(): Promise<number | undefined>;
  stop(signal?: NodeJS.Signals): Promise<void>;
}

let counter = 0;
const alive = new Set<ChildProcess>();
// A test that times out must not leave a watcher behind to hold the Lease.
process.once('exit', () => {
  for (const child of alive) child.kill('SIGKILL');
});

export async function startWatcher(extra: string[] = []): Promise<WatcherProcess> {
  const { clusterDir } = context();
  const identity = `e2e-watcher-${process.pid}-${++counter}`;
  const logFile = join(clusterDir, 'logs', `${identity}.log`);
  const log = await open(logFile, 'a');
  const child = spawn(
    process.execPath,
    [
      join(repo, 'src/cli.ts'), 'watcher',
      '--kubeconfig', join(clusterDir, 'kubeconfigs', 'watcher.kubeconfig'),
      '--identity', identity,
      '--health-port', '0',
      '--grace-period-seconds', '2',
      '--log-level', 'debug',
      ...extra,
    ],
    { stdio: ['ignore', log.fd, log.fd] },
  );
  alive.add(child);
  const exited = new Promise<void>((ok) => child.once('exit', () => { alive.delete(child); ok(); }));
  const ledAt = async () => {
    const { readFile } = await import('node:fs/promises');
    for (const line of (await readFile(logFile, 'utf8')).split('\n')) {
      if (line.includes('"became the leader"')) return Date.parse((JSON.parse(line) as { time: string }).time);
    }
    return undefined;
  };
  return {
    child,
    identity,
    ledAt,
    async stop(signal = 'SIGTERM') {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      await exited;
      await log.close();
    },
  };
}

/** Starts a watcher and waits until it leads (a previous leader's lease may need to expire first). */
export async function startLeadingWatcher(extra: string[] = []): Promise<WatcherProcess> {
  const watcher = await startWatcher(extra);
  try {
    await eventually(`${watcher.identity} to lead`, () => watcher.ledAt(), 30_000);
  } catch (err) {
    await watcher.stop('SIGKILL');
    throw err;
  }
  return watcher;
}
