import { describe, expect, it, vi } from 'vitest';
import { KeyFifo, WorkQueue } from '../../src/watcher/queue.ts';
import { createWatcherMetrics, queueObserver } from '../../src/watcher/metrics.ts';

const tick = (ms = 5) => new Promise((r) => setTimeout(r, ms));

describe('WorkQueue', () => {
  it('queues a key once however often it is added, and never runs it twice at once', async () => {
    const running = new Set<string>();
    const seen: string[] = [];
    let overlap = false;
    const q = new WorkQueue({
      concurrency: 4,
      handler: async (key) => {
        if (running.has(key)) overlap = true;
        running.add(key);
        seen.push(key);
        await tick(10);
        running.delete(key);
        return {};
      },
      onError: () => undefined,
    });
    q.start();
    q.add('a');
    q.add('a');
    q.add('b');
    await tick(2);
    q.add('a'); // while processing: runs once more afterwards
    q.add('a');
    await tick(40);
    await q.idle();
    expect(overlap).toBe(false);
    expect(seen.filter((k) => k === 'a')).toHaveLength(2);
    expect(seen.filter((k) => k === 'b')).toHaveLength(1);
  });

  it('retries a failing key with growing backoff, and forgets the failures on success', async () => {
    vi.useFakeTimers();
    try {
      let calls = 0;
      const errors: number[] = [];
      const q = new WorkQueue({
        concurrency: 1,
        baseDelayMs: 10,
        handler: (key) => (++calls < 4 ? Promise.reject(new Error(`fail ${key}`)) : Promise.resolve({})),
        onError: (_key, _err, retryInMs) => errors.push(retryInMs),
      });
      q.start();
      q.add('x');
      await vi.advanceTimersByTimeAsync(1000);
      expect(errors).toEqual([10, 20, 40]);
      expect(calls).toBe(4);
      q.add('x');
      await vi.advanceTimersByTimeAsync(1);
      expect(calls).toBe(5);
    } finally {
      vi.useRealTimers();
    }
  });

  it('requeues after the delay asked for, keeping the earliest of several', async () => {
    vi.useFakeTimers();
    try {
      let calls = 0;
      const q = new WorkQueue({ concurrency: 1, handler: () => { calls++; return Promise.resolve({}); }, onError: () => undefined });
      q.start();
      q.addAfter('k', 80);
      q.addAfter('k', 30);
      await vi.advanceTimersByTimeAsync(29);
      expect(calls).toBe(0);
      await vi.advanceTimersByTimeAsync(1);
      expect(calls).toBe(1);
      await vi.advanceTimersByTimeAsync(100);
      expect(calls).toBe(1);
    } finally {
      vi.useRealTimers();
    }
  });

  it('serves urgent keys first, moving a queued key up', async () => {
    const order: string[] = [];
    const q = new WorkQueue({ concurrency: 1, handler: async (key) => { order.push(key); await tick(2); return {}; }, onError: () => undefined });
    for (const k of ['a', 'b', 'c', 'd']) q.add(k);
    q.add('d', true);
    q.add('e', true);
    q.start();
    await tick(40);
    await q.idle();
    expect(order).toEqual(['d', 'e', 'a', 'b', 'c']);
  });

  it('does nothing while stopped', async () => {
    let calls = 0;
    const q = new WorkQueue({ concurrency: 1, handler: () => { calls++; return Promise.resolve({}); }, onError: () => undefined });
    q.add('k');
    await tick(20);
    expect(calls).toBe(0);
    q.start();
    await tick(20);
    expect(calls).toBe(1);
  });
});

describe('WorkQueue metrics, as client-go\'s workqueue_*{name}', () => {
  it('counts adds (once per queued key) and retries, and times the wait and the work', async () => {
    const metrics = createWatcherMetrics(() => ({ byPhase: {}, drainOverdueSeconds: 0 }), () => ({}));
    let fail = true;
    const q = new WorkQueue({
      concurrency: 1,
      baseDelayMs: 5,
      observer: queueObserver(metrics, 'pods'),
      handler: async () => {
        await tick(20);
        if (fail) { fail = false; throw new Error('conflict'); }
        return {};
      },
      onError: () => undefined,
    });
    q.add('a');
    q.add('a'); // already queued: not another add
    q.add('b');
    await tick(15);
    q.start();
    await tick(10);
    await q.idle();
    await tick(30);
    await q.idle();
    const value = async (metric: string) => (await metrics.registry.getSingleMetric(metric)!.get()).values;
    const of = (vs: { labels: Record<string, unknown>; value: number; metricName?: string }[], suffix = '') =>
      vs.find((v) => v.labels.name === 'pods' && (v.metricName ?? '').endsWith(suffix))?.value;
    // a, b, and a again after its failure.
    expect(of(await value('workqueue_adds_total'))).toBe(3);
    expect(of(await value('workqueue_retries_total'))).toBe(1);
    expect(of(await value('workqueue_work_duration_seconds'), '_count')).toBe(3);
    expect(of(await value('workqueue_work_duration_seconds'), '_sum')).toBeGreaterThanOrEqual(0.055);
    expect(of(await value('workqueue_queue_duration_seconds'), '_count')).toBe(3);
    // b waited behind a's 20 ms, on top of the 15 ms before the queue started.
    expect(of(await value('workqueue_queue_duration_seconds'), '_sum')).toBeGreaterThanOrEqual(0.03);
  });
});

describe('KeyFifo: the queue\'s order kept across deletes and compaction', () => {
  it('gives keys back in the order pushed, without the deleted ones, past many compactions and with pushes in between', () => {
    const fifo = new KeyFifo();
    const expected: string[] = [];
    const out: string[] = [];
    let n = 0;
    const push = () => { const k = `k${n++}`; fifo.push(k); expected.push(k); };
    for (let i = 0; i < 5000; i++) push();
    for (let round = 0; round < 20; round++) {
      // Every seventh key still held is taken out (a key moved to the urgent lane).
      for (const k of expected.slice(out.length).filter((_, i) => i % 7 === round % 7).slice(0, 50)) {
        expect(fifo.delete(k)).toBe(true);
        expected.splice(expected.indexOf(k), 1);
      }
      for (let i = 0; i < 300 && fifo.length > 0; i++) out.push(fifo.shift()!);
      for (let i = 0; i < 100; i++) push();
      expect(fifo.length).toBe(expected.length - out.length);
    }
    while (fifo.length > 0) out.push(fifo.shift()!);
    expect(out).toEqual(expected);
    expect(fifo.shift()).toBeUndefined();
    expect(fifo.delete('k0')).toBe(false);
  });

  it('WorkQueue: a queued key made urgent runs before the others, once, also deep in a long queue', async () => {
    const seen: string[] = [];
    const q = new WorkQueue({ concurrency: 1, handler: (key) => { seen.push(key); return Promise.resolve({}); }, onError: () => undefined });
    for (let i = 0; i < 3000; i++) q.add(`p${i}`);
    q.add('p2500', true);
    q.add('p2500', true);
    q.start();
    await q.idle();
    expect(seen).toHaveLength(3000);
    expect(new Set(seen).size).toBe(3000);
    expect(seen[0]).toBe('p2500');
    expect(seen.slice(1, 4)).toEqual(['p0', 'p1', 'p2']);
  });
});
