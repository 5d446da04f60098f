import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadConfig, resolveRemoteUrl } from '../../src/formats/config.js';
import { git, read, tdv, write } from '../helpers/repo.js';
import { expectOneLineError, newRepo, setConfig, state } from '../helpers/expect.js';

const CONFIG = '.tdv/config.yaml';
const LOCAL = '.tdv/config.local.yaml';

async function ok(cwd: string, ...args: string[]): Promise<string> {
  const r = await tdv(cwd, ...args);
  expect(r.stderr).toBe('');
  expect(r.code).toBe(0);
  return r.stdout;
}

const config = (dir: string) => loadConfig(path.join(dir, '.tdv'));

interface ListJson {
  default: string | null;
  remotes: { name: string; url: string; isDefault: boolean; options: Record<string, unknown> }[];
}

async function listJson(dir: string): Promise<ListJson> {
  return JSON.parse(await ok(dir, 'remote', 'list', '--json')) as ListJson;
}

describe('tdv remote add', () => {
  it('adds an S3 remote as the default, keeping the template comments, and list shows it', async () => {
    const dir = await newRepo();
    const template = read(dir, CONFIG);
    expect(await ok(dir, 'remote', 'add', '-d', 'storage', 's3://bucket/prefix')).toBe('Added remote storage (s3://bucket/prefix), the default.\n');
    const text = read(dir, CONFIG);
    expect(text.startsWith(template)).toBe(true);
    expect(text.slice(template.length)).toBe('\nremote:\n  storage:\n    url: s3://bucket/prefix\ncore:\n  remote: storage\n');
    expect(fs.existsSync(path.join(dir, LOCAL))).toBe(false);
    expect(await ok(dir, 'remote', 'list')).toBe('storage  s3://bucket/prefix  (default)\n');
    const cfg = await config(dir);
    expect(cfg.core.remote).toBe('storage');
    expect(cfg.remote.storage).toEqual({ url: 's3://bucket/prefix' });
    // The rest of tdv still loads the written config.
    expect((await tdv(dir, 'status')).code).toBe(0);
  });

  it('stores a path given from a subdirectory relative to the repository root', async () => {
    const dir = await newRepo();
    const sub = path.join(dir, 'data', 'raw');
    fs.mkdirSync(sub, { recursive: true });
    expect(await ok(sub, 'remote', 'add', 'sibling', '../../../tdv-store')).toBe('Added remote sibling (../tdv-store).\n');
    expect((await config(dir)).remote.sibling!.url).toBe('../tdv-store');
    expect(resolveRemoteUrl(dir, '../tdv-store')).toEqual({ kind: 'local', path: path.join(path.dirname(dir), 'tdv-store') });
    expect(await ok(sub, 'remote', 'add', 'inside', 'store')).toBe('Added remote inside (data/raw/store).\n');
    expect(await ok(dir, 'remote', 'list')).toBe('inside  data/raw/store\nsibling  ../tdv-store\n');
  });

  it('keeps a file:// url as written and normalizes an absolute path', async () => {
    const dir = await newRepo();
    await ok(dir, 'remote', 'add', 'f', 'file:///srv/tdv%20store');
    await ok(dir, 'remote', 'add', 'abs', '/srv/other/./store/');
    const cfg = await config(dir);
    expect(cfg.remote.f!.url).toBe('file:///srv/tdv%20store');
    expect(cfg.remote.abs!.url).toBe('/srv/other/store');
    expect(resolveRemoteUrl(dir, cfg.remote.f!.url)).toEqual({ kind: 'local', path: '/srv/tdv store' });
  });

  it('--local writes config.local.yaml (owner-only, git-ignored) and leaves config.yaml alone', async () => {
    const dir = await newRepo();
    const before = read(dir, CONFIG);
    expect(await ok(dir, 'remote', 'add', '--local', 'mine', '/mnt/mine')).toBe('Added remote mine (/mnt/mine) in .tdv/config.local.yaml.\n');
    expect(read(dir, CONFIG)).toBe(before);
    expect(read(dir, LOCAL)).toBe('remote:\n  mine:\n    url: /mnt/mine\n');
    expect(fs.statSync(path.join(dir, LOCAL)).mode & 0o777).toBe(0o600);
    expect(await git(dir, 'check-ignore', LOCAL)).toBe(LOCAL);
    expect((await config(dir)).remote.mine).toEqual({ url: '/mnt/mine' });
  });

  it('re-adds the git-ignore line for config.local.yaml when it is missing', async () => {
    const dir = await newRepo();
    write(dir, '.tdv/.gitignore', '/cache/\n/tmp/\n');
    const out = await ok(dir, 'remote', 'add', '--local', 'mine', '/mnt/mine');
    expect(out).toContain('Added /config.local.yaml to .tdv/.gitignore');
    expect(read(dir, '.tdv/.gitignore')).toBe('/cache/\n/tmp/\n/config.local.yaml\n');
    expect(await git(dir, 'check-ignore', LOCAL)).toBe(LOCAL);
  });

  it('refuses a name that exists, unless -f, which replaces the remote and drops its old settings', async () => {
    const dir = await newRepo();
    await ok(dir, 'remote', 'add', 'storage', 's3://one');
    await ok(dir, 'remote', 'modify', 'storage', 'region', 'us-east-1');
    await ok(dir, 'remote', 'modify', '--local', 'storage', 'secret_access_key', 'abc');
    const before = state(dir);
    const r = await tdv(dir, 'remote', 'add', 'storage', 's3://two');
    expect(r.code).toBe(2);
    expectOneLineError(r.stderr, 'remote "storage" already exists (s3://one)', '-f', 'tdv remote modify storage url URL');
    expect(state(dir)).toEqual(before);
    expect(await ok(dir, 'remote', 'add', '-f', 'storage', 's3://two')).toBe('Replaced remote storage (s3://two).\n');
    expect((await config(dir)).remote.storage).toEqual({ url: 's3://two' });
    expect(read(dir, LOCAL)).not.toContain('abc');
  });

  it.each([
    ['gs://bucket/x', 'gs://'],
    ['http://example.com/store', 'http://'],
    ['https://example.com/store', 'https://'],
  ])('refuses the unsupported url %s, listing the supported kinds', async (url, scheme) => {
    const dir = await newRepo();
    const before = state(dir);
    const r = await tdv(dir, 'remote', 'add', 'x', url);
    expect(r.code).toBe(2);
    expectOneLineError(r.stderr, `(${scheme})`, 's3://bucket/prefix', 'file:///absolute/path', '/absolute/path', 'relative path');
    expect(state(dir)).toEqual(before);
  });

  it.each([
    ['s3://', 'names no bucket'],
    ['s3:///prefix', 'names no bucket'],
    ['s3://bad bucket/x', 'not a valid S3 bucket name'],
    ['file://relative', 'file:///absolute/path'],
  ])('refuses the malformed url %s', async (url, msg) => {
    const dir = await newRepo();
    const r = await tdv(dir, 'remote', 'add', 'x', url);
    expect(r.code).toBe(2);
    expectOneLineError(r.stderr, msg);
    expect((await config(dir)).remote).toEqual({});
  });

  it('refuses an invalid remote name, and a remote at the repository root or inside .tdv/', async () => {
    const dir = await newRepo();
    const before = state(dir);
    const bad = await tdv(dir, 'remote', 'add', 'my store', '/x');
    expect(bad.code).toBe(2);
    expectOneLineError(bad.stderr, 'invalid remote name "my store"');
    for (const url of ['.', '.tdv/cache', dir]) {
      const r = await tdv(dir, 'remote', 'add', 'x', url);
      expect(r.code).toBe(2);
      expectOneLineError(r.stderr, 'a remote cannot be the repository, its .git or .tdv/');
    }
    expect(state(dir)).toEqual(before);
  });
});

