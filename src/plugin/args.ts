// The command line of `kubectl inplace-gate`: kubectl hands a plugin every
// word after its name, global flags included, so -n, -A, --kubeconfig and
// --context are parsed here, with kubectl's spellings.

import type { WorkloadKind } from '../core/status-report.ts';

export type Target = { kind: 'Pod'; name: string } | { kind: WorkloadKind; name: string };

export interface StatusArgs {
  command: 'status';
  namespace: string | undefined;
  allNamespaces: boolean;
  kubeconfig: string | undefined;
  context: string | undefined;
  /** Where the watcher's Lease is: the namespace inplace-gate runs in. */
  gateNamespace: string;
  target: Target | undefined;
}

export interface RolloutStatusArgs extends Omit<StatusArgs, 'command' | 'target' | 'allNamespaces'> {
  command: 'rollout-status';
  target: { kind: WorkloadKind; name: string };
  /** Give up after this long (0: never), as kubectl's --timeout. */
  timeoutSeconds: number;
}

/** `cancel POD|WORKLOAD` and `release WORKLOAD`: write, then say per object what was done. */
export interface HandBackArgs extends Omit<StatusArgs, 'command' | 'target' | 'allNamespaces'> {
  command: 'cancel' | 'release';
  target: Target;
  /** How long to wait for pods restarting on images already written (release; 0: do not wait). */
  timeoutSeconds: number;
}

export type PluginArgs = StatusArgs | RolloutStatusArgs | HandBackArgs | { command: 'help' };

export class UsageError extends Error {}

export const USAGE = `Usage: kubectl inplace-gate status [-n NAMESPACE | -A] [POD | deployment/NAME | statefulset/NAME]
       kubectl inplace-gate rollout status [-n NAMESPACE] [--timeout 5m] deployment/NAME | statefulset/NAME
       kubectl inplace-gate cancel [-n NAMESPACE] POD | deployment/NAME | statefulset/NAME
       kubectl inplace-gate release [-n NAMESPACE] [--timeout 1m] deployment/NAME | statefulset/NAME

  status    what inplace-gate is doing: the watcher's leader, in-place workload rollouts (pods updated of
            those in scope, in flight, stalled, strategy) and the pods with an image change in flight
            (Ready and InPlaceUpdateReady side by side, phase, since when, images, what each waits for).
            Given a pod or workload: that one, with all its managed pods.
  rollout status
            waits for the workload's rollout as kubectl rollout status does, reading the in-place
            rollout's progress; exits 0 when done (or held by a partition), 1 on a stalled pod, a
            fallback to the native rollout, a passed progress deadline or the timeout.
  cancel    drops a pod's image change not written yet (Pending, Draining): it keeps its running images
            and InPlaceUpdateReady goes True. Refused (exit 1) once the images are written: the kubelet
            restarts the container and the condition goes True only when that is proven; set the previous
            images to go back. Given a workload: release it (below), which cancels its pods' requests.
  release   hands a workload back to its native controller, as the watcher's fallback does: a Deployment
            unpaused (its ReplicaSet rewound, surge pods removed), a StatefulSet's partition restored, the
            rollout state removed, its pods' requests not written yet dropped; waits --timeout for pods
            restarting on images already written. Safe at any moment and idempotent; prints what it did.

Flags:
  -n, --namespace NS        namespace (default: the kubeconfig context's, else "default")
  -A, --all-namespaces      every namespace
      --kubeconfig FILE     kubeconfig (default: KUBECONFIG, else ~/.kube/config, else in-cluster)
      --context NAME        kubeconfig context
      --gate-namespace NS   the namespace inplace-gate runs in, for the watcher's Lease (default: inplace-gate)
      --timeout DURATION    rollout status: give up after this long (30s, 5m, 1h; 0: never; default 0);
                            release: wait this long for pods restarting on written images (default 1m)
  -h, --help                this text
`;

const KINDS: Record<string, Target['kind']> = {
  pod: 'Pod', pods: 'Pod', po: 'Pod',
  deployment: 'Deployment', deployments: 'Deployment', deploy: 'Deployment',
  statefulset: 'StatefulSet', statefulsets: 'StatefulSet', sts: 'StatefulSet',
};

export function parseTarget(word: string): Target {
  const slash = word.indexOf('/');
  if (slash === -1) return { kind: 'Pod', name: word };
  const kind = KINDS[word.slice(0, slash).toLowerCase().replace(/\.apps$/, '')];
  const name = word.slice(slash + 1);
  if (kind === undefined || name === '' || name.includes('/')) {
    throw new UsageError(`cannot show "${word}": give a pod name, deployment/NAME or statefulset/NAME`);
  }
  return { kind, name };
}

