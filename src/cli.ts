// inplace-gate's command line: `webhook`, `watcher`, `start`.

import { runWebhook } from './webhook/run.ts';
import { runWatcher } from './watcher/run.ts';
import { startLocal } from './local.ts';
import { runCerts } from './certs-run.ts';
import { renderedManifests, writeManifests } from './manifests.ts';
import { SettingsError, loadSettings, settingsHelp } from './settings.ts';
import { ClusterTargetError, startTarget } from './core/cluster-target.ts';
import { describeKubeConfig } from './kube/client.ts';
import { StartupError } from './startup-error.ts';

const USAGE = `Usage: inplace-gate <command> [flags]

Commands:
  webhook    the HTTPS admission webhook (POST /mutate, /validate; GET /healthz, /readyz, /metrics)
  watcher    drives InPlaceUpdateReady through each image change (needs a cluster: KUBECONFIG or in-cluster)
  certs      self-managed certificates: a Secret shared by the webhook replicas, the caBundle of both
             webhook configurations, files in --cert-dir; once, or with --watch as a sidecar
  manifests  print the webhook configurations the manifests ship (--write: regenerate manifests/)
  start      the main job: webhook and watcher together, on a local real control plane it starts (or
             reuses), with a demo namespace; an exported KUBECONFIG is ignored. With --attach: against
             the cluster of --kubeconfig, else KUBECONFIG, else in-cluster (printed first)

Flags (each also read from its environment variable):
${settingsHelp()}
`;

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  if (command === undefined || command === '--help' || command === '-h' || command === 'help' || rest.includes('--help')) {
    process.stdout.write(USAGE);
    return command === undefined ? 2 : 0;
  }
  switch (command) {
    case 'webhook':
      return serveUntilSignal(await runWebhook(loadSettings(rest, process.env)));
    case 'watcher':
      return serveUntilSignal(await runWatcher(loadSettings(rest, process.env)));
    case 'certs': {
      const watch = rest.includes('--watch');
      const settings = loadSettings(rest.filter((a) => a !== '--watch'), process.env);
      const abort = new AbortController();
      const stop = () => { abort.abort(); };
      process.once('SIGTERM', stop).once('SIGINT', stop);
      await runCerts(settings, watch, abort.signal);
      return 0;
    }
    case 'manifests': {
      const write = rest.includes('--write');
      const settings = loadSettings(rest.filter((a) => a !== '--write'), process.env);
      if (write) {
        for (const file of await writeManifests(settings)) process.stdout.write(`wrote ${file}\n`);
      } else {
        process.stdout.write(renderedManifests(settings).map((f) => f.content).join('---\n'));
      }
      return 0;
    }
    case 'start': {
      const attach = rest.includes('--attach');
      const settings = loadSettings(rest.filter((a) => a !== '--attach'), process.env);
      const target = startTarget(attach, settings.watcher.kubeconfig, process.env);
      if (target.kind === 'local') {
        if (target.ignored !== undefined) {
          process.stderr.write(`inplace-gate: ignoring ${target.ignored}: npm start runs on its own local cluster (--attach to run against that one)\n`);
        }
        // The whole product on a local real control plane.
        const local = await startLocal(settings);
        await untilSignal();
        await local.stop();
        return 0;
      }
      process.stderr.write(`inplace-gate: attaching (${target.reason}) to ${describeKubeConfig(target.kubeconfig)}\n`);
      const attached = { ...settings, watcher: { ...settings.watcher, kubeconfig: target.kubeconfig } };
      const webhook = await runWebhook(attached);
      const watcher = await runWatcher(attached);
      process.stderr.write(
        'inplace-gate: webhook and watcher running against that cluster. The webhook configurations are not ' +
          'registered from here: install them from manifests/ (kubectl apply -k), pointing at a reachable webhook.\n',
      );
      await untilSignal();
      await Promise.all([webhook.stop(), watcher.stop()]);
      return 0;
    }
    default:
      process.stderr.write(`inplace-gate: unknown command "${command}"\n\n${USAGE}`);
      return 2;
  }
}

/** Runs until SIGINT or SIGTERM, then stops what was started. */
async function serveUntilSignal(running: { stop(): Promise<void> }): Promise<number> {
  await untilSignal();
  await running.stop();
  return 0;
}

function untilSignal(): Promise<NodeJS.Signals> {
  return new Promise((resolve) => {
    const done = (signal: NodeJS.Signals) => {
      process.off('SIGINT', done).off('SIGTERM', done);
      resolve(signal);
    };
    process.once('SIGINT', done).once('SIGTERM', done);
  });
}

main(process.argv.slice(2)).then(
  (code) => { process.exitCode = code; },
  (err: unknown) => {
    const known = err instanceof SettingsError || err instanceof ClusterTargetError || err instanceof StartupError;
    const message = known ? err.message : err instanceof Error ? (err.stack ?? err.message) : String(err);
    process.stderr.write(`inplace-gate: ${message}\n`);
    // A usage error (an unknown flag, a bad value) is 2, as for an unknown command.
    const code = err instanceof SettingsError ? 2 : 1;
    process.exitCode = code;
    // What was started has been stopped; should anything still hold the event loop, exit anyway.
    setTimeout(() => { process.exit(code); }, 2000).unref();
  },
);
