import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it, onTestFinished } from 'vitest';
import { RemoteError } from '../../src/errors.js';
import { LocalRemote } from '../../src/remote/local.js';
import { tmpDir } from '../helpers/repo.js';
import { remoteContract } from './remote.contract.js';

remoteContract('local', async () => {
  const remote = new LocalRemote('local', tmpDir('tdv-remote-'));
  onTestFinished(() => remote.close());
  return {
    remote,
    async corrupt(oid, bytes) {
      const file = remote.pathOf(oid);
      fs.chmodSync(file, 0o644); // objects are stored read-only
      fs.writeFileSync(file, bytes);
    },
  };
});

describe('local remote: raw keys on a directory someone else can write to', () => {
  const make = () => {
    const root = tmpDir('tdv-remote-');
    const remote = new LocalRemote('local', root);
    onTestFinished(() => remote.close());
    return { root, remote };
  };
  const refusal = async (p: Promise<unknown>): Promise<RemoteError> => {
    const err = await p.then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(RemoteError);
    return err as RemoteError;
  };
  const text = async (body: AsyncIterable<Uint8Array>) => {
    const chunks: Buffer[] = [];
    for await (const c of body) chunks.push(Buffer.from(c));
    return Buffer.concat(chunks).toString();
  };

  it('a symlink planted at a key is not followed: get refuses it, list skips it, put replaces the link, delete removes only the link', async () => {
    const { root, remote } = make();
    const outside = path.join(tmpDir('tdv-outside-'), 'secret');
    fs.writeFileSync(outside, 'secret');
    fs.mkdirSync(path.join(root, 'packs'));
    fs.symlinkSync(outside, path.join(root, 'packs', 'a.pack'));
    for (const range of [undefined, { start: 0, end: 3 }]) {
      const err = await refusal(remote.getKey('packs/a.pack', range));
      expect(err.code).toBe('NOT_A_FILE');
      expect(err.message).toMatch(/^remote "local": .*packs\/a\.pack is a symlink, not a regular file; tdv will not read it\. Delete it on the remote/);
    }
    expect(await remote.listKeys('packs')).toEqual([]);
    await remote.putKey('packs/a.pack', { data: Buffer.from('pack') });
    expect(fs.readFileSync(outside, 'utf8')).toBe('secret');
    expect(fs.lstatSync(path.join(root, 'packs', 'a.pack')).isFile()).toBe(true);
    fs.rmSync(path.join(root, 'packs', 'a.pack'));
    fs.symlinkSync(outside, path.join(root, 'packs', 'a.pack'));
    expect(await remote.deleteKeys(['packs/a.pack'])).toEqual([]);
    expect(fs.readFileSync(outside, 'utf8')).toBe('secret');
  });

  it('a symlinked directory on the way to a key is never followed: reads see nothing, writes are refused, deletes touch nothing', async () => {
    const { root, remote } = make();
    const elsewhere = tmpDir('tdv-outside-');
    fs.writeFileSync(path.join(elsewhere, 'x.pack'), 'theirs');
    fs.symlinkSync(elsewhere, path.join(root, 'packs'));
    const get = await refusal(remote.getKey('packs/x.pack'));
    expect(get.code).toBe('OBJECT_NOT_ON_REMOTE');
    expect(await remote.listKeys('packs')).toEqual([]);
    expect(await remote.listKeys('')).toEqual([]);
    const put = await refusal(remote.putKey('packs/y.pack', { data: Buffer.from('mine') }));
    expect(put.code).toBe('NOT_A_DIRECTORY');
    expect(put.message).toMatch(/^remote "local": .*packs is a symlink, not a directory; tdv will not write through it\. Delete it on the remote/);
    expect(await remote.deleteKeys(['packs/x.pack'])).toEqual([]);
    expect(fs.readdirSync(elsewhere)).toEqual(['x.pack']);
  });

  it('a FIFO at a key is refused unopened, not read (which would block)', async () => {
    const { root, remote } = make();
    fs.mkdirSync(path.join(root, 'index'));
    execFileSync('mkfifo', [path.join(root, 'index', 'f.json.gz')]);
    const err = await refusal(remote.getKey('index/f.json.gz'));
    expect(err.code).toBe('NOT_A_FILE');
    expect(err.message).toContain('is a FIFO');
    expect(await remote.listKeys('index')).toEqual([]);
  });

  it('listKeys sorts by code point, as S3 lists: "-" before "." before "/"', async () => {
    const { remote } = make();
    for (const k of ['packs/a/y', 'packs/a.pack', 'packs/a-1/z']) await remote.putKey(k, { data: Buffer.from('x') });
    expect((await remote.listKeys('packs')).map((k) => k.key)).toEqual(['packs/a-1/z', 'packs/a.pack', 'packs/a/y']);
  });

  it('temp files of uploads in progress (or killed) are never listed, nor read as keys', async () => {
    const { root, remote } = make();
    await remote.putKey('packs/a.pack', { data: Buffer.from('a') });
    // What a killed putKey leaves: a temp name beside the key, never the key.
    fs.writeFileSync(path.join(root, 'packs', '.tmp.999999.abc01'), 'partial');
    fs.writeFileSync(path.join(root, 'packs', '.tdvtmp.999999.abc02'), 'partial');
    expect(await remote.listKeys('packs')).toEqual([{ key: 'packs/a.pack', size: 1 }]);
    expect((await refusal(remote.getKey('packs/.tmp.999999.abc01'))).code).toBe('BAD_KEY');
    expect((await refusal(remote.putKey('packs/.tmp.1', { data: Buffer.from('x') }))).code).toBe('BAD_KEY');
  });

  it('putKey publishes by rename: a failing source leaves no temp file behind, and the old key whole', async () => {
    const { root, remote } = make();
    await remote.putKey('packs/p.pack', { data: Buffer.from('old') });
    const dir = tmpDir('tdv-src-');
    // A directory as the source: the copy fails after the temp name was chosen.
    const err = await remote.putKey('packs/p.pack', { file: dir }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(Error);
    expect(fs.readdirSync(path.join(root, 'packs'))).toEqual(['p.pack']);
    expect(await text(await remote.getKey('packs/p.pack'))).toBe('old');
  });
});
