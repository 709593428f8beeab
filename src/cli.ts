// inplace-gate's command line: `webhook`, `watcher`, `certs`, `manifests`, `release`, `start`.

// Each command imports only what it runs: the webhook never calls the API, and loading
// @kubernetes/client-node (and the watcher) with it cost ~60 MiB of RSS and ~1 s of start-up
// (measured with /proc/<pid>/status VmRSS once /healthz answers; see the closing note of this change).
import { SettingsError, loadSettings, settingsHelp } from './settings.ts';
import { ClusterTargetError, startTarget } from './core/cluster-target.ts';
import { StartupError } from './startup-error.ts';
import { slimClientNode } from './kube/slim-client-node.ts';

slimClientNode();

const USAGE = `Usage: inplace-gate <command> [flags]

Commands:
  webhook    the HTTPS admission webhook (POST /mutate, /validate; GET /healthz, /readyz, /metrics)
  watcher    drives InPlaceUpdateReady through each image change (needs a cluster: KUBECONFIG or in-cluster)
  certs      self-managed certificates: a Secret shared by the webhook replicas, the caBundle of both
             webhook configurations, files in --cert-dir; once, or with --watch as a sidecar
  release    hands every in-place rollout back to its native controller and every drained pod its
             InPlaceUpdateReady (before an uninstall or upgrade; as a Helm pre-delete hook): against the
             cluster of --kubeconfig, else KUBECONFIG, else in-cluster (printed first). Safe at any moment
             and idempotent; one line per object it changed
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
    case 'webhook': {
      const settings = loadSettings(rest, process.env);
      const { runWebhook } = await import('./webhook/run.ts');
      return serveUntilSignal(await runWebhook(settings));
    }
    case 'watcher': {
      const settings = loadSettings(rest, process.env);
      const { runWatcher } = await import('./watcher/run.ts');
      return serveUntilSignal(await runWatcher(settings));
    }
    case 'certs': {
      const watch = rest.includes('--watch');
      const settings = loadSettings(rest.filter((a) => a !== '--watch'), process.env);
      const abort = new AbortController();
      const stop = () => { abort.abort(); };
      process.once('SIGTERM', stop).once('SIGINT', stop);
      const { runCerts } = await import('./certs-run.ts');
      await runCerts(settings, watch, abort.signal);
      return 0;
    }
    case 'release': {
      const settings = loadSettings(rest, process.env);
      const [{ KubeClient, describeKubeConfig, loadKubeConfig }, { releaseAll }] = await Promise.all([import('./kube/client.ts'), import('./kube/hand-back.ts')]);
      const path = settings.watcher.kubeconfig;
      let client;
      try {
        process.stderr.write(`inplace-gate: releasing on ${describeKubeConfig(path)}\n`);
        client = await KubeClient.create(loadKubeConfig(path), 'inplace-gate-release');
      } catch (err) {
        throw new StartupError((err as Error).message, { cause: err });
      }
      try {
        return await releaseAll({
          client,
          config: { defaultGraceSeconds: settings.gracePeriodSeconds, progressDeadlineSeconds: settings.watcher.progressDeadlineSeconds },
          out: (line) => { process.stdout.write(`${line}\n`); },
          waitSeconds: settings.watcher.releaseTimeoutSeconds,
        });
      } catch (err) {
        // The cluster's answer (a 403, a webhook's denial) is the message: one line, exit 1.
        throw new StartupError((err as Error).message, { cause: err });
      } finally {
        client.close();
      }
    }
    case 'manifests': {
      const write = rest.includes('--write');
      const settings = loadSettings(rest.filter((a) => a !== '--write'), process.env);
      const { renderedManifests, writeManifests } = await import('./manifests.ts');
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
        const { startLocal } = await import('./local.ts');
        const local = await startLocal(settings);
        await untilSignal();
        await local.stop();
        return 0;
      }
      const [{ describeKubeConfig }, { runWebhook }, { runWatcher }] = await Promise.all([
        import('./kube/client.ts'), import('./webhook/run.ts'), import('./watcher/run.ts'),
      ]);
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
