import { describe, expect, it } from 'vitest';
import { FAILURE_REASONS, containerProgress, type ContainerProgress, type ProofInput } from '../../src/core/completion.ts';
import type { ContainerStatus, PodStatus } from '../../src/core/kube-types.ts';
import type { ContainerRecord } from '../../src/core/state.ts';

// One changed container, `app`, written from 1.4.2 to 1.5.0 at pod generation 2.
const WEB = 'registry.example.com:5000/shop/web';
const OLD = `${WEB}:1.4.2`;
const NEW = `${WEB}:1.5.0`;
const OLD_DIGEST = `sha256:${'4f'.repeat(32)}`;
const NEW_DIGEST = `sha256:${'9c'.repeat(32)}`;
const OLD_IMAGE_ID = `${WEB}@${OLD_DIGEST}`;
const NEW_IMAGE_ID = `${WEB}@${NEW_DIGEST}`;
const OLD_CONTAINER = `containerd://${'3e'.repeat(32)}`;
const NEW_CONTAINER = `containerd://${'b7'.repeat(32)}`;
const GENERATION = 2;
/** When the watcher wrote the images: after the old container started, before the new one. */
const WRITTEN_AT = '2026-11-28T11:59:30.418Z';

const before: ContainerRecord = { image: OLD, containerID: OLD_CONTAINER, imageID: OLD_IMAGE_ID, restartCount: 0 };

/** The old container, as the kubelet reported it when the images were written. */
const oldRunning: ContainerStatus = {
  name: 'app',
  image: OLD,
  imageID: OLD_IMAGE_ID,
  containerID: OLD_CONTAINER,
  ready: true,
  started: true,
  restartCount: 0,
  state: { running: { startedAt: '2026-11-28T10:00:05Z' } },
};

/** The kubelet killed the old container for the new spec and started another one from the new image. */
const newRunning: ContainerStatus = {
  name: 'app',
  image: NEW,
  imageID: NEW_IMAGE_ID,
  containerID: NEW_CONTAINER,
  ready: true,
  started: true,
  restartCount: 1,
  state: { running: { startedAt: '2026-11-28T11:59:41Z' } },
  lastState: { terminated: { reason: 'Completed', exitCode: 0 } },
};

const podStatus = (observedGeneration?: number): PodStatus => ({
  phase: 'Running',
  ...(observedGeneration === undefined ? {} : { observedGeneration }),
});

function input(status: ContainerStatus | undefined, extra: Partial<ProofInput> = {}): ProofInput {
  return { name: 'app', requested: NEW, before, status, podStatus: podStatus(GENERATION), generation: GENERATION, writtenAt: WRITTEN_AT, ...extra };
}

