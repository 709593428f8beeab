// npm run bench:queue — one pass of the watcher's pod queue over N keys (what the startup and every
// resync do: every managed pod queued, then each decided), with a handler that does nothing, so
// only the queue's own cost is timed. Baseline in the same run: the plain array the queue held its
// keys in before (push, shift). Sizes: BENCH_KEYS (default "10000,50000,100000").

import { WorkQueue } from '../src/watcher/queue.ts';

const sizes = (process.env.BENCH_KEYS ?? '10000,50000,100000').split(',').map(Number);

async function queuePass(n: number): Promise<number> {
  const q = new WorkQueue({ concurrency: 16, handler: () => Promise.resolve({}), onError: () => undefined });
  for (let i = 0; i < n; i++) q.add(`ns/pod-${i}`);
  const t = performance.now();
  q.start();
  await q.idle();
  return performance.now() - t;
}

function arrayPass(n: number): number {
  const a: string[] = [];
  for (let i = 0; i < n; i++) a.push(`ns/pod-${i}`);
  const t = performance.now();
  while (a.length > 0) a.shift();
  return performance.now() - t;
}

console.log(`bench:queue, ${new Date().toISOString()}, Node ${process.version}`);
console.log('| keys | WorkQueue pass ms | µs per key | array shift alone ms (before) | µs per key |');
console.log('| --- | --- | --- | --- | --- |');
for (const n of sizes) {
  const q = await queuePass(n);
  const a = arrayPass(n);
  console.log(`| ${n} | ${q.toFixed(0)} | ${((q * 1000) / n).toFixed(2)} | ${a.toFixed(0)} | ${((a * 1000) / n).toFixed(2)} |`);
}
