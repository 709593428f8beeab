// The state annotations carry a schema version: records written before it existed still read,
// a newer schema is refused by name (left alone, never half-read), and what is written says v 1.

import { describe, expect, it } from 'vitest';
import { encodeRolloutState, parseRolloutState } from '../../src/core/rollout-state.ts';
import { encodeUpdateState, parseUpdateState, type UpdateState } from '../../src/core/state.ts';
import { STATE_SCHEMA } from '../../src/core/state-schema.ts';

// As the webhook wrote it before the schema version existed (session 5's format).
const OLD_POD = '{"phase":"Pending","images":{"app":"registry.example/app:v2"},"requestedBy":"alice","requestedAt":"2026-12-03T10:00:00.000Z"}';
const OLD_ROLLOUT = '{"images":{"app":"registry.example/app:v2"},"requestedBy":"alice","startedAt":"2026-12-03T10:00:00.000Z","partition":2}';

describe('pod update state', () => {
  it('reads a record written before the schema version, unchanged', () => {
    expect(parseUpdateState(OLD_POD)).toEqual({ ok: true, state: JSON.parse(OLD_POD) as UpdateState });
  });

  it('writes the schema version first, and reads it back without it', () => {
    const state = JSON.parse(OLD_POD) as UpdateState;
    const encoded = encodeUpdateState(state);
    expect(encoded.startsWith(`{"v":${String(STATE_SCHEMA)},`)).toBe(true);
    expect(parseUpdateState(encoded)).toEqual({ ok: true, state });
  });

  it('refuses a newer schema by name, and a malformed version', () => {
    const newer = parseUpdateState(`{"v":${String(STATE_SCHEMA + 1)},${OLD_POD.slice(1)}`);
    expect(newer).toEqual({ ok: false, error: expect.stringContaining(`newer inplace-gate (schema ${String(STATE_SCHEMA + 1)}`) as string });
    expect(parseUpdateState(`{"v":"1",${OLD_POD.slice(1)}`).ok).toBe(false);
    expect(parseUpdateState(`{"v":0,${OLD_POD.slice(1)}`).ok).toBe(false);
  });
});

describe('workload rollout state', () => {
  it('reads a record written before the schema version, unchanged', () => {
    expect(parseRolloutState(OLD_ROLLOUT)).toEqual({ ok: true, state: JSON.parse(OLD_ROLLOUT) as unknown });
  });

  it('writes the schema version, reads it back without it, and refuses a newer one', () => {
    const parsed = parseRolloutState(OLD_ROLLOUT);
    if (!parsed.ok || !parsed.state) throw new Error('fixture unreadable');
    const encoded = encodeRolloutState(parsed.state);
    expect(JSON.parse(encoded)).toMatchObject({ v: STATE_SCHEMA });
    expect(parseRolloutState(encoded)).toEqual(parsed);
    expect(parseRolloutState(`{"v":${String(STATE_SCHEMA + 1)},${OLD_ROLLOUT.slice(1)}`)).toEqual({ ok: false, error: expect.stringContaining('newer inplace-gate') as string });
  });
});
