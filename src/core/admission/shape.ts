// What the decisions read of a Pod, checked once at the boundary: the
// apiserver sends well-formed pods, but the endpoint answers anyone who can
// reach it, and a field of the wrong type must be a 400 naming it, never a
// crash (found by fuzzing the endpoint).

type Check = (value: unknown, path: string) => string | undefined;

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

const string: Check = (v, path) => (typeof v === 'string' ? undefined : `${path} must be a string`);
const boolean: Check = (v, path) => (typeof v === 'boolean' ? undefined : `${path} must be a boolean`);
const integer: Check = (v, path) => (Number.isInteger(v) ? undefined : `${path} must be an integer`);

function stringMap(v: unknown, path: string): string | undefined {
  if (!isObject(v)) return `${path} must be a map of strings`;
  for (const [k, x] of Object.entries(v)) if (typeof x !== 'string') return `${path}.${k} must be a string`;
  return undefined;
}

/** An object whose listed fields, where present (or always, for `required`), pass their checks. */
function object(fields: Record<string, Check>, required: readonly string[] = []): Check {
  return (v, path) => {
    if (!isObject(v)) return `${path} must be an object`;
    for (const [key, check] of Object.entries(fields)) {
      if (v[key] === undefined || v[key] === null) {
        if (required.includes(key)) return `${path}.${key} is required`;
        continue;
      }
      const problem = check(v[key], `${path}.${key}`);
      if (problem !== undefined) return problem;
    }
    return undefined;
  };
}

function array(item: Check): Check {
  return (v, path) => {
    if (!Array.isArray(v)) return `${path} must be a list`;
    for (const [i, x] of v.entries()) {
      const problem = item(x, `${path}[${i}]`);
      if (problem !== undefined) return problem;
    }
    return undefined;
  };
}

const container = object({ name: string, image: string, restartPolicy: string }, ['name']);
const containerStatus = object({ name: string, image: string, imageID: string, containerID: string, ready: boolean, restartCount: integer, state: object({}), lastState: object({}) }, ['name']);

export const metadataShape = object({
  name: string,
  generateName: string,
  namespace: string,
  uid: string,
  resourceVersion: string,
  generation: integer,
  deletionTimestamp: string,
  labels: stringMap,
  annotations: stringMap,
  ownerReferences: array(object({ apiVersion: string, kind: string, name: string, uid: string }, ['apiVersion', 'kind', 'name'])),
  managedFields: array(object({ manager: string, operation: string, subresource: string })),
});

export const podSpecShape = object(
  {
    containers: array(container),
    initContainers: array(container),
    readinessGates: array(object({ conditionType: string }, ['conditionType'])),
    schedulingGates: array(object({ name: string }, ['name'])),
    nodeName: string,
  },
  ['containers'],
);

const podShape = object(
  {
    metadata: metadataShape,
    spec: podSpecShape,
    status: object({
      phase: string,
      observedGeneration: integer,
      conditions: array(object({ type: string, status: string, reason: string }, ['type'])),
      containerStatuses: array(containerStatus),
      initContainerStatuses: array(containerStatus),
    }),
  },
  ['metadata', 'spec'],
);

/** The first field of `value` that a Pod could not have, or undefined. `path` names the value (request.object). */
export function podShapeProblem(value: unknown, path: string): string | undefined {
  return podShape(value, path);
}
