// The first run's build says what it is doing: each binary with its time, and
// a heartbeat through the silences (go's download lines are counted, not shown).

import { spawn } from 'node:child_process';
import { resolve } from 'node:path';
import { describe, expect, it } from 'vitest';

const script = resolve(import.meta.dirname, '../../test/cluster/progress.sh');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('test/cluster/progress.sh', () => {
  it('per binary, elapsed times, a heartbeat every PROGRESS_HEARTBEAT_SECONDS, errors passed through', async () => {
    const child = spawn('bash', [script], { env: { ...process.env, PROGRESS_HEARTBEAT_SECONDS: '1' }, stdio: ['pipe', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.on('data', (c: Buffer) => { out += c.toString(); });
    const send = (line: string) => child.stdin.write(`${line}\n`);
    send('Building the Kubernetes v1.37.2 control plane into /cache/k8s-x');
    send('  go build go.etcd.io/etcd/server/v3');
    // A long stretch of nothing but downloads: still a heartbeat each second.
    for (let i = 0; i < 10; i++) { send(`go: downloading example.com/m${i} v1.0.0`); await sleep(250); }
    send('  go build k8s.io/kubernetes/cmd/kubectl');
    await sleep(1300); // silence
    send('go: k8s.io/kubernetes/cmd/kubectl: build failed');
    send('Built in 4s');
    child.stdin.end();
    await new Promise((ok) => child.once('exit', ok));
    const lines = out.trimEnd().split('\n');
    expect(lines[0]).toBe('Building the Kubernetes v1.37.2 control plane into /cache/k8s-x');
    expect(lines[1]).toBe('[    0s] building go.etcd.io/etcd/server/v3');
    const beats = lines.filter((l) => /^\[ *\ds\] still building go\.etcd\.io\/etcd\/server\/v3: \ds so far \(modules downloaded: \d+\)$/.test(l));
    expect(beats.length).toBeGreaterThanOrEqual(2);
    expect(lines).toContainEqual(expect.stringMatching(/^\[ *\ds\] built go\.etcd\.io\/etcd\/server\/v3 in [23]s$/));
    expect(lines).toContainEqual(expect.stringMatching(/^\[ *\ds\] still building k8s\.io\/kubernetes\/cmd\/kubectl: [12]s so far/));
    expect(lines).toContain('go: k8s.io/kubernetes/cmd/kubectl: build failed');
    expect(lines.at(-2)).toMatch(/^\[ *\ds\] built k8s\.io\/kubernetes\/cmd\/kubectl in [12]s$/);
    expect(lines.at(-1)).toMatch(/^\[ *\ds\] Built in 4s$/);
    expect(out).not.toContain('go: downloading');
  }, 15_000);

  it('says nothing when build.sh finds its binaries cached (it prints only the folder, on stdout)', async () => {
    const child = spawn('bash', [script], { stdio: ['pipe', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.on('data', (c: Buffer) => { out += c.toString(); });
    child.stdin.end();
    await new Promise((ok) => child.once('exit', ok));
    expect(out).toBe('');
  });
});
