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

export type PluginArgs = StatusArgs | { command: 'help' };

export class UsageError extends Error {}

export const USAGE = `Usage: kubectl inplace-gate status [-n NAMESPACE | -A] [POD | deployment/NAME | statefulset/NAME]

  status    what inplace-gate is doing: the watcher's leader, in-place workload rollouts (pods updated of
            those in scope, in flight, stalled, strategy) and the pods with an image change in flight
            (Ready and InPlaceUpdateReady side by side, phase, since when, images, what each waits for).
            Given a pod or workload: that one, with all its managed pods.

Flags:
  -n, --namespace NS        namespace (default: the kubeconfig context's, else "default")
  -A, --all-namespaces      every namespace
      --kubeconfig FILE     kubeconfig (default: KUBECONFIG, else ~/.kube/config, else in-cluster)
      --context NAME        kubeconfig context
      --gate-namespace NS   the namespace inplace-gate runs in, for the watcher's Lease (default: inplace-gate)
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
  const [command, ...rest] = argv;
  if (command === undefined || command === '-h' || command === '--help' || command === 'help') return { command: 'help' };
  if (command !== 'status') throw new UsageError(`unknown command "${command}" (see kubectl inplace-gate --help)`);
  const args: StatusArgs = { command, namespace: undefined, allNamespaces: false, kubeconfig: undefined, context: undefined, gateNamespace: 'inplace-gate', target: undefined };
  const valued: Record<string, 'namespace' | 'kubeconfig' | 'context' | 'gateNamespace'> = {
    '-n': 'namespace', '--namespace': 'namespace', '--kubeconfig': 'kubeconfig', '--context': 'context', '--gate-namespace': 'gateNamespace',
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
      args[key] = value;
      continue;
    }
    if (word.startsWith('-n') && word.length > 2) { args.namespace = word.slice(2); continue; } // kubectl's -nNS
    if (word.startsWith('-')) throw new UsageError(`unknown flag ${flag} (see kubectl inplace-gate --help)`);
    if (args.target !== undefined) throw new UsageError(`one pod or workload at a time, not also "${word}"`);
    args.target = parseTarget(word);
  }
  if (args.allNamespaces && args.namespace !== undefined) throw new UsageError('-n and -A go one at a time');
  if (args.allNamespaces && args.target !== undefined) throw new UsageError(`a named ${args.target.kind.toLowerCase()} needs a namespace, not -A`);
  return args;
}
