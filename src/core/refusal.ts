// A refused image write. The webhook keeps the running images in the spec, so
// the apiserver's validation and every policy engine see the requested images
// only when the watcher writes them, after the drain. A refusal that another
// try cannot change (422 Invalid, a policy's 403) must not leave the pod
// drained forever: it is Stalled, loudly, and the pod goes back into its
// endpoints on the images it never stopped running.

import { specImages, type ImageMap } from './containers.ts';
import type { Pod } from './kube-types.ts';
import type { PodContext, Step } from './lifecycle.ts';
import type { UpdateState } from './state.ts';

/** `stalled.reason` of a request whose images the apiserver would not take. */
export const IMAGE_WRITE_REFUSED = 'ImageWriteRefused';

/**
 * The apiserver's authorizer refusing the watcher itself (`pods "web" is
 * forbidden: User "..." cannot patch resource "pods" ...`), as opposed to an
 * admission plugin or policy refusing the images. It says nothing about the
 * images, and it passes: right after a kube-apiserver restart its RBAC
 * authorizer denies everything until its caches are filled (found by
 * restarting the apiserver during 100 updates, test/e2e/faults.test.ts).
 */
const AUTHORIZATION_DENIAL = /is forbidden: User "[^"]*" cannot [a-z]+ resource "/;

/**
 * Refusals that another try cannot change. Conflicts and throttling are tried
 * again; 404 means the pod is gone; 401 and 408 are about the connection,
 * not the images; a 403 from the authorizer is about the watcher's own
 * permissions, not the images (the pod stays drained and the write is tried
 * again, as Kubernetes' own controllers do).
 */
export function isPermanentRefusal(status: number, message = ''): boolean {
  if (status === 403 && AUTHORIZATION_DENIAL.test(message)) return false;
  return status >= 400 && status < 500 && ![401, 404, 408, 409, 429].includes(status);
}

function describe(images: ImageMap): string {
  return Object.entries(images).map(([n, i]) => `${n}=${i}`).join(', ');
}

/**
 * The step after the write of `state.images` was refused with `message`. The
 * spec still carries the running images. A request made while an earlier
 * update was unproven (baselines carried in `before`) keeps the pod out of
 * endpoints until those images are proven: back to Updating over them.
 */
export function imageWriteRefused(pod: Pod, state: UpdateState, message: string, ctx: PodContext): Step {
  const since = ctx.now.toISOString();
  const durationSeconds = Math.max(0, (ctx.now.getTime() - Date.parse(state.requestedAt)) / 1000);
  const note = `The apiserver refused ${describe(state.images)}: ${message}`;
  const event = { type: 'Warning' as const, reason: 'InPlaceUpdateRefused', action: 'Update', note };
  const outcome = { result: 'stalled' as const, durationSeconds };
  const carried = state.before ?? {};
  if (Object.keys(carried).length > 0) {
    const spec = specImages(pod.spec);
    const images: ImageMap = {};
    for (const name of Object.keys(carried)) if (spec[name] !== undefined) images[name] = spec[name];
    const { drained: _d, drainDeadline: _dd, drainStartedAt: _ds, stalled: _s, ...rest } = state;
    return {
      kind: 'transition',
      state: { ...rest, phase: 'Updating', images, updatedAt: since, ...(pod.metadata.generation === undefined ? {} : { generation: pod.metadata.generation }) },
      event: { ...event, note: `${note}. The pod stays out of endpoints until ${describe(images)}, written earlier, is proven` },
      outcome,
    };
  }
  const { drainDeadline: _dd, drainStartedAt: _ds, ...rest } = state;
  return {
    kind: 'transition',
    condition: { status: 'True', reason: 'InPlaceUpdateRefused', message: `kept the running images: ${message}` },
    state: { ...rest, phase: 'Stalled', stalled: { reason: IMAGE_WRITE_REFUSED, message, since } },
    event: { ...event, note: `${note}. The pod keeps its running images and is back in its endpoints; change the image again to start over` },
    outcome,
  };
}

/** A refused request stays on record as Stalled, its pod in endpoints: nothing was written, nothing to prove. */
export function whileRefused(state: UpdateState, condition: string | undefined): Step {
  const message = state.stalled?.message ?? '';
  if (condition === 'True') return { kind: 'none', why: `image write refused: ${message}` };
  return { kind: 'setCondition', condition: { status: 'True', reason: 'InPlaceUpdateRefused', message: `kept the running images: ${message}` } };
}
