import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { FormatError } from '../../src/errors.js';
import { CONFIG_TEMPLATE, DEFAULT_LINK_TYPES, loadConfig } from '../../src/repo/config.js';
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
    expect(cfg).toEqual({ core: { lock_timeout: 60 }, cache: { type: ['reflink', 'copy'] } });
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
    expect(cfg).toEqual({ core: { lock_timeout: 10 }, cache: { type: ['symlink'], dir: '/local/cache' } });
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
    ['a negative lock_timeout', 'core:\n  lock_timeout: -1\n', /lock_timeout must be a number of seconds >= 0/, 2],
    ['an infinite lock_timeout', 'core:\n  lock_timeout: .inf\n', /lock_timeout must be a number of seconds >= 0/, 2],
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
