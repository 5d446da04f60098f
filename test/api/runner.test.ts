import * as v from 'valibot';
import { describe, expect, it, vi } from 'vitest';
import { KEYS, fail } from '../../src/formats/schema.js';
import type { RunnerModule } from '../../src/stages/runners/registry.js';
import { addRunner, listRunners, modifyRunner, removeRunner, setDefaultRunner } from '../../src/repo/runner.js';
import { chooseRunner, createRunner } from '../../src/repo/lib/runners.js';
import { read, write } from '../helpers/repo.js';
import { newRepo, state } from '../helpers/expect.js';
import { openRepo, rejectsWith, withRepo } from '../helpers/api.js';

/**
 * The engines' own modules are written elsewhere; here a strict stand-in for
 * `docker` proves that an engine's schema is what checks a runner's keys
 * (add, modify, and a hand-edited file when the runner is created).
 */
const strictDocker: RunnerModule = {
  configSchema: v.strictObject(
    {
      hosts: v.pipe(
        v.array(v.pipe(v.string(), v.regex(/^(ssh|tcp):\/\//, `${KEYS} must be an ssh:// or tcp:// URL`)), fail(`${KEYS} must be a list of ssh:// or tcp:// URLs`)),
        v.minLength(1, `${KEYS} must name at least one host`),
      ),
      jobs: v.optional(v.pipe(v.number(`${KEYS} must be a number`), v.integer(), v.minValue(1))),
      user: v.optional(v.string(`${KEYS} must be text`)),
    },
    fail('unknown key', 'Keys of type docker: hosts, jobs, user'),
  ) as unknown as RunnerModule['configSchema'],
  configKeys: { hosts: 'Docker hosts', jobs: 'stages at once per host', user: 'user' },
  create: (cfg) => ({ name: cfg.name, type: cfg.type, run: () => Promise.reject(new Error('not here')), cfg }) as never,
};

vi.mock('../../src/stages/runners/registry.js', async (orig) => {
  const real = await orig<typeof import('../../src/stages/runners/registry.js')>();
  return { ...real, runnerModule: async (type: string) => (type === 'docker' ? strictDocker : real.runnerModule(type)) };
});

describe('runners (API)', () => {
  it('add: type and typed keys go to config.yaml, optionally as the default; list shows local first', async () => {
    const dir = await newRepo();
    expect(await withRepo(dir, (r) => addRunner(r, { name: 'gpu', type: 'docker', settings: { hosts: ['ssh://a', 'ssh://b'], jobs: '2' }, makeDefault: true }))).toEqual({
      name: 'gpu',
      type: 'docker',
      settings: { hosts: ['ssh://a', 'ssh://b'], jobs: 2 },
      isDefault: true,
      replaced: false,
      files: ['.tdv/config.yaml'],
      gitignored: false,
    });
    expect(read(dir, '.tdv/config.yaml')).toContain('runner:\n  gpu:\n    type: docker\n    hosts:\n      - ssh://a\n      - ssh://b\n    jobs: 2\ncore:\n  runner: gpu\n');
    expect(await withRepo(dir, async (r) => listRunners(r))).toEqual([
      { name: 'local', type: 'local', isDefault: false, settings: {} },
      { name: 'gpu', type: 'docker', isDefault: true, settings: { hosts: ['ssh://a', 'ssh://b'], jobs: 2 } },
    ]);
    // A value the schema wants as text stays text, even when it looks like a number.
    expect((await withRepo(dir, (r) => addRunner(r, { name: 'u', type: 'docker', settings: { hosts: 'ssh://x', user: '1000' } }))).settings).toEqual({ hosts: ['ssh://x'], user: '1000' });
  });

  it("add: the engine's schema refuses bad keys and values before anything is written (USAGE); a name taken is RUNNER_EXISTS", async () => {
    const dir = await newRepo();
    const before = state(dir);
    const err = await rejectsWith(
      withRepo(dir, (r) => addRunner(r, { name: 'gpu', type: 'docker', settings: { hosts: 'http://a' } })),
      'USAGE',
    );
    expect(err.message).toContain('runner.gpu.hosts[0] must be an ssh:// or tcp:// URL');
    await rejectsWith(
      withRepo(dir, (r) => addRunner(r, { name: 'gpu', type: 'docker', settings: { hosts: 'ssh://a', colour: 'red' } })),
      'USAGE',
    );
    await rejectsWith(
      withRepo(dir, (r) => addRunner(r, { name: 'gpu', type: 'podman', settings: {} })),
      'USAGE',
    );
    expect(
      (
        await rejectsWith(
          withRepo(dir, (r) => addRunner(r, { name: 'local', type: 'docker', settings: { hosts: 'ssh://a' } })),
          'USAGE',
        )
      ).message,
    ).toContain('"local" is this machine');
    expect(state(dir)).toEqual(before);
    await withRepo(dir, (r) => addRunner(r, { name: 'gpu', type: 'docker', settings: { hosts: 'ssh://a' } }));
    expect(
      (
        await rejectsWith(
          withRepo(dir, (r) => addRunner(r, { name: 'gpu', type: 'kubernetes' })),
          'RUNNER_EXISTS',
        )
      ).exitCode,
    ).toBe(2);
    expect(await withRepo(dir, (r) => addRunner(r, { name: 'gpu', type: 'kubernetes', settings: { namespace: 'ml' }, force: true }))).toMatchObject({ replaced: true, type: 'kubernetes' });
    expect(read(dir, '.tdv/config.yaml')).not.toContain('ssh://a');
  });

  it('modify: typed values checked by the schema, lists from several values, unset, type; unknown runner is UNKNOWN_RUNNER', async () => {
    const dir = await newRepo();
    await withRepo(dir, (r) => addRunner(r, { name: 'gpu', type: 'docker', settings: { hosts: 'ssh://a' } }));
    expect(await withRepo(dir, (r) => modifyRunner(r, 'gpu', 'jobs', '4'))).toMatchObject({ key: 'jobs', value: 4, changed: true });
    expect(await withRepo(dir, (r) => modifyRunner(r, 'gpu', 'jobs', '4'))).toMatchObject({ changed: false });
    expect(await withRepo(dir, (r) => modifyRunner(r, 'gpu', 'hosts', ['ssh://b', 'tcp://c:2376']))).toMatchObject({ value: ['ssh://b', 'tcp://c:2376'] });
    expect(await withRepo(dir, (r) => modifyRunner(r, 'gpu', 'hosts', '[ssh://d, ssh://e]'))).toMatchObject({ value: ['ssh://d', 'ssh://e'] });
    const before = state(dir);
    expect(
      (
        await rejectsWith(
          withRepo(dir, (r) => modifyRunner(r, 'gpu', 'jobs', 'many')),
          'USAGE',
        )
      ).message,
    ).toContain('runner.gpu.jobs must be a number');
    // hosts is required: unsetting it would leave a runner that cannot run.
    await rejectsWith(
      withRepo(dir, (r) => modifyRunner(r, 'gpu', 'hosts', undefined, { unset: true })),
      'USAGE',
    );
    await rejectsWith(
      withRepo(dir, (r) => modifyRunner(r, 'gpu', 'type', undefined, { unset: true })),
      'USAGE',
    );
    await rejectsWith(
      withRepo(dir, (r) => modifyRunner(r, 'nope', 'jobs', '1')),
      'UNKNOWN_RUNNER',
    );
    expect(state(dir)).toEqual(before);
    expect(await withRepo(dir, (r) => modifyRunner(r, 'gpu', 'jobs', undefined, { unset: true }))).toMatchObject({ changed: true });
    expect(read(dir, '.tdv/config.yaml')).not.toMatch(/^ +jobs:/m);
    // A local override of one key; the committed file keeps the rest.
    expect(await withRepo(dir, (r) => modifyRunner(r, 'gpu', 'user', 'me', { local: true }))).toMatchObject({ files: ['.tdv/config.local.yaml'] });
    expect((await withRepo(dir, async (r) => listRunners(r)))[1]!.settings).toEqual({ hosts: ['ssh://d', 'ssh://e'], user: 'me' });
  });

  it('remove: both files, unsetting the default; local cannot be removed; default set/unset', async () => {
    const dir = await newRepo();
    await withRepo(dir, (r) => addRunner(r, { name: 'gpu', type: 'docker', settings: { hosts: 'ssh://a' } }));
    expect(await withRepo(dir, (r) => setDefaultRunner(r, 'gpu'))).toMatchObject({ default: 'gpu', changed: true });
    expect(await withRepo(dir, (r) => setDefaultRunner(r, 'local', { local: true }))).toMatchObject({ default: 'local', changed: true });
    expect(await withRepo(dir, (r) => setDefaultRunner(r, undefined, { unset: true, local: true }))).toMatchObject({ default: 'gpu' });
    await rejectsWith(
      withRepo(dir, (r) => setDefaultRunner(r, 'nope')),
      'UNKNOWN_RUNNER',
    );
    await rejectsWith(
      withRepo(dir, (r) => removeRunner(r, 'local')),
      'USAGE',
    );
    expect(await withRepo(dir, (r) => removeRunner(r, 'gpu'))).toMatchObject({ unsetDefault: true });
    expect(await withRepo(dir, async (r) => listRunners(r))).toEqual([{ name: 'local', type: 'local', isDefault: true, settings: {} }]);
    await rejectsWith(
      withRepo(dir, (r) => removeRunner(r, 'gpu')),
      'UNKNOWN_RUNNER',
    );
  });

  it("a hand-edited section the schema refuses fails when the runner is made, at the key's file:line:col", async () => {
    const dir = await newRepo();
    write(dir, '.tdv/config.yaml', 'runner:\n  gpu:\n    type: docker\n    hosts: [ftp://a]\n');
    const { repo } = await openRepo(dir);
    const err = await rejectsWith(createRunner(repo, 'gpu'), 'BAD_FORMAT');
    expect(err.message).toMatch(/\/\.tdv\/config\.yaml:4:5: runner\.gpu\.hosts\[0\] must be an ssh:\/\/ or tcp:\/\/ URL\. Keys of type docker: hosts, jobs, user$/);
  });

  it("resolution: --runner, then the stage's runner:, then core.runner, then local; an unknown name says where it came from", async () => {
    const dir = await newRepo();
    write(dir, '.tdv/config.yaml', 'core:\n  runner: a\nrunner:\n  a:\n    type: docker\n    hosts: [ssh://a]\n  b:\n    type: docker\n    hosts: [ssh://b]\n');
    const { repo } = await openRepo(dir);
    const stage = { name: 's', runner: 'b', runnerWhere: 'tdv.yaml:4:13' };
    expect(chooseRunner(repo.config, stage, 'local')).toEqual({ name: 'local', from: '--runner' });
    expect(chooseRunner(repo.config, stage)).toEqual({ name: 'b', from: 'tdv.yaml:4:13' });
    expect(chooseRunner(repo.config, { name: 's' })).toEqual({ name: 'a', from: 'core.runner' });
    expect(chooseRunner({ ...repo.config, core: { ...repo.config.core, runner: undefined } }, { name: 's' })).toEqual({ name: 'local', from: 'default' });
    expect(() => chooseRunner(repo.config, { ...stage, runner: 'gpu' })).toThrow(/^tdv\.yaml:4:13: stage "s" names runner "gpu", which is not configured; known runners: local, a, b$/);
    expect(() => chooseRunner(repo.config, stage, 'gpu')).toThrow(/^--runner names runner "gpu"/);
  });
});
