// Live traffic from inside a lab network namespace (support/traffic-client.ts),
// started by the real-node tests and by bench/realistic.ts. No vitest here: the
// benchmark runs outside the test runner.

import { spawn, type ChildProcess } from 'node:child_process';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';

const repo = resolve(import.meta.dirname, '../../..');

export type Request =
  | { t: number; pod: string; ip: string; ok: true; version: string; ms: number }
  | { t: number; pod: string; ip: string; ok: false; error: string; ms: number };

export interface Traffic {
  requests: Request[];
  /** Each change of the client's ready set, in order. */
  endpoints: { t: number; endpoints: string[] }[];
  stop(): Promise<void>;
}

const alive = new Set<ChildProcess>();
process.once('exit', () => {
  for (const child of alive) child.kill('SIGKILL');
});

/** Starts the client in the lab `netns` against a Service's ready endpoints, with `kubeconfig` to follow its EndpointSlices. */
export function spawnTraffic(netns: string, kubeconfig: string, namespace: string, service: string, port = 8080, maxSeconds = 300): Traffic {
  const child = spawn('nsenter', [`--net=/run/netns/${netns}`, '--', process.execPath,
    join(repo, 'test/e2e/support/traffic-client.ts'), kubeconfig, namespace, service, String(port), String(maxSeconds)],
  { stdio: ['pipe', 'pipe', 'inherit'] });
  alive.add(child);
  const traffic: Traffic = { requests: [], endpoints: [], stop: () => Promise.resolve() };
  const lines = createInterface({ input: child.stdout });
  lines.on('line', (line) => {
    const parsed = JSON.parse(line) as Request | { t: number; endpoints: string[] } | { done: true };
    if ('endpoints' in parsed) traffic.endpoints.push(parsed);
    else if ('ok' in parsed) traffic.requests.push(parsed);
  });
  const exited = new Promise<void>((ok) => child.once('exit', () => { alive.delete(child); ok(); }));
  traffic.stop = async () => {
    child.stdin.end();
    await exited;
  };
  return traffic;
}
