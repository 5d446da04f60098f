import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { newDir, sampleRepo } from '../helpers/expect.js';
import { tdvBin, write } from '../helpers/repo.js';

const SECRET = 'doctorSecret123';
const VERSION = (JSON.parse(fs.readFileSync(path.resolve(import.meta.dirname, '../../package.json'), 'utf8')) as { version: string }).version;

interface Report {
  tdv: string;
  node: string;
  platform: string;
  git: { version?: string };
  docker: { available: boolean; server?: string; error?: string };
  repo?: {
    root: string;
    cache: { dir: string; fs: string; configured: string[]; effective: string[]; used: string; works: Record<string, boolean> };
    remotes: { name: string; url: string; endpoint?: string; default: boolean }[];
  };
}

describe('tdv doctor', () => {
  it('--json reports versions, platform, Git, Docker, the cache and its link types, and remotes without credentials', async () => {
    const { dir, remote } = await sampleRepo();
    fs.appendFileSync(path.join(dir, '.tdv', 'config.yaml'), '  s3store:\n    url: s3://bucket/data\n');
    write(dir, '.tdv/config.local.yaml', `remote:\n  s3store:\n    endpointurl: http://key:${SECRET}@127.0.0.1:9000\n`);
    const before = fs.readdirSync(path.join(dir, '.tdv', 'tmp')).sort();
    const r = await tdvBin(dir, ['doctor', '--json']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).not.toContain(SECRET);
    const doc = JSON.parse(r.stdout) as Report;
    expect(doc.tdv).toBe(VERSION);
    expect(doc.node).toBe(process.version);
    expect(doc.platform).toContain(process.platform);
    expect(doc.git.version).toMatch(/^\d+\.\d+/);
    expect(typeof doc.docker.available).toBe('boolean');
    if (!doc.docker.available) expect(doc.docker.error).toBeTruthy();
    const repo = doc.repo!;
    expect(repo.root).toBe(dir);
    expect(repo.cache.dir).toBe(path.join(dir, '.tdv', 'cache'));
    expect(repo.cache.fs).toMatch(/\S/);
    // Copy always works; a temp directory on one file system also takes hard links and symlinks.
    expect(repo.cache.works).toMatchObject({ copy: true, hardlink: true, symlink: true });
    expect([...repo.cache.effective, 'copy']).toContain(repo.cache.used);
    expect(repo.remotes).toEqual([
      { name: 's3store', url: 's3://bucket/data', endpoint: 'http://****@127.0.0.1:9000', default: false },
      { name: 'store', url: remote, default: true },
    ]);
    // The probe cleans up after itself.
    expect(fs.readdirSync(path.join(dir, '.tdv', 'tmp')).sort()).toEqual(before);
    const text = await tdvBin(dir, ['doctor']);
    expect(text.code, text.stderr).toBe(0);
    expect(text.stdout).not.toContain(SECRET);
    expect(text.stdout).toContain(`tdv ${VERSION}`);
    expect(text.stdout).toMatch(/^Cache: .*\.tdv\/cache \(\S+\)$/m);
    expect(text.stdout).toContain('store (default)');
  });

  it('works outside a repository, reporting no repository', async () => {
    const r = await tdvBin(newDir(), ['doctor', '--json']);
    expect(r.code, r.stderr).toBe(0);
    const doc = JSON.parse(r.stdout) as Report;
    expect(doc.repo).toBeUndefined();
    expect(doc.git.version).toBeTruthy();
  });
});
