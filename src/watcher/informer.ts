// List, then watch from the list's resourceVersion, into a local store: the
// watcher's only view of the cluster. Keeps only what the decisions read,
// restarts the watch with backoff on any error, lists again when the watch
// is too old (410), and resyncs every key now and then.

import { ApiError, type KubeClient, type WatchEvent } from '../kube/client.ts';
import type { Logger } from '../log.ts';

export interface Meta {
  metadata: { name?: string; namespace?: string; resourceVersion?: string };
}

export interface InformerOptions<T extends Meta> {
  /** Collection path, e.g. /api/v1/pods. */
  path: string;
  labelSelector?: string;
  /** Keep only what is needed of each object. */
  trim: (raw: unknown) => T;
  onChange: (key: string, object: T | undefined) => void;
  log: Logger;
  resyncMs?: number;
  /** Objects per list page (default 100): each page's body and its parsed objects are held at once. */
  pageSize?: number;
}

/** Whether resourceVersion `a` is older than `b`, where both are the apiserver's integer revisions. */
export function isOlder(a: string | undefined, b: string | undefined): boolean {
  if (a === undefined || b === undefined || !/^\d+$/.test(a) || !/^\d+$/.test(b)) return false;
  return BigInt(a) < BigInt(b);
}

export function keyOf(o: Meta): string {
  return o.metadata.namespace ? `${o.metadata.namespace}/${o.metadata.name ?? ''}` : (o.metadata.name ?? '');
}

interface List {
  metadata: { resourceVersion: string; continue?: string };
  items: unknown[];
}

export class Informer<T extends Meta> {
  readonly store = new Map<string, T>();
  private synced = false;
  private readonly client: KubeClient;
  private readonly opts: InformerOptions<T>;
  private syncWaiters: (() => void)[] = [];

  constructor(client: KubeClient, opts: InformerOptions<T>) {
    this.client = client;
    this.opts = opts;
  }

  get hasSynced(): boolean {
    return this.synced;
  }

  waitForSync(): Promise<void> {
    return this.synced ? Promise.resolve() : new Promise((resolve) => this.syncWaiters.push(resolve));
  }

  /**
   * Replaces an object in the store from a write's response, ahead of its
   * watch event; never with an older copy than the one held. Under load the
   * watch can deliver a later change (the kubelet's Ready, say) before the
   * write's response is handled: overwritten by the response, that change
   * would be lost from the cache until the object changes again (seen at 1000
   * pods: a rollout that never ended with every pod Ready). resourceVersions
   * are opaque to clients in general; the apiserver's (etcd revisions) are
   * integers that only grow, and where either is not one the response wins.
   */
  upsert(raw: unknown): void {
    const obj = this.opts.trim(raw);
    const key = keyOf(obj);
    if (isOlder(obj.metadata.resourceVersion, this.store.get(key)?.metadata.resourceVersion)) return;
    this.store.set(key, obj);
  }

  async run(signal: AbortSignal): Promise<void> {
    let failures = 0;
    const stopped = () => signal.aborted;
    const resync = setInterval(() => {
      for (const [key, obj] of this.store) this.opts.onChange(key, obj);
    }, this.opts.resyncMs ?? 300_000);
    resync.unref();
    try {
      while (!signal.aborted) {
        try {
          let rv = await this.list();
          failures = 0;
          for (;;) {
            if (stopped()) return;
            rv = await this.watch(rv, signal);
          }
        } catch (err) {
          if (stopped()) return;
          failures++;
          const delay = Math.min(30_000, 200 * 2 ** Math.min(failures, 8));
          const gone = err instanceof ApiError && err.status === 410;
          this.opts.log[gone ? 'debug' : 'warn']({ path: this.opts.path, err: (err as Error).message, retryInMs: delay }, gone ? 'watch expired; listing again' : 'list/watch failed; retrying');
          await sleep(gone ? 0 : delay, signal);
        }
      }
    } finally {
      clearInterval(resync);
    }
  }

  private query(extra: Record<string, string>): string {
    const params = new URLSearchParams(extra);
    if (this.opts.labelSelector) params.set('labelSelector', this.opts.labelSelector);
    return `${this.opts.path}?${params.toString()}`;
  }

  private async list(): Promise<string> {
    const seen = new Set<string>();
    let cont: string | undefined;
    let rv: string;
    do {
      const page = await this.client.get<List>(this.query({ limit: String(this.opts.pageSize ?? 100), ...(cont ? { continue: cont } : {}) }));
      rv = page.metadata.resourceVersion;
      for (const raw of page.items) {
        const obj = this.opts.trim(raw);
        const key = keyOf(obj);
        seen.add(key);
        const old = this.store.get(key);
        this.store.set(key, obj);
        if (old?.metadata.resourceVersion !== obj.metadata.resourceVersion) this.opts.onChange(key, obj);
      }
      cont = page.metadata.continue || undefined;
    } while (cont);
    for (const key of [...this.store.keys()]) {
      if (!seen.has(key)) {
        this.store.delete(key);
        this.opts.onChange(key, undefined);
      }
    }
    if (!this.synced) {
      this.synced = true;
      for (const w of this.syncWaiters.splice(0)) w();
    }
    return rv;
  }

  /** One watch connection; returns the last resourceVersion seen. */
  private async watch(rv: string, signal: AbortSignal): Promise<string> {
    let last = rv;
    await this.client.watch<{ metadata: { resourceVersion: string } }>(
      this.query({ watch: 'true', resourceVersion: rv, allowWatchBookmarks: 'true', timeoutSeconds: String(240 + Math.floor(Math.random() * 60)) }),
      (event: WatchEvent<unknown>) => {
        const raw = event.object as { metadata: { resourceVersion: string } };
        last = raw.metadata.resourceVersion;
        if (event.type === 'BOOKMARK') return;
        const obj = this.opts.trim(raw);
        const key = keyOf(obj);
        if (event.type === 'DELETED') {
          this.store.delete(key);
          this.opts.onChange(key, undefined);
          return;
        }
        const current = this.store.get(key);
        // A write's response may already have put a newer copy in the store.
        if (current && Number(current.metadata.resourceVersion) > Number(obj.metadata.resourceVersion)) return;
        this.store.set(key, obj);
        this.opts.onChange(key, obj);
      },
      signal,
    );
    return last;
  }
}

export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) {
      resolve();
      return;
    }
    const timer = setTimeout(resolve, ms);
    signal?.addEventListener('abort', () => { clearTimeout(timer); resolve(); }, { once: true });
  });
}
