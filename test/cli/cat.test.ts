import fs from 'node:fs';
import path from 'node:path';
import { execa } from 'execa';
import { PassThrough } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { main } from '../../src/cli/main.js';
import { TDV_BIN, tdv, tmpDir, write } from '../helpers/repo.js';
import { expectOneLineError } from '../helpers/expect.js';
import { commitAt, isolateUserCache, makeSource } from '../helpers/source.js';

/** CLI layer: `tdv cat` writes the bytes and nothing else; its error lines and exit codes. What it reads: test/api/cat.test.ts. */
isolateUserCache();

/** Runs tdv in-process, keeping stdout as bytes. */
async function tdvBytes(cwd: string, ...args: string[]): Promise<{ code: number; stdout: Buffer; stderr: string }> {
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  const out: Buffer[] = [];
  let err = '';
  stdout.on('data', (d: Buffer) => out.push(d));
  stderr.on('data', (d) => (err += d));
  const code = await main(['node', 'tdv', ...args], { cwd, stdout, stderr, stdin: new PassThrough(), env: { ...process.env, NO_COLOR: '1' } });
  return { code, stdout: Buffer.concat(out), stderr: err };
}

describe('tdv cat', () => {
  it('writes the bytes exactly (binary-safe), paths relative to where tdv runs', async () => {
    const src = await makeSource();
    const bytes = Buffer.from(Array.from({ length: 256 }, (_, i) => i));
    write(src.dir, 'data/bin.dat', bytes);
    expect((await tdv(src.dir, 'add', 'data/bin.dat')).code).toBe(0);
    await commitAt(src.dir, '2016-09-01T00:00:00Z', 'bin');
    const r = await tdvBytes(path.join(src.dir, 'data'), 'cat', 'bin.dat');
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout.equals(bytes)).toBe(true);
    const old = await tdvBytes(src.dir, 'cat', '--rev', 'v1', 'data/trips.csv');
    expect(old.stdout.toString()).toBe('id,km\n1,v1\n');
  });

  it('--url reads another repository, also outside any', async () => {
    const src = await makeSource();
    const r = await tdvBytes(tmpDir(), 'cat', '--url', src.url, '--rev', '@2016-07-31', 'data/trips.csv');
    expect({ code: r.code, stderr: r.stderr, out: r.stdout.toString() }).toEqual({ code: 0, stderr: '', out: 'id,km\n1,v1\n' });
  });

  it('errors: a directory suggests tdv ls, a missing file, a path outside the repository', async () => {
    const src = await makeSource();
    const dir = await tdv(src.dir, 'cat', 'images');
    expect(dir.code).toBe(1);
    expectOneLineError(dir.stderr, 'images is a directory at HEAD', '`tdv ls images`');
    expect(dir.stdout).toBe('');
    const missing = await tdv(src.dir, 'cat', '--rev', 'v1', 'images/c.png');
    expect(missing.code).toBe(1);
    expectOneLineError(missing.stderr, 'images/c.png does not exist at v1');
    const outside = await tdv(src.dir, 'cat', '../x');
    expect(outside.code).toBe(2);
    expectOneLineError(outside.stderr, 'outside the repository');
    const none = await tdv(tmpDir(), 'cat', 'x');
    expect(none.code).toBe(1);
    expectOneLineError(none.stderr, 'not a tdv repository');
  });

  it.skipIf(!fs.existsSync('/dev/full'))('a full disk behind `tdv cat > file` is one error line and exit 1, not a stack trace', async () => {
    const src = await makeSource();
    const r = await execa('sh', ['-c', `exec node "$0" cat data/trips.csv > /dev/full`, TDV_BIN], { cwd: src.dir, reject: false, env: { NO_COLOR: '1' } });
    expect(r.exitCode).toBe(1);
    expectOneLineError(`${r.stderr}\n`, 'no space left on device', 'standard output', 'data/trips.csv');
  });
});
