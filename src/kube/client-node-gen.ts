// All that @kubernetes/client-node's KubeConfig (config.js) takes from the generated API
// (gen/index.js): see slim-client-node.ts.
export { createConfiguration } from '@kubernetes/client-node/dist/gen/configuration.js';
export { ServerConfiguration } from '@kubernetes/client-node/dist/gen/servers.js';
