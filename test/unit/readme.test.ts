// The README says what is true: the Go it asks for is go.mod's, every setting
// of the CLI is in its configuration table, and its RBAC table is exactly
// what the manifests grant.

import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { loadAll } from 'js-yaml';
import { describe, expect, it } from 'vitest';
import { SETTINGS, envName } from '../../src/settings.ts';

const repo = resolve(import.meta.dirname, '../..');
const readme = readFileSync(join(repo, 'README.md'), 'utf8');
const section = (title: string) => {
  const start = readme.indexOf(`\n${title}\n`);
  expect(start, title).toBeGreaterThan(-1);
  const next = readme.slice(start + title.length + 2).search(/\n##? /);
  return readme.slice(start, next === -1 ? undefined : start + title.length + 2 + next);
};
/** Rows of the markdown tables in a text, as trimmed cells, header and rule rows left out. */
const rows = (text: string) => text.split('\n').filter((l) => l.startsWith('| ') && !l.startsWith('| ---'))
  .map((l) => l.split('|').slice(1, -1).map((c) => c.trim()));

describe('README.md', () => {
  it('asks for the Go that go.mod of the test control plane needs', () => {
    const goMod = readFileSync(join(repo, 'test/cluster/k8s/go.mod'), 'utf8');
    const wanted = /^go (\d+\.\d+)/m.exec(goMod)?.[1];
    expect(wanted).toBeDefined();
    expect(readme).toContain(`Go ≥ ${wanted} on PATH`);
    expect(readme).not.toMatch(new RegExp(`Go ≥ (?!${wanted!.replace('.', '\\.')})\\d`));
  });

  it('lists every setting in the configuration table, with its environment variable and default', () => {
    const table = rows(section('## Configuration'));
    for (const spec of Object.values(SETTINGS)) {
      const flag = spec.kind === 'bool' ? `\`--[no-]${spec.flag}\`` : `\`--${spec.flag}\``;
      const row = table.find((r) => r[0]?.split(', ').includes(flag));
      expect(row, flag).toBeDefined();
      // Grouped rows name the first variable and `...` for the rest.
      const env = row![1] ?? '';
      expect(env.includes(`\`${envName(spec)}\``) || env.endsWith('...'), `${flag}: ${env}`).toBe(true);
      if (spec.default !== '' && row![0] === flag) expect(row![2], flag).toBe(`\`${spec.default}\``);
    }
  });

  it('lists exactly the RBAC rules the manifests grant, per ServiceAccount', () => {
    interface Rule { apiGroups: string[]; resources: string[]; resourceNames?: string[]; verbs: string[] }
    interface Doc { kind: string; metadata: { name: string; namespace?: string }; rules?: Rule[]; roleRef?: { kind: string; name: string }; subjects?: { kind: string; name: string }[] }
    const docs = ['watcher-rbac.yaml', 'webhook-rbac.yaml']
      .flatMap((f) => loadAll(readFileSync(join(repo, 'manifests/base', f), 'utf8')) as Doc[]);
    const roles = new Map(docs.filter((d) => d.kind === 'Role' || d.kind === 'ClusterRole').map((d) => [`${d.kind}/${d.metadata.name}`, d]));
    const granted: string[] = [];
    for (const binding of docs.filter((d) => d.kind === 'RoleBinding' || d.kind === 'ClusterRoleBinding')) {
      const role = roles.get(`${binding.roleRef?.kind ?? ''}/${binding.roleRef?.name ?? ''}`);
      expect(role, binding.metadata.name).toBeDefined();
      for (const subject of binding.subjects ?? []) {
        for (const rule of role!.rules ?? []) {
          granted.push([
            `\`${subject.name}\``,
            binding.kind === 'ClusterRoleBinding' ? 'cluster' : `\`${binding.metadata.namespace ?? ''}\``,
            rule.apiGroups.map((g) => (g === '' ? 'core' : g)).join(', '),
            rule.resources.join(', '),
            (rule.resourceNames ?? []).join(', '),
            rule.verbs.join(', '),
          ].join(' | '));
        }
      }
    }
    const listed = rows(section('## Install in a cluster')).filter((r) => r[0]?.startsWith('`inplace-gate-')).map((r) => r.slice(0, 6).join(' | '));
    expect(listed.sort()).toEqual(granted.sort());
  });

  it('builds and pushes the image as image/build.sh writes it: its layout directory and package.json\'s version as the tag', () => {
    const pkg = JSON.parse(readFileSync(join(repo, 'package.json'), 'utf8')) as { version: string; scripts: Record<string, string> };
    const build = readFileSync(join(repo, 'image/build.sh'), 'utf8');
    const install = section('## Install in a cluster');
    expect(pkg.scripts.image).toBe('bash image/build.sh');
    expect(install).toMatch(/^npm run image$/m);
    const copy = /^skopeo copy oci:(\S+):(\S+) docker:\/\/\S+:(\S+)$/m.exec(install);
    expect(copy, 'a skopeo copy line').not.toBeNull();
    expect(`out=$repo/${copy![1]!}`).toBe(/^out=\S+$/m.exec(build)?.[0]);
    expect(copy![2]).toBe(pkg.version);
    expect(copy![3]).toBe(pkg.version);
    expect(build).toMatch(/^tag=\$version$/m);
  });
});
