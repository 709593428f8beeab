// The baseline of bench/scale.ts: the same pods (the managed label) held by a
// bare @kubernetes/client-node informer, as a Node controller would write it
// (one unpaged list, then a watch; whole objects, as the library's model
// classes). Prints one JSON line when the cache is filled, then idles until killed.
//   node bench/scale-informer.ts KUBECONFIG LABEL_SELECTOR

import { CoreV1Api, makeInformer, type V1Pod } from '@kubernetes/client-node';
import { loadKubeConfig } from '../src/kube/client.ts';

const [kubeconfig, labelSelector] = process.argv.slice(2);
const kc = loadKubeConfig(kubeconfig);
const core = kc.makeApiClient(CoreV1Api);
const started = performance.now();
const informer = makeInformer<V1Pod>(kc, '/api/v1/pods', () => core.listPodForAllNamespaces({ labelSelector: labelSelector ?? '' }), labelSelector);
informer.on('error', (err: unknown) => { console.error(`informer error: ${String(err)}`); });
await informer.start();
console.log(JSON.stringify({ synced: true, pods: informer.list().length, ms: Math.round(performance.now() - started) }));
setInterval(() => undefined, 1 << 30);
