// Field paths where two JSON values differ, in the notation of Kubernetes'
// own validation messages: `spec.containers[0].env[1].value`.

export type PathSegment = string | number;

/** Decides which changed paths are allowed, so they are not reported. */
export type PathFilter = (path: readonly PathSegment[]) => boolean;

export function formatPath(path: readonly PathSegment[]): string {
  let out = '';
  for (const seg of path) out += typeof seg === 'number' ? `[${seg}]` : out === '' ? seg : `.${seg}`;
  return out;
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/**
 * Every leaf path where `a` and `b` differ and `ignore` does not hold. An
 * array whose length changed is reported as a whole; at most `limit` paths.
 */
export function changedPaths(
  a: unknown,
  b: unknown,
  root: readonly PathSegment[],
  ignore: PathFilter = () => false,
  limit = 50,
): PathSegment[][] {
  const out: PathSegment[][] = [];
  const walk = (x: unknown, y: unknown, path: PathSegment[]): void => {
    if (x === y || out.length >= limit) return;
    if (Array.isArray(x) && Array.isArray(y) && x.length === y.length) {
      for (let i = 0; i < x.length; i++) walk(x[i], y[i], [...path, i]);
      return;
    }
    if (isPlainObject(x) && isPlainObject(y)) {
      for (const key of Object.keys(x)) walk(x[key], y[key], [...path, key]);
      for (const key of Object.keys(y)) if (!(key in x)) walk(undefined, y[key], [...path, key]);
      return;
    }
    if (!ignore(path)) out.push(path);
  };
  walk(a, b, [...root]);
  return out;
}

export function deepEqual(a: unknown, b: unknown): boolean {
  return changedPaths(a, b, [], () => false, 1).length === 0;
}
