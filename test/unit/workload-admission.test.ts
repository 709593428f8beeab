import { describe, expect, it } from 'vitest';
import { mutate } from '../../src/core/admission/index.ts';
import { defaultAdmissionConfig } from '../../src/core/config.ts';
import { ROLLOUT_STATE_ANNOTATION } from '../../src/core/names.ts';
import { parseRolloutState } from '../../src/core/rollout-state.ts';
import type { Workload } from '../../src/core/workload-types.ts';
import type { AdmissionRequest } from '../../src/core/admission/request.ts';
import { expectDecision, patchOf } from '../support/apply.ts';
import jsonpatch from 'fast-json-patch';

const now = new Date('2026-11-28T12:00:00Z');
const config = defaultAdmissionConfig;

function workload(kind: 'Deployment' | 'StatefulSet', image = 'web:1', extra: Partial<Workload['spec']> = {}, annotations: Record<string, string> = {}): Workload {
  return {
    apiVersion: 'apps/v1',
    kind,
    metadata: { name: 'web', namespace: 'shop', generation: 3, annotations: { 'deployment.kubernetes.io/revision': '2', ...annotations } },
    spec: {
      replicas: 5,
      selector: { matchLabels: { app: 'web' } },
      template: {
        metadata: { labels: { app: 'web' } },
        spec: { containers: [{ name: 'app', image, ports: [{ containerPort: 8080 }] }, { name: 'proxy', image: 'envoy:1' }] },
      },
      ...(kind === 'Deployment' ? { strategy: { type: 'RollingUpdate', rollingUpdate: { maxUnavailable: '25%', maxSurge: '25%' } } } : { updateStrategy: { type: 'RollingUpdate', rollingUpdate: { partition: 1 } } }),
      ...extra,
    },
  };
}

function request(old: Workload, next: Workload, extra: Partial<AdmissionRequest> = {}): AdmissionRequest {
  return {
    uid: 'u',
    kind: { group: 'apps', version: 'v1', kind: next.kind ?? 'Deployment' },
    resource: { group: 'apps', version: 'v1', resource: next.kind === 'StatefulSet' ? 'statefulsets' : 'deployments' },
    name: 'web',
    namespace: 'shop',
    operation: 'UPDATE',
    userInfo: { username: 'system:serviceaccount:argocd:argocd-application-controller' },
    object: next,
    oldObject: old,
    options: { fieldManager: 'argocd-controller' },
    ...extra,
  };
}

const stored = (old: Workload, next: Workload, extra: Partial<AdmissionRequest> = {}) => {
  const decision = expectDecision(mutate(request(old, next, extra), config, now));
  return { decision, after: jsonpatch.applyPatch(structuredClone(next), patchOf(next, decision)).newDocument };
};