describe('concurrent changes', () => {
  it('commands changing remotes at the same time all land: each re-reads the files under the lock', async () => {
    const dir = await newRepo();
    const names = ['a', 'b', 'c', 'd', 'e', 'f'];
    const results = await Promise.all(names.map((n, i) => tdv(dir, 'remote', 'add', ...(i % 2 ? ['--local'] : []), n, `/srv/${n}`)));
    expect(results.map((r) => r.code)).toEqual(names.map(() => 0));
    const cfg = await config(dir);
    expect(Object.keys(cfg.remote).sort()).toEqual(names);
    for (const [i, n] of names.entries()) {
      expect(read(dir, i % 2 ? LOCAL : CONFIG)).toContain(`  ${n}:\n    url: /srv/${n}\n`);
      expect(read(dir, i % 2 ? CONFIG : LOCAL)).not.toContain(`/srv/${n}`);
    }
  });
});

describe('tdv remote list', () => {
  it('shows settings indented under each remote and masks credentials, also in --json', async () => {
    const dir = await newRepo();
    await ok(dir, 'remote', 'add', '-d', 'storage', 's3://b/p');
    await ok(dir, 'remote', 'add', 'nas', '/mnt/nas');
    await ok(dir, 'remote', 'modify', 'storage', 'region', 'us-east-1');
    await ok(dir, 'remote', 'modify', 'storage', 'jobs', '8');
    await ok(dir, 'remote', 'modify', 'storage', 'force_path_style', 'true');
    expect(await ok(dir, 'remote', 'modify', 'storage', 'access_key_id', 'AKIAEXAMPLE', '--local')).toBe('Set remote.storage.access_key_id = **** in .tdv/config.local.yaml.\n');
    await ok(dir, 'remote', 'modify', 'storage', 'secret_access_key', 'wJalrXUtnFEMI', '--local');
    expect(read(dir, LOCAL)).toBe('remote:\n  storage:\n    access_key_id: AKIAEXAMPLE\n    secret_access_key: wJalrXUtnFEMI\n');

    const human = await ok(dir, 'remote', 'list');
    expect(human).toBe('nas  /mnt/nas\n' + 'storage  s3://b/p  (default)\n  region: us-east-1\n  force_path_style: true\n  jobs: 8\n  access_key_id: ****\n  secret_access_key: ****\n');
    const raw = await ok(dir, 'remote', 'list', '--json');
    expect(raw).not.toContain('AKIAEXAMPLE');
    expect(raw).not.toContain('wJalrXUtnFEMI');
    expect(JSON.parse(raw)).toEqual({
      default: 'storage',
      remotes: [
        { name: 'nas', url: '/mnt/nas', isDefault: false, options: {} },
        {
          name: 'storage',
          url: 's3://b/p',
          isDefault: true,
          options: { region: 'us-east-1', force_path_style: true, jobs: 8, access_key_id: '****', secret_access_key: '****' },
        },
      ],
    });
  });

  it('says how to add one when there are none', async () => {
    const dir = await newRepo();
    expect(await ok(dir, 'remote', 'list')).toBe('No remotes. Add one with `tdv remote add NAME URL`.\n');
    expect(await listJson(dir)).toEqual({ default: null, remotes: [] });
  });
});

