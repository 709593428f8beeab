// The webhook's own diff against fast-json-patch's compare(), which it
// replaced for speed: the same operations in the same order, for copy-on-write
// edits like the decisions make and for unrelated documents.

import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import fc from 'fast-check';
import jsonpatch from 'fast-json-patch';
import { describe, expect, it } from 'vitest';
import { diff } from '../../src/webhook/patch.ts';

const json = fc.jsonValue({ maxDepth: 4 });
const key = fc.oneof(fc.constantFrom('a', 'b', 'a/b', 'x~y', '~1', '0', '1'), fc.string({ maxLength: 4 }));

type Edit = { path: string[]; action: 'set' | 'delete'; value: unknown };
const edit = fc.record({ path: fc.array(key, { minLength: 1, maxLength: 4 }), action: fc.constantFrom('set' as const, 'delete' as const), value: json });

/** Applies an edit as the decisions do: every container on the way copied, everything else shared. */
function copyOnWrite(doc: unknown, path: string[], action: Edit['action'], value: unknown): unknown {
  if (path.length === 0) return action === 'set' ? value : doc;
  if (typeof doc !== 'object' || doc === null) return doc;
  const [head, ...rest] = path as [string, ...string[]];
  if (Array.isArray(doc)) {
    const i = Number.parseInt(head, 10);
    if (!(i >= 0 && i <= doc.length)) return doc;
    const copy: unknown[] = [...(doc as unknown[])];
    if (rest.length === 0 && action === 'delete') copy.splice(i, 1);
    else copy[i] = copyOnWrite(doc[i], rest, action, value);
    return copy;
  }
  const copy: Record<string, unknown> = { ...(doc as Record<string, unknown>) };
  if (rest.length === 0 && action === 'delete') delete copy[head];
  else copy[head] = copyOnWrite(copy[head] ?? {}, rest, action, value);
  return copy;
}

// As sent: compare() clones values through JSON (so -0 becomes 0), the webhook serialises them at once.
const same = (a: unknown, b: unknown) => {
  expect(JSON.stringify(diff(a, b))).toBe(JSON.stringify(jsonpatch.compare(a as object, b as object)));
};

describe('diff', () => {
  it('gives compare()\'s operations for copy-on-write edits', () => {
    fc.assert(fc.property(fc.dictionary(key, json), fc.array(edit, { minLength: 1, maxLength: 4 }), (doc, edits) => {
      const mutated = edits.reduce<unknown>((d, e) => copyOnWrite(d, e.path, e.action, e.value), doc);
      same(doc, mutated);
    }), { numRuns: 2000 });
  });

  it('gives compare()\'s operations for unrelated documents', () => {
    fc.assert(fc.property(fc.oneof(fc.dictionary(key, json), fc.array(json)), fc.oneof(fc.dictionary(key, json), fc.array(json)), (a, b) => { same(a, b); }), { numRuns: 1000 });
  });

  it('on the captured reviews: the decisions\' patches', async () => {
    const review = JSON.parse(await readFile(join(import.meta.dirname, '../fixtures/update-pod-image.json'), 'utf8')) as { request: { object: { metadata: Record<string, unknown>; spec: { containers: Record<string, unknown>[] } }; oldObject: unknown } };
    const { object, oldObject } = review.request;
    same(oldObject, object);
    const reverted = { ...object, metadata: { ...object.metadata, annotations: { 'inplace-gate.dev/update': '{}' } }, spec: { ...object.spec, containers: [{ ...object.spec.containers[0], image: 'old' }, ...object.spec.containers.slice(1)] } };
    same(object, reverted);
    expect(jsonpatch.applyPatch(structuredClone(object), diff(object, reverted) as jsonpatch.Operation[]).newDocument).toEqual(reverted);
  });
});