describe('Deployments and StatefulSets: an image-only template change rolls out in place', () => {
  it('a Deployment is paused and the rollout recorded', () => {
    const { decision, after } = stored(workload('Deployment'), workload('Deployment', 'web:2'));
    expect(decision.reason).toBe('rollout-held');
    expect(after.spec.paused).toBe(true);
    expect(after.spec.template.spec.containers[0]?.image).toBe('web:2');
    expect(parseRolloutState(after.metadata.annotations?.[ROLLOUT_STATE_ANNOTATION])).toEqual({
      ok: true,
      state: { images: { app: 'web:2', proxy: 'envoy:1' }, requestedBy: 'system:serviceaccount:argocd:argocd-application-controller', fieldManager: 'argocd-controller', startedAt: now.toISOString() },
    });
    expect(decision.warnings[0]).toMatch(/in place/);
  });

  it("a StatefulSet's partition is held at replicas and the user's recorded", () => {
    const { after } = stored(workload('StatefulSet'), workload('StatefulSet', 'web:2'));
    expect(after.spec.updateStrategy?.rollingUpdate?.partition).toBe(5);
    expect(parseRolloutState(after.metadata.annotations?.[ROLLOUT_STATE_ANNOTATION])).toMatchObject({ ok: true, state: { partition: 1 } });
  });

  it('a StatefulSet with OnDelete is left to its owner: no hold, no rollout recorded', () => {
    const onDelete = { updateStrategy: { type: 'OnDelete' } };
    const { decision, after } = stored(workload('StatefulSet', 'web:1', onDelete), workload('StatefulSet', 'web:2', onDelete));
    expect(decision).toMatchObject({ type: 'allow', reason: 'on-delete' });
    expect(decision.warnings[0]).toMatch(/OnDelete/);
    expect(after.spec.updateStrategy).toEqual({ type: 'OnDelete' });
    expect(after.metadata.annotations?.[ROLLOUT_STATE_ANNOTATION]).toBeUndefined();
  });

  it('a change mid-rollout retargets it and keeps the start time and the user partition', () => {
    const first = stored(workload('StatefulSet'), workload('StatefulSet', 'web:2')).after;
    const { decision, after } = stored(first, { ...first, spec: { ...first.spec, template: workload('StatefulSet', 'web:1').spec.template } }, {});
    expect(decision.reason).toBe('rollout-retargeted');
    expect(parseRolloutState(after.metadata.annotations?.[ROLLOUT_STATE_ANNOTATION])).toMatchObject({ ok: true, state: { images: { app: 'web:1' }, partition: 1, startedAt: now.toISOString() } });
    expect(after.spec.updateStrategy?.rollingUpdate?.partition).toBe(5);
  });

  it.each<[string, number, number]>([
    ['lowered', 0, 0],
    ['raised', 3, 5],
    ['raised past replicas', 7, 7],
  ])("the user's own partition %s mid-rollout stays held and is recorded as theirs (stored, the controller would recreate the pods not reached yet)", (_what, wanted, heldAt) => {
    const first = stored(workload('StatefulSet'), workload('StatefulSet', 'web:2')).after;
    const next = { ...first, spec: { ...first.spec, updateStrategy: { type: 'RollingUpdate', rollingUpdate: { partition: wanted } } } };
    const { decision, after } = stored(first, next);
    expect(decision.reason).toBe('partition-recorded');
    expect(after.spec.updateStrategy?.rollingUpdate?.partition).toBe(Math.max(5, heldAt));
    expect(parseRolloutState(after.metadata.annotations?.[ROLLOUT_STATE_ANNOTATION])).toMatchObject({ ok: true, state: { images: { app: 'web:2' }, partition: wanted, startedAt: now.toISOString() } });
    expect(decision.warnings[0]).toContain(`partition ${String(wanted)} is recorded`);
  });

  it('a partition set in the same write as the image bump is the one recorded', () => {
    const next = workload('StatefulSet', 'web:2', { updateStrategy: { type: 'RollingUpdate', rollingUpdate: { partition: 3 } } });
    const { after } = stored(workload('StatefulSet'), next);
    expect(parseRolloutState(after.metadata.annotations?.[ROLLOUT_STATE_ANNOTATION])).toMatchObject({ ok: true, state: { partition: 3 } });
    expect(after.spec.updateStrategy?.rollingUpdate?.partition).toBe(5);
  });

  it('a partition change with the rollout state dropped in the same write (a release) is let through', () => {
    const first = stored(workload('StatefulSet'), workload('StatefulSet', 'web:2')).after;
    const { [ROLLOUT_STATE_ANNOTATION]: _state, ...annotations } = first.metadata.annotations ?? {};
    const next = { ...first, metadata: { ...first.metadata, annotations }, spec: { ...first.spec, updateStrategy: { type: 'RollingUpdate', rollingUpdate: { partition: 1 } } } };
    expect(stored(first, next).decision.reason).not.toBe('partition-recorded');
  });

  it('answers a dry run the same', () => {
    const real = stored(workload('Deployment'), workload('Deployment', 'web:2')).after;
    const dry = stored(workload('Deployment'), workload('Deployment', 'web:2'), { dryRun: true }).after;
    expect(dry).toEqual(real);
  });
});

describe('left to the native controller', () => {
  it.each([
    ['another template change with the image', (w: Workload) => { w.spec.template.spec.containers[0]!.env = [{ name: 'A', value: '1' }]; }, 'template-change-native'],
    ['a template label change', (w: Workload) => { w.spec.template.metadata = { labels: { app: 'web', v: '2' } }; }, 'template-change-native'],
    ['kubectl rollout restart', (w: Workload) => { w.spec.template.metadata = { labels: { app: 'web' }, annotations: { 'kubectl.kubernetes.io/restartedAt': 'now' } }; }, 'template-change-native'],
  ])('%s', (_what, change, reason) => {
    const next = workload('Deployment', 'web:2');
    change(next);
    expect(expectDecision(mutate(request(workload('Deployment'), next), config, now))).toMatchObject({ type: 'allow', reason });
  });

  it('a workload annotated inplace-gate.dev/rollout: recreate', () => {
    const a = { 'inplace-gate.dev/rollout': 'recreate' };
    expect(expectDecision(mutate(request(workload('Deployment', 'web:1', {}, a), workload('Deployment', 'web:2', {}, a)), config, now)).reason).toBe('rollout-recreate');
  });

  it('a Deployment the user paused', () => {
    expect(expectDecision(mutate(request(workload('Deployment', 'web:1', { paused: true }), workload('Deployment', 'web:2', { paused: true })), config, now)).reason).toBe('user-paused');
  });

  it('a change that is not an image change (replicas)', () => {
    expect(expectDecision(mutate(request(workload('Deployment'), workload('Deployment', 'web:1', { replicas: 9 })), config, now)).reason).toBe('no-image-change');
  });

  it('a template opted out, a system namespace, the watcher', () => {
    const out = workload('Deployment', 'web:2');
    out.spec.template.metadata = { labels: { app: 'web', 'inplace-gate.dev/enabled': 'false' } };
    const outOld = workload('Deployment');
    outOld.spec.template.metadata = out.spec.template.metadata;
    expect(expectDecision(mutate(request(outOld, out), config, now)).reason).toBe('opted-out');
    expect(expectDecision(mutate(request(workload('Deployment'), workload('Deployment', 'web:2'), { namespace: 'kube-system' }), config, now)).reason).toBe('excluded-namespace');
    expect(expectDecision(mutate(request(workload('Deployment'), workload('Deployment', 'web:2'), { userInfo: { username: 'system:serviceaccount:inplace-gate:inplace-gate-watcher' } }), config, now)).reason).toBe('watcher');
  });
});