describe('containerProgress: done means proven', () => {
  it.each<[string, ProofInput]>([
    ['a new container from the new spec, running and ready, observedGeneration at the written generation', input(newRunning)],
    ['observedGeneration past the written generation', input(newRunning, { podStatus: podStatus(GENERATION + 3) })],
    [
      'a new tag on the same image ID, status.image names the old tag: the container started after the write',
      input({ ...newRunning, image: OLD, imageID: OLD_IMAGE_ID }),
    ],
    [
      'started in the same second as the write (status times have whole seconds)',
      input({ ...newRunning, image: OLD, imageID: OLD_IMAGE_ID, state: { running: { startedAt: '2026-11-28T11:59:30Z' } } }),
    ],
    ['the same containerID with a higher restartCount counts as restarted', input({ ...newRunning, containerID: OLD_CONTAINER })],
    ['no containerID in status but a higher restartCount counts as restarted', input({ ...newRunning, containerID: '' })],
    // Clusters without status.observedGeneration (before Kubernetes 1.34).
    ['no observedGeneration: the imageID changed', input(newRunning, { podStatus: podStatus() })],
    ['no observedGeneration and no generation recorded: the imageID changed', input(newRunning, { podStatus: podStatus(), generation: undefined })],
    ['the state records no generation: observedGeneration is not used, the imageID changed', input(newRunning, { generation: undefined })],
    [
      'no observedGeneration: the spec pins a digest and the imageID carries it (same content, so same imageID as before)',
      input({ ...newRunning, image: OLD, imageID: OLD_IMAGE_ID }, { requested: `${WEB}@${OLD_DIGEST}`, podStatus: podStatus() }),
    ],
    [
      'no observedGeneration: a new tag on the same image ID, status.image names the requested tag (must not get stuck)',
      input({ ...newRunning, imageID: OLD_IMAGE_ID }, { podStatus: podStatus() }),
    ],
    [
      'no observedGeneration: status.image names the requested image in its fully qualified form',
      input(
        { ...newRunning, image: 'docker.io/library/nginx:1.27.3', imageID: `docker.io/library/nginx@${OLD_DIGEST}` },
        { requested: 'nginx:1.27.3', before: { ...before, image: 'nginx:1.27.2', imageID: `docker.io/library/nginx@${OLD_DIGEST}` }, podStatus: podStatus() },
      ),
    ],
    [
      'no baseline (it already ran the requested image when written): running, ready, observedGeneration caught up',
      input({ ...oldRunning, image: NEW, imageID: NEW_IMAGE_ID }, { before: undefined }),
    ],
    [
      'no baseline and no observedGeneration: status.image is the requested image',
      input({ ...oldRunning, image: NEW, imageID: NEW_IMAGE_ID }, { before: undefined, podStatus: podStatus() }),
    ],
  ])('%s -> done', (_what, proof) => {
    expect(containerProgress(proof)).toEqual({ state: 'done' });
  });
});

describe('containerProgress: not proven yet', () => {
  it.each<[string, ProofInput, string]>([
    ['no status for the container yet', input(undefined), 'no status for container app yet'],
    ['the old container still runs (kubelet has not acted)', input(oldRunning, { podStatus: podStatus(1) }), 'container app has not restarted yet'],
    [
      'the kubelet saw the new generation but has not killed the old container yet',
      input(oldRunning),
      'container app has not restarted yet',
    ],
    [
      'the old container, reported with an empty containerID and the same restartCount',
      input({ ...oldRunning, containerID: '' }),
      'container app has not restarted yet',
    ],
    [
      'the new container is being created',
      input({ ...newRunning, containerID: '', imageID: '', ready: false, started: false, restartCount: 0, state: { waiting: { reason: 'ContainerCreating' } } }),
      'container app has not restarted yet',
    ],
    [
      'a new container that is not running yet (waiting on PodInitializing)',
      input({ ...newRunning, ready: false, started: false, state: { waiting: { reason: 'PodInitializing' } } }),
      'container app is not running yet',
    ],
    [
      'a new container that has already terminated',
      input({ ...newRunning, ready: false, started: false, state: { terminated: { reason: 'Error', exitCode: 2 } } }),
      'container app is not running yet',
    ],
    ['a new container running but not ready (readiness probe)', input({ ...newRunning, ready: false }), 'container app is not ready yet'],
    [
      'observedGeneration behind the written generation: a restart from the old spec (a crash)',
      input(newRunning, { podStatus: podStatus(GENERATION - 1) }),
      `container app does not show ${NEW} yet`,
    ],
    [
      'observedGeneration behind wins over a changed imageID',
      input({ ...newRunning, image: OLD }, { podStatus: podStatus(GENERATION - 1) }),
      `container app does not show ${NEW} yet`,
    ],
    [
      'no observedGeneration: a crash restart of the old image (same imageID, old status.image)',
      input({ ...newRunning, image: OLD, imageID: OLD_IMAGE_ID }, { podStatus: podStatus() }),
      `container app does not show ${NEW} yet`,
    ],
    [
      'no observedGeneration: a pinned digest that the imageID does not carry',
      input({ ...newRunning, image: OLD, imageID: OLD_IMAGE_ID }, { requested: `${WEB}@${NEW_DIGEST}`, podStatus: podStatus() }),
      `container app does not show ${WEB}@${NEW_DIGEST} yet`,
    ],
    [
      'no baseline and observedGeneration behind',
      input({ ...oldRunning, image: NEW, imageID: NEW_IMAGE_ID }, { before: undefined, podStatus: podStatus(1) }),
      `container app does not show ${NEW} yet`,
    ],
  ])('%s -> waiting', (_what, proof, why) => {
    expect(containerProgress(proof)).toEqual({ state: 'waiting', why });
  });
});

