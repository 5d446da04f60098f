import fs from 'node:fs';
import path from 'node:path';
import { execa } from 'execa';
import { describe, expect, it } from 'vitest';
import { TDV_BIN, read, tdvBin, tmpDir, write } from '../helpers/repo.js';
import { filePointer, newRepo } from '../helpers/expect.js';

/** End-to-end: the real bin/tdv.js in a child process, as users run it. Needs `npx tsc -p .` first. */

const COMMANDS = [
  'init',
  'add',
  'status',
  'checkout',
  'diff',
  'log',
  'push',
  'fetch',
  'pull',
  'remove',
  'unprotect',
  'gc',
  'remote',
  'install',
  'merge-driver',
  'stage',
  'commit',
  'freeze',
  'unfreeze',
  'ls',
  'cat',
  'get',
  'import',
  'update',
  'serve',
];
// eslint-disable-next-line no-control-regex
const ANSI = /\u001b\[[0-9;]*m/;

/** Runs bin/tdv.js under a pseudo-terminal (util-linux `script`), so stdout is a TTY. */
async function underTty(cwd: string, args: string[], extraEnv: Record<string, string>) {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) if (v !== undefined && k !== 'NO_COLOR' && k !== 'FORCE_COLOR') env[k] = v;
  const cmd = ['node', TDV_BIN, ...args].map((a) => `'${a.replace(/'/g, `'\\''`)}'`).join(' ');
  const r = await execa('script', ['-qec', cmd, '/dev/null'], { cwd, reject: false, extendEnv: false, env: { ...env, TERM: 'xterm', ...extraEnv } });
  return { code: r.exitCode, out: r.stdout };
}

describe('tdv (bin)', () => {
  it('every command’s --help shows examples and exits 0', async () => {
    const dir = await newRepo({ init: false });
    const results = await Promise.all(COMMANDS.map((c) => tdvBin(dir, [c, '--help'])));
    results.forEach((r, i) => {
      expect(r.code, COMMANDS[i]).toBe(0);
      expect(r.stdout, COMMANDS[i]).toContain(`Usage: tdv ${COMMANDS[i]}`);
      expect(r.stdout, COMMANDS[i]).toContain('Examples:');
      expect(r.stdout, COMMANDS[i]).toMatch(/\$ tdv /);
    });
  });

  it('top-level --help lists every command and the exit codes', async () => {
    const dir = await newRepo({ init: false });
    const r = await tdvBin(dir, ['--help']);
    expect(r.code).toBe(0);
    for (const c of COMMANDS) expect(r.stdout).toMatch(new RegExp(`^\\s+${c}\\b`, 'm'));
    expect(r.stdout).toContain('Exit codes: 0 success, 1 the operation failed, 2 usage error');
  });

  it('exits 0 on success, 1 when the operation fails, 2 on a usage error', async () => {
    const dir = await newRepo();
    write(dir, 'a.csv', 'a\n');
    const ok = await tdvBin(dir, ['add', 'a.csv']);
    expect(ok.code).toBe(0);
    expect(read(dir, 'a.csv.tdv')).toBe(filePointer('a.csv', 'a\n'));

    // 1: the operation failed (uncached change in the way, no repository).
    write(dir, 'a.csv', 'edited\n');
    const conflict = await tdvBin(dir, ['checkout']);
    expect(conflict.code).toBe(1);
    expect(conflict.stderr).toMatch(/^error: .*a\.csv.*--force.*$/);
    expect(read(dir, 'a.csv')).toBe('edited\n');
    const outside = await newRepo({ init: false });
    expect((await tdvBin(outside, ['status'])).code).toBe(1);

    // 2: usage errors.
    const unknownCmd = await tdvBin(dir, ['frobnicate']);
    expect(unknownCmd.code).toBe(2);
    expect(unknownCmd.stderr).toContain("unknown command 'frobnicate'");
    const missingArg = await tdvBin(dir, ['add']);
    expect(missingArg.code).toBe(2);
    expect(missingArg.stderr).toContain("missing required argument 'paths'");
    const badOpt = await tdvBin(dir, ['add', '--jobs', '0', 'a.csv']);
    expect(badOpt.code).toBe(2);
    expect(badOpt.stderr).toContain('--jobs must be a whole number >= 1');
    expect((await tdvBin(dir, ['gc'])).code).toBe(2);
  });

  it('a malformed pointer file is a one-line error naming the file and field, exit 1', async () => {
    const dir = await newRepo();
    write(dir, 'a.csv.tdv', 'outs:\n- path: a.csv\n  sha256: nothex\n  size: 1\n');
    const r = await tdvBin(dir, ['status']);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^error: a\.csv\.tdv:3:3: outs\[0\]\.sha256 must be 64 lowercase hex digits/);
    expect(r.stderr.trimEnd().split('\n')).toHaveLength(1);
  });

  it('with NO_COLOR the output has no ANSI escapes, even on a terminal', async () => {
    const dir = await newRepo();
    write(dir, 'a.csv', 'a\n');
    expect((await tdvBin(dir, ['add', 'a.csv'])).code).toBe(0);
    write(dir, 'a.csv', 'changed\n');
    // Control: on a terminal without NO_COLOR, the same report is coloured.
    const coloured = await underTty(dir, ['status'], {});
    expect(coloured.code).toBe(0);
    expect(coloured.out).toContain('modified:');
    expect(coloured.out).toMatch(ANSI);

    const plain = await underTty(dir, ['status'], { NO_COLOR: '1' });
    expect(plain.code).toBe(0);
    expect(plain.out).toContain('modified:');
    expect(plain.out).not.toMatch(ANSI);

    const err = await underTty(dir, ['status', 'nope'], { NO_COLOR: '1' });
    expect(err.code).toBe(2);
    expect(err.out).toContain('error: nope is not tracked');
    expect(err.out).not.toMatch(ANSI);
  });

  it('output piped to another program has no ANSI escapes', async () => {
    const dir = await newRepo();
    write(dir, 'a.csv', 'a\n');
    expect((await tdvBin(dir, ['add', 'a.csv'])).code).toBe(0);
    write(dir, 'a.csv', 'changed\n');
    const r = await execa('node', [TDV_BIN, 'status'], { cwd: dir, reject: false, env: { NO_COLOR: undefined, FORCE_COLOR: undefined } });
    expect(r.stdout).toContain('modified:');
    expect(r.stdout + r.stderr).not.toMatch(ANSI);
  });

  it('-q prints nothing on success, before or after the command name', async () => {
    const dir = await newRepo({ init: false });
    const steps: string[][] = [
      ['-q', 'init'],
      ['-q', 'add', 'a.csv'],
      ['add', 'data', '-q'],
      ['-q', 'status'],
      ['--quiet', 'checkout'],
      ['-q', 'unprotect', 'data'],
      ['-q', 'remove', 'data'],
      ['-q', 'gc', '--workspace', '-f'],
    ];
    write(dir, 'a.csv', 'a\n');
    write(dir, 'data/x', 'x');
    for (const args of steps) {
      if (args.includes('checkout')) fs.rmSync(path.join(dir, 'a.csv'));
      const r = await tdvBin(dir, args);
      expect({ args, code: r.code, stdout: r.stdout, stderr: r.stderr }).toEqual({ args, code: 0, stdout: '', stderr: '' });
    }
    expect(read(dir, 'a.csv')).toBe('a\n');
    expect(fs.existsSync(path.join(dir, 'data.tdv'))).toBe(false);
  });

  it('-q still prints errors', async () => {
    const dir = await newRepo();
    const r = await tdvBin(dir, ['-q', 'add', 'missing.csv']);
    expect(r.code).toBe(2);
    expect(r.stdout).toBe('');
    expect(r.stderr).toMatch(/^error: missing\.csv does not exist/);
  });

  it('push shows a progress bar on a terminal, and only one summary line otherwise', async () => {
    const make = async () => {
      const dir = await newRepo();
      const remote = tmpDir('tdv-remote-');
      fs.appendFileSync(path.join(dir, '.tdv', 'config.yaml'), `core:\n  remote: r\nremote:\n  r:\n    url: ${remote}\n`);
      for (let i = 0; i < 50; i++) write(dir, `data/f${i}.csv`, `${i}\n`);
      expect((await tdvBin(dir, ['add', 'data'])).code).toBe(0);
      return dir;
    };
    // CI is unset: in CI logs (CI set) the bar is not drawn, even on a terminal.
    const tty = await underTty(await make(), ['push'], { NO_COLOR: '1', CI: '' });
    expect(tty.code).toBe(0);
    expect(tty.out).toMatch(/push .* \d+% \| \d+\/51 objects \| .* \| ETA /);
    expect(tty.out).toContain('Pushed 51 objects');
    const piped = await tdvBin(await make(), ['push']);
    expect(piped.code).toBe(0);
    expect(piped.stderr).toBe('');
    expect(piped.stdout).toMatch(/^Pushed 51 objects \([\d.]+ (B|KiB)\) to remote "r"\.$/);
  });

  it('warnings that libraries emit do not reach the output, except with -v', async () => {
    const dir = await newRepo();
    // Emitted while the command runs, as a library's deprecation notice would be.
    const noise = path.join(dir, '.tdv', 'tmp', 'noise.mjs');
    fs.mkdirSync(path.dirname(noise), { recursive: true });
    fs.writeFileSync(noise, 'const t = setInterval(() => process.emitWarning("library noise", "DeprecationWarning"), 25);\nt.unref();\n');
    const run = (...args: string[]) => execa('node', ['--import', noise, TDV_BIN, ...args], { cwd: dir, reject: false, env: { NO_COLOR: '1' } });
    const quiet = await run('status');
    expect(quiet.exitCode).toBe(0);
    expect(quiet.stderr).toBe('');
    const verbose = await run('-v', 'status');
    expect(verbose.stderr).toContain('debug: DeprecationWarning: library noise');
  });
});
