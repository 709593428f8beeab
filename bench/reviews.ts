// The reviews the webhook benchmark sends: captured from a real kube-apiserver
// (test/fixtures), so their sizes and shapes are what a cluster sends.

import { readFile } from 'node:fs/promises';
import { join } from 'node:path';

export interface BenchScenario { name: string; path: string; review: unknown }

const fixtures = join(import.meta.dirname, '..', 'test', 'fixtures');

async function fixture(name: string): Promise<unknown> {
  return JSON.parse(await readFile(join(fixtures, name), 'utf8')) as unknown;
}

export async function benchReviews(): Promise<BenchScenario[]> {
  return [
    { name: 'CREATE pod -> /mutate', path: '/mutate', review: await fixture('create-pod.json') },
    { name: 'UPDATE image -> /mutate', path: '/mutate', review: await fixture('update-pod-image.json') },
    { name: 'UPDATE image -> /validate', path: '/validate', review: await fixture('update-pod-image.json') },
  ];
}
