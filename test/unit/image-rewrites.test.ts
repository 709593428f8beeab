import { describe, expect, it } from 'vitest';
import { parseImageRewrites, recordRewrites, requestedImages } from '../../src/core/image-rewrites.ts';
import { planRollout } from '../../src/core/rollout.ts';

const PINNED = `app:2@sha256:${'b'.repeat(64)}`;

describe('image rewrites by another webhook', () => {
  it('records what was asked and what was stored, only where they differ', () => {
    expect(recordRewrites({}, { app: 'app:2', proxy: 'envoy:2' }, { app: PINNED, proxy: 'envoy:2' })).toEqual({ app: { requested: 'app:2', stored: PINNED } });
    expect(recordRewrites({}, { app: 'app:2' }, { app: 'app:2' })).toBeUndefined();
  });

  it('a later write stored as written drops the entry; other containers keep theirs', () => {
    const previous = { app: { requested: 'app:2', stored: PINNED }, log: { requested: 'log:1', stored: 'mirror/log:1' } };
    expect(recordRewrites(previous, { app: 'app:3' }, { app: 'app:3', log: 'mirror/log:1' })).toEqual({ log: previous.log });
  });

  it('a stored image still the recorded one reads as what was asked; one changed since reads as itself', () => {
    const rewrites = { app: { requested: 'app:2', stored: PINNED } };
    expect(requestedImages({ app: PINNED, proxy: 'envoy:1' }, rewrites)).toEqual({ app: 'app:2', proxy: 'envoy:1' });
    expect(requestedImages({ app: 'app:9' }, rewrites)).toEqual({ app: 'app:9' });
  });

  it('an unreadable or malformed record is ignored, never trusted', () => {
    expect(parseImageRewrites('{')).toEqual({});
    expect(parseImageRewrites('{"app":{"requested":"a"}}')).toEqual({});
    expect(parseImageRewrites('[1]')).toEqual({});
  });

  it('the rollout counts a pod whose pinned image was asked as app:2 as done, and does not start it again', () => {
    const pod = { name: 'web-0', ready: true, specImages: requestedImages({ app: PINNED }, { app: { requested: 'app:2', stored: PINNED } }) };
    expect(planRollout([pod], { app: 'app:2' }, 1, { order: 'name' })).toMatchObject({ start: [], done: true, updated: 1 });
    // Without the record, the same pod would be drained again: the defect.
    expect(planRollout([{ ...pod, specImages: { app: PINNED } }], { app: 'app:2' }, 1, { order: 'name' })).toMatchObject({ start: ['web-0'], done: false });
  });
});

describe('the window between the image write and its rewrite record', () => {
  it('a pod Updating toward the target, its spec already rewritten and not yet recorded, is on its way: not started again', () => {
    const pod = { name: 'web-0', ready: false, specImages: { app: PINNED }, update: { phase: 'Updating', images: { app: 'app:2' } } };
    expect(planRollout([pod], { app: 'app:2' }, 1, { order: 'name' })).toMatchObject({ start: [], updated: 1 });
  });
});
