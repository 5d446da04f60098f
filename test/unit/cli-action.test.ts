import fs from 'node:fs';
import path from 'node:path';
import { PassThrough } from 'node:stream';
import { Command } from '@commander-js/extra-typings';
import { describe, expect, expectTypeOf, it } from 'vitest';
import { CliContext, type FlagsOf, globalOptions, parsePositiveInt } from '../../src/cli/context.js';
import { NotARepoError, UsageError } from '../../src/errors.js';
import { makeRepo, tmpDir } from '../helpers/repo.js';

/** A context on captured streams, running in `cwd`, and a program with tdv's global options. */
function setup(cwd: string) {
  const stdout = new PassThrough();
  let printed = '';
  stdout.on('data', (d) => (printed += d));
  const ctx = new CliContext({ cwd, stdout, stderr: new PassThrough(), stdin: new PassThrough(), env: { NO_COLOR: '1' } });
  const program = globalOptions(new Command('tdv')).exitOverride();
  return { ctx, program, printed: () => printed };
}

describe('CliContext.action, the one preamble of every command', () => {
  it('hands the action typed arguments and options, paths resolved where tdv runs, and the Output of -q and --json', async () => {
    const cwd = fs.realpathSync(tmpDir());
    const { ctx, program } = setup(cwd);
    const cmd = program.command('take').argument('<paths...>').option('-j, --jobs <n>', 'jobs', parsePositiveInt('--jobs')).option('--json');
    let seen: { paths: string[]; jobs: number | undefined; quiet: boolean; json: boolean } | undefined;
    ctx.action(cmd, { repo: false }, ({ out, args: [paths], opts, resolve, repo }) => {
      // Types inferred from the declarations: a variadic argument is a string[], a parsed option a number.
      const jobs: number | undefined = opts.jobs;
      // @ts-expect-error an option the command does not declare
      void opts.nope;
      expect(repo).toBeUndefined();
      seen = { paths: resolve(paths), jobs, quiet: out.quiet, json: out.json };
    });
    await program.parseAsync(['node', 'tdv', '-q', 'take', 'a', 'b/c', '-j', '3', '--json']);
    expect(seen).toEqual({ paths: [path.join(cwd, 'a'), path.join(cwd, 'b/c')], jobs: 3, quiet: true, json: true });
  });

  it('opens the repository where tdv runs, after the usage checks: a usage error wins over "not a tdv repository"', async () => {
    const cwd = fs.realpathSync(tmpDir());
    const { ctx, program } = setup(cwd);
    const checked = program.command('checked').option('--a').option('--b');
    const plain = program.command('plain');
    let ran = false;
    ctx.action(
      checked,
      {
        check: (opts) => {
          if (opts.a && opts.b) throw new UsageError('choose one of --a and --b');
        },
      },
      async () => {
        ran = true;
      },
    );
    ctx.action(plain, async () => {
      ran = true;
    });
    await expect(program.parseAsync(['node', 'tdv', 'checked', '--a', '--b'])).rejects.toThrow(UsageError);
    await expect(program.parseAsync(['node', 'tdv', 'plain'])).rejects.toThrow(NotARepoError);
    expect(ran).toBe(false);
  });

  it('opens the repository holding the directory `at` names, relative to where tdv runs', async () => {
    const root = await makeRepo();
    fs.mkdirSync(path.join(root, 'sub'));
    const { ctx, program } = setup(path.dirname(root));
    const cmd = program.command('driver').argument('<file>');
    let opened: string | undefined;
    ctx.action(cmd, { at: ([file]) => path.dirname(file) }, async ({ repo }) => {
      opened = repo.root;
    });
    await program.parseAsync(['node', 'tdv', 'driver', `${path.basename(root)}/sub/x.tdv`]);
    expect(opened).toBe(root);
  });

  it('show: with --json the result is the one document on stdout and nothing is rendered; without, only the rendering', async () => {
    const cwd = fs.realpathSync(tmpDir());
    for (const json of [true, false]) {
      const { ctx, program, printed } = setup(cwd);
      const cmd = program.command('report').option('--json');
      ctx.action(cmd, { repo: false }, ({ show }) => show({ files: 2 }, (res, out) => out.info(`${res.files} files`)));
      await program.parseAsync(['node', 'tdv', 'report', ...(json ? ['--json'] : [])]);
      ctx.lastOutput?.finish();
      expect(printed()).toBe(json ? `${JSON.stringify({ files: 2 }, null, 2)}\n` : '2 files\n');
    }
  });

  it('FlagsOf: flags spread into the options of a porcelain must all be its options (but --json), so none is dropped silently', () => {
    type Porcelain = { dry?: boolean; jobs?: number };
    expectTypeOf<FlagsOf<Porcelain, { dry?: true; jobs?: number; json?: true }>>().toEqualTypeOf<{ dry?: true; jobs?: number; json?: true }>();
    expectTypeOf<FlagsOf<Porcelain, { dry?: true; drry?: true }>>().toEqualTypeOf<{ 'flags the porcelain does not take': 'drry' }>();
  });
});
