import { describe, expect, it } from 'vitest';
import { tdv, write } from '../helpers/repo.js';
import { expectOneLineError, newRepo, state } from '../helpers/expect.js';

/**
 * CLI layer: how `tdv runner` words its results, its --json documents, its
 * error lines and exit codes; and the tdv.yaml keys `runner:` and
 * `resources:` as a user meets their errors. What the verbs do is tested
 * through the API, in test/api/runner.test.ts.
 */
describe('tdv runner: output', () => {
  it('add, list (and --json), modify, default, remove', async () => {
    const dir = await newRepo();
    expect(await tdv(dir, 'runner', 'add', 'gpu', 'docker', '--host', 'ssh://me@a', '--host', 'ssh://me@b', '-d')).toEqual({
      code: 0,
      stdout: 'Added runner gpu (docker), the default.\n',
      stderr: '',
    });
    expect((await tdv(dir, 'runner', 'add', 'k8s', 'kubernetes', '--namespace', 'ml', 'context=lab')).stdout).toBe('Added runner k8s (kubernetes).\n');
    expect((await tdv(dir, 'runner', 'list')).stdout).toBe(
      'local  local (this machine)\ngpu  docker  (default)\n  hosts: ["ssh://****@a","ssh://****@b"]\nk8s  kubernetes\n  context: lab\n  namespace: ml\n',
    );
    expect(JSON.parse((await tdv(dir, 'runner', 'list', '--json')).stdout)).toEqual({
      default: 'gpu',
      runners: [
        { name: 'local', type: 'local', isDefault: false, settings: {} },
        { name: 'gpu', type: 'docker', isDefault: true, settings: { hosts: ['ssh://****@a', 'ssh://****@b'] } },
        { name: 'k8s', type: 'kubernetes', isDefault: false, settings: { context: 'lab', namespace: 'ml' } },
      ],
    });
    expect((await tdv(dir, 'runner', 'modify', 'k8s', 'namespace', 'research')).stdout).toBe('Set runner.k8s.namespace = research in .tdv/config.yaml.\n');
    expect((await tdv(dir, 'runner', 'modify', 'k8s', 'context', '--unset')).stdout).toBe('Unset runner.k8s.context in .tdv/config.yaml.\n');
    expect((await tdv(dir, 'runner', 'default', 'k8s')).stdout).toBe('The default runner is now k8s.\n');
    expect((await tdv(dir, 'runner', 'default')).stdout).toBe('k8s\n');
    expect(await tdv(dir, 'runner', 'remove', 'k8s')).toEqual({ code: 0, stdout: 'Removed runner k8s.\nIt was the default runner; stages without `runner:` run on this machine now.\n', stderr: '' });
    expect((await tdv(dir, 'runner', 'default')).stdout).toBe('local\n');
  });

  it('errors: one line, exit 2 for usage, nothing written', async () => {
    const dir = await newRepo();
    await tdv(dir, 'runner', 'add', 'gpu', 'docker', '--host', 'ssh://a');
    const before = state(dir);
    const cases: [string[], string][] = [
      [['runner', 'add', 'gpu', 'docker'], 'runner "gpu" already exists'],
      [['runner', 'add', 'local', 'docker'], '"local" is this machine'],
      [['runner', 'add', 'x', 'podman'], 'unknown runner type "podman"; known types: docker, kubernetes'],
      [['runner', 'add', 'x', 'docker', 'novalue'], '"novalue" is not KEY=VALUE'],
      [['runner', 'modify', 'nope', 'a', 'b'], 'runner "nope", which is not configured; known runners: local, gpu'],
      [['runner', 'remove', 'local'], '"local" is this machine'],
      [['runner', 'default', 'nope'], 'runner "nope", which is not configured'],
    ];
    for (const [args, needle] of cases) {
      const r = await tdv(dir, ...args);
      expect({ args, code: r.code }).toEqual({ args, code: 2 });
      expectOneLineError(r.stderr, needle);
    }
    expect(state(dir)).toEqual(before);
  });

  it('a bad runner section or core.runner in config.yaml: one line naming file:line:col, the key and the fix', async () => {
    const dir = await newRepo();
    const cases: [string, string][] = [
      ['runner:\n  gpu:\n    type: dockr\n', 'config.yaml:3:5: runner.gpu.type must be docker or kubernetes, got "dockr". Fix the type in the file, or delete the section'],
      ['runner:\n  gpu:\n    hosts: [ssh://a]\n', 'config.yaml:2:3: runner "gpu" has no type. Add type: docker or kubernetes to the section, or delete it'],
      ['runner:\n  local:\n    type: docker\n', 'config.yaml:2:3: runner name "local" is reserved'],
      ['runner:\n  "-x":\n    type: docker\n', 'config.yaml:2:3: invalid runner name "-x"'],
      ['core:\n  runner: [a]\n', 'config.yaml:2:3: "core.runner" must be a string'],
    ];
    for (const [yaml, needle] of cases) {
      write(dir, '.tdv/config.yaml', yaml);
      const r = await tdv(dir, 'runner', 'list');
      expect(r.code).toBe(1);
      expectOneLineError(r.stderr, needle);
    }
  });

  it('tdv.yaml: runner: and resources: are checked at tdv.yaml:line:col; an unknown runner name says where it came from', async () => {
    const dir = await newRepo();
    const stage = (extra: string) => `stages:\n  s:\n    cmd: echo hi > o\n    outs: [o]\n${extra}`;
    const cases: [string, string][] = [
      ['    runner: "a b"\n', 'tdv.yaml:5:"runner" of stage "s" must be a runner name, got "a b"'],
      ['    resources: {cpus: 0}\n', 'tdv.yaml:5:"resources.cpus" of stage "s" must be a positive number of CPUs, got 0'],
      ['    resources: {memory: 2X}\n', 'tdv.yaml:5:"resources.memory" of stage "s" must be a number of bytes, or a number with K, M, G or T'],
      ['    resources: {gpus: 1.5}\n', '"resources.gpus" of stage "s" must be a whole number of GPUs, got 1.5'],
      ['    resources: {disk: 1}\n', 'tdv.yaml:5:unknown key "disk" in "resources" of stage "s". Known keys: cpus, memory, gpus'],
      ['    resources: 4\n', '"resources" of stage "s" must be a mapping'],
      ['    runner: gpu\n', 'tdv.yaml:5:stage "s" names runner "gpu", which is not configured; add it with `tdv runner add gpu TYPE ...`, or use local'],
    ];
    for (const [extra, needle] of cases) {
      write(dir, 'tdv.yaml', stage(extra));
      const r = await tdv(dir, 'repro');
      expect({ extra, code: r.code }).toEqual({ extra, code: needle.includes('not configured') ? 2 : 1 });
      expectOneLineError(r.stderr, needle.startsWith('tdv.yaml:5:') ? 'tdv.yaml:5:' : '', needle.replace(/^tdv\.yaml:5:/, ''));
    }
    write(dir, 'tdv.yaml', stage(''));
    const r = await tdv(dir, 'repro', '--runner', 'gpu');
    expect(r.code).toBe(2);
    expectOneLineError(r.stderr, '--runner names runner "gpu", which is not configured');
    // Valid: resources on a local stage are accepted (local runs ignore them); --runner local runs here.
    write(dir, 'tdv.yaml', stage('    runner: local\n    resources: {cpus: 0.5, memory: 512M, gpus: 0}\n'));
    expect((await tdv(dir, 'repro', '--runner', 'local')).code).toBe(0);
  });
});
