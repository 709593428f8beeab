// The monitoring kit (integrations/): every metric an alert or a dashboard
// panel names is one the watcher or the webhook registers, the alerts pass
// promtool's own checks and unit tests, and each has a runbook in the README.

import { execFile, execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { load } from 'js-yaml';
import { describe, expect, it } from 'vitest';
import { drainOverdueSeconds } from '../../src/core/lifecycle.ts';
import { apiRequestObserver, createWatcherMetrics } from '../../src/watcher/metrics.ts';
import { createWebhookMetrics } from '../../src/webhook/metrics.ts';
import { buildPod } from '../support/pods.ts';

const run = promisify(execFile);
const repo = resolve(import.meta.dirname, '../..');
const kit = join(repo, 'integrations');

interface Rule { alert: string; expr: string; labels?: Record<string, string> }
interface Groups { groups: { name: string; rules: Rule[] }[] }
const rules = load(readFileSync(join(kit, 'prometheus/rules.yaml'), 'utf8')) as Groups;
const prometheusRule = load(readFileSync(join(kit, 'prometheus/prometheusrule.yaml'), 'utf8')) as { kind: string; spec: Groups };
const dashboard = JSON.parse(readFileSync(join(kit, 'grafana/inplace-gate.json'), 'utf8')) as {
  panels: { title: string; type: string; targets?: { expr: string }[] }[];
  templating: { list: { query?: { query: string } | string }[] };
};

/** Names every series the two components export: histograms as _bucket, _sum and _count. */
function exported(): Set<string> {
  const watcher = createWatcherMetrics(() => ({ byPhase: {}, drainOverdueSeconds: 0 }), () => ({})).registry;
  const webhook = createWebhookMetrics().registry;
  const names = new Set<string>();
  for (const metric of [...watcher.getMetricsAsArray(), ...webhook.getMetricsAsArray()]) {
    const { name, type } = metric as unknown as { name: string; type: string };
    if (type === 'histogram') for (const suffix of ['_bucket', '_sum', '_count']) names.add(name + suffix);
    else names.add(name);
  }
  return names;
}

const KEYWORDS = new Set(['and', 'or', 'unless', 'by', 'without', 'on', 'ignoring', 'group_left', 'group_right', 'bool', 'offset', 'inf', 'nan']);

/**
 * The metric names a PromQL expression selects: what is left after label
 * matchers, strings, ranges, grouping clauses, Grafana variables, function
 * and aggregation names and keywords are taken out.
 */
function metricNames(expr: string): string[] {
  const bare = expr
    .replace(/"(?:[^"\\]|\\.)*"/g, '""')
    .replace(/\{[^}]*\}/g, ' ')
    .replace(/\[[^\]]*\]/g, ' ')
    .replace(/\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, ' ')
    .replace(/\$\w+/g, ' ');
  const names: string[] = [];
  for (const m of bare.matchAll(/[a-zA-Z_:][a-zA-Z0-9_:]*/g)) {
    const after = bare.slice(m.index + m[0].length).trimStart();
    if (after.startsWith('(') || KEYWORDS.has(m[0].toLowerCase())) continue;
    names.push(m[0]);
  }
  return names;
}

const alertExprs = rules.groups.flatMap((g) => g.rules.map((r) => ({ where: `alert ${r.alert}`, expr: r.expr })));
const panelExprs = dashboard.panels.flatMap((p) => (p.targets ?? []).map((t) => ({ where: `panel "${p.title}"`, expr: t.expr })));

