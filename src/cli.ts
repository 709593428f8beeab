// inplace-gate's command line: `webhook`, `watcher`, `start`.

import { runWebhook } from './webhook/run.ts';
import { SettingsError, loadSettings, settingsHelp } from './settings.ts';

const USAGE = `Usage: inplace-gate <command> [flags]

Commands:
  webhook    the HTTPS admission webhook (POST /mutate, /validate; GET /healthz, /readyz, /metrics)
  start      the main job: for now the webhook, as \`webhook\`

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
    case 'start': {
      const settings = loadSettings(rest, process.env);
      const webhook = await runWebhook(settings);
      await untilSignal();
      await webhook.stop();
      return 0;
    }
    default:
      process.stderr.write(`inplace-gate: unknown command "${command}"\n\n${USAGE}`);
      return 2;
  }
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
    const message = err instanceof SettingsError ? err.message : err instanceof Error ? (err.stack ?? err.message) : String(err);
    process.stderr.write(`inplace-gate: ${message}\n`);
    process.exitCode = 1;
  },
);
