// Records watch events of pods (and EndpointSlices) with the time each arrived,
// so tests can check the order of what happened, as a person watching would.

import { KubeClient, loadKubeConfig, type WatchEvent } from '../../../src/kube/client.ts';
import type { Pod } from '../../../src/core/kube-types.ts';
import { context } from './kube.ts';

export interface Seen<T> {
  at: number;
  type: WatchEvent<T>['type'];
  object: T;
}

export interface Recorder<T> {
  seen: Seen<T>[];
  stop(): void;
}

let client: KubeClient | undefined;

export async function apiClient(): Promise<KubeClient> {
  if (!client) {
    client = await KubeClient.create(loadKubeConfig(context().kubeconfig), 'inplace-gate-e2e');
  }
  return client;
}

export async function record<T = Pod>(path: string): Promise<Recorder<T>> {
  const c = await apiClient();
  const seen: Seen<T>[] = [];
  const abort = new AbortController();
  const list = await c.get<{ metadata: { resourceVersion: string } }>(path);
  const loop = async () => {
    let rv = list.metadata.resourceVersion;
    while (!abort.signal.aborted) {
      await c.watch<T>(`${path}${path.includes('?') ? '&' : '?'}watch=true&resourceVersion=${rv}&allowWatchBookmarks=true`, (event) => {
        rv = (event.object as { metadata: { resourceVersion: string } }).metadata.resourceVersion;
        if (event.type !== 'BOOKMARK') seen.push({ at: Date.now(), type: event.type, object: event.object });
      }, abort.signal).catch(() => undefined);
    }
  };
  void loop();
  return { seen, stop: () => { abort.abort(); } };
}
