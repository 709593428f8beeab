// `npm start` with no cluster configured: the whole product on a local real
// control plane. Brings the cluster up (building it on first use), runs the
// webhook and the watcher (under the watcher's own identity), registers the
// webhook configurations built by the same code as the shipped manifests,
// opts in a `demo` namespace with a small Deployment and Service, says what
// to type next, and on Ctrl-C stops what it started.

import { execFile, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { pino } from 'pino';
import { webhookConfigurations } from './kube/webhook-configurations.ts';
import { printer } from './out.ts';
import type { Settings } from './settings.ts';
import { runWatcher, type RunningWatcher } from './watcher/run.ts';
import { runWebhook, type RunningWebhook } from './webhook/run.ts';

const run = promisify(execFile);
const repo = resolve(import.meta.dirname, '..');
const cluster = join(repo, 'test/cluster/cluster.sh');
const DEMO_IMAGE = 'registry.k8s.io/pause:3.10';
const DEMO_IMAGE_NEXT = 'registry.k8s.io/pause:3.10.1';

export interface LocalRun {
  stop(): Promise<void>;
}

let print: ((line?: string) => void) | undefined;
/** Made on first use: only `npm start` keeps going past a closed stdout. */
function say(line?: string): void {
  print ??= printer(process.stdout);
  print(line);
}

async function clusterUp(clusterDir: string): Promise<boolean> {
  const env = { ...process.env, CLUSTER_DIR: clusterDir };
  const running = await run('bash', [cluster, 'status'], { env }).then(() => true, () => false);
  if (running) return false;
  say('Starting a local control plane (etcd, kube-apiserver, controller-manager, scheduler, 2 hollow kubelets)...');
  const code = await new Promise<number | null>((ok) => {
    spawn('bash', [cluster, 'up'], { env, stdio: ['ignore', 'ignore', 'inherit'] }).on('exit', ok);
  });
  if (code !== 0) throw new Error(`the local cluster did not come up (exit ${code}); logs in ${clusterDir}/logs`);
  return true;
}

export async function startLocal(settings: Settings): Promise<LocalRun> {
  const clusterDir = process.env.CLUSTER_DIR ?? join(repo, '.cluster');
  const startedCluster = await clusterUp(clusterDir);
  const kubeconfig = join(clusterDir, 'kubeconfig');
  const kubectlBin = join(clusterDir, 'bin', 'kubectl');
  const kubectl = (args: string[], input?: string) => {
    const child = run(kubectlBin, ['--kubeconfig', kubeconfig, ...args]);
    if (input !== undefined) child.child.stdin?.end(input);
    return child;
  };

  await kubectl(['apply', '--server-side', '--force-conflicts', '-f', join(repo, 'manifests/base/namespace.yaml'), '-f', join(repo, 'manifests/base/watcher-rbac.yaml')]);

  const local = { ...settings, host: '127.0.0.1' };
  // The product's JSON logs go to a file, so the lines printed for a person stay readable.
  const logFile = join(clusterDir, 'logs', 'inplace-gate.log');
  const logTo = pino.destination({ dest: logFile, mkdir: true, append: true, sync: false });
  let webhook: RunningWebhook | undefined;
  let watcher: RunningWatcher | undefined;
  try {
    webhook = await runWebhook(local, logTo);
    const caFile = webhook.caFile ?? join(settings.certDir, 'ca.crt');
    const caBundle = (await readFile(caFile)).toString('base64');
    const { mutating, validating } = webhookConfigurations({
      clientConfig: (path) => ({ url: `https://127.0.0.1:${settings.port}${path}`, caBundle }),
      scope: 'opt-in',
      watcherUsers: settings.admission.watcher.users,
    });
    await kubectl(['apply', '--server-side', '--force-conflicts', '-f', '-'], JSON.stringify({ apiVersion: 'v1', kind: 'List', items: [mutating, validating] }));

    const watcherKubeconfig = join(clusterDir, 'kubeconfigs', 'watcher.kubeconfig');
    watcher = await runWatcher({ ...local, watcher: { ...local.watcher, kubeconfig: existsSync(watcherKubeconfig) ? watcherKubeconfig : kubeconfig } }, logTo);

    await kubectl(['apply', '--server-side', '--force-conflicts', '-f', '-'], JSON.stringify(demoManifests()));
  } catch (err) {
    await watcher?.stop();
    await webhook?.stop();
    if (startedCluster) await run('bash', [cluster, 'down'], { env: { ...process.env, CLUSTER_DIR: clusterDir } });
    logTo.end();
    throw err;
  }

  say();
  say('inplace-gate is running: webhook on https://127.0.0.1:9443, watcher leading, namespace "demo" opted in.');
  say(`Try it (in another terminal):`);
  say();
  say(`  export KUBECONFIG=${kubeconfig} PATH=${join(clusterDir, 'bin')}:$PATH`);
  say(`  kubectl -n demo get pods -o wide                    # 3 pods of Deployment web, Ready`);
  say(`  POD=$(kubectl -n demo get pods -o name | head -1)`);
  say(`  kubectl -n demo get $POD -w -o custom-columns='NAME:.metadata.name,GATE:.status.conditions[?(@.type=="InPlaceUpdateReady")].status,READY:.status.conditions[?(@.type=="Ready")].status,IMAGE:.spec.containers[0].image,RESTARTS:.status.containerStatuses[0].restartCount' &`);
  say(`  kubectl -n demo set image $POD app=${DEMO_IMAGE_NEXT}     # one pod: GATE goes False, then the image, a restart, True`);
  say(`  kubectl -n demo get events.events.k8s.io --field-selector reportingController=inplace-gate.dev/watcher`);
  say();
  say(`  kubectl -n demo set image deployment/web app=${DEMO_IMAGE_NEXT}   # the whole Deployment, in place: same pods, one at a time`);
  say(`  kubectl -n demo rollout status deployment/web; kubectl -n demo get pods   # same names, RESTARTS 1`);
  say(`  kubectl -n demo patch $POD --type=json -p '[{"op":"add","path":"/spec/activeDeadlineSeconds","value":60}]'   # denied, naming the field`);
  say();
  say(`Metrics: curl -sk https://127.0.0.1:9443/metrics; ${watcher.healthUrl ? `curl -s ${watcher.healthUrl}/metrics` : ''}`);
  say(`Logs of the webhook and the watcher (JSON lines): ${logFile}; of the cluster: ${join(clusterDir, 'logs')}.`);
  say(`Ctrl-C stops everything ${startedCluster ? 'npm start started, the cluster included' : 'npm start started (the cluster was already running and stays)'}.`);

  return {
    async stop() {
      say('Stopping...');
      await watcher.stop();
      await webhook.stop();
      if (startedCluster) {
        await run('bash', [cluster, 'down'], { env: { ...process.env, CLUSTER_DIR: clusterDir } });
      } else {
        await kubectl(['delete', 'mutatingwebhookconfiguration,validatingwebhookconfiguration', 'inplace-gate', '--ignore-not-found']).catch(() => undefined);
      }
      logTo.end();
    },
  };
}

function demoManifests() {
  const labels = { app: 'web' };
  return {
    apiVersion: 'v1',
    kind: 'List',
    items: [
      { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'demo', labels: { 'inplace-gate.dev/enabled': 'true' } } },
      {
        apiVersion: 'apps/v1',
        kind: 'Deployment',
        metadata: { name: 'web', namespace: 'demo' },
        spec: {
          replicas: 3,
          selector: { matchLabels: labels },
          template: {
            metadata: { labels, annotations: { 'inplace-gate.dev/grace-period-seconds': '5' } },
            spec: {
              terminationGracePeriodSeconds: 5,
              containers: [{ name: 'app', image: DEMO_IMAGE, readinessProbe: { exec: { command: ['true'] }, periodSeconds: 2 } }],
            },
          },
        },
      },
      { apiVersion: 'v1', kind: 'Service', metadata: { name: 'web', namespace: 'demo' }, spec: { selector: labels, ports: [{ port: 80, targetPort: 8080 }] } },
    ],
  };
}
