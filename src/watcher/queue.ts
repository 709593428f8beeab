// A work queue of keys, as client-go's: a key is queued at most once, never
// processed by two workers at once (a change during processing queues it
// again), delayed adds keep the earliest time, and failures back off
// exponentially per key until the key succeeds.

export interface QueueResult {
  requeueAfterMs?: number | undefined;
}

/** What client-go's workqueue metrics count; the watcher exports them as workqueue_*{name}. */
export interface QueueObserver {
  /** A key was queued (or marked to run again after the current run). */
  added(): void;
  /** A failed key was put back with backoff. */
  retried(): void;
  /** Seconds a key waited in the queue before a worker took it. */
  waited(seconds: number): void;
  /** Seconds the handler took. */
  worked(seconds: number): void;
}

export interface WorkQueueOptions {
  concurrency: number;
  handler: (key: string) => Promise<QueueResult>;
  onError: (key: string, err: unknown, retryInMs: number) => void;
  baseDelayMs?: number;
  maxDelayMs?: number;
  observer?: QueueObserver;
}

/**
 * Keys in order, with push, shift and delete in O(1) (amortised). Array.shift
 * is O(n) once an array is large (V8 trims a small one in place, not a large
 * one): a pass over 50,000 pods took 4 s of a blocked event loop, 100,000 18 s.
 */
export class KeyFifo {
  private items: (string | undefined)[] = [];
  private head = 0;
  /** Where each key held is in `items`. */
  private readonly at = new Map<string, number>();

  get length(): number {
    return this.at.size;
  }

  has(key: string): boolean {
    return this.at.has(key);
  }

  push(key: string): void {
    this.at.set(key, this.items.length);
    this.items.push(key);
  }

  shift(): string | undefined {
    while (this.head < this.items.length) {
      const key = this.items[this.head++];
      if (key === undefined) continue;
      this.at.delete(key);
      this.compact();
      return key;
    }
    return undefined;
  }

  delete(key: string): boolean {
    const i = this.at.get(key);
    if (i === undefined) return false;
    this.items[i] = undefined;
    this.at.delete(key);
    this.compact();
    return true;
  }

  /** Drops the consumed front once it is most of the array: each key is moved O(1) times on average. */
  private compact(): void {
    if (this.at.size === 0) {
      this.items = [];
      this.head = 0;
      return;
    }
    if (this.head < 1024 || this.head * 2 < this.items.length) return;
    const kept: string[] = [];
    for (let i = this.head; i < this.items.length; i++) {
      const key = this.items[i];
      if (key === undefined) continue;
      this.at.set(key, kept.length);
      kept.push(key);
    }
    this.items = kept;
    this.head = 0;
  }
}

const NO_OBSERVER: QueueObserver = { added: () => undefined, retried: () => undefined, waited: () => undefined, worked: () => undefined };

export class WorkQueue {
  private readonly queue = new KeyFifo();
  /** Served first: work that ends an outage (a proven pod going back into endpoints). */
  private readonly urgent = new KeyFifo();
  private readonly queued = new Set<string>();
  private readonly processing = new Set<string>();
  private readonly dirty = new Set<string>();
  private readonly timers = new Map<string, { at: number; timer: NodeJS.Timeout }>();
  private readonly failures = new Map<string, number>();
  /** When each queued key was queued (ms), for the wait it is observed with. */
  private readonly queuedAt = new Map<string, number>();
  private running = false;
  private active = 0;
  private readonly opts: Required<WorkQueueOptions>;
  private idleWaiters: (() => void)[] = [];

  constructor(opts: WorkQueueOptions) {
    this.opts = { baseDelayMs: 50, maxDelayMs: 30_000, observer: NO_OBSERVER, ...opts };
  }

  get depth(): number {
    return this.queue.length + this.urgent.length;
  }

  /** `urgent` keys go before every other queued key (and an already queued key is moved up). */
  add(key: string, urgent = false): void {
    if (this.processing.has(key)) {
      if (!this.dirty.has(key)) this.opts.observer.added();
      this.dirty.add(key);
      return;
    }
    if (this.queued.has(key)) {
      if (urgent && this.queue.delete(key)) this.urgent.push(key);
      return;
    }
    this.queued.add(key);
    this.queuedAt.set(key, performance.now());
    this.opts.observer.added();
    (urgent ? this.urgent : this.queue).push(key);
    this.pump();
  }

  addAfter(key: string, ms: number): void {
    if (ms <= 0) {
      this.add(key);
      return;
    }
    const at = Date.now() + ms;
    const existing = this.timers.get(key);
    if (existing && existing.at <= at) return;
    if (existing) clearTimeout(existing.timer);
    const timer = setTimeout(() => {
      this.timers.delete(key);
      this.add(key);
    }, ms);
    timer.unref();
    this.timers.set(key, { at, timer });
  }

  /** Drop a key's pending timer and backoff (the object is gone). */
  forget(key: string): void {
    const t = this.timers.get(key);
    if (t) clearTimeout(t.timer);
    this.timers.delete(key);
    this.failures.delete(key);
  }

  start(): void {
    this.running = true;
    this.pump();
  }

  stop(): void {
    this.running = false;
    for (const { timer } of this.timers.values()) clearTimeout(timer);
    this.timers.clear();
  }

  /** Resolves when nothing is queued or in progress (for tests). */
  idle(): Promise<void> {
    if (this.active === 0 && this.depth === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  private pump(): void {
    while (this.running && this.active < this.opts.concurrency && this.depth > 0) {
      const key = (this.urgent.length > 0 ? this.urgent.shift() : this.queue.shift()) as string;
      this.queued.delete(key);
      this.opts.observer.waited((performance.now() - (this.queuedAt.get(key) ?? performance.now())) / 1000);
      this.queuedAt.delete(key);
      this.processing.add(key);
      this.active++;
      void this.process(key);
    }
  }

  private async process(key: string): Promise<void> {
    const started = performance.now();
    try {
      const result = await this.opts.handler(key);
      this.failures.delete(key);
      if (result.requeueAfterMs !== undefined) this.addAfter(key, result.requeueAfterMs);
    } catch (err) {
      const n = (this.failures.get(key) ?? 0) + 1;
      this.failures.set(key, n);
      const delay = Math.min(this.opts.maxDelayMs, this.opts.baseDelayMs * 2 ** (n - 1));
      this.opts.onError(key, err, delay);
      this.opts.observer.retried();
      this.addAfter(key, delay);
    } finally {
      this.opts.observer.worked((performance.now() - started) / 1000);
      this.processing.delete(key);
      this.active--;
      if (this.dirty.delete(key)) this.add(key);
      this.pump();
      if (this.active === 0 && this.depth === 0) {
        const waiters = this.idleWaiters;
        this.idleWaiters = [];
        for (const w of waiters) w();
      }
    }
  }
}