describe('containerProgress: failures that will not clear up on their own', () => {
  /** After the kill, the kubelet reports the container waiting on the new image: no containerID, no imageID yet. */
  const waitingOnNew = (reason: string, message?: string): ContainerStatus => ({
    name: 'app',
    image: NEW,
    imageID: '',
    ready: false,
    started: false,
    restartCount: 0,
    state: { waiting: { reason, ...(message === undefined ? {} : { message }) } },
    lastState: { terminated: { reason: 'Completed', exitCode: 0 } },
  });

  it.each([
    ['ErrImagePull', `failed to pull and unpack image "${NEW}": not found`],
    ['ImagePullBackOff', `Back-off pulling image "${NEW}"`],
    ['InvalidImageName', `Failed to apply default image tag "${NEW}": invalid reference format`],
    ['ErrImageNeverPull', `Container image "${NEW}" is not present with pull policy of Never`],
    ['CreateContainerConfigError', 'secret "web-db" not found'],
    ['CreateContainerError', 'failed to generate container spec: no command specified'],
    ['RunContainerError', 'failed to start container: exec: "/app": permission denied'],
  ])('%s on the changed container -> failed, with the kubelet message', (reason, message) => {
    expect(containerProgress(input(waitingOnNew(reason, message)))).toEqual({
      state: 'failed',
      reason,
      message: `container app: ${reason}: ${message}`,
    });
  });

  it('CrashLoopBackOff of the new container (it started, crashed and is backing off) -> failed', () => {
    const crashLooping: ContainerStatus = {
      ...newRunning,
      ready: false,
      started: false,
      restartCount: 3,
      state: { waiting: { reason: 'CrashLoopBackOff', message: 'back-off 40s restarting failed container=app pod=web-7d9c6b5f4-x2x8q_shop(0b3c6f7e-6a55-4c5e-8f0e-2c1d9b8a7f61)' } },
      lastState: { terminated: { reason: 'Error', exitCode: 1 } },
    };
    expect(containerProgress(input(crashLooping))).toEqual({
      state: 'failed',
      reason: 'CrashLoopBackOff',
      message: `container app: CrashLoopBackOff: ${crashLooping.state?.waiting?.message ?? ''}`,
    });
  });

  it('a failure reason without a message names only the reason', () => {
    expect(containerProgress(input(waitingOnNew('ImagePullBackOff')))).toEqual({
      state: 'failed',
      reason: 'ImagePullBackOff',
      message: 'container app: ImagePullBackOff',
    });
  });

  it('the failure list covers the four reasons the design names', () => {
    expect(FAILURE_REASONS).toEqual(expect.arrayContaining(['ErrImagePull', 'ImagePullBackOff', 'CrashLoopBackOff', 'CreateContainerConfigError']));
  });

  it.each(['ContainerCreating', 'PodInitializing'])('%s is not a failure', (reason) => {
    expect(containerProgress(input(waitingOnNew(reason)))).toEqual({ state: 'waiting', why: 'container app has not restarted yet' });
  });
});

