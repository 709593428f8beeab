// What the decisions read of a Pod, checked once at the boundary: the
// apiserver sends well-formed pods, but the endpoint answers anyone who can
// reach it, and a field of the wrong type must be a 400 naming it, never a
// crash (found by fuzzing the endpoint).

/** A problem: the path below the checked value (built only on failure, outermost first) and what is wrong. */
type Problem = { path: string; message: string };
/** Checks run on every review: they allocate nothing while the value is fine. */
type Check = (value: unknown) => Problem | undefined;

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const at = (segment: string, p: Problem): Problem => ({ path: `${segment}${p.path}`, message: p.message });

const string: Check = (v) => (typeof v === 'string' ? undefined : { path: '', message: 'must be a string' });
const boolean: Check = (v) => (typeof v === 'boolean' ? undefined : { path: '', message: 'must be a boolean' });
const integer: Check = (v) => (Number.isInteger(v) ? undefined : { path: '', message: 'must be an integer' });
const intOrString: Check = (v) => (Number.isInteger(v) || typeof v === 'string' ? undefined : { path: '', message: 'must be an integer or a string' });

const stringMap: Check = (v) => {
  if (!isObject(v)) return { path: '', message: 'must be a map of strings' };
  for (const k in v) if (typeof v[k] !== 'string') return { path: `.${k}`, message: 'must be a string' };
  return undefined;
};

/** An object whose listed fields, where present (or always, for `required`), pass their checks. */
function object(fields: Record<string, Check>, required: readonly string[] = []): Check {
  const keys = Object.keys(fields);
  const checks = keys.map((k) => fields[k] as Check);
  return (v) => {
    if (!isObject(v)) return { path: '', message: 'must be an object' };
    for (let i = 0; i < keys.length; i++) {
      const key = keys[i] as string;
      const x = v[key];
      if (x === undefined || x === null) {
        if (required.includes(key)) return { path: `.${key}`, message: 'is required' };
        continue;
      }
      const problem = (checks[i] as Check)(x);
      if (problem !== undefined) return at(`.${key}`, problem);
    }
    return undefined;
  };
}

function array(item: Check): Check {
  return (v) => {
    if (!Array.isArray(v)) return { path: '', message: 'must be a list' };
    for (let i = 0; i < v.length; i++) {
      const problem = item(v[i]);
      if (problem !== undefined) return at(`[${i}]`, problem);
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
  const problem = podShape(value);
  return problem === undefined ? undefined : `${path}${problem.path} ${problem.message}`;
}

const workloadShape = object(
  {
    metadata: metadataShape,
    spec: object(
      {
        replicas: integer,
        paused: boolean,
        strategy: object({ type: string, rollingUpdate: object({ maxUnavailable: intOrString, maxSurge: intOrString }) }),
        updateStrategy: object({ type: string, rollingUpdate: object({ partition: integer, maxUnavailable: intOrString }) }),
        template: object({ metadata: object({ labels: stringMap, annotations: stringMap }), spec: podSpecShape }, ['spec']),
      },
      ['template'],
    ),
  },
  ['metadata', 'spec'],
);

/** The first field of `value` that a Deployment or StatefulSet could not have (of those the workload rules read), or undefined. */
export function workloadShapeProblem(value: unknown, path: string): string | undefined {
  const problem = workloadShape(value);
  return problem === undefined ? undefined : `${path}${problem.path} ${problem.message}`;
}