describe('tdv remote modify', () => {
  it('keeps comments and the rest of a hand-written config.yaml', async () => {
    const dir = await newRepo();
    const text = '# Team settings: ask #data-eng before changing\ncore:\n  lock_timeout: 30   # CI is slow\n\n# Where the data lives\nremote:\n  storage:\n    url: s3://team-bucket/tdv  # prod\n';
    setConfig(dir, text);
    await ok(dir, 'remote', 'modify', 'storage', 'region', 'eu-west-1');
    await ok(dir, 'remote', 'modify', 'storage', 'checksum', 'when_required');
    const after = read(dir, CONFIG);
    for (const comment of ['# Team settings: ask #data-eng before changing', '# CI is slow', '# Where the data lives', '# prod']) expect(after).toContain(comment);
    expect(after).toContain('    region: eu-west-1\n    checksum: when_required\n');
    const cfg = await config(dir);
    expect(cfg.core.lock_timeout).toBe(30);
    expect(cfg.remote.storage).toEqual({ url: 's3://team-bucket/tdv', region: 'eu-west-1', checksum: 'when_required' });
  });

  it('stores typed values: booleans, whole numbers, and a string that looks like a number quoted', async () => {
    const dir = await newRepo();
    await ok(dir, 'remote', 'add', 's', 's3://b');
    await ok(dir, 'remote', 'modify', 's', 'force_path_style', 'false');
    await ok(dir, 'remote', 'modify', 's', 'jobs', '3');
    await ok(dir, 'remote', 'modify', 's', 'profile', '123');
    await ok(dir, 'remote', 'modify', 's', 'endpointurl', 'http://127.0.0.1:4568');
    expect((await config(dir)).remote.s).toEqual({ url: 's3://b', force_path_style: false, jobs: 3, profile: '123', endpointurl: 'http://127.0.0.1:4568' });
    expect(read(dir, CONFIG)).toContain('profile: "123"');
  });

  it.each([
    ['jobs', '0', 'remote.s.jobs must be a whole number >= 1, got 0'],
    ['jobs', 'many', 'remote.s.jobs must be a whole number >= 1, got "many"'],
    ['jobs', '2.5', 'remote.s.jobs must be a whole number >= 1'],
    ['checksum', 'always', 'remote.s.checksum must be when_supported or when_required, got "always"'],
    ['force_path_style', 'yes', 'remote.s.force_path_style must be true or false, got "yes"'],
    ['endpointurl', 'localhost:4568', 'must be an http:// or https:// URL'],
    ['region', '', 'remote.s.region must be a non-empty string'],
    ['url', 'gs://b', 'unsupported remote url'],
  ])('refuses %s %j with exit 2 and writes nothing', async (key, value, msg) => {
    const dir = await newRepo();
    await ok(dir, 'remote', 'add', 's', 's3://b');
    const before = state(dir);
    const r = await tdv(dir, 'remote', 'modify', 's', key, value);
    expect(r.code).toBe(2);
    expectOneLineError(r.stderr, msg);
    expect(state(dir)).toEqual(before);
  });

  it('refuses an unknown key, listing the known ones', async () => {
    const dir = await newRepo();
    await ok(dir, 'remote', 'add', 's', 's3://b');
    const r = await tdv(dir, 'remote', 'modify', 's', 'regoin', 'x');
    expect(r.code).toBe(2);
    expectOneLineError(
      r.stderr,
      'unknown remote key "regoin"',
      'url, endpointurl, region, profile, force_path_style, checksum, jobs, layout, chunking, compression, limit_rate, access_key_id, secret_access_key',
    );
  });

  it.each(['access_key_id', 'secret_access_key'])('refuses %s without --local, saying to use --local', async (key) => {
    const dir = await newRepo();
    await ok(dir, 'remote', 'add', 's', 's3://b');
    const before = state(dir);
    const r = await tdv(dir, 'remote', 'modify', 's', key, 'hunter2');
    expect(r.code).toBe(2);
    expectOneLineError(r.stderr, `${key} is a credential`, 'config.local.yaml', '--local');
    expect(r.stderr).not.toContain('hunter2');
    expect(state(dir)).toEqual(before);
  });

  it('puts credentials for a remote of config.yaml into config.local.yaml, which the merged config combines', async () => {
    const dir = await newRepo();
    await ok(dir, 'remote', 'add', 's', 's3://b');
    await ok(dir, 'remote', 'modify', 's', 'secret_access_key', 'hunter2', '--local');
    expect(read(dir, CONFIG)).not.toContain('hunter2');
    expect((await config(dir)).remote.s).toEqual({ url: 's3://b', secret_access_key: 'hunter2' });
    expect(await git(dir, 'check-ignore', LOCAL)).toBe(LOCAL);
  });

  it('--unset removes a key, says where it is set when it is in the other file, and never leaves a remote without url', async () => {
    const dir = await newRepo();
    await ok(dir, 'remote', 'add', 's', 's3://b');
    await ok(dir, 'remote', 'modify', 's', 'region', 'us-east-1');
    await ok(dir, 'remote', 'modify', 's', 'profile', 'p', '--local');
    expect(await ok(dir, 'remote', 'modify', 's', 'region', '--unset')).toBe('Unset remote.s.region in .tdv/config.yaml.\n');
    const elsewhere = await tdv(dir, 'remote', 'modify', 's', 'profile', '--unset');
    expect(elsewhere.code).toBe(2);
    expectOneLineError(elsewhere.stderr, 'remote.s.profile is set in .tdv/config.local.yaml', 'add --local');
    const noUrl = await tdv(dir, 'remote', 'modify', 's', 'url', '--unset');
    expect(noUrl.code).toBe(2);
    expectOneLineError(noUrl.stderr, 'needs a url', '`tdv remote remove s`');
    expect((await config(dir)).remote.s).toEqual({ url: 's3://b', profile: 'p' });
  });

  it('changes the url, resolving a relative path from the current directory', async () => {
    const dir = await newRepo();
    await ok(dir, 'remote', 'add', 's', 's3://b');
    fs.mkdirSync(path.join(dir, 'sub'));
    await ok(path.join(dir, 'sub'), 'remote', 'modify', 's', 'url', '../../elsewhere');
    expect((await config(dir)).remote.s!.url).toBe('../elsewhere');
  });

  it('fails with exit 2 for an unknown remote, listing the known ones', async () => {
    const dir = await newRepo();
    await ok(dir, 'remote', 'add', 'storage', 's3://b');
    await ok(dir, 'remote', 'add', 'backup', '/mnt/backup');
    const r = await tdv(dir, 'remote', 'modify', 'strage', 'region', 'x');
    expect(r.code).toBe(2);
    expectOneLineError(r.stderr, 'unknown remote "strage"', 'known remotes: backup, storage');
  });
});

