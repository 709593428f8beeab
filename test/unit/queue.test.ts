import { describe, expect, it } from 'vitest';
import { WorkQueue } from '../../src/watcher/queue.ts';

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
    const at: number[] = [];
    const errors: number[] = [];
    const q = new WorkQueue({
      concurrency: 1,
      baseDelayMs: 10,
      handler: (key) => {
        at.push(Date.now());
        if (at.length < 4) return Promise.reject(new Error(`fail ${key}`));
        return Promise.resolve({});
      },
      onError: (_key, _err, retryInMs) => errors.push(retryInMs),
    });
    q.start();
    q.add('x');
    await tick(200);
    expect(errors).toEqual([10, 20, 40]);
    expect(at).toHaveLength(4);
  });

  it('requeues after the delay a result asks for, keeping the earliest of several', async () => {
    const at: number[] = [];
    const q = new WorkQueue({ concurrency: 1, handler: () => { at.push(Date.now()); return Promise.resolve({}); }, onError: () => undefined });
    q.start();
    const t0 = Date.now();
    q.addAfter('k', 80);
    q.addAfter('k', 30);
    await tick(120);
    expect(at).toHaveLength(1);
    expect(at[0]! - t0).toBeGreaterThanOrEqual(25);
    expect(at[0]! - t0).toBeLessThan(80);
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