describe('every metric the kit names is exported', () => {
  const names = exported();
  it.each([...alertExprs, ...panelExprs])('$where', ({ expr }) => {
    const used = metricNames(expr);
    expect(used.length).toBeGreaterThan(0);
    for (const name of used) expect(names, `${name} in ${expr}`).toContain(name);
  });

  it('the dashboard\'s variable queries too', () => {
    for (const v of dashboard.templating.list) {
      const q = typeof v.query === 'object' ? v.query.query : undefined;
      const m = q === undefined ? null : /label_values\((\w+)/.exec(q);
      if (m) expect(names).toContain(m[1]);
    }
  });

  it('the extraction finds names, not functions, labels or keywords', () => {
    expect(metricNames('sum by (le) (rate(a_bucket{job=~"x", code="5.."}[5m])) / on (job) b > 0.1 or absent(c{d="e"})')).toEqual(['a_bucket', 'b', 'c']);
    expect(metricNames('min(x_seconds{job=~"$namespace/w"}) - time() < 21 * 86400')).toEqual(['x_seconds']);
  });
});

describe('the alerts', () => {
  it('the PrometheusRule carries exactly the groups of rules.yaml', () => {
    expect(prometheusRule.kind).toBe('PrometheusRule');
    expect(prometheusRule.spec.groups).toEqual(rules.groups);
  });

  it('each has a severity and a runbook line in the README', () => {
    const readme = readFileSync(join(repo, 'README.md'), 'utf8');
    const runbooks = readme.slice(readme.indexOf('### Alerts'));
    for (const r of rules.groups.flatMap((g) => g.rules)) {
      expect(['warning', 'critical']).toContain(r.labels?.severity);
      expect(runbooks, r.alert).toMatch(new RegExp(`^\\| \`${r.alert}\``, 'm'));
    }
  });

  it('promtool check rules and promtool test rules pass', async () => {
    const promtool = ensurePromtool();
    const check = await run(promtool, ['check', 'rules', join(kit, 'prometheus/rules.yaml')]);
    expect(check.stdout).toContain(`SUCCESS: ${alertExprs.length} rules found`);
    const test = await run(promtool, ['test', 'rules', 'rules.test.yaml'], { cwd: join(kit, 'prometheus') });
    expect(test.stdout).toContain('SUCCESS');
  }, 60_000);
});

/** promtool from Debian's prometheus package, installed on first use where the tests run as root (as CI does). */
function ensurePromtool(): string {
  try {
    execFileSync('promtool', ['--version'], { stdio: 'ignore' });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    if (process.getuid?.() !== 0) throw new Error('promtool is needed: apt-get install prometheus (Debian), or put promtool on PATH', { cause: err });
    execFileSync('apt-get', ['install', '-y', '-qq', '--no-install-recommends', 'prometheus'], { stdio: 'inherit', env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } });
  }
  return 'promtool';
}

describe('inplace_gate_drain_overdue_seconds', () => {
  const now = new Date('2026-11-28T10:10:00Z');
  const state = (phase: string, drainDeadline?: string) => ({ phase, images: { app: 'web:2' }, requestedBy: 'u', requestedAt: '2026-11-28T10:00:00Z', ...(drainDeadline ? { drainDeadline } : {}) });
  it.each([
    ['no state', undefined, 0],
    ['Draining, not yet due', state('Draining', '2026-11-28T10:10:05Z'), 0],
    ['Draining, 90 s past its deadline', state('Draining', '2026-11-28T10:08:30Z'), 90],
    ['Draining without a deadline (restarts the drain)', state('Draining'), 0],
    ['Updating', state('Updating', '2026-11-28T10:00:00Z'), 0],
  ])('%s', (_, s, want) => {
    expect(drainOverdueSeconds(buildPod(s ? { annotations: { 'inplace-gate.dev/update': JSON.stringify(s) } } : {}), now)).toBe(want);
  });

  it('is exported from what the watcher counts', async () => {
    const metrics = createWatcherMetrics(() => ({ byPhase: { Draining: 2 }, drainOverdueSeconds: 42 }), () => ({ pods: 3, rollouts: 1 }));
    const text = await metrics.registry.metrics();
    expect(text).toMatch(/^inplace_gate_drain_overdue_seconds 42$/m);
    expect(text).toMatch(/^inplace_gate_pods\{phase="Draining"\} 2$/m);
    expect(text).toMatch(/^workqueue_depth\{name="pods"\} 3$/m);
    expect(text).toMatch(/^workqueue_depth\{name="rollouts"\} 1$/m);
  });
});

describe('rest_client_requests_total', () => {
  it('counts the watcher\'s apiserver requests as client-go does: code (or <error>), method, host', async () => {
    const metrics = createWatcherMetrics(() => ({ byPhase: {}, drainOverdueSeconds: 0 }), () => ({}));
    const observe = apiRequestObserver(metrics, '127.0.0.1:6443');
    observe('PATCH', 200);
    observe('PATCH', 200);
    observe('PATCH', 409);
    observe('GET', 0);
    const text = await metrics.registry.metrics();
    expect(text).toMatch(/^rest_client_requests_total\{code="200",method="PATCH",host="127\.0\.0\.1:6443"\} 2$/m);
    expect(text).toMatch(/^rest_client_requests_total\{code="409",method="PATCH",host="127\.0\.0\.1:6443"\} 1$/m);
    expect(text).toMatch(/^rest_client_requests_total\{code="<error>",method="GET",host="127\.0\.0\.1:6443"\} 1$/m);
  });
});
