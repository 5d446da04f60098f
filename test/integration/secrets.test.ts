/**
 * Issue 11, class 7: secrets stay secret. A credential is never written into
 * a file Git tracks; the user info of URLs (`user:password@`) is masked
 * wherever a URL is printed; files tdv.yaml names (metrics, params) are read
 * through the guard, so nothing outside the repository is ever printed.
 */
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { git, read, tdv, write } from '../helpers/repo.js';
import { expectOneLineError, newDir, newRepo } from '../helpers/expect.js';

const LOCAL = '.tdv/config.local.yaml';
const SECRET = 'TOPSECRET-7f3a9c';

function expectNoSecret(...outputs: string[]): void {
  for (const o of outputs) expect(o).not.toContain(SECRET);
}

describe('credentials never go into a file Git tracks', () => {
  async function trackedLocalConfig() {
    const dir = await newRepo();
    expect((await tdv(dir, 'remote', 'add', '-d', 's3', 's3://bucket/prefix')).code).toBe(0);
    expect((await tdv(dir, 'remote', 'modify', '--local', 's3', 'region', 'eu-west-1')).code).toBe(0);
    await git(dir, 'add', '-f', LOCAL);
    return dir;
  }

  it('remote modify --local of access_key_id, secret_access_key or a credentialed endpointurl refuses when config.local.yaml is tracked', async () => {
    const dir = await trackedLocalConfig();
    const before = read(dir, LOCAL);
    for (const [key, value] of [
      ['secret_access_key', SECRET],
      ['access_key_id', SECRET],
      ['endpointurl', `http://user:${SECRET}@127.0.0.1:9000`],
    ]) {
      const r = await tdv(dir, 'remote', 'modify', '--local', 's3', key!, value!);
      expect(r.code, r.stderr).toBe(1);
      expectOneLineError(r.stderr, `${LOCAL} is tracked by Git`, `remote.s3.${key}`, `git rm --cached ${LOCAL}`);
      expectNoSecret(r.stdout, r.stderr);
      expect(read(dir, LOCAL)).toBe(before);
    }
    // Settings that are not credentials still go there, and once untracked, the credential does too.
    expect((await tdv(dir, 'remote', 'modify', '--local', 's3', 'region', 'us-east-2')).code).toBe(0);
    await git(dir, 'rm', '-q', '--cached', '-f', LOCAL);
    const ok = await tdv(dir, 'remote', 'modify', '--local', 's3', 'secret_access_key', SECRET);
    expect(ok.code, ok.stderr).toBe(0);
    expectNoSecret(ok.stdout, ok.stderr);
  });

  it('never into the committed config.yaml: a credentialed endpointurl needs --local, and a hand-written one is a load error that does not echo it', async () => {
    const dir = await newRepo();
    expect((await tdv(dir, 'remote', 'add', '-d', 's3', 's3://bucket/prefix')).code).toBe(0);
    const before = read(dir, '.tdv/config.yaml');
    for (const args of [
      ['secret_access_key', SECRET],
      ['endpointurl', `https://key:${SECRET}@minio.example:9000`],
    ]) {
      const r = await tdv(dir, 'remote', 'modify', 's3', ...args);
      expect(r.code).toBe(2);
      expectOneLineError(r.stderr, 'config.local.yaml', '--local');
      expectNoSecret(r.stdout, r.stderr);
    }
    expect(read(dir, '.tdv/config.yaml')).toBe(before);
    write(dir, '.tdv/config.yaml', `remote:\n  s3:\n    url: s3://bucket/prefix\n    endpointurl: https://key:${SECRET}@minio.example:9000\n`);
    const r = await tdv(dir, 'status');
    expect(r.code).toBe(1);
    expectOneLineError(r.stderr, /config\.yaml:\d+:\d+: remote\.s3\.endpointurl holds credentials/);
    expectNoSecret(r.stdout, r.stderr);
  });
});

