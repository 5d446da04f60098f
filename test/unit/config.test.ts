import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { FormatError } from '../../src/errors.js';
import { CONFIG_TEMPLATE, DEFAULT_LINK_TYPES, loadConfig, parseRemoteUrl, remoteValueProblem, resolveRemoteUrl } from '../../src/formats/config.js';
import { isBlankYaml } from '../../src/util/yaml.js';
import { finishesWithin } from '../helpers/isolate.js';
import { useTmpDirs } from '../helpers/tmp.js';

const tmp = useTmpDirs();

function tdvDir(files: Record<string, string>): string {
  const d = path.join(tmp(), '.tdv');
  fs.mkdirSync(d);
  for (const [name, text] of Object.entries(files)) fs.writeFileSync(path.join(d, name), text);
  return d;
}

async function loadError(dir: string): Promise<Error> {
  const err = await loadConfig(dir).then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(Error);
  return err as Error;
}

describe('loadConfig', () => {
  it('gives the defaults without any config file', async () => {
    const cfg = await loadConfig(tdvDir({}));
    expect(cfg).toEqual({ core: { lock_timeout: 60 }, cache: { type: ['reflink', 'copy'] }, remote: {}, runner: {}, runnerAt: {} });
    expect(DEFAULT_LINK_TYPES).toEqual(['reflink', 'copy']);
  });

  it('accepts the commented template that init writes, and an empty file', async () => {
    expect(await loadConfig(tdvDir({ 'config.yaml': CONFIG_TEMPLATE }))).toEqual(await loadConfig(tdvDir({})));
    expect(await loadConfig(tdvDir({ 'config.yaml': '' }))).toEqual(await loadConfig(tdvDir({})));
  });

  it('reads a setting appended below the commented template', async () => {
    const text = `${CONFIG_TEMPLATE}cache:\n  type: hardlink,copy\n`;
    // loadConfig first asks isBlankYaml; if that never returns, calling loadConfig here would hang the run.
    const probe = await finishesWithin(isBlankYaml, text, 2000);
    expect(probe.done, 'loading this config hangs: isBlankYaml backtracks catastrophically (see yaml.test.ts)').toBe(true);
    expect((await loadConfig(tdvDir({ 'config.yaml': text }))).cache.type).toEqual(['hardlink', 'copy']);
  });

  it('reads core.lock_timeout, cache.type and cache.dir (resolved against .tdv/)', async () => {
    const d = tdvDir({ 'config.yaml': 'core:\n  lock_timeout: 2.5\ncache:\n  type: hardlink, symlink, copy\n  dir: ../../shared-cache\n' });
    const cfg = await loadConfig(d);
    expect(cfg.core.lock_timeout).toBe(2.5);
    expect(cfg.cache.type).toEqual(['hardlink', 'symlink', 'copy']);
    expect(cfg.cache.dir).toBe(path.resolve(d, '../../shared-cache'));
    expect(path.isAbsolute(cfg.cache.dir!)).toBe(true);
  });

  it('keeps an absolute cache.dir as it is', async () => {
    expect((await loadConfig(tdvDir({ 'config.yaml': 'cache:\n  dir: /mnt/cache\n' }))).cache.dir).toBe('/mnt/cache');
  });

  it('lets config.local.yaml override config.yaml key by key', async () => {
    const cfg = await loadConfig(
      tdvDir({
        'config.yaml': 'core:\n  lock_timeout: 10\ncache:\n  type: copy\n',
        'config.local.yaml': 'cache:\n  type: symlink\n  dir: /local/cache\n',
      }),
    );
    expect(cfg).toEqual({ core: { lock_timeout: 10 }, cache: { type: ['symlink'], dir: '/local/cache' }, remote: {}, runner: {}, runnerAt: {} });
  });

  it('accepts an empty section', async () => {
    expect((await loadConfig(tdvDir({ 'config.yaml': 'core:\ncache:\n  type: copy\n' }))).cache.type).toEqual(['copy']);
  });

  it('rejects an unknown section, naming the file and the line of the section', async () => {
    const d = tdvDir({ 'config.yaml': 'core:\n  lock_timeout: 5\ncahce:\n  type: copy\n' });
    const err = await loadError(d);
    expect(err).toBeInstanceOf(FormatError);
    expect(err.message).toContain(`${path.join(d, 'config.yaml')}:3`);
    expect(err.message).toMatch(/unknown section "cahce"/);
    expect(err.message).toMatch(/Known sections: core, cache/);
  });

  it('rejects an unknown section with a scalar value on its own line number', async () => {
    const d = tdvDir({ 'config.yaml': '# comment\nremote: s3://bucket\n' });
    expect((await loadError(d)).message).toContain(`${path.join(d, 'config.yaml')}:2:`);
  });

  it('rejects an unknown key, naming the file, the line and the known keys', async () => {
    const d = tdvDir({ 'config.yaml': 'cache:\n  type: copy\n  typo: 1\n' });
    const err = await loadError(d);
    expect(err).toBeInstanceOf(FormatError);
    expect(err.message).toContain(`${path.join(d, 'config.yaml')}:3`);
    expect(err.message).toMatch(/unknown key "cache\.typo"/);
    expect(err.message).toMatch(/cache\.dir, cache\.type/);
  });

  it('rejects an unknown key whose value is a block, naming the line of the key', async () => {
    const d = tdvDir({ 'config.yaml': 'cache:\n  remote:\n    url: s3://bucket\n' });
    expect((await loadError(d)).message).toContain(`${path.join(d, 'config.yaml')}:2:`);
  });

  it('reports errors in config.local.yaml against that file', async () => {
    const d = tdvDir({ 'config.yaml': 'cache:\n  type: copy\n', 'config.local.yaml': '\ncore:\n  lock_timout: 3\n' });
    const err = await loadError(d);
    expect(err.message).toContain(`${path.join(d, 'config.local.yaml')}:3`);
  });

  it.each([
    ['a string lock_timeout', 'core:\n  lock_timeout: "60"\n', /"core\.lock_timeout" must be a number/, 2],
    ['a negative lock_timeout', 'core:\n  lock_timeout: -1\n', /lock_timeout must be a number of seconds from 0 to 86400/, 2],
    ['an infinite lock_timeout', 'core:\n  lock_timeout: .inf\n', /lock_timeout must be a number of seconds from 0 to 86400/, 2],
    ['a lock_timeout of centuries', 'core:\n  lock_timeout: 1e308\n', /lock_timeout must be a number of seconds from 0 to 86400/, 2],
    ['a numeric cache.dir', 'cache:\n  dir: 42\n', /"cache\.dir" must be a string/, 2],
    ['a list cache.type', 'cache:\n  type: [copy]\n', /"cache\.type" must be a string/, 2],
    ['a section that is not a mapping', 'core: 5\n', /"core" must be a mapping/, 1],
  ])('rejects %s with the line of the value', async (_what, text, msg, line) => {
    const d = tdvDir({ 'config.yaml': text });
    const err = await loadError(d);
    expect(err).toBeInstanceOf(FormatError);
    expect(err.message).toMatch(msg);
    expect(err.message).toContain(`config.yaml:${line}`);
  });

  it('rejects a config that is not a mapping', async () => {
    expect((await loadError(tdvDir({ 'config.yaml': '- core\n' }))).message).toMatch(/must be a mapping of sections/);
  });

  it('rejects an unknown cache.type with a format error naming the file and line', async () => {
    const d = tdvDir({ 'config.yaml': 'cache:\n  type: reflink,hardlinks\n' });
    const err = await loadError(d);
    expect(err).toBeInstanceOf(FormatError);
    expect(err.message).toContain(`${path.join(d, 'config.yaml')}:2`);
    expect(err.message).toMatch(/"hardlinks"/);
  });

  it('reports invalid YAML with file, line and column', async () => {
    const d = tdvDir({ 'config.yaml': 'core:\n  lock_timeout: [5\n' });
    const err = await loadError(d);
    expect(err).toBeInstanceOf(FormatError);
    expect(err.message).toMatch(new RegExp(`${path.join(d, 'config.yaml').replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}:\\d+:\\d+`));
  });

  it('rejects a key given twice', async () => {
    await expect(loadConfig(tdvDir({ 'config.yaml': 'core:\n  lock_timeout: 1\n  lock_timeout: 2\n' }))).rejects.toBeInstanceOf(FormatError);
  });
});

