import { execFileSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { commandLine, dockerRunArgs } from '../../src/stages/runners/docker.js';

describe('commandLine (the `docker run` line -v prints)', () => {
  it('is a shell line that runs exactly the same argv', () => {
    const args = dockerRunArgs(
      { stage: "it's", cmd: 'echo "$HOME" && ls *.csv; rm -rf $(pwd)', root: '/r o/ot', cwd: '/r o/ot/sub dir', env: { A: "x'y z", B: '' }, image: `sha256:${'a'.repeat(64)}`, onOutput: () => {} },
      { name: 'tdv-1-x', user: '1000:1000' },
    );
    const line = commandLine('docker', args);
    expect(line.startsWith('docker run ')).toBe(true);
    // A shell given the line (with printf in place of docker) sees the same arguments, one per line.
    const echoed = execFileSync('sh', ['-c', `printf '%s\\n' ${line.slice('docker '.length)}`], { encoding: 'utf8' });
    expect(echoed).toBe(`${args.join('\n')}\n`);
  });
});
