/**
 * A pull killed mid-download (SIGKILL to bin/tdv) resumes in the next run
 * instead of starting over (issue 14 §4): the bytes tdv receives in the second
 * run are counted at the server's side, by a proxy in front of the S3 test
 * server, and are fewer than the object.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { sha256 } from '../../src/cache/hash.js';
import { git, TDV_BIN, write } from '../helpers/repo.js';
import { newDir, newRepo } from '../helpers/expect.js';
import { type FaultProxy, startFaultProxy } from '../helpers/fault-proxy.js';
import { describeS3, s3Available, s3Env, s3RemoteConfig } from '../helpers/s3.js';

const MiB = 1 << 20;
const SIZE = 24 * MiB;

let proxy: FaultProxy;

function remoteYaml(prefix: string, endpoint: string): string {
  const cfg = s3RemoteConfig(prefix);
  return `remote:\n  s3:\n    url: ${cfg.url}\n    endpointurl: ${endpoint}\n    force_path_style: true\n    checksum: when_required\n`;
}

/** Every partial download (`part.<sha>.<pid>`) below `.tdv`, with its size. */
function partials(repo: string): { name: string; size: number }[] {
  const out: { name: string; size: number }[] = [];
  for (const d of fs.readdirSync(path.join(repo, '.tdv'), { recursive: true, withFileTypes: true })) {
    if (d.isFile() && d.name.startsWith('part.')) out.push({ name: d.name, size: fs.statSync(path.join(d.parentPath, d.name)).size });
  }
  return out;
}

describeS3('a pull killed mid-download', () => {
  beforeAll(async () => {
    proxy = await startFaultProxy(s3Available()!.endpoint);
  });
  afterAll(async () => {
    await proxy?.close();
  });

  it('resumes in the next run: that run receives the rest, not the whole object, and the data arrives whole', async () => {
    const prefix = `resume-${crypto.randomUUID()}`;
    const origin = await newRepo();
    const content = crypto.randomBytes(SIZE);
    fs.appendFileSync(path.join(origin, '.tdv', 'config.yaml'), `core:\n  remote: s3\n${remoteYaml(prefix, s3Available()!.endpoint)}`);
    fs.writeFileSync(path.join(origin, '.tdv', 'config.local.yaml'), `remote:\n  s3:\n    access_key_id: ${s3Env().AWS_ACCESS_KEY_ID}\n    secret_access_key: ${s3Env().AWS_SECRET_ACCESS_KEY}\n`);
    write(origin, 'big.bin', content);
    const env = { NO_COLOR: '1' };
    for (const args of [['add', 'big.bin'], ['push']]) {
      const r = await execa('node', [TDV_BIN, ...args], { cwd: origin, reject: false, env });
      expect(r.exitCode, r.stderr).toBe(0);
    }
    await git(origin, 'add', '-A');
    await git(origin, 'commit', '-qm', 'data');
    const clone = path.join(newDir(), 'clone');
    await git(path.dirname(clone), 'clone', '-q', origin, clone);
    // Through the proxy, which counts what tdv receives.
    fs.writeFileSync(
      path.join(clone, '.tdv', 'config.local.yaml'),
      `remote:\n  s3:\n    endpointurl: ${proxy.url}\n    access_key_id: ${s3Env().AWS_ACCESS_KEY_ID}\n    secret_access_key: ${s3Env().AWS_SECRET_ACCESS_KEY}\n`,
    );

    // First run: slowed down so it can be killed mid-object, once a few MiB have arrived.
    const first = execa('node', [TDV_BIN, 'pull', '--limit-rate', '2M'], { cwd: clone, reject: false, env });
    const deadline = Date.now() + 60_000;
    while ((partials(clone)[0]?.size ?? 0) < 4 * MiB) {
      if (Date.now() > deadline || first.exitCode !== null) throw new Error(`no partial download appeared: ${JSON.stringify(partials(clone))}`);
      await new Promise((r) => setTimeout(r, 50));
    }
    const pid = first.pid!;
    first.kill('SIGKILL');
    const killed = await first;
    expect(killed.signal).toBe('SIGKILL');
    const [left] = partials(clone);
    expect(left!.name).toBe(`part.${sha256(content)}.${pid}`);
    expect(left!.size).toBeGreaterThanOrEqual(4 * MiB);
    expect(fs.existsSync(path.join(clone, 'big.bin'))).toBe(false);

    proxy.reset();
    const second = await execa('node', [TDV_BIN, 'pull'], { cwd: clone, reject: false, env });
    expect(second.exitCode, second.stderr).toBe(0);
    expect(fs.readFileSync(path.join(clone, 'big.bin')).equals(content)).toBe(true);
    const received = proxy.stats.bytesDown;
    expect(received).toBeLessThan(SIZE);
    // The rest of the object, and a few small responses (listings, HEADs) besides.
    expect(received).toBeLessThanOrEqual(SIZE - left!.size + 64 * 1024);
    expect(partials(clone)).toEqual([]);
  });
});