describe('loadConfig: remotes', () => {
  const full =
    'core:\n  remote: storage\nremote:\n  storage:\n    url: s3://bucket/some/prefix\n    endpointurl: http://127.0.0.1:4568\n    region: us-east-1\n' +
    '    profile: research\n    force_path_style: true\n    checksum: when_required\n    jobs: 8\n  nas:\n    url: ../tdv-store\n';

  it('reads every remote key, the default remote, and keeps a relative url as written', async () => {
    const cfg = await loadConfig(tdvDir({ 'config.yaml': full, 'config.local.yaml': 'remote:\n  storage:\n    access_key_id: AKIA1\n    secret_access_key: s3cr3t\n' }));
    expect(cfg.core.remote).toBe('storage');
    expect(cfg.remote).toEqual({
      storage: {
        url: 's3://bucket/some/prefix',
        endpointurl: 'http://127.0.0.1:4568',
        region: 'us-east-1',
        profile: 'research',
        force_path_style: true,
        checksum: 'when_required',
        jobs: 8,
        access_key_id: 'AKIA1',
        secret_access_key: 's3cr3t',
      },
      nas: { url: '../tdv-store' },
    });
  });

  it('merges config.local.yaml into a remote key by key: a local section needs no url of its own', async () => {
    const cfg = await loadConfig(
      tdvDir({
        'config.yaml': 'remote:\n  storage:\n    url: s3://b/p\n    region: us-east-1\n    jobs: 4\n',
        'config.local.yaml': 'core:\n  remote: storage\nremote:\n  storage:\n    region: eu-west-1\n  mine:\n    url: /mnt/mine\n',
      }),
    );
    expect(cfg.remote.storage).toEqual({ url: 's3://b/p', region: 'eu-west-1', jobs: 4 });
    expect(cfg.remote.mine).toEqual({ url: '/mnt/mine' });
    expect(cfg.core.remote).toBe('storage');
  });

  it('lets config.local.yaml override the url and the default remote', async () => {
    const cfg = await loadConfig(
      tdvDir({ 'config.yaml': 'core:\n  remote: a\nremote:\n  a:\n    url: /one\n  b:\n    url: /two\n', 'config.local.yaml': 'core:\n  remote: b\nremote:\n  a:\n    url: /three\n' }),
    );
    expect(cfg.core.remote).toBe('b');
    expect(cfg.remote.a!.url).toBe('/three');
  });

  it('accepts an empty remote section and a default that names no configured remote (checked where a remote is used)', async () => {
    const cfg = await loadConfig(tdvDir({ 'config.yaml': 'core:\n  remote: elsewhere\nremote:\n' }));
    expect(cfg.remote).toEqual({});
    expect(cfg.core.remote).toBe('elsewhere');
  });

  it('has no remote called "constructor" or "toString" unless one is configured', async () => {
    const cfg = await loadConfig(tdvDir({ 'config.yaml': 'remote:\n  a:\n    url: /a\n' }));
    expect(cfg.remote.constructor).toBeUndefined();
    expect(cfg.remote.toString).toBeUndefined();
    expect(Object.keys(cfg.remote)).toEqual(['a']);
  });

  it('rejects a remote without a url after merging, at the line of its section', async () => {
    const d = tdvDir({ 'config.yaml': 'core:\n  lock_timeout: 5\n', 'config.local.yaml': 'remote:\n  storage:\n    region: us-east-1\n' });
    const err = await loadError(d);
    expect(err).toBeInstanceOf(FormatError);
    expect(err.message).toContain(`${path.join(d, 'config.local.yaml')}:2`);
    expect(err.message).toMatch(/remote "storage" has no url/);
    expect(err.message).toContain('tdv remote modify storage url URL');
  });

  it.each(['access_key_id', 'secret_access_key'])('refuses %s in config.yaml, saying how to move it to config.local.yaml, without echoing it', async (key) => {
    const d = tdvDir({ 'config.yaml': `remote:\n  storage:\n    url: s3://b\n    ${key}: TOPSECRET\n` });
    const err = await loadError(d);
    expect(err).toBeInstanceOf(FormatError);
    expect(err.message).toContain(`${path.join(d, 'config.yaml')}:4`);
    expect(err.message).toContain('config.local.yaml');
    expect(err.message).toContain(`tdv remote modify storage ${key} VALUE --local`);
    expect(err.message).not.toContain('TOPSECRET');
  });

  it('rejects an unknown remote key, listing the known ones', async () => {
    const d = tdvDir({ 'config.yaml': 'remote:\n  storage:\n    url: s3://b\n    regoin: x\n' });
    const err = await loadError(d);
    expect(err.message).toContain(`${path.join(d, 'config.yaml')}:4`);
    expect(err.message).toMatch(/unknown key "remote\.storage\.regoin"/);
    expect(err.message).toContain('url, endpointurl, region, profile, force_path_style, checksum, jobs, layout, chunking, compression, limit_rate, access_key_id, secret_access_key');
  });

  it('lists remote among the known sections', async () => {
    expect((await loadError(tdvDir({ 'config.yaml': 'remotes:\n  a:\n    url: /a\n' }))).message).toMatch(/Known sections: core, cache, remote/);
  });

  it.each([
    ['a name with a space', 'remote:\n  my store:\n    url: /a\n', /invalid remote name "my store"/, 2],
    ['a name starting with a dot', 'remote:\n  .hidden:\n    url: /a\n', /invalid remote name/, 2],
    ['a remote that is not a mapping', 'remote:\n  storage: s3://b\n', /"remote\.storage" must be a mapping/, 2],
    ['a remote section that is a list', 'remote:\n  - storage\n', /"remote" must be a mapping/, 1],
    ['jobs 0', 'remote:\n  s:\n    url: /a\n    jobs: 0\n', /remote\.s\.jobs must be a whole number >= 1, got 0/, 4],
    ['fractional jobs', 'remote:\n  s:\n    url: /a\n    jobs: 1.5\n', /remote\.s\.jobs must be a whole number >= 1/, 4],
    ['jobs as a string', 'remote:\n  s:\n    url: /a\n    jobs: "8"\n', /remote\.s\.jobs must be a whole number >= 1, got "8"/, 4],
    ['an unknown checksum mode', 'remote:\n  s:\n    url: /a\n    checksum: always\n', /remote\.s\.checksum must be when_supported or when_required, got "always"/, 4],
    ['force_path_style as a string', 'remote:\n  s:\n    url: /a\n    force_path_style: "yes"\n', /remote\.s\.force_path_style must be true or false/, 4],
    ['an endpointurl without http(s)', 'remote:\n  s:\n    url: s3://b\n    endpointurl: 127.0.0.1:4568\n', /remote\.s\.endpointurl must be an http:\/\/ or https:\/\/ URL/, 4],
    ['a numeric region', 'remote:\n  s:\n    url: s3://b\n    region: 12\n', /remote\.s\.region must be a non-empty string \(quote it/, 4],
    ['an empty profile', 'remote:\n  s:\n    url: s3://b\n    profile: ""\n', /remote\.s\.profile must be a non-empty string/, 4],
    ['an unsupported scheme', 'remote:\n  s:\n    url: gs://bucket/x\n', /unsupported remote url "gs:\/\/bucket\/x".*s3:\/\/bucket\/prefix, file:\/\/\/absolute\/path/, 3],
    ['an S3 url without a bucket', 'remote:\n  s:\n    url: s3:///prefix\n', /names no bucket/, 3],
    ['a relative file url', 'remote:\n  s:\n    url: file://relative/dir\n', /file:\/\/\/absolute\/path/, 3],
    ['an empty url', 'remote:\n  s:\n    url: ""\n', /must not be empty/, 3],
    ['a numeric url', 'remote:\n  s:\n    url: 42\n', /remote\.s\.url must be a string/, 3],
    ['a default remote that is not a name', 'core:\n  remote: "a b"\n', /core\.remote must be a remote name/, 2],
  ])('rejects %s with the line', async (_what, text, msg, line) => {
    const d = tdvDir({ 'config.yaml': text });
    const err = await loadError(d);
    expect(err).toBeInstanceOf(FormatError);
    expect(err.message).toMatch(msg);
    expect(err.message).toContain(`${path.join(d, 'config.yaml')}:${line}`);
  });

  it('the commented example in the template loads once uncommented', async () => {
    expect(CONFIG_TEMPLATE).toContain('#   remote: storage');
    const lines = CONFIG_TEMPLATE.split('\n');
    const from = lines.indexOf('# core:');
    const to = lines.findIndex((l) => l.startsWith('# Credentials'));
    expect(from).toBeGreaterThan(0);
    expect(to).toBeGreaterThan(from);
    const text = lines
      .slice(from, to)
      .map((l) => l.replace(/^# ?/, ''))
      .join('\n');
    const cfg = await loadConfig(tdvDir({ 'config.yaml': text }));
    expect(cfg.core.remote).toBe('storage');
    expect(cfg.remote.storage).toEqual({ url: 's3://my-bucket/tdv', region: 'us-east-1', jobs: 8 });
  });
});

describe('loadConfig: positions and names', () => {
  it('names the line and column of the key at fault, or of the nearest enclosing key written', async () => {
    const d = tdvDir({ 'config.yaml': 'remote:\n  storage:\n    url: s3://b\n    regoin: x\n' });
    expect((await loadError(d)).message).toMatch(new RegExp(`^${path.join(d, 'config.yaml').replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}:4:5: unknown key`));
    const e = tdvDir({ 'config.local.yaml': 'cache:\n  type: copy\nremote:\n  s:\n    region: r\n' });
    expect((await loadError(e)).message).toContain(`${path.join(e, 'config.local.yaml')}:4:3: remote "s" has no url`);
  });

  it('keeps remotes whose names are also Object properties ("constructor", "__proto__" is not a name)', async () => {
    const cfg = await loadConfig(tdvDir({ 'config.yaml': 'remote:\n  constructor:\n    url: /a\n  prototype:\n    url: /b\n' }));
    expect(Object.keys(cfg.remote)).toEqual(['constructor', 'prototype']);
    expect(cfg.remote.constructor).toEqual({ url: '/a' });
  });

  it('checks a value given on the command line with the schema the file is checked with', () => {
    expect(remoteValueProblem('jobs', 0)).toBe('must be a whole number >= 1, got 0');
    expect(remoteValueProblem('secret_access_key', 5)).toBe('must be a non-empty string (quote it if it looks like a number)');
    expect(remoteValueProblem('url', 'gs://x')).toMatch(/^unsupported remote url "gs:\/\/x"/);
    expect(remoteValueProblem('region', 'eu-west-1')).toBeUndefined();
  });
});

describe('remote urls', () => {
  it.each([
    ['s3://bucket', { kind: 's3', bucket: 'bucket', prefix: '' }],
    ['s3://bucket/', { kind: 's3', bucket: 'bucket', prefix: '' }],
    ['s3://my.bucket-1/a/b/', { kind: 's3', bucket: 'my.bucket-1', prefix: 'a/b' }],
    ['S3://bucket//a', { kind: 's3', bucket: 'bucket', prefix: 'a' }],
    ['file:///srv/tdv%20store', { kind: 'local', path: '/srv/tdv store' }],
    ['/srv/store', { kind: 'local', path: '/srv/store' }],
    ['../store', { kind: 'local', path: '../store' }],
  ])('parseRemoteUrl(%j)', (url, want) => {
    expect(parseRemoteUrl(url)).toEqual(want);
  });

  it.each(['http://host/x', 'https://host/x', 'gs://bucket', 'azure://c', 's3://', 's3:bucket', 'file://host/x', ''])('parseRemoteUrl refuses %j', (url) => {
    expect(() => parseRemoteUrl(url)).toThrow(/s3:\/\/bucket|file:\/\/\/absolute\/path|must not be empty/);
  });

  it('resolveRemoteUrl resolves a relative path against the repository root, not .tdv/', () => {
    expect(resolveRemoteUrl('/repo', '../store')).toEqual({ kind: 'local', path: '/store' });
    expect(resolveRemoteUrl('/repo/sub', 'remote-dir')).toEqual({ kind: 'local', path: '/repo/sub/remote-dir' });
    expect(resolveRemoteUrl('/repo', '/abs/store/')).toEqual({ kind: 'local', path: '/abs/store' });
    expect(resolveRemoteUrl('/repo', 'file:///abs/x')).toEqual({ kind: 'local', path: '/abs/x' });
    expect(resolveRemoteUrl('/repo', 's3://b/p/q/')).toEqual({ kind: 's3', bucket: 'b', prefix: 'p/q' });
  });
});
