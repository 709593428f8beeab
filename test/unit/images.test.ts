import { describe, expect, it } from 'vitest';
import { imageDigest, normalizeImageReference, parseImageReference, sameImageReference } from '../../src/core/images.ts';

const DIGEST = `sha256:${'4f'.repeat(32)}`;

describe('parseImageReference', () => {
  it.each([
    ['nginx', { domain: 'docker.io', path: 'library/nginx' }],
    ['nginx:1.27', { domain: 'docker.io', path: 'library/nginx', tag: '1.27' }],
    ['bitnami/redis:7', { domain: 'docker.io', path: 'bitnami/redis', tag: '7' }],
    ['index.docker.io/library/nginx', { domain: 'docker.io', path: 'library/nginx' }],
    ['registry:5000/app', { domain: 'registry:5000', path: 'app' }],
    ['registry:5000/app:v1', { domain: 'registry:5000', path: 'app', tag: 'v1' }],
    ['localhost/app', { domain: 'localhost', path: 'app' }],
    [`localhost:5000/team/app:v2@${DIGEST}`, { domain: 'localhost:5000', path: 'team/app', tag: 'v2', digest: DIGEST }],
    [`gcr.io/proj/app@${DIGEST}`, { domain: 'gcr.io', path: 'proj/app', digest: DIGEST }],
    ['[::1]:5000/app:1', { domain: '[::1]:5000', path: 'app', tag: '1' }],
  ])('%s', (ref, expected) => {
    expect(parseImageReference(ref)).toEqual(expected);
  });
});

describe('normalizeImageReference', () => {
  it.each([
    ['nginx', 'docker.io/library/nginx:latest'],
    ['docker.io/library/nginx:latest', 'docker.io/library/nginx:latest'],
    ['registry:5000/app', 'registry:5000/app:latest'],
    [`app@${DIGEST}`, `docker.io/library/app@${DIGEST}`],
  ])('%s -> %s', (ref, expected) => {
    expect(normalizeImageReference(ref)).toBe(expected);
  });

  it('tells a tag from a registry port', () => {
    expect(sameImageReference('registry:5000/app', 'registry:5000/app:latest')).toBe(true);
    expect(sameImageReference('registry:5000/app', 'registry/app:5000')).toBe(false);
    expect(sameImageReference('nginx:1.27', 'docker.io/library/nginx:1.27')).toBe(true);
    expect(sameImageReference('nginx:1.27', 'nginx:1.28')).toBe(false);
  });
});

describe('imageDigest', () => {
  it.each([
    [`docker-pullable://nginx@${DIGEST}`, DIGEST],
    [DIGEST, DIGEST],
    [`docker.io/library/nginx@${DIGEST}`, DIGEST],
    ['nginx:1.27', undefined],
    ['registry.k8s.io/pause:3.10', undefined],
  ])('%s', (ref, expected) => {
    expect(imageDigest(ref)).toBe(expected);
  });
});