export function parsePluginArgs(argv: readonly string[]): PluginArgs {
  const [command, ...words] = argv;
  if (command === undefined || command === '-h' || command === '--help' || command === 'help') return { command: 'help' };
  let rest = words;
  const rollout = command === 'rollout';
  const handBack = command === 'cancel' || command === 'release';
  if (rollout) {
    if (words[0] !== 'status') throw new UsageError(`unknown command "${['rollout', ...words.slice(0, 1)].join(' ')}": only rollout status (see kubectl inplace-gate --help)`);
    rest = words.slice(1);
  } else if (command !== 'status' && !handBack) {
    throw new UsageError(`unknown command "${command}" (see kubectl inplace-gate --help)`);
  }
  const args: StatusArgs = { command: 'status', namespace: undefined, allNamespaces: false, kubeconfig: undefined, context: undefined, gateNamespace: 'inplace-gate', target: undefined };
  let timeout: string | undefined;
  const valued: Record<string, 'namespace' | 'kubeconfig' | 'context' | 'gateNamespace' | 'timeout'> = {
    '-n': 'namespace', '--namespace': 'namespace', '--kubeconfig': 'kubeconfig', '--context': 'context', '--gate-namespace': 'gateNamespace',
    ...(rollout || command === 'release' ? { '--timeout': 'timeout' as const } : {}),
  };
  for (let i = 0; i < rest.length; i++) {
    const word = rest[i] as string;
    if (word === '-h' || word === '--help') return { command: 'help' };
    if (word === '-A' || word === '--all-namespaces') { args.allNamespaces = true; continue; }
    const eq = word.startsWith('--') ? word.indexOf('=') : -1;
    const flag = eq === -1 ? word : word.slice(0, eq);
    const key = valued[flag];
    if (key !== undefined) {
      const value = eq === -1 ? rest[++i] : word.slice(eq + 1);
      if (value === undefined || value === '' || (eq === -1 && value.startsWith('-'))) throw new UsageError(`${flag} needs a value`);
      if (key === 'timeout') timeout = value;
      else args[key] = value;
      continue;
    }
    if (word.startsWith('-n') && word.length > 2) { args.namespace = word.slice(2); continue; } // kubectl's -nNS
    if (word.startsWith('-')) throw new UsageError(`unknown flag ${flag} (see kubectl inplace-gate --help)`);
    if (args.target !== undefined) throw new UsageError(`one pod or workload at a time, not also "${word}"`);
    args.target = parseTarget(word);
  }
  if (rollout) {
    const target = args.target;
    if (target === undefined || target.kind === 'Pod') throw new UsageError('rollout status needs deployment/NAME or statefulset/NAME');
    if (args.allNamespaces) throw new UsageError('rollout status watches one workload: -n, not -A');
    const { command: _command, allNamespaces: _all, ...common } = args;
    return { ...common, command: 'rollout-status', target: { kind: target.kind, name: target.name }, timeoutSeconds: timeout === undefined ? 0 : parseDuration(timeout) };
  }
  if (handBack) {
    const target = args.target;
    if (target === undefined) throw new UsageError(`${command} needs ${command === 'cancel' ? 'a pod, ' : ''}deployment/NAME or statefulset/NAME`);
    if (command === 'release' && target.kind === 'Pod') throw new UsageError(`release hands back a workload: deployment/NAME or statefulset/NAME (for a pod: cancel ${target.name})`);
    if (args.allNamespaces) throw new UsageError(`${command} acts on one ${target.kind === 'Pod' ? 'pod' : 'workload'}: -n, not -A (everything: inplace-gate release)`);
    const { command: _command, allNamespaces: _all, ...common } = args;
    return { ...common, command, target, timeoutSeconds: timeout === undefined ? 60 : parseDuration(timeout) };
  }
  if (args.allNamespaces && args.namespace !== undefined) throw new UsageError('-n and -A go one at a time');
  if (args.allNamespaces && args.target !== undefined) throw new UsageError(`a named ${args.target.kind.toLowerCase()} needs a namespace, not -A`);
  return args;
}

/** kubectl's --timeout: `90s`, `5m`, `1h`, `1m30s`, or a bare number of seconds; 0 waits for ever. */
export function parseDuration(text: string): number {
  const units: Record<string, number> = { h: 3600, m: 60, s: 1 };
  if (/^\d+$/.test(text)) return Number(text);
  const parts = [...text.matchAll(/(\d+)([hms])/g)];
  if (parts.length === 0 || parts.map((p) => p[0]).join('') !== text) throw new UsageError(`--timeout must be a duration such as 30s, 5m or 1h, not "${text}"`);
  return parts.reduce((sum, p) => sum + Number(p[1]) * (units[p[2] ?? 's'] ?? 1), 0);
}
