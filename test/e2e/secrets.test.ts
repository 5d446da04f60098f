/**
 * No command prints a secret: a whole session with bin/tdv, with credentials
 * in config.local.yaml and in the environment, every command run with -v
 * and with --json, including the ones that fail (refused credentials, an
 * unreachable endpoint, a missing bucket, a secret put where it must not be),
 * and every byte of output searched for each secret value.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { expect, it } from 'vitest';
import { git, tdvBin, write } from '../helpers/repo.js';
import { newDir, newRepo } from '../helpers/expect.js';
import { describeS3rver, S3_BUCKET, s3Available, S3RVER_KEY } from '../helpers/s3.js';

// s3rver only: the session signs with secrets made up per run (below), which only a
// server that does not check signatures accepts.
describeS3rver('secrets never appear in any output', () => {
  it('a full session, verbose and not, successes and failures', async () => {
    const tag = crypto.randomBytes(6).toString('hex');
    // s3rver checks the key id, not the signature: any secret works with S3RVER.
    const secrets = {
      local: `LOCALSECRET-${tag}`,
      env: `ENVSECRET-${tag}`,
      token: `SESSIONTOKEN-${tag}`,
      wrongKey: `AKIAWRONG${tag.toUpperCase()}`,
      committed: `COMMITTEDSECRET-${tag}`,
      urlPassword: `URLPASSWORD-${tag}`,
      urlUser: `URLUSER${tag.toUpperCase()}`,
    };
    const env = { AWS_ACCESS_KEY_ID: S3RVER_KEY, AWS_SECRET_ACCESS_KEY: secrets.env, AWS_SESSION_TOKEN: secrets.token };
    const endpoint = s3Available()!.endpoint;
    const outputs: string[] = [];
    let commands = 0;
    const run = async (cwd: string, args: string[], extraEnv: Record<string, string> = {}) => {
      const r = await tdvBin(cwd, args, { ...env, ...extraEnv });
      outputs.push(`${r.stdout}\n${r.stderr}`); // the output only: some command lines hold a secret on purpose
      commands++;
      return r;
    };
    /** Each command with -v (everything it prints plainly, and the debug lines), and with --json where it has one. */
    const all = async (cwd: string, args: string[], json = false, extraEnv: Record<string, string> = {}) => {
      const rs = [await run(cwd, ['-v', ...args], extraEnv)];
      if (json) rs.push(await run(cwd, [...args, '--json', '-v'], extraEnv));
      return rs;
    };

    const dir = await newRepo();
    write(dir, 'data/a.csv', 'a\n');
    write(dir, 'data/b.csv', 'b\n');
    write(dir, 'model.bin', 'weights');
    expect((await run(dir, ['add', 'data', 'model.bin'])).code).toBe(0);
    expect((await run(dir, ['remote', 'add', '-d', 's3', `s3://${S3_BUCKET}/secrets-${tag}`])).code).toBe(0);
    for (const [k, v] of [
      ['endpointurl', endpoint],
      ['force_path_style', 'true'],
      ['checksum', 'when_required'],
    ])
      expect((await run(dir, ['remote', 'modify', 's3', k!, v!])).code).toBe(0);
    expect((await run(dir, ['remote', 'modify', 's3', 'access_key_id', S3RVER_KEY, '--local'])).code).toBe(0);
    expect((await run(dir, ['-v', 'remote', 'modify', 's3', 'secret_access_key', secrets.local, '--local'])).code).toBe(0);
    // Refused outside config.local.yaml: the refusal must not echo the value.
    expect((await run(dir, ['-v', 'remote', 'modify', 's3', 'secret_access_key', secrets.committed])).code).toBe(2);

    await all(dir, ['remote', 'list'], true);
    await all(dir, ['remote', 'default']);
    for (const r of await all(dir, ['push'], true)) expect(r.code, r.stderr).toBe(0);
    await all(dir, ['status', '--remote'], true);
    for (const r of await all(dir, ['fsck', '--remote'], true)) expect(r.code, r.stderr).toBe(0);
    await all(dir, ['status'], true);

    // A clone: the secret from the environment only.
    await git(dir, 'add', '-A');
    await git(dir, 'commit', '-qm', 'data');
    const b = path.join(newDir(), 'clone');
    await git(path.dirname(b), 'clone', '-q', dir, b);
    for (const r of await all(b, ['fetch'], true)) expect(r.code, r.stderr).toBe(0);
    for (const r of await all(b, ['pull'], true)) expect(r.code, r.stderr).toBe(0);

    // Failures: refused credentials, an unreachable endpoint, a missing bucket.
    expect((await run(dir, ['remote', 'modify', 's3', 'access_key_id', secrets.wrongKey, '--local'])).code).toBe(0);
    write(dir, 'new.bin', 'new');
    expect((await run(dir, ['add', 'new.bin'])).code).toBe(0);
    for (const r of await all(dir, ['push'], true)) expect(r.code).toBe(1);
    for (const r of await all(dir, ['fsck', '--remote'], true)) expect(r.code).toBe(1);
    for (const r of await all(b, ['pull'], true, { AWS_ACCESS_KEY_ID: secrets.wrongKey })) expect(r.code).toBe(0); // nothing to fetch: no request needed
    fs.rmSync(path.join(b, '.tdv', 'cache'), { recursive: true, force: true });
    for (const r of await all(b, ['pull'], true, { AWS_ACCESS_KEY_ID: secrets.wrongKey })) expect(r.code).toBe(1);
    expect((await run(dir, ['remote', 'modify', 's3', 'access_key_id', S3RVER_KEY, '--local'])).code).toBe(0);
    expect((await run(dir, ['remote', 'modify', 's3', 'endpointurl', 'http://127.0.0.1:1'])).code).toBe(0);
    for (const r of await all(dir, ['push'], true)) expect(r.code).toBe(1);
    expect((await run(dir, ['remote', 'modify', 's3', 'endpointurl', endpoint])).code).toBe(0);
    expect((await run(dir, ['remote', 'modify', 's3', 'url', `s3://no-such-bucket-${tag}/x`])).code).toBe(0);
    for (const r of await all(dir, ['push'], true)) expect(r.code).toBe(1);
    for (const r of await all(dir, ['status', '--remote'], true)) expect(r.code).toBe(1);

    // Credentials in the endpoint's URL (user:password@), in config.local.yaml: masked everywhere, reachable or not.
    const withUser = (url: string) => url.replace('://', `://${secrets.urlUser}:${secrets.urlPassword}@`);
    expect((await run(dir, ['-v', 'remote', 'modify', '--local', 's3', 'endpointurl', withUser(endpoint)])).code).toBe(0);
    expect((await run(dir, ['-v', 'remote', 'modify', 's3', 'endpointurl', withUser(endpoint)])).code).toBe(2); // not into config.yaml
    expect((await run(dir, ['remote', 'modify', 's3', 'url', `s3://${S3_BUCKET}/secrets-${tag}`])).code).toBe(0);
    await all(dir, ['remote', 'list'], true);
    await all(dir, ['push'], true);
    await all(dir, ['fsck', '--remote'], true);
    expect((await run(dir, ['remote', 'modify', '--local', 's3', 'endpointurl', withUser('http://127.0.0.1:1')])).code).toBe(0);
    for (const r of await all(dir, ['push'], true)) expect(r.code).toBe(1);
    expect((await run(dir, ['remote', 'modify', '--local', 's3', 'endpointurl', withUser('http://no-such-host.invalid:9')])).code).toBe(0);
    for (const r of await all(dir, ['status', '--remote'], true)) expect(r.code).toBe(1);
    expect((await run(dir, ['remote', 'modify', '--local', 's3', 'endpointurl', '--unset'])).code).toBe(0);

    // A secret committed to config.yaml by hand: every command refuses, naming file and line, not the value.
    fs.appendFileSync(path.join(dir, '.tdv', 'config.yaml'), `    secret_access_key: ${secrets.committed}\n`);
    for (const r of await all(dir, ['status'], true)) expect(r.code).toBe(1);
    await all(dir, ['remote', 'list'], true);

    const text = outputs.join('\n');
    for (const [what, value] of Object.entries(secrets)) {
      const at = text.indexOf(value);
      expect(at, `the ${what} secret appeared in output: ...${text.slice(Math.max(0, at - 300), at + 100)}`).toBe(-1);
    }
    console.log(`[secrets] ${commands} commands, ${text.length} bytes of output searched for ${Object.keys(secrets).length} secret values: none found`);
  }, 180_000);
});