describe('user:password@ in URLs is masked', () => {
  it('remote modify, remote list and its --json show the endpoint without its user info', async () => {
    const dir = await newRepo();
    expect((await tdv(dir, 'remote', 'add', '-d', 's3', 's3://bucket/prefix')).code).toBe(0);
    const set = await tdv(dir, 'remote', 'modify', '--local', 's3', 'endpointurl', `http://AKIAUSER:${SECRET}@127.0.0.1:9000`);
    expect(set.code, set.stderr).toBe(0);
    expect(set.stdout).toContain('http://****@127.0.0.1:9000');
    const list = await tdv(dir, 'remote', 'list');
    expect(list.stdout).toContain('  endpointurl: http://****@127.0.0.1:9000');
    const json = await tdv(dir, 'remote', 'list', '--json');
    expect(JSON.parse(json.stdout).remotes[0].options.endpointurl).toBe('http://****@127.0.0.1:9000');
    const again = await tdv(dir, 'remote', 'modify', '--local', 's3', 'endpointurl', `http://AKIAUSER:${SECRET}@127.0.0.1:9000`);
    expect(again.stdout).toContain('is already http://****@127.0.0.1:9000');
    for (const r of [set, list, json, again]) expectNoSecret(r.stdout, r.stderr);
    expect(list.stdout).not.toContain('AKIAUSER');
  });

  it('errors about a url or an endpoint do not echo its user info', async () => {
    const dir = await newRepo();
    const bad = [
      ['remote', 'add', 'x', `s3://AKIA:${SECRET}@bucket/prefix`],
      ['remote', 'add', 'x', `https://AKIA:${SECRET}@host/path`],
    ];
    for (const args of bad) {
      const r = await tdv(dir, ...args);
      expect(r.code).toBe(2);
      expectOneLineError(r.stderr, '****@');
      expectNoSecret(r.stdout, r.stderr);
    }
    expect((await tdv(dir, 'remote', 'add', 's3', 's3://bucket/prefix')).code).toBe(0);
    const r = await tdv(dir, 'remote', 'modify', '--local', 's3', 'endpointurl', `ftp://AKIA:${SECRET}@host`);
    expect(r.code).toBe(2);
    expectOneLineError(r.stderr, 'endpointurl must be an http:// or https:// URL', 'ftp://****@host');
    expectNoSecret(r.stdout, r.stderr);
  });
});

describe('files tdv.yaml names are read through the guard', () => {
  async function outsideSecret(): Promise<string> {
    const file = path.join(newDir(), 'credentials.json');
    fs.writeFileSync(file, JSON.stringify({ aws_secret_access_key: SECRET }));
    return file;
  }

  it('metrics show refuses a metrics path that leaves the repository, and a metrics symlink to a file outside', async () => {
    const dir = await newRepo();
    const outside = await outsideSecret();
    const rel = path.relative(dir, outside);
    write(dir, 'tdv.yaml', `stages:\n  train:\n    cmd: echo\n    metrics: [${rel}]\n`);
    const r1 = await tdv(dir, 'metrics', 'show', '--json');
    expect(r1.code).toBe(1);
    // The pipeline loader refuses it (metrics show reads the pipeline as repro does, wdir and all).
    expectOneLineError(r1.stderr, 'tdv.yaml:4:', 'is outside the repository');
    expectNoSecret(r1.stdout, r1.stderr);

    fs.symlinkSync(outside, path.join(dir, 'metrics.json'));
    write(dir, 'tdv.yaml', 'stages:\n  train:\n    cmd: echo\n    metrics: [metrics.json]\n');
    const r2 = await tdv(dir, 'metrics', 'show');
    expect(r2.code).toBe(1);
    expectOneLineError(r2.stderr, 'tdv.yaml: metrics.json is a symlink');
    expectNoSecret(r2.stdout, r2.stderr);
  });

  it('metrics diff refuses a metrics path with ".." in a committed tdv.yaml', async () => {
    const dir = await newRepo();
    write(dir, 'tdv.yaml', 'stages:\n  train:\n    cmd: echo\n    metrics: [../../etc/passwd]\n');
    await git(dir, 'add', '-A');
    await git(dir, 'commit', '-qm', 'pipeline');
    const r = await tdv(dir, 'metrics', 'diff', 'HEAD', 'HEAD');
    expect(r.code).toBe(1);
    expectOneLineError(r.stderr, 'HEAD:tdv.yaml: ../../etc/passwd has a ".." component');
  });

  it('params diff and status refuse a params file that is a symlink to a file outside', async () => {
    const dir = await newRepo();
    write(dir, 'tdv.yaml', 'stages:\n  train:\n    cmd: echo\n    params: [aws_secret_access_key]\n');
    write(dir, 'params.yaml', 'aws_secret_access_key: harmless\n');
    await git(dir, 'add', '-A');
    await git(dir, 'commit', '-qm', 'pipeline');
    fs.rmSync(path.join(dir, 'params.yaml'));
    fs.symlinkSync(await outsideSecret(), path.join(dir, 'params.yaml'));
    for (const args of [['params', 'diff'], ['params', 'diff', '--json'], ['status']]) {
      const r = await tdv(dir, ...args);
      expect(r.code, `${args.join(' ')}: ${r.stdout}${r.stderr}`).toBe(1);
      expectOneLineError(r.stderr, 'params.yaml is a symlink');
      expectNoSecret(r.stdout, r.stderr);
    }
  });
});
