// Every setting, once: its flag, environment variable, default and help line.
// `--help` and the README's configuration table are both made from this list.

import { hostname } from 'node:os';
import { defaultAdmissionConfig, type AdmissionConfig } from './core/config.ts';
import { DEFAULT_DRAIN_DEADLINE_SECONDS } from './core/drain.ts';
import { DEFAULT_NAMESPACE, watcherUser } from './core/names.ts';

export interface Settings {
  port: number;
  host: string;
  certDir: string;
  tlsCertFile: string | undefined;
  tlsKeyFile: string | undefined;
  dnsNames: string[];
  gracePeriodSeconds: number;
  shutdownDelaySeconds: number;
  logLevel: string;
  admission: AdmissionConfig;
  watcher: WatcherSettings;
  certs: { secret: string; service: string; webhookConfiguration: string };
}

export interface WatcherSettings {
  kubeconfig: string | undefined;
  progressDeadlineSeconds: number;
  drainDeadlineSeconds: number;
  concurrency: number;
  healthPort: number;
  leaderElect: boolean;
  leaseName: string;
  identity: string;
  leaseDurationSeconds: number;
  renewDeadlineSeconds: number;
  retryPeriodSeconds: number;
  resyncSeconds: number;
  releaseTimeoutSeconds: number;
  prePull: boolean;
  prePullPerNode: number;
}

type Kind = 'string' | 'int' | 'list' | 'bool';

interface SettingSpec {
  flag: string;
  kind: Kind;
  default: string;
  help: string;
}

/** pino's levels, the values --log-level takes. */
export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;

export const SETTINGS = {
  port: { flag: 'port', kind: 'int', default: '9443', help: 'HTTPS port of the webhook' },
  host: { flag: 'host', kind: 'string', default: '0.0.0.0', help: 'address the webhook listens on' },
  certDir: {
    flag: 'cert-dir',
    kind: 'string',
    default: 'certs',
    help: 'where ca.crt, tls.crt and tls.key are generated (when absent) and watched for changes',
  },
  tlsCertFile: { flag: 'tls-cert-file', kind: 'string', default: '', help: 'serving certificate to use instead of generating one' },
  tlsKeyFile: { flag: 'tls-key-file', kind: 'string', default: '', help: 'private key of --tls-cert-file' },
  dnsNames: {
    flag: 'dns-names',
    kind: 'list',
    default: '',
    help: 'extra DNS names for a generated serving certificate (localhost and 127.0.0.1 are always in it)',
  },
  gracePeriodSeconds: {
    flag: 'grace-period-seconds',
    kind: 'int',
    default: '10',
    help: 'drain time between InPlaceUpdateReady=False and the image write, unless the pod or its namespace says otherwise',
  },
  mode: { flag: 'mode', kind: 'string', default: 'drain', help: '`drain` defers image changes until the pod is drained; `immediate` lets them through' },
  namespace: { flag: 'namespace', kind: 'string', default: DEFAULT_NAMESPACE, help: 'the namespace inplace-gate runs in (never in scope)' },
  watcherUsers: {
    flag: 'watcher-users',
    kind: 'list',
    default: '',
    help: 'usernames of the watcher, whose writes pass untouched (default: system:serviceaccount:<--namespace>:inplace-gate-watcher)',
  },
  watcherGroups: { flag: 'watcher-groups', kind: 'list', default: '', help: 'groups of the watcher' },
  exemptUsers: { flag: 'exempt-users', kind: 'list', default: '', help: 'usernames whose pod updates pass both webhooks untouched (break-glass)' },
  exemptGroups: { flag: 'exempt-groups', kind: 'list', default: '', help: 'groups whose pod updates pass both webhooks untouched' },
  allowResize: { flag: 'allow-resize', kind: 'bool', default: 'false', help: 'let pods/resize through on managed pods' },
  allowEphemeralContainers: {
    flag: 'allow-ephemeral-containers',
    kind: 'bool',
    default: 'true',
    help: 'let pods/ephemeralcontainers (kubectl debug) through on managed pods',
  },
  shutdownDelaySeconds: {
    flag: 'shutdown-delay-seconds',
    kind: 'int',
    default: '5',
    help: 'on SIGTERM, how long /readyz fails before the server stops taking connections',
  },
  kubeconfig: { flag: 'kubeconfig', kind: 'string', default: '', help: 'watcher: kubeconfig to use (else KUBECONFIG, else in-cluster)' },
  progressDeadlineSeconds: {
    flag: 'progress-deadline-seconds',
    kind: 'int',
    default: '300',
    help: 'watcher: how long a written image may take to run and be ready before the update is Stalled',
  },
  drainDeadlineSeconds: {
    flag: 'drain-deadline-seconds',
    kind: 'int',
    default: String(DEFAULT_DRAIN_DEADLINE_SECONDS),
    help: 'watcher: how long after InPlaceUpdateReady=False the EndpointSlices may keep listing a pod ready (never less than its grace period) before the update is Stalled with its images not written',
  },
  prePull: {
    flag: 'pre-pull',
    kind: 'bool',
    default: 'true',
    help: "watcher: pull the new images on the pod's node with a short-lived pod before the drain, so the pod leaves its endpoints only for the restart; a failed pull is Stalled with the pod still serving",
  },
  prePullPerNode: { flag: 'pre-pull-per-node', kind: 'int', default: '2', help: 'watcher: pull pods running at once on one node' },
  concurrency: { flag: 'concurrency', kind: 'int', default: '16', help: 'watcher: pods reconciled at once' },
  healthPort: { flag: 'health-port', kind: 'int', default: '8080', help: 'watcher: HTTP port of /healthz, /readyz and /metrics (0 for none)' },
  leaderElect: { flag: 'leader-elect', kind: 'bool', default: 'true', help: 'watcher: elect a leader on a Lease, so replicas can stand by' },
  leaseName: { flag: 'lease-name', kind: 'string', default: 'inplace-gate-watcher', help: 'watcher: the Lease, in --namespace' },
  identity: { flag: 'identity', kind: 'string', default: '', help: 'watcher: this replica in the Lease (default: hostname_pid)' },
  leaseDurationSeconds: { flag: 'lease-duration-seconds', kind: 'int', default: '10', help: 'watcher: how long a standby waits on a silent leader' },
  renewDeadlineSeconds: { flag: 'renew-deadline-seconds', kind: 'int', default: '8', help: 'watcher: a leader that cannot renew for this long stops leading' },
  retryPeriodSeconds: { flag: 'retry-period-seconds', kind: 'int', default: '2', help: 'watcher: how often candidates try the Lease' },
  releaseTimeoutSeconds: {
    flag: 'release-timeout-seconds',
    kind: 'int',
    default: '60',
    help: 'release: how long to wait for pods restarting on images already written before saying which still are (0: do not wait)',
  },
  resyncSeconds: { flag: 'resync-seconds', kind: 'int', default: '300', help: 'watcher: every managed pod is looked at again this often' },
  certSecret: { flag: 'cert-secret', kind: 'string', default: 'inplace-gate-webhook-tls', help: 'certs: the Secret (in --namespace) that holds the CA and serving certificate' },
  service: { flag: 'service', kind: 'string', default: 'inplace-gate-webhook', help: "certs and manifests: the webhook's Service, whose DNS names the certificate carries" },
  webhookConfiguration: { flag: 'webhook-configuration', kind: 'string', default: 'inplace-gate', help: 'certs: the webhook configurations whose caBundle is kept equal to the CA' },
  logLevel: { flag: 'log-level', kind: 'string', default: 'info', help: `one of ${LOG_LEVELS.join(', ')}: debug logs every admission, info the ones that change or deny something` },
} as const satisfies Record<string, SettingSpec>;