describe('tdv remote remove', () => {
  it('removes the remote from both files; removing the default unsets core.remote', async () => {
    const dir = await newRepo();
    await ok(dir, 'remote', 'add', '-d', 'storage', 's3://b');
    await ok(dir, 'remote', 'add', 'backup', '/mnt/backup');
    await ok(dir, 'remote', 'modify', 'storage', 'secret_access_key', 'x', '--local');
    expect(await ok(dir, 'remote', 'remove', 'storage')).toBe('Removed remote storage.\nIt was the default remote; there is no default now.\n');
    const cfg = await config(dir);
    expect(Object.keys(cfg.remote)).toEqual(['backup']);
    expect(cfg.core.remote).toBeUndefined();
    expect(read(dir, CONFIG)).not.toMatch(/^\s*remote: storage/m);
    expect(read(dir, LOCAL)).toBe('');
    const d = await tdv(dir, 'remote', 'default');
    expect(d.code).toBe(1);
    expectOneLineError(d.stderr, 'no default remote is set', '`tdv remote default NAME`');
  });

  it('leaves core.remote alone when another remote is the default', async () => {
    const dir = await newRepo();
    await ok(dir, 'remote', 'add', '-d', 'storage', 's3://b');
    await ok(dir, 'remote', 'add', 'backup', '/mnt/backup');
    expect(await ok(dir, 'remote', 'remove', 'backup')).toBe('Removed remote backup.\n');
    expect((await config(dir)).core.remote).toBe('storage');
  });

  it('--local removes only the section in config.local.yaml', async () => {
    const dir = await newRepo();
    await ok(dir, 'remote', 'add', '-d', 'storage', 's3://b');
    await ok(dir, 'remote', 'modify', 'storage', 'access_key_id', 'k', '--local');
    await ok(dir, 'remote', 'remove', '--local', 'storage');
    const cfg = await config(dir);
    expect(cfg.remote.storage).toEqual({ url: 's3://b' });
    expect(cfg.core.remote).toBe('storage');
    const again = await tdv(dir, 'remote', 'remove', '--local', 'storage');
    expect(again.code).toBe(2);
    expectOneLineError(again.stderr, 'has no section in .tdv/config.local.yaml');
  });

  it('fails with exit 2 for an unknown remote, listing the known ones, and writes nothing', async () => {
    const dir = await newRepo();
    await ok(dir, 'remote', 'add', 'storage', 's3://b');
    await ok(dir, 'remote', 'add', 'nas', '/mnt/nas');
    const before = state(dir);
    const r = await tdv(dir, 'remote', 'remove', 'nope');
    expect(r.code).toBe(2);
    expectOneLineError(r.stderr, 'unknown remote "nope"', 'known remotes: nas, storage');
    expect(state(dir)).toEqual(before);
    const none = await tdv(await newRepo(), 'remote', 'remove', 'nope');
    expect(none.code).toBe(2);
    expectOneLineError(none.stderr, 'no remotes are configured', '`tdv remote add NAME URL`');
  });
});

