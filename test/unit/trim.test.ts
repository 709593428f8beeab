import { describe, expect, it } from 'vitest';
import { trimPod } from '../../src/watcher/trim.ts';
import { buildPod } from '../support/pods.ts';

describe('trimPod', () => {
  it('keeps the last termination of a container (its start and end are part of the completion proof), drops the rest of lastState', () => {
    const pod = buildPod({});
    const terminated = { reason: 'Error', exitCode: 137, startedAt: '2026-11-28T10:00:05Z', finishedAt: '2026-11-28T11:59:31Z', containerID: 'containerd://3e3e' };
    const status = pod.status?.containerStatuses?.[0];
    if (status === undefined) throw new Error('fixture has no container status');
    status.lastState = { terminated, waiting: { reason: 'ContainerCreating' } };
    expect(trimPod(pod).status?.containerStatuses?.[0]?.lastState).toEqual({ terminated });
  });
});
