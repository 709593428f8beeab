// The real nodes of the test cluster (test/cluster/lab.sh): what `cluster.sh up`
// wrote about them, their images, and live traffic from inside the lab.

import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { context } from './kube.ts';
import { spawnTraffic, type Request, type Traffic } from './traffic.ts';

export interface Lab {
  netns: string;
  realNodes: number;
  /** Image reference (registry/repo:tag) to its manifest digest. */
  digests: Map<string, string>;
  image(tag: string): string;
}

/** The lab of the cluster under test; throws, naming the fix, when it has none. */
export function lab(): Lab {
  const { clusterDir } = context();
  let env: string;
  try {
    env = readFileSync(join(clusterDir, 'env'), 'utf8');
  } catch {
    throw new Error(`no ${clusterDir}/env: these tests need the suite's own cluster with real nodes (CLUSTER_REAL_NODES=2)`);
  }
  // printf %q's output; the values read here never need unquoting
  const value = (name: string) => [...env.matchAll(/^export (\w+)=(.*)$/gm)].find((m) => m[1] === name)?.[2];
  const realNodes = Number(value('CLUSTER_REAL_NODES') ?? '0');
  const netns = value('CLUSTER_NETNS') ?? '';
  const registry = value('CLUSTER_LAB_REGISTRY') ?? '';
  if (realNodes < 2 || !netns) {
    throw new Error(`the cluster in ${clusterDir} has ${realNodes} real nodes; these tests need 2 or more (cluster.sh down, then CLUSTER_REAL_NODES=2)`);
  }
  const digests = new Map<string, string>();
  for (const line of readFileSync(join(clusterDir, 'lab', 'images'), 'utf8').split('\n')) {
    const [ref, digest] = line.split(' ');
    if (ref && digest) digests.set(ref, digest);
  }
  return { netns, realNodes, digests, image: (tag: string) => `${registry}/lab/app:${tag}` };
}

/** Pod spec parts that put a pod on a real node. */
export const onRealNodes = {
  nodeSelector: { 'inplace-gate.dev/test-node': 'real' },
  tolerations: [{ key: 'inplace-gate.dev/test-node', operator: 'Equal', value: 'real', effect: 'NoSchedule' }],
};

export type { Request, Traffic } from './traffic.ts';

/** Starts the lab's client (support/traffic-client.ts) against a Service's ready endpoints. */
export function startTraffic(namespace: string, service: string, port = 8080, maxSeconds = 300): Traffic {
  return spawnTraffic(lab().netns, context().kubeconfig, namespace, service, port, maxSeconds);
}

/** Each pod's versions in the order its responses came, runs collapsed: ['v1', 'v2'] for a clean switch. */
export function versionsByPod(requests: Request[]): Map<string, string[]> {
  const byPod = new Map<string, string[]>();
  for (const r of requests) {
    if (!r.ok) continue;
    const seq = byPod.get(r.pod) ?? [];
    if (seq.at(-1) !== r.version) seq.push(r.version);
    byPod.set(r.pod, seq);
  }
  return byPod;
}

/**
 * Puts the manifest of `from` under a new tag in the lab registry: an image
 * reference no node has pulled yet (nodes keep their images between runs).
 */
export async function retag(from: string, tag: string): Promise<string> {
  const { execFile } = await import('node:child_process');
  const run = (args: string[]) => new Promise<string>((ok, fail) => {
    execFile('nsenter', [`--net=/run/netns/${lab().netns}`, '--', 'curl', '-sf', ...args], { maxBuffer: 1 << 20 }, (err, stdout) => { if (err) fail(new Error(`curl ${args.at(-1) ?? ''}: ${err.message}`)); else ok(stdout); });
  });
  const [, registry, repo, oldTag] = /^([^/]+)\/(.+):([^:]+)$/.exec(from) ?? [];
  if (!registry || !repo || !oldTag) throw new Error(`not a tagged lab image: ${from}`);
  const type = 'application/vnd.oci.image.manifest.v1+json';
  const manifest = await run(['-H', `Accept: ${type}`, `http://${registry}/v2/${repo}/manifests/${oldTag}`]);
  await run(['-X', 'PUT', '-H', `Content-Type: ${type}`, '--data-binary', manifest, `http://${registry}/v2/${repo}/manifests/${tag}`]);
  return `${registry}/${repo}:${tag}`;
}
