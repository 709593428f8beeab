// @kubernetes/client-node's KubeConfig (kubeconfig files, in-cluster tokens, exec plugins) without
// its generated API. config.js imports two functions from gen/index.js, which loads every model and
// API class of the library: ~45 MiB of the watcher's RSS, for classes it never uses (its requests
// are raw JSON, src/kube/client.ts). This resolve hook hands config.js a module with just those two
// (client-node-gen.ts). The CLI registers it before it loads a command; where it is not registered
// (tests, benches) the library loads as a whole and works the same.

import { registerHooks } from 'node:module';

const GEN = new URL('./client-node-gen.ts', import.meta.url).href;

export function slimClientNode(): void {
  registerHooks({
    resolve(specifier, context, next) {
      if (specifier === './gen/index.js' && context.parentURL?.endsWith('/@kubernetes/client-node/dist/config.js') === true) return { url: GEN, shortCircuit: true };
      return next(specifier, context);
    },
  });
}
