import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { snapshot, tdv, write } from '../helpers/repo.js';
import { expectOneLineError, newRepo, objPath, repoWith, sha } from '../helpers/expect.js';

/**
 * CLI layer: how `tdv status` words its StatusResult, its exit codes and its
 * --json document, in one place. What status finds is tested through the API,
 * in test/api/status.test.ts.
 */
const UP_TO_DATE = 'Data and pipelines are up to date.\n';

describe('tdv status: output', () => {
  it('clean: "Data and pipelines are up to date.", exit 0, nothing on stderr (also with nothing tracked)', async () => {
    expect(await tdv(await newRepo(), 'status')).toEqual({ code: 0, stdout: UP_TO_DATE, stderr: '' });
    const dir = await repoWith({ 'a.csv': 'a\n', 'data/x.bin': 'x' }, ['a.csv', 'data']);
    expect(await tdv(dir, 'status')).toEqual({ code: 0, stdout: UP_TO_DATE, stderr: '' });
  });

  it('a change: the pointer as a header, then "modified:" or "deleted:" and the path, exit 0', async () => {
    const dir = await repoWith({ 'a.csv': 'a\n', 'b.csv': 'b\n', 'data/a': 'a' }, ['a.csv', 'b.csv', 'data']);
    write(dir, 'a.csv', 'a changed\n');
    fs.rmSync(path.join(dir, 'b.csv'));
    fs.rmSync(path.join(dir, 'data'), { recursive: true });
    const r = await tdv(dir, 'status');
    expect(r.code).toBe(0);
    expect(r.stdout).toBe('a.csv.tdv:\n    modified:     a.csv\nb.csv.tdv:\n    deleted:      b.csv\ndata.tdv:\n    deleted:      data\n');
    // Targets print the same way.
    expect((await tdv(dir, 'status', 'a.csv')).stdout).toBe('a.csv.tdv:\n    modified:     a.csv\n');
  });

  it('the files of a modified directory, one line each under it', async () => {
    const dir = await repoWith({ 'images/a.png': 'A', 'images/b.png': 'B', 'images/sub/c.png': 'C' }, ['images']);
    write(dir, 'images/a.png', 'A2');
    fs.rmSync(path.join(dir, 'images/sub/c.png'));
    write(dir, 'images/sub/new.png', 'N');
    const r = await tdv(dir, 'status');
    expect(r.code).toBe(0);
    expect(r.stdout).toBe('images.tdv:\n    modified:     images\n        added:     images/sub/new.png\n        modified:  images/a.png\n        deleted:   images/sub/c.png\n');
  });

  it('an object missing from the cache: "not in cache:" with the `tdv pull` hint', async () => {
    const dir = await repoWith({ 'a.csv': 'a\n' }, ['a.csv']);
    fs.rmSync(objPath(dir, sha('a\n')));
    const r = await tdv(dir, 'status');
    expect(r.code).toBe(0);
    expect(r.stdout).toBe('a.csv.tdv:\n    not in cache: a.csv (run `tdv pull` to fetch it)\n');
  });

  it('a symlink inside a tracked directory: one warning on stderr', async () => {
    const dir = await repoWith({ 'data/a': 'a' }, ['data']);
    fs.symlinkSync('/etc/hostname', path.join(dir, 'data', 'link'));
    const r = await tdv(dir, 'status');
    expect(r.stdout).toBe(UP_TO_DATE);
    expect(r.stderr.split('\n').filter((l) => l.includes('data/link'))).toEqual([expect.stringContaining('symlink not followed')]);
  });

  it('--json prints the StatusResult as one document, paths relative to the root from a subdirectory too', async () => {
    const dir = await repoWith({ 'a.csv': 'a\n', 'images/x.png': 'X', 'sub/c.csv': 'c\n' }, ['a.csv', 'images', 'sub/c.csv']);
    const clean = await tdv(dir, 'status', '--json');
    expect({ ...clean, stdout: JSON.parse(clean.stdout) }).toEqual({ code: 0, stdout: { clean: true, data: [] }, stderr: '' });
    write(dir, 'a.csv', 'A\n');
    write(dir, 'images/z.png', 'Z');
    write(dir, 'sub/c.csv', 'C\n');
    const r = await tdv(path.join(dir, 'sub'), 'status', '--json');
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout)).toEqual({
      clean: false,
      data: [
        { path: 'a.csv', pointer: 'a.csv.tdv', workspace: 'modified', cache: 'ok' },
        { path: 'images', pointer: 'images.tdv', workspace: 'modified', cache: 'ok', files: { added: ['z.png'], modified: [], deleted: [] } },
        { path: 'sub/c.csv', pointer: 'sub/c.csv.tdv', workspace: 'modified', cache: 'ok' },
      ],
    });
    // A target is resolved against the directory it was typed in.
    expect(JSON.parse((await tdv(path.join(dir, 'sub'), 'status', '--json', 'c.csv')).stdout).data.map((d: { path: string }) => d.path)).toEqual(['sub/c.csv']);
  });

  it('an untracked target: exit 2, one error line naming it and `tdv add`, nothing on stdout, nothing written', async () => {
    const dir = await repoWith({ 'a.csv': 'a\n' }, ['a.csv']);
    write(dir, 'other.csv', 'o\n');
    const before = snapshot(dir);
    const r = await tdv(dir, 'status', 'other.csv');
    expect(r.code).toBe(2);
    expect(r.stdout).toBe('');
    expectOneLineError(r.stderr, 'other.csv is not tracked by tdv', '`tdv add other.csv`');
    expect(snapshot(dir)).toEqual(before);
  });

  it('a stage that would run: its name and reasons on one line', async () => {
    const dir = await newRepo();
    write(dir, 'in.txt', 'hi\n');
    write(dir, 'tdv.yaml', 'stages:\n  copy:\n    cmd: cp in.txt out.txt\n    deps: [in.txt]\n    outs: [out.txt]\n');
    const r = await tdv(dir, 'status');
    expect(r.code).toBe(0);
    expect(r.stdout).toBe('copy: never run\n');
  });

  it('a frozen stage: "<name>: frozen" as a reminder, and still up to date', async () => {
    const dir = await newRepo();
    write(dir, 'in.txt', 'v1\n');
    write(dir, 'tdv.yaml', 'stages:\n  prep:\n    cmd: cp in.txt mid.txt\n    deps: [in.txt]\n    outs: [mid.txt]\n');
    expect((await tdv(dir, 'repro')).code).toBe(0);
    write(dir, 'tdv.yaml', 'stages:\n  prep:\n    cmd: cp in.txt mid.txt\n    deps: [in.txt]\n    outs: [mid.txt]\n    frozen: true\n');
    write(dir, 'in.txt', 'v2\n');
    expect(await tdv(dir, 'status')).toEqual({ code: 0, stdout: `prep: frozen\n${UP_TO_DATE}`, stderr: '' });
    expect((await tdv(dir, 'repro', '--dry')).stdout).toContain('frozen prep: not run');
  });
});