describe('tdv remote default', () => {
  it('prints, sets and unsets the default remote', async () => {
    const dir = await newRepo();
    await ok(dir, 'remote', 'add', 'a', '/a');
    await ok(dir, 'remote', 'add', 'b', '/b');
    const none = await tdv(dir, 'remote', 'default');
    expect(none.code).toBe(1);
    expectOneLineError(none.stderr, 'no default remote');
    expect(await ok(dir, 'remote', 'default', 'a')).toBe('The default remote is now a.\n');
    expect(await ok(dir, 'remote', 'default')).toBe('a\n');
    expect((await listJson(dir)).default).toBe('a');
    expect(await ok(dir, 'remote', 'default', '--unset')).toBe('Unset the default remote.\n');
    expect((await config(dir)).core.remote).toBeUndefined();
    expect(read(dir, CONFIG)).not.toMatch(/^core:/m);
  });

  it('--local overrides the committed default in this clone only', async () => {
    const dir = await newRepo();
    await ok(dir, 'remote', 'add', '-d', 'a', '/a');
    await ok(dir, 'remote', 'add', 'b', '/b');
    await ok(dir, 'remote', 'default', '--local', 'b');
    expect(read(dir, LOCAL)).toBe('core:\n  remote: b\n');
    expect(await ok(dir, 'remote', 'default')).toBe('b\n');
    expect(await ok(dir, 'remote', 'default', '--unset', '--local')).toBe('Unset the default in .tdv/config.local.yaml; a remains the default (from .tdv/config.yaml).\n');
    expect(await ok(dir, 'remote', 'default')).toBe('a\n');
  });

  it('refuses a remote that is not configured (exit 2), listing the known ones', async () => {
    const dir = await newRepo();
    await ok(dir, 'remote', 'add', 'a', '/a');
    const before = state(dir);
    const r = await tdv(dir, 'remote', 'default', 'zzz');
    expect(r.code).toBe(2);
    expectOneLineError(r.stderr, 'unknown remote "zzz"', 'known remotes: a');
    expect(state(dir)).toEqual(before);
  });

  it('warns when the default names a remote that is not configured', async () => {
    const dir = await newRepo();
    setConfig(dir, 'core:\n  remote: gone\n');
    const r = await tdv(dir, 'remote', 'default');
    expect(r.code).toBe(0);
    expect(r.stdout).toBe('gone\n');
    expect(r.stderr).toContain('warning: the default remote "gone" is not configured');
  });
});

