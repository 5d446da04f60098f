import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { expectOneLineError, newDir, newRepo } from '../helpers/expect.js';
import { tdv, write } from '../helpers/repo.js';

describe('-v shows why an error happened', () => {
  it('prints the cause chain (errno code, message, stack) under the one error line, and only with -v', async () => {
    const dir = await newRepo();
    // A remote behind a symlink loop: the system refuses with ELOOP.
    const loop = newDir();
    fs.symlinkSync(path.join(loop, 'b'), path.join(loop, 'a'));
    fs.symlinkSync(path.join(loop, 'a'), path.join(loop, 'b'));
    expect((await tdv(dir, 'remote', 'add', '-d', 'store', path.join(loop, 'a', 'store'))).code).toBe(0);
    write(dir, 'a.txt', 'a\n');
    expect((await tdv(dir, 'add', 'a.txt')).code).toBe(0);

    const plain = await tdv(dir, 'push');
    expect(plain.code).toBe(1);
    expectOneLineError(plain.stderr, 'too many levels of symbolic links');

    const verbose = await tdv(dir, '-v', 'push');
    expect(verbose.code).toBe(1);
    const lines = verbose.stderr.trimEnd().split('\n');
    expect(lines[0]).toMatch(/^error: too many levels of symbolic links/);
    expect(lines[1]).toMatch(/^caused by: \[ELOOP\] ELOOP: too many symbolic links/);
    expect(verbose.stderr).toMatch(/\n {4}at /); // the stack of where it happened
  });
});

describe('-v shows the docker run command line of a Docker stage', () => {
  it("repro passes the runner's debug lines (its docker run line) on as events, which the CLI prints as debug lines", async () => {
    const { Repo } = await import('../../src/repo/repo.js');
    const { reproduce } = await import('../../src/repo/repro.js');
    const dir = await newRepo();
    write(dir, 'tdv.yaml', 'stages:\n  make:\n    cmd: echo hi > out.txt\n    outs: [out.txt]\n    image: alpine:3\n');
    const id = `sha256:${'a'.repeat(64)}`;
    // A Docker runner that says what it runs, as the real one does, and writes the output itself.
    const docker = {
      kind: 'docker' as const,
      run: async (spec: import('../../src/stages/runner.js').RunSpec) => {
        spec.onDebug?.(`docker run --rm ${spec.image} sh -c '${spec.cmd}'`);
        fs.writeFileSync(path.join(spec.cwd, 'out.txt'), 'hi\n');
        return { exitCode: 0 };
      },
      resolveImage: async () => id,
      buildImage: async () => ({ tag: 'x', id }),
    };
    const events: import('../../src/repo/repro.js').ReproEvent[] = [];
    const repo = await Repo.open(dir);
    const res = await reproduce(repo, { runners: { docker }, onEvent: (e) => events.push(e) });
    expect(res.ran).toEqual(['make']);
    expect(events).toContainEqual({ type: 'debug', stage: 'make', line: `docker run --rm ${id} sh -c 'echo hi > out.txt'` });
  });
});
