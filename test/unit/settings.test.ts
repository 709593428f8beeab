// The command line parses what its own messages tell people to type.

import { spawnSync } from 'node:child_process';
import { resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadSettings, SettingsError } from '../../src/settings.ts';

describe('boolean flags', () => {
  const cases: { args: string[]; env?: Record<string, string>; resize: boolean; ephemeral: boolean }[] = [
    { args: [], resize: false, ephemeral: true },
    { args: ['--allow-resize'], resize: true, ephemeral: true },
    { args: ['--allow-resize=true'], resize: true, ephemeral: true },
    { args: ['--allow-resize=false'], resize: false, ephemeral: true },
    { args: ['--allow-resize', 'true'], resize: true, ephemeral: true },
    { args: ['--allow-resize', 'false'], resize: false, ephemeral: true },
    { args: ['--allow-resize', '--port', '9444'], resize: true, ephemeral: true },
    { args: ['--no-allow-resize'], env: { INPLACE_GATE_ALLOW_RESIZE: 'true' }, resize: false, ephemeral: true },
    { args: [], env: { INPLACE_GATE_ALLOW_RESIZE: 'yes' }, resize: true, ephemeral: true },
    { args: ['--allow-ephemeral-containers=false'], resize: false, ephemeral: false },
    { args: ['--no-allow-ephemeral-containers'], resize: false, ephemeral: false },
    { args: ['--allow-ephemeral-containers'], env: { INPLACE_GATE_ALLOW_EPHEMERAL_CONTAINERS: 'false' }, resize: false, ephemeral: true },
    { args: ['--allow-resize', '--no-allow-resize'], resize: false, ephemeral: true },
  ];
  it.each(cases)('$args $env', ({ args, env, resize, ephemeral }) => {
    const s = loadSettings(args, env ?? {});
    expect({ resize: s.admission.allowResize, ephemeral: s.admission.allowEphemeralContainers }).toEqual({ resize, ephemeral });
  });

  it('--no-leader-elect', () => {
    expect(loadSettings(['--no-leader-elect'], {}).watcher.leaderElect).toBe(false);
    expect(loadSettings(['--leader-elect'], { INPLACE_GATE_LEADER_ELECT: 'false' }).watcher.leaderElect).toBe(true);
  });
});

describe('values', () => {
  it('--flag value and --flag=value', () => {
    expect(loadSettings(['--port', '9444', '--log-level=debug'], {})).toMatchObject({ port: 9444, logLevel: 'debug' });
    expect(loadSettings([], { INPLACE_GATE_LOG_LEVEL: 'warn' }).logLevel).toBe('warn');
  });

  it('the watcher is the ServiceAccount inplace-gate-watcher of --namespace, unless --watcher-users names it', () => {
    const users = (args: string[], env: Record<string, string> = {}) => loadSettings(args, env).admission.watcher.users;
    expect(users([])).toEqual(['system:serviceaccount:inplace-gate:inplace-gate-watcher']);
    // As the manifests run it anywhere: --namespace=$(POD_NAMESPACE), no --watcher-users.
    expect(users(['--namespace=platform-system'])).toEqual(['system:serviceaccount:platform-system:inplace-gate-watcher']);
    expect(users([], { INPLACE_GATE_NAMESPACE: 'platform-system' })).toEqual(['system:serviceaccount:platform-system:inplace-gate-watcher']);
    expect(users(['--namespace=platform-system', '--watcher-users=alice,bob'])).toEqual(['alice', 'bob']);
  });
});

describe('one-line errors', () => {
  const cases: { args: string[]; env?: Record<string, string>; message: string }[] = [
    { args: ['--bogus'], message: 'unknown flag --bogus (see --help)' },
    { args: ['--bogus=1'], message: 'unknown flag --bogus (see --help)' },
    { args: ['-p', '1'], message: 'unknown flag -p (see --help)' },
    { args: ['--no-port'], message: 'unknown flag --no-port (see --help)' },
    { args: ['stray'], message: 'unexpected argument "stray" (see --help)' },
    { args: ['--port'], message: '--port needs a value (see --help)' },
    { args: ['--port', '--host', 'x'], message: '--port needs a value (see --help)' },
    { args: ['--no-allow-resize=true'], message: '--no-allow-resize takes no value (use --allow-resize=true)' },
    { args: ['--allow-resize=maybe'], message: '--allow-resize must be true or false, not "maybe"' },
    { args: [], env: { INPLACE_GATE_ALLOW_RESIZE: 'maybe' }, message: 'INPLACE_GATE_ALLOW_RESIZE must be true or false, not "maybe"' },
    { args: ['--log-level', 'loud'], message: '--log-level must be one of fatal, error, warn, info, debug, trace, silent, not "loud"' },
    { args: [], env: { INPLACE_GATE_LOG_LEVEL: 'INFO' }, message: 'INPLACE_GATE_LOG_LEVEL must be one of fatal, error, warn, info, debug, trace, silent, not "INFO"' },
    { args: ['--port', 'x'], message: '--port must be a whole number ≥ 0, not "x"' },
    { args: ['--mode', 'fast'], message: '--mode must be drain or immediate, not "fast"' },
  ];
  it.each(cases)('$args $env', ({ args, env, message }) => {
    let thrown: unknown;
    try {
      loadSettings(args, env ?? {});
    } catch (err) {
      thrown = err;
    }
    expect(thrown).toBeInstanceOf(SettingsError);
    expect((thrown as Error).message).toBe(message);
  });
});

// Each case starts a node process: seconds, more on a loaded machine.
describe('the CLI', { timeout: 20_000 }, () => {
  const cli = resolve(import.meta.dirname, '../../src/cli.ts');
  const run = (...args: string[]) => spawnSync(process.execPath, [cli, ...args], { encoding: 'utf8', timeout: 15_000, env: { PATH: process.env.PATH } });

  it('an unknown flag: one line on stderr, exit code 2', () => {
    const r = run('webhook', '--bogus');
    expect({ status: r.status, stderr: r.stderr }).toEqual({ status: 2, stderr: 'inplace-gate: unknown flag --bogus (see --help)\n' });
  });

  it('a bad --log-level: one line, exit code 2', () => {
    const r = run('watcher', '--log-level', 'loud');
    expect({ status: r.status, stderr: r.stderr }).toEqual({
      status: 2,
      stderr: 'inplace-gate: --log-level must be one of fatal, error, warn, info, debug, trace, silent, not "loud"\n',
    });
  });

  it('a bare boolean is taken', () => {
    const r = run('manifests', '--allow-resize', '--no-allow-ephemeral-containers');
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
  });
});
