import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { execa } from 'execa';
import { describe, expect, it } from 'vitest';
import { newRepo, sampleRepo } from '../helpers/expect.js';
import { TDV_BIN, tdvBin, write } from '../helpers/repo.js';

/** util-linux `script` gives the command a pseudo-terminal, as a person's shell would. */
const HAS_SCRIPT = spawnSync('script', ['--version'], { stdio: 'ignore' }).status === 0;

/** Runs bin/tdv on a pseudo-terminal (stdout and stderr both), returning all it drew and its exit code. */
async function onTerminal(cwd: string, args: string[], env: Record<string, string> = {}): Promise<{ code: number; out: string }> {
  const line = ['node', TDV_BIN, ...args].map((a) => `'${a.replace(/'/g, `'\\''`)}'`).join(' ');
  const r = await execa('script', ['-qfec', line, '/dev/null'], { cwd, reject: false, env: { CI: '', TDV_PROGRESS: '', TERM: 'xterm', NO_COLOR: '1', ...env } });
  return { code: r.exitCode ?? -1, out: r.stdout };
}

/** A bar frame: label, percentage, counts and the ETA field, as src/ui/progress.ts draws them. */
const frame = (label: string, unit: string) => new RegExp(`${label} \\S+ \\d+% \\| \\d+/\\d+ ${unit} \\|.*ETA`);

function files(dir: string, n: number): void {
  for (let i = 0; i < n; i++) write(dir, `data/f${i}.txt`, `content ${i}\n`.repeat(i + 1));
}

describe('progress is drawn for a person at a terminal, and only there', () => {
  it('draws nothing when stderr is not a terminal: piped output stays plain', async () => {
    const dir = await newRepo();
    files(dir, 40);
    const r = await tdvBin(dir, ['add', 'data'], { CI: '' });
    expect(r.code).toBe(0);
    expect(r.stderr).toBe('');
    expect(r.stdout).not.toMatch(/ETA|\x1b/);
    fs.rmSync(path.join(dir, 'data'), { recursive: true });
    const c = await tdvBin(dir, ['checkout'], { CI: '' });
    expect(c.code).toBe(0);
    expect(c.stderr).toBe('');
    const f = await tdvBin(dir, ['fsck'], { CI: '' });
    expect(f.stderr).toBe('');
  });

  it('TDV_PROGRESS=1 forces it where it is not drawn otherwise (so the test above would see a bar)', async () => {
    const dir = await newRepo();
    files(dir, 40);
    const r = await tdvBin(dir, ['add', 'data'], { TDV_PROGRESS: '1' });
    expect(r.code).toBe(0);
    expect(r.stderr).toMatch(frame('add', 'files'));
  });

  it.skipIf(!HAS_SCRIPT)('draws add, checkout, fsck, gc and repro on a terminal, then clears it before the summary', async () => {
    const dir = await newRepo();
    files(dir, 40);
    const add = await onTerminal(dir, ['add', 'data']);
    expect(add.code).toBe(0);
    expect(add.out).toMatch(frame('add', 'files'));
    expect(add.out).toMatch(/\| \d+(\.\d+)? (B|KiB)\/\d+(\.\d+)? KiB \|/); // bytes done of planned
    // Cleared (erase line) before the summary, which stands alone on its line.
    expect(add.out).toMatch(/\x1b\[2KAdded data \(40 files/);

    fs.rmSync(path.join(dir, 'data'), { recursive: true });
    const co = await onTerminal(dir, ['checkout']);
    expect(co.code).toBe(0);
    expect(co.out).toMatch(frame('checkout', 'files'));
    expect(fs.readdirSync(path.join(dir, 'data'))).toHaveLength(40);

    const fsck = await onTerminal(dir, ['fsck']);
    expect(fsck.code).toBe(0);
    expect(fsck.out).toMatch(frame('fsck', 'objects'));

    // Two versions of a file: gc deletes the old one.
    write(dir, 'one.txt', 'first\n');
    expect((await tdvBin(dir, ['add', 'one.txt'])).code).toBe(0);
    write(dir, 'one.txt', 'second\n');
    expect((await tdvBin(dir, ['add', 'one.txt'])).code).toBe(0);
    const gc = await onTerminal(dir, ['gc', '--workspace', '-f']);
    expect(gc.code).toBe(0);
    expect(gc.out).toMatch(frame('gc', 'objects'));

    write(dir, 'tdv.yaml', 'stages:\n  a:\n    cmd: echo one > a.txt\n    outs: [a.txt]\n  b:\n    cmd: cat a.txt > b.txt\n    deps: [a.txt]\n    outs: [b.txt]\n');
    const repro = await onTerminal(dir, ['repro', '-j', '1']);
    expect(repro.code).toBe(0);
    expect(repro.out).toMatch(frame('repro', 'stages'));
    expect(repro.out).toContain('Ran 2 stages');
  });

  it.skipIf(!HAS_SCRIPT)('pull draws its transfer, then its checkout phase', async () => {
    const { dir } = await sampleRepo();
    expect((await tdvBin(dir, ['push'])).code).toBe(0);
    fs.rmSync(path.join(dir, '.tdv', 'cache'), { recursive: true });
    fs.rmSync(path.join(dir, 'data'), { recursive: true });
    const r = await onTerminal(dir, ['pull']);
    expect(r.code).toBe(0);
    expect(r.out).toMatch(frame('pull', 'objects'));
    expect(r.out).toMatch(frame('checkout', 'files'));
    expect(r.out.indexOf('checkout ')).toBeGreaterThan(r.out.search(frame('pull', 'objects')));
  });

  it.skipIf(!HAS_SCRIPT)('is never drawn with --json or -q, in CI, or with TDV_PROGRESS=0, even on a terminal', async () => {
    const dir = await newRepo();
    files(dir, 40);
    expect((await tdvBin(dir, ['add', 'data'])).code).toBe(0);
    for (const [args, env] of [
      [['fsck', '--json'], {}],
      [['fsck', '-q'], {}],
      [['fsck'], { CI: 'true' }],
      [['fsck'], { TDV_PROGRESS: '0' }],
    ] as [string[], Record<string, string>][]) {
      const r = await onTerminal(dir, args, env);
      expect(r.code, args.join(' ')).toBe(0);
      expect(r.out, `${args.join(' ')} ${JSON.stringify(env)}`).not.toMatch(/ETA/);
    }
    // The same on a terminal without those does draw it.
    expect((await onTerminal(dir, ['fsck'])).out).toMatch(frame('fsck', 'objects'));
  });
});
