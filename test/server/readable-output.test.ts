// Output people read: log levels as words, and `npm start`'s printed lines
// that never end the process when their reader (a `| tee`) is gone first.

import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { PassThrough } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../src/log.ts';

const repo = resolve(import.meta.dirname, '../..');
let dir: string;

beforeAll(async () => { dir = await mkdtemp(join(tmpdir(), 'inplace-gate-output-')); });
afterAll(async () => { await rm(dir, { recursive: true, force: true }); });

describe('log lines', () => {
  it('carry the level as a word, the component and an ISO time', async () => {
    const sink = new PassThrough();
    const lines: string[] = [];
    sink.on('data', (chunk: Buffer) => lines.push(...chunk.toString().split('\n').filter(Boolean)));
    const log = createLogger('watcher', 'debug', sink);
    log.info({ pod: 'shop/web-1' }, 'drained');
    log.warn('retrying');
    log.debug('routine');
    await new Promise((r) => setImmediate(r));
    const parsed = lines.map((l) => JSON.parse(l) as { level: unknown; component: string; time: string; msg: string });
    expect(parsed.map((p) => [p.level, p.msg])).toEqual([['info', 'drained'], ['warn', 'retrying'], ['debug', 'routine']]);
    expect(parsed[0]).toMatchObject({ component: 'watcher', pod: 'shop/web-1' });
    expect(parsed[0]!.time).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
  });
});

describe('printed lines after stdout is closed (Ctrl-C on `npm start | tee start.log`)', () => {
  it('are dropped, and the process goes on to stop what it started', async () => {
    const done = join(dir, 'stopped');
    // Prints, waits for its reader to go, prints again ("Stopping..."), then does its stopping.
    const script = `
      import { writeFileSync } from 'node:fs';
      import { printer } from ${JSON.stringify(join(repo, 'src/out.ts'))};
      const say = printer(process.stdout);
      say('running');
      setTimeout(() => {
        for (let i = 0; i < 100; i++) say('Stopping...');
        setTimeout(() => { writeFileSync(${JSON.stringify(done)}, 'yes'); }, 200);
      }, 500);`;
    const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (c: Buffer) => { stderr += c.toString(); });
    await new Promise((ok) => child.stdout.once('data', ok));
    child.stdout.destroy();
    const code = await new Promise<number | null>((ok) => child.once('exit', ok));
    expect(stderr).toBe('');
    expect(code).toBe(0);
    expect(existsSync(done)).toBe(true);
  });
});