describe('hand-edited remote configuration', () => {
  it('credentials in config.yaml make every command fail with file:line and the fix', async () => {
    const dir = await newRepo();
    setConfig(dir, 'remote:\n  storage:\n    url: s3://b\n    secret_access_key: hunter2\n');
    for (const args of [['status'], ['remote', 'list']]) {
      const r = await tdv(dir, ...args);
      expect(r.code).toBe(1);
      expectOneLineError(r.stderr, `${path.join(dir, CONFIG)}:4:`, 'must not be in config.yaml', 'tdv remote modify storage secret_access_key VALUE --local');
      expect(r.stderr).not.toContain('hunter2');
    }
  });

  it('a bad value names the file and line', async () => {
    const dir = await newRepo();
    write(dir, LOCAL, 'remote:\n  storage:\n    url: /x\n    jobs: -3\n');
    const r = await tdv(dir, 'remote', 'list');
    expect(r.code).toBe(1);
    expectOneLineError(r.stderr, `${path.join(dir, LOCAL)}:4:`, 'remote.storage.jobs must be a whole number >= 1, got -3');
  });
});

describe('tdv remote --help', () => {
  it.each(['add', 'list', 'remove', 'default', 'modify'])('remote %s --help shows examples', async (sub) => {
    const r = await tdv(await newRepo(), 'remote', sub, '--help');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('Examples:');
    expect(r.stdout).toContain(`$ tdv remote ${sub === 'list' ? 'list' : sub}`);
  });
});
