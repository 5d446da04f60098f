import { type ListObjectsV2CommandOutput, S3Client } from '@aws-sdk/client-s3';
import { describe, expect, it, onTestFinished } from 'vitest';
import { RemoteError } from '../../src/errors.js';
import { createS3Remote } from '../../src/remote/s3.js';
import type { Remote } from '../../src/remote/remote.js';

const oid = (n: number) => `ab${n.toString(16).padStart(62, '0')}`;
const key = (o: string) => `p/files/sha256/${o.slice(0, 2)}/${o.slice(2)}`;
type Page = Partial<ListObjectsV2CommandOutput>;

/**
 * An S3 remote whose client answers ListObjectsV2 from `pages` (by the
 * continuation token asked for; undefined for the first page). A real server
 * (s3rver) cannot be made to misbehave like this. After 1,000 requests it
 * throws, so a listing that never ends fails the test instead of hanging it.
 */
async function remoteWith(pages: (token: string | undefined) => Page): Promise<{ remote: Remote; calls: () => number }> {
  let calls = 0;
  const client = new S3Client({ region: 'us-east-1', credentials: { accessKeyId: 'k', secretAccessKey: 's' }, endpoint: 'http://127.0.0.1:1', forcePathStyle: true });
  const send = async (cmd: { constructor: { name: string }; input: { ContinuationToken?: string } }) => {
    if (++calls > 1000) throw new Error('endless listing: 1,000 requests');
    if (cmd.constructor.name !== 'ListObjectsV2Command') throw new Error(`unexpected ${cmd.constructor.name}`);
    return pages(cmd.input.ContinuationToken);
  };
  Object.assign(client, { send });
  const remote = await createS3Remote('fake', { url: 's3://b/p' }, { bucket: 'b', prefix: 'p' }, { client });
  onTestFinished(() => remote.close());
  return { remote, calls: () => calls };
}

async function all(it: AsyncIterable<string>): Promise<string[]> {
  const out: string[] = [];
  for await (const x of it) out.push(x);
  return out;
}

async function failure(p: Promise<unknown>): Promise<RemoteError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(RemoteError);
  return err as RemoteError;
}

describe('S3 listings that would never end', () => {
  it('follows continuation tokens across pages', async () => {
    const { remote } = await remoteWith((t) =>
      t === undefined
        ? { Contents: [{ Key: key(oid(1)) }, { Key: key(oid(2)) }], IsTruncated: true, NextContinuationToken: 'one' }
        : t === 'one'
          ? { Contents: [{ Key: key(oid(3)) }], IsTruncated: true, NextContinuationToken: 'two' }
          : { Contents: [{ Key: key(oid(4)) }], IsTruncated: false },
    );
    expect(await all(remote.list())).toEqual([oid(1), oid(2), oid(3), oid(4)]);
    expect(await remote.listPrefix!('ab')).toEqual([oid(1), oid(2), oid(3), oid(4)]);
  });

  it('a continuation token handed back again is an error naming the remote, not an endless loop (list, listPrefix, listRuns)', async () => {
    // The server answers every token with the same next token: page two, forever.
    const { remote, calls } = await remoteWith((t) =>
      t === undefined ? { Contents: [{ Key: key(oid(1)) }], IsTruncated: true, NextContinuationToken: 'again' } : { Contents: [], IsTruncated: true, NextContinuationToken: 'again' },
    );
    for (const attempt of [all(remote.list()), remote.listPrefix!('ab'), remote.listRuns!()]) {
      const err = await failure(attempt);
      expect(err.code).toBe('BAD_LISTING');
      expect(err.wide).toBe(true);
      expect(err.message).toMatch(/^remote "fake": listing s3:\/\/b\/p\/(files\/sha256\/|runs).* repeated continuation token "again"/);
      expect(err.message).not.toContain('\n');
    }
    expect(calls()).toBeLessThan(10);
  });

  it('the same page again under a fresh token is an error (keys must ascend)', async () => {
    let n = 0;
    const { remote } = await remoteWith(() => ({ Contents: [{ Key: key(oid(1)) }], IsTruncated: true, NextContinuationToken: `t${n++}` }));
    expect((await failure(all(remote.list()))).message).toMatch(/returned key .* again or out of order/);
  });

  it('endless empty pages under fresh tokens are an error', async () => {
    let n = 0;
    const { remote, calls } = await remoteWith(() => ({ Contents: [], IsTruncated: true, NextContinuationToken: `t${n++}` }));
    expect((await failure(all(remote.list()))).message).toMatch(/returned 100 empty pages in a row/);
    expect(calls()).toBe(100);
  });

  it('a truncated page without a token is an error, not a listing silently cut short', async () => {
    const { remote } = await remoteWith(() => ({ Contents: [{ Key: key(oid(1)) }], IsTruncated: true }));
    expect((await failure(all(remote.list()))).message).toMatch(/was cut short/);
  });
});
