import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { execa } from 'execa';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { read, snapshot, tdv, tdvBin, tmpDir, write } from '../helpers/repo.js';
import { expectOneLineError } from '../helpers/expect.js';
import { isolateUserCache, makeSource } from '../helpers/source.js';

/** CLI layer: `tdv get`'s summary line, --json, -o relative to where tdv runs, and its error lines. What it does: test/api/get.test.ts. */
isolateUserCache();

describe('tdv get', () => {
  it('says what it wrote where; -o is relative to where tdv runs', async () => {
    const src = await makeSource();
    const out = fs.realpathSync(tmpDir());
    const r = await tdv(out, 'get', src.url, 'images', '--rev', 'v1', '-o', 'imgs');
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toBe(`Downloaded images (2 files, 2 B) of ${src.url} at ${src.v1.slice(0, 12)} to ${path.join(out, 'imgs')}\n`);
    expect(read(out, 'imgs/sub/b.png')).toBe('B');
    const json = await tdv(out, 'get', path.relative(out, src.dir), 'data/trips.csv', '--json');
    expect(JSON.parse(json.stdout)).toEqual({ url: src.dir, commit: src.v2, path: 'data/trips.csv', out: path.join(out, 'trips.csv'), kind: 'file', files: 1, bytes: 16 });
  });

  it('errors: an existing output, a URL starting with "-", a missing path', async () => {
    const src = await makeSource();
    const out = fs.realpathSync(tmpDir());
    write(out, 'trips.csv', 'mine');
    const exists = await tdv(out, 'get', src.url, 'data/trips.csv');
    expect(exists.code).toBe(2);
    expectOneLineError(exists.stderr, 'already exists', '--force');
    const dash = await tdv(out, 'get', '--', '-uevil', 'x');
    expect(dash.code).toBe(2);
    expectOneLineError(dash.stderr, 'starts with "-"');
    const missing = await tdv(out, 'get', src.url, 'nope');
    expect(missing.code).toBe(1);
    expectOneLineError(missing.stderr, 'nope does not exist at HEAD');
    expect(read(out, 'trips.csv')).toBe('mine');
  });

  it('never replaces the directory it runs in, one holding it, or the home directory, even with --force', async () => {
    const src = await makeSource();
    const work = fs.realpathSync(tmpDir());
    write(work, 'thesis.tex', 'precious');
    write(work, 'sub/notes', 'mine');
    const before = snapshot(work);
    for (const [cwd, o] of [
      [work, '.'],
      [path.join(work, 'sub'), '..'],
      [path.join(work, 'sub'), work],
    ] as const) {
      const r = await tdv(cwd, 'get', src.url, 'images', '-o', o, '--force');
      expect(r.code, r.stderr).toBe(2);
      expectOneLineError(r.stderr, 'will not replace', 'the directory tdv runs in', `-o ${path.join(path.resolve(cwd, o), 'images')}`);
    }
    // As `dvc get -o DIR` users type it: DIR is $HOME.
    const home = await tdvBin(path.join(work, 'sub'), ['get', src.url, 'images', '-o', work, '--force'], { HOME: work });
    expect(home.code, home.stderr).toBe(2);
    expectOneLineError(`${home.stderr}\n`, 'will not replace', 'the directory tdv runs in');
    const elsewhere = fs.realpathSync(tmpDir());
    const h = await tdvBin(elsewhere, ['get', src.url, 'images', '-o', work, '--force'], { HOME: work });
    expect(h.code, h.stderr).toBe(2);
    expectOneLineError(`${h.stderr}\n`, 'will not replace', 'the home directory');
    expect(snapshot(work)).toEqual(before);
    // An existing directory elsewhere: the message says what --force would delete.
    const other = await tdv(work, 'get', src.url, 'images', '-o', 'sub');
    expect(other.code).toBe(2);
    expectOneLineError(other.stderr, 'already exists', 'everything in it is deleted');
  });

  it('the summary line quotes control characters in names: a file name or -o cannot forge a line or colour the terminal', async () => {
    const src = await makeSource();
    const out = fs.realpathSync(tmpDir());
    const r = await tdv(out, 'get', src.url, 'README.md', '-o', 'x\u001b[31m\nerror: fake');
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toBe(`Downloaded README.md (9 B) of ${src.url} at ${src.v2.slice(0, 12)} to "${out}/x\\u001b[31m\\nerror: fake"\n`);
    expect(read(out, 'x\u001b[31m\nerror: fake')).toBe('# source\n');
  });

  it('never prints the credentials of an https URL (summary line and --json)', async () => {
    const src = await makeSource();
    // The source over Git's dumb HTTP protocol: a bare clone served as static files.
    const www = fs.realpathSync(tmpDir());
    await execa('git', ['clone', '-q', '--bare', src.dir, path.join(www, 'src.git')]);
    await execa('git', ['update-server-info'], { cwd: path.join(www, 'src.git') });
    const server = http.createServer((req, res) => {
      const file = path.join(www, decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname));
      if (!file.startsWith(`${www}/`) || !fs.statSync(file, { throwIfNoEntry: false })?.isFile()) return void res.writeHead(404).end();
      res.writeHead(200);
      fs.createReadStream(file).pipe(res);
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      const url = `http://me:SECRETTOKEN@127.0.0.1:${(server.address() as AddressInfo).port}/src.git`;
      const out = fs.realpathSync(tmpDir());
      const line = await tdv(out, 'get', url, 'data/trips.csv');
      expect(line.code, line.stderr).toBe(0);
      expect(line.stdout).toContain('of http://****@127.0.0.1:');
      const json = await tdv(out, 'get', url, 'README.md', '--json');
      expect(json.code, json.stderr).toBe(0);
      expect(JSON.parse(json.stdout).url).toMatch(/^http:\/\/\*\*\*\*@127\.0\.0\.1:/);
      for (const r of [line, json]) expect(r.stdout + r.stderr).not.toContain('SECRETTOKEN');
      expect(read(out, 'trips.csv')).toBe('id,km\n1,v2\n2,v2\n');
    } finally {
      server.close();
    }
  });
});