// The kubelet publishes the new observedGeneration in its first status after it
// receives the spec, before it acts, with the old container statuses as they are.
describe('containerProgress: the kubelet first reports the new generation with the old container', () => {
  /** The old container had crash-looped five times when the images were written. */
  const crashingBefore: ContainerRecord = { image: OLD, containerID: OLD_CONTAINER, imageID: OLD_IMAGE_ID, restartCount: 5 };
  const OLD_CRASH = `containerd://${'5a'.repeat(32)}`;
  const oldCrashLooping: ContainerStatus = {
    name: 'app',
    image: OLD,
    imageID: OLD_IMAGE_ID,
    containerID: OLD_CRASH,
    ready: false,
    started: false,
    restartCount: 6,
    state: { waiting: { reason: 'CrashLoopBackOff', message: 'back-off 2m40s restarting failed container=app pod=web-0_shop(0b3c6f7e)' } },
    lastState: { terminated: { reason: 'Error', exitCode: 1, startedAt: '2026-11-28T11:57:02Z', finishedAt: '2026-11-28T11:57:03Z', containerID: OLD_CRASH } },
  };

  it.each<[string, ProofInput, ContainerProgress]>([
    [
      'the old container crash-looping (the bug the new image fixes): not a failed new one',
      input(oldCrashLooping, { before: crashingBefore }),
      { state: 'waiting', why: `container app fails on its old spec (CrashLoopBackOff); waiting for the kubelet to act on ${NEW}` },
    ],
    [
      'the old container backing off on its old image: not a failed new one',
      input(
        { ...oldRunning, containerID: '', imageID: '', ready: false, started: false, state: { waiting: { reason: 'ImagePullBackOff', message: `Back-off pulling image "${OLD}"` } } },
        { before: { image: OLD, restartCount: 0 } },
      ),
      { state: 'waiting', why: `container app fails on its old spec (ImagePullBackOff); waiting for the kubelet to act on ${NEW}` },
    ],
    [
      'the old container restarted on its own before the write, running and ready again: not done',
      input({ ...oldRunning, containerID: OLD_CRASH, restartCount: 1, state: { running: { startedAt: '2026-11-28T11:59:12Z' } } }),
      { state: 'waiting', why: `container app does not show ${NEW} yet` },
    ],
    [
      'an old crash restart in CreateContainerConfigError before the write (a secret deleted earlier): not a failed new one',
      input({
        ...oldRunning,
        ready: false,
        started: false,
        state: { waiting: { reason: 'CreateContainerConfigError', message: 'secret "web-db" not found' } },
        lastState: { terminated: { reason: 'Error', exitCode: 1, startedAt: '2026-11-28T10:00:05Z', finishedAt: '2026-11-28T11:40:00Z', containerID: OLD_CONTAINER } },
      }),
      { state: 'waiting', why: `container app fails on its old spec (CreateContainerConfigError); waiting for the kubelet to act on ${NEW}` },
    ],
  ])('%s', (_what, proof, expected) => {
    expect(containerProgress(proof)).toEqual(expected);
  });

  /** After the kill the kubelet still describes the old, exited container, with the start failure as its state. */
  const afterKill = (reason: string, message: string): ContainerStatus => ({
    ...oldRunning,
    ready: false,
    started: false,
    state: { waiting: { reason, message } },
    lastState: { terminated: { reason: 'Error', exitCode: 137, startedAt: '2026-11-28T10:00:05Z', finishedAt: '2026-11-28T11:59:31Z', containerID: OLD_CONTAINER } },
  });

  it.each<[string, ProofInput, string]>([
    ['ImagePullBackOff naming the requested image', input(afterKill('ImagePullBackOff', `Back-off pulling image "${NEW}"`)), 'ImagePullBackOff'],
    [
      'ErrImagePull naming the requested image as containerd qualifies it',
      input(afterKill('ErrImagePull', 'rpc error: code = NotFound desc = failed to pull and unpack image "docker.io/library/nginx:1.28.9": not found'), {
        requested: 'nginx:1.28.9',
      }),
      'ErrImagePull',
    ],
    ['CreateContainerConfigError once the old container was stopped after the write', input(afterKill('CreateContainerConfigError', 'secret "web-db" not found')), 'CreateContainerConfigError'],
    [
      'CrashLoopBackOff of a container started after the write (a new tag on the same image ID, old tag in status)',
      input({
        ...oldCrashLooping,
        lastState: { terminated: { reason: 'Error', exitCode: 1, startedAt: '2026-11-28T11:59:33Z', finishedAt: '2026-11-28T11:59:34Z', containerID: OLD_CRASH } },
      }),
      'CrashLoopBackOff',
    ],
  ])('the kubelet acted and the new spec fails: %s -> failed', (_what, proof, reason) => {
    expect(containerProgress(proof)).toMatchObject({ state: 'failed', reason });
  });

  it.each<[string, string, Partial<ProofInput>]>([
    ['CRI-O names it as a docker:// source', `initializing source docker://${NEW}: reading manifest 1.5.0 in ${WEB}: manifest unknown`, {}],
    ['the kubelet says the registry is unavailable', `image pull failed for ${NEW} because the registry is unavailable: dial tcp: i/o timeout`, {}],
    ['the kubelet adds the default tag', 'Back-off pulling image "nginx:latest"', { requested: 'nginx', before: { ...before, image: 'nginx:1.27' } }],
  ])('a pull failure whose message names the requested image (%s) -> failed', (_what, message, extra) => {
    expect(containerProgress(input(afterKill('ImagePullBackOff', message), extra))).toMatchObject({ state: 'failed', reason: 'ImagePullBackOff' });
  });

  it('a longer reference in the message is another image: web:1.5 is not named by "web:1.5.0"', () => {
    const rollback = input(afterKill('ImagePullBackOff', `Back-off pulling image "${WEB}:1.5.0"`), { requested: `${WEB}:1.5`, before: { ...before, image: NEW } });
    expect(containerProgress(rollback)).toMatchObject({ state: 'waiting' });
  });

  it('a message that names no image: the status must show the requested image', () => {
    expect(containerProgress(input(afterKill('ErrImagePull', 'manifest unknown')))).toMatchObject({ state: 'waiting' });
    expect(containerProgress(input({ ...afterKill('ErrImagePull', 'manifest unknown'), image: NEW, imageID: '' }))).toMatchObject({ state: 'failed', reason: 'ErrImagePull' });
  });

  it('the same start failure with observedGeneration still behind is the old spec failing', () => {
    expect(containerProgress(input(afterKill('ImagePullBackOff', `Back-off pulling image "${NEW}"`), { podStatus: podStatus(GENERATION - 1) }))).toMatchObject({
      state: 'waiting',
    });
  });

  it('without observedGeneration, a start after the write alone does not prove the new spec (a crash restart may precede the kubelet seeing it)', () => {
    expect(containerProgress(input({ ...newRunning, image: OLD, imageID: OLD_IMAGE_ID }, { podStatus: podStatus() }))).toEqual({
      state: 'waiting',
      why: `container app does not show ${NEW} yet`,
    });
  });

  it('a whole kubelet sequence: old crash loop at the new generation, the kill, the new container', () => {
    const sequence: [ContainerStatus, PodStatus, ContainerProgress['state']][] = [
      [oldCrashLooping, podStatus(GENERATION - 1), 'waiting'],
      [oldCrashLooping, podStatus(GENERATION), 'waiting'], // first status for the new generation: old statuses
      [{ ...oldCrashLooping, state: { waiting: { reason: 'ContainerCreating' } } }, podStatus(GENERATION), 'waiting'],
      [{ ...newRunning, restartCount: 7, ready: false }, podStatus(GENERATION), 'waiting'],
      [{ ...newRunning, restartCount: 7 }, podStatus(GENERATION), 'done'],
    ];
    expect(sequence.map(([status, pod]) => containerProgress(input(status, { before: crashingBefore, podStatus: pod })).state)).toEqual(sequence.map(([, , s]) => s));
  });
});