type Name = keyof typeof SETTINGS;

export function envName(spec: SettingSpec): string {
  return `INPLACE_GATE_${spec.flag.toUpperCase().replaceAll('-', '_')}`;
}

export class SettingsError extends Error {}

const BY_FLAG: ReadonlyMap<string, SettingSpec> = new Map(Object.values(SETTINGS).map((s: SettingSpec) => [s.flag, s]));
const TRUE = new Set(['true', '1', 'yes']);
const FALSE = new Set(['false', '0', 'no']);


/**
 * `--flag value` and `--flag=value`; a boolean also bare (`--allow-resize`, true),
 * with a value (`--allow-resize=false`, or `--allow-resize false`) and negated
 * (`--no-allow-resize`). Anything else is a one-line SettingsError.
 * Not util.parseArgs: its booleans refuse `--allow-resize=false` (every setting is also an
 * environment variable with a value, and the help documents `=false`), and its errors name no env.
 */
export function parseFlags(argv: readonly string[]): Map<string, string> {
  const values = new Map<string, string>();
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] as string;
    if (!arg.startsWith('--') || arg === '--') {
      throw new SettingsError(arg.startsWith('-') && arg !== '-' && arg !== '--' ? `unknown flag ${arg} (see --help)` : `unexpected argument "${arg}" (see --help)`);
    }
    const eq = arg.indexOf('=');
    const name = eq === -1 ? arg.slice(2) : arg.slice(2, eq);
    let value = eq === -1 ? undefined : arg.slice(eq + 1);
    const spec = BY_FLAG.get(name);
    if (spec === undefined && name.startsWith('no-')) {
      const negated = BY_FLAG.get(name.slice(3));
      if (negated?.kind === 'bool') {
        if (value !== undefined) throw new SettingsError(`--${name} takes no value (use --${negated.flag}=${value})`);
        values.set(negated.flag, 'false');
        continue;
      }
    }
    if (spec === undefined) throw new SettingsError(`unknown flag --${name} (see --help)`);
    if (value === undefined) {
      const next = argv[i + 1];
      if (spec.kind === 'bool') {
        if (next !== undefined && (TRUE.has(next.toLowerCase()) || FALSE.has(next.toLowerCase()))) {
          value = next;
          i++;
        } else {
          value = 'true';
        }
      } else {
        if (next === undefined || next.startsWith('--')) throw new SettingsError(`--${spec.flag} needs a value (see --help)`);
        value = next;
        i++;
      }
    }
    values.set(spec.flag, value);
  }
  return values;
}