describe('a Deployment whose maxUnavailable resolves to 0 rolls in place with surge pods first (never below native capacity)', () => {
  it.each([
    ['1 replica, the default 25%/25%', { replicas: 1, strategy: { type: 'RollingUpdate', rollingUpdate: { maxUnavailable: '25%', maxSurge: '25%' } } }, 1],
    ['3 replicas, no rollingUpdate given', { replicas: 3, strategy: { type: 'RollingUpdate' } }, 1],
    ['5 replicas, maxUnavailable 0 / maxSurge 2', { replicas: 5, strategy: { type: 'RollingUpdate', rollingUpdate: { maxUnavailable: 0, maxSurge: 2 } } }, 2],
  ])('%s: held, and the client is told about the surge', (_what, spec, surge) => {
    const { decision, after } = stored(workload('Deployment', 'web:1', spec), workload('Deployment', 'web:2', spec));
    expect(decision.reason).toBe('rollout-held');
    expect(after.spec.paused).toBe(true);
    expect(decision.warnings[0]).toContain(`maxUnavailable is 0, so ${String(surge)} surge pod(s) on the new images come up first and go at the end`);
  });

  it('4 replicas with the default strategy, and a Recreate Deployment, roll in place', () => {
    const four = { replicas: 4, strategy: { type: 'RollingUpdate', rollingUpdate: { maxUnavailable: '25%', maxSurge: '25%' } } };
    expect(stored(workload('Deployment', 'web:1', four), workload('Deployment', 'web:2', four)).after.spec.paused).toBe(true);
    const recreate = { replicas: 1, strategy: { type: 'Recreate' } };
    expect(stored(workload('Deployment', 'web:1', recreate), workload('Deployment', 'web:2', recreate)).after.spec.paused).toBe(true);
  });
});

describe('kubectl rollout resume while inplace-gate holds the Deployment paused', () => {
  const held = () => stored(workload('Deployment'), workload('Deployment', 'web:2')).after;

  it('is refused, with what to do instead (roll back in place, or finish natively)', () => {
    const before = held();
    const resumed = { ...before, spec: { ...before.spec, paused: false } };
    const decision = mutate(request(before, resumed, { userInfo: { username: 'alice' } }), config, now);
    expect(decision).toMatchObject({ type: 'deny', reason: 'rollout-held', code: 409 });
    if (decision.type !== 'deny') return;
    expect(decision.message).toContain('deployment/web is paused by inplace-gate');
    expect(decision.message).toContain('app=web:2');
    expect(decision.message).toContain('kubectl set image deployment/web');
    expect(decision.message).toContain('kubectl annotate deployment/web inplace-gate.dev/rollout=recreate');
  });

  it('a resume of a Deployment the user paused, or one that drops the rollout state with it, goes through', () => {
    const paused = workload('Deployment', 'web:1', { paused: true });
    expect(mutate(request(paused, workload('Deployment', 'web:1', { paused: false })), config, now).type).toBe('allow');
    const before = held();
    const { [ROLLOUT_STATE_ANNOTATION]: _state, ...rest } = before.metadata.annotations ?? {};
    const released = { ...before, metadata: { ...before.metadata, annotations: rest }, spec: { ...before.spec, paused: false } };
    expect(mutate(request(before, released), config, now).type).toBe('allow');
  });
});

describe('a workload the rules cannot read is a 400 naming the field, never a crash (found by fuzzing)', () => {
  const broken = (edit: (w: Workload) => void) => {
    const next = workload('Deployment', 'web:2');
    edit(next);
    return mutate(request(workload('Deployment'), next), config, now);
  };
  it.each([
    ['a template container that is not an object', (w: Workload) => { (w.spec.template.spec.containers as unknown[]).push(null); }, 'request.object.spec.template.spec.containers[2] must be an object'],
    ['initContainers that are not a list', (w: Workload) => { (w.spec.template.spec as unknown as Record<string, unknown>).initContainers = 5; }, 'request.object.spec.template.spec.initContainers must be a list'],
    ['a template that is not an object', (w: Workload) => { (w.spec as Record<string, unknown>).template = 'pod'; }, 'request.object.spec.template must be an object'],
    ['replicas that are not an integer', (w: Workload) => { (w.spec as Record<string, unknown>).replicas = '3'; }, 'request.object.spec.replicas must be an integer'],
    ['a partition that is not an integer', (w: Workload) => { w.spec.updateStrategy = { rollingUpdate: { partition: '1' as unknown as number } }; }, 'request.object.spec.updateStrategy.rollingUpdate.partition must be an integer'],
  ])('%s', (_, edit, message) => {
    expect(broken(edit)).toEqual({ type: 'invalid', message: `request.object is not a Deployment: ${message}` });
  });
});