/** Flags win over environment variables, which win over defaults. */
export function loadSettings(argv: string[], env: Record<string, string | undefined>): Settings {
  const values = parseFlags(argv);
  const raw = (name: Name): string => {
    const spec: SettingSpec = SETTINGS[name];
    return values.get(spec.flag) ?? env[envName(spec)] ?? spec.default;
  };
  /** Where a bad value came from, for the error. */
  const source = (name: Name): string => {
    const spec: SettingSpec = SETTINGS[name];
    return values.has(spec.flag) ? `--${spec.flag}` : env[envName(spec)] !== undefined ? envName(spec) : `--${spec.flag}`;
  };
  const int = (name: Name): number => {
    const text = raw(name);
    const n = Number(text);
    if (text.trim() === '' || !Number.isInteger(n) || n < 0) throw new SettingsError(`${source(name)} must be a whole number ≥ 0, not "${text}"`);
    return n;
  };
  const list = (name: Name): string[] => raw(name).split(',').map((s) => s.trim()).filter((s) => s !== '');
  const bool = (name: Name): boolean => {
    const text = raw(name).toLowerCase();
    if (TRUE.has(text)) return true;
    if (FALSE.has(text)) return false;
    throw new SettingsError(`${source(name)} must be true or false, not "${raw(name)}"`);
  };
  const mode = raw('mode');
  if (mode !== 'drain' && mode !== 'immediate') throw new SettingsError(`${source('mode')} must be drain or immediate, not "${mode}"`);
  const logLevel = raw('logLevel');
  if (!(LOG_LEVELS as readonly string[]).includes(logLevel)) {
    throw new SettingsError(`${source('logLevel')} must be one of ${LOG_LEVELS.join(', ')}, not "${logLevel}"`);
  }
  const port = int('port');
  if (port < 1 || port > 65535) throw new SettingsError(`${source('port')} must be between 1 and 65535, not ${port}`);
  const tlsCertFile = raw('tlsCertFile') || undefined;
  const tlsKeyFile = raw('tlsKeyFile') || undefined;
  if ((tlsCertFile === undefined) !== (tlsKeyFile === undefined)) {
    throw new SettingsError('--tls-cert-file and --tls-key-file go together: give both or neither');
  }
  const namespace = raw('namespace');
  // The watcher's ServiceAccount in the namespace we run in (the manifests pass the pod's own, from the
  // downward API), so that an install in another namespace knows its watcher without a flag.
  const watcherUsers = list('watcherUsers');
  return {
    port,
    host: raw('host'),
    certDir: raw('certDir'),
    tlsCertFile,
    tlsKeyFile,
    dnsNames: list('dnsNames'),
    gracePeriodSeconds: int('gracePeriodSeconds'),
    shutdownDelaySeconds: int('shutdownDelaySeconds'),
    logLevel,
    certs: { secret: raw('certSecret'), service: raw('service'), webhookConfiguration: raw('webhookConfiguration') },
    watcher: {
      kubeconfig: raw('kubeconfig') || undefined,
      progressDeadlineSeconds: int('progressDeadlineSeconds'),
      drainDeadlineSeconds: int('drainDeadlineSeconds'),
      concurrency: Math.max(1, int('concurrency')),
      healthPort: int('healthPort'),
      leaderElect: bool('leaderElect'),
      leaseName: raw('leaseName'),
      identity: raw('identity') || `${hostname()}_${process.pid}`,
      leaseDurationSeconds: Math.max(1, int('leaseDurationSeconds')),
      renewDeadlineSeconds: Math.max(1, int('renewDeadlineSeconds')),
      retryPeriodSeconds: Math.max(1, int('retryPeriodSeconds')),
      resyncSeconds: Math.max(10, int('resyncSeconds')),
      releaseTimeoutSeconds: int('releaseTimeoutSeconds'),
      prePull: bool('prePull'),
      prePullPerNode: Math.max(1, int('prePullPerNode')),
    },
    admission: {
      ...defaultAdmissionConfig,
      ownNamespace: namespace,
      mode,
      watcher: { users: watcherUsers.length > 0 ? watcherUsers : [watcherUser(namespace)], groups: list('watcherGroups') },
      exempt: { users: list('exemptUsers'), groups: list('exemptGroups') },
      allowResize: bool('allowResize'),
      allowEphemeralContainers: bool('allowEphemeralContainers'),
    },
  };
}

/** One line per setting, for --help and the README. */
export function settingsHelp(): string {
  return Object.values(SETTINGS)
    .map((s: SettingSpec) => `  ${(s.kind === 'bool' ? `--[no-]${s.flag}` : `--${s.flag}`).padEnd(36)} ${envName(s).padEnd(40)} ${s.help}${s.default === '' ? '' : ` (default: ${s.default})`}`)
    .join('\n');
}
