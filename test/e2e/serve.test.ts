import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from 'vitest';
import { newDir, newRepo, objPath, sha } from '../helpers/expect.js';
import { tdv, write } from '../helpers/repo.js';
import { sleep } from '../helpers/tmp.js';
import { gitAt, type Serving, servedRepo, startServe, stopAllServes, TRIPS_V1, TRIPS_V2, workspaceState } from '../helpers/serve.js';

/** A raw GET/other request with the path sent exactly as given (no client-side normalisation of `..`). */
function raw(url: string, pathAsIs: string, opts: { method?: string; headers?: Record<string, string> } = {}): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: Buffer }> {
  const u = new URL(url);
  return new Promise((resolve, reject) => {
    const req = http.request({ host: u.hostname, port: u.port, path: pathAsIs, method: opts.method ?? 'GET', headers: opts.headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body: Buffer.concat(chunks) }));
    });
    req.on('error', reject);
    req.end();
  });
}

afterAll(stopAllServes);

describe('tdv serve over plain HTTP (bin/tdv.js serve, real temp repo)', () => {
  let repo: Awaited<ReturnType<typeof servedRepo>>;
  let s: Serving;
  let before: Record<string, string>;
  beforeAll(async () => {
    repo = await servedRepo();
    before = workspaceState(repo.dir);
    s = await startServe(repo.dir);
  });

  it('prints where it serves, names the bucket after the directory', () => {
    expect(s.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    expect(s.bucket).toBe(
      path
        .basename(repo.dir)
        .toLowerCase()
        .replace(/[^a-z0-9.-]+/g, '-'),
    );
    expect(s.token).toBeUndefined();
  });

  it('serves a file at a branch, a tag, a commit id, main~1 and a date revision', async () => {
    const get = async (p: string) => {
      const r = await fetch(`${s.url}${p}`);
      return [r.status, await r.text()];
    };
    expect(await get('/main/data/trips.csv')).toEqual([200, TRIPS_V2]);
    expect(await get('/v1.0/data/trips.csv')).toEqual([200, TRIPS_V2]);
    expect(await get(`/${repo.first}/data/trips.csv`)).toEqual([200, TRIPS_V1]);
    expect(await get(`/${repo.first.slice(0, 10)}/data/trips.csv`)).toEqual([200, TRIPS_V1]);
    expect(await get('/main~1/data/trips.csv')).toEqual([200, TRIPS_V1]);
    expect(await get('/@2016-07-31/data/trips.csv')).toEqual([200, TRIPS_V1]);
    expect(await get('/@2016-08-02/data/trips.csv')).toEqual([200, TRIPS_V2]);
    expect(await get('/feature/x/notes.txt')).toEqual([200, 'notes\n']);
    expect(await get('/main/README.md')).toEqual([200, '# served\n']);
    expect(await get('/main/data/zones/b%20c.csv')).toEqual([200, 'zone\nb c\n']);
  });

  it('answers HEAD and GET with Content-Length, a stable ETag, Last-Modified = the commit time, Content-Type', async () => {
    const h = await fetch(`${s.url}/main/data/trips.csv`, { method: 'HEAD' });
    expect(h.status).toBe(200);
    expect(h.headers.get('content-length')).toBe(String(TRIPS_V2.length));
    expect(h.headers.get('etag')).toBe(`"${sha(TRIPS_V2)}"`);
    expect(h.headers.get('last-modified')).toBe('Tue, 02 Aug 2016 12:00:00 GMT');
    expect(h.headers.get('content-type')).toBe('text/csv; charset=utf-8');
    // Same content at another revision: same ETag; a Git file's ETag is its blob id.
    expect((await fetch(`${s.url}/v1.0/data/trips.csv`, { method: 'HEAD' })).headers.get('etag')).toBe(h.headers.get('etag'));
    expect((await fetch(`${s.url}/main/README.md`, { method: 'HEAD' })).headers.get('etag')).toMatch(/^"[0-9a-f]{40}"$/);
    const again = await fetch(`${s.url}/main/data/trips.csv`, { headers: { 'If-None-Match': h.headers.get('etag')! } });
    expect(again.status).toBe(304);
  });

  it('serves one byte range (206), and 416 past the end', async () => {
    const r = await fetch(`${s.url}/main/model.bin`, { headers: { Range: 'bytes=1000-1009' } });
    expect(r.status).toBe(206);
    expect(r.headers.get('content-range')).toBe(`bytes 1000-1009/${repo.model2.length}`);
    expect(Buffer.from(await r.arrayBuffer())).toEqual(repo.model2.subarray(1000, 1010));
    const tail = await fetch(`${s.url}/main~1/model.bin`, { headers: { Range: 'bytes=-5' } });
    expect(Buffer.from(await tail.arrayBuffer())).toEqual(repo.model1.subarray(-5));
    const past = await fetch(`${s.url}/main/model.bin`, { headers: { Range: `bytes=${repo.model2.length}-` } });
    expect(past.status).toBe(416);
    expect(past.headers.get('content-range')).toBe(`bytes */${repo.model2.length}`);
    expect((await past.text()).trim().split('\n')).toHaveLength(1);
  });

  it('lists a directory as JSON by default, and as HTML with links for a browser', async () => {
    const j = (await (await fetch(`${s.url}/main/data/`)).json()) as { rev: string; commit: string; path: string; entries: Record<string, unknown>[] };
    expect(j).toMatchObject({ rev: 'main', commit: repo.second, path: 'data' });
    expect(j.entries).toEqual([
      { name: 'trips.csv', path: 'data/trips.csv', kind: 'file', size: TRIPS_V2.length, source: 'data', sha256: sha(TRIPS_V2), url: `${s.url}/main/data/trips.csv` },
      { name: 'zones', path: 'data/zones', kind: 'dir', size: null, source: 'data', url: `${s.url}/main/data/zones/` },
    ]);
    const root = (await (await fetch(`${s.url}/@2016-07-31/`)).json()) as { commit: string; entries: { name: string; kind: string; source: string }[] };
    expect(root.commit).toBe(repo.first);
    expect(root.entries.map((e) => `${e.name} ${e.kind} ${e.source}`)).toEqual(expect.arrayContaining(['README.md file git', 'data dir data', 'model.bin file data']));
    const html = await fetch(`${s.url}/main/data/zones`, { headers: { Accept: 'text/html,application/xhtml+xml,*/*;q=0.8' } });
    expect(html.headers.get('content-type')).toBe('text/html; charset=utf-8');
    const text = await html.text();
    expect(text).toContain('<a href="/main/data/zones/a.csv">a.csv</a>');
    expect(text).toContain('<a href="/main/data/zones/b%20c.csv">b c.csv</a>');
  });

  it('answers 404 for hostile and outside paths, reading nothing outside the revision', async () => {
    const secret = path.join(path.dirname(repo.dir), `${path.basename(repo.dir)}-secret`);
    fs.writeFileSync(secret, 'SECRET');
    onTestFinished(() => fs.rmSync(secret, { force: true }));
    const hostile = [
      '/main/../README.md',
      '/main/%2e%2e/README.md',
      '/main/data/%2E%2E/%2E%2E/etc/passwd',
      '/main/./README.md',
      '/main//README.md',
      '//etc/passwd',
      '/main/%2Fetc%2Fpasswd',
      '/main/data%00/trips.csv',
      '/main/.git/config',
      '/main/.git/HEAD',
      '/main/.tdv/config.yaml',
      `/main/../${path.basename(repo.dir)}-secret`,
      '/..%2f..%2fetc/passwd',
      '/HEAD:README.md',
      `/main/${'a/'.repeat(3000)}x`,
      `/${'x'.repeat(5000)}/y`,
      '/nosuchbranch/README.md',
      '/main/nosuchfile',
      '/main/data/trips.csv/',
    ];
    for (const p of hostile) {
      const r = await raw(s.url, p);
      expect(r.status, p).toBe(404);
      expect(r.body.toString(), p).not.toMatch(/SECRET|\[core\]|ref: refs/);
      expect(r.body.toString().trim().split('\n'), p).toHaveLength(1);
    }
  });

  it('refuses every write verb with 403, and a non-loopback Host (DNS rebinding) with 403', async () => {
    for (const method of ['PUT', 'POST', 'DELETE', 'PATCH']) expect((await raw(s.url, '/main/x.csv', { method })).status, method).toBe(403);
    const r = await raw(s.url, '/main/README.md', { headers: { Host: 'evil.example:80' } });
    expect(r.status).toBe(403);
    expect(r.body.toString()).toMatch(/^Host evil\.example is not this machine/);
  });

  it('serves many readers at once, and a reader that disconnects mid-file does not disturb the others', async () => {
    const aborted = new AbortController();
    const partial = fetch(`${s.url}/main/model.bin`, { signal: aborted.signal }).then(async (r) => {
      const reader = r.body!.getReader();
      await reader.read();
      aborted.abort();
    });
    const all = await Promise.all(Array.from({ length: 24 }, (_, i) => fetch(`${s.url}/${i % 2 ? 'main' : 'main~1'}/model.bin`).then(async (r) => Buffer.from(await r.arrayBuffer()))));
    await partial.catch(() => {});
    all.forEach((b, i) => expect(b.equals(i % 2 ? repo.model2 : repo.model1), String(i)).toBe(true));
    expect((await fetch(`${s.url}/main/README.md`)).status).toBe(200);
  });

  it('never changes the work tree, the index, HEAD or the refs', async () => {
    for (const p of ['/main/data/trips.csv', '/feature/x/notes.txt', '/@2016-07-31/model.bin', '/main/data/']) expect((await fetch(`${s.url}${p}`)).status).toBe(200);
    expect(workspaceState(repo.dir)).toEqual(before);
  });

  it('stops on SIGTERM with exit 0 (and on SIGINT)', async () => {
    const other = await startServe(repo.dir);
    expect((await other.stop('SIGINT')).code).toBe(0);
    const r = await s.stop('SIGTERM');
    expect(r.code).toBe(0);
    expect(r.stderr).toBe('');
  });
});

describe('tdv serve over S3 without a token (unsigned and any-credential requests), raw', () => {
  let repo: Awaited<ReturnType<typeof servedRepo>>;
  let s: Serving;
  beforeAll(async () => {
    repo = await servedRepo();
    s = await startServe(repo.dir, ['--bucket', 'history']);
  });

  const xml = async (p: string, headers: Record<string, string> = {}) => {
    const r = await raw(s.url, p, { headers });
    return { status: r.status, body: r.body.toString() };
  };
  const keys = (body: string) => [...body.matchAll(/<Key>([^<]*)<\/Key>/g)].map((m) => m[1]);
  const prefixes = (body: string) => [...body.matchAll(/<Prefix>([^<]*)<\/Prefix><\/CommonPrefixes>/g)].map((m) => m[1]);

  it('path style and virtual-host style list the refs at the top and a revision below', async () => {
    const top = await xml('/history?list-type=2&delimiter=%2F');
    expect(top.status).toBe(200);
    expect(prefixes(top.body)).toEqual(['feature/', 'main/', 'v1.0/']);
    expect(top.body).toContain('<KeyCount>3</KeyCount>');
    const feature = await xml('/history?list-type=2&delimiter=%2F&prefix=feature%2F');
    expect(prefixes(feature.body)).toEqual(['feature/x/']);
    const vhost = await xml('/?list-type=2&prefix=%402016-07-31%2Fdata%2F&delimiter=%2F', { Host: `history.localhost:${s.port}` });
    expect(vhost.status).toBe(200);
    expect(keys(vhost.body)).toEqual(['@2016-07-31/data/trips.csv']);
    expect(prefixes(vhost.body)).toEqual(['@2016-07-31/data/zones/']);
    const obj = await raw(s.url, '/main/data/trips.csv', { headers: { Host: `history.localhost:${s.port}` } });
    expect(obj.body.toString()).toBe(TRIPS_V2);
  });

  it('ListObjects v1 pages with NextMarker; v2 with start-after, continuation tokens and encoding-type=url', async () => {
    const p1 = await xml('/history?prefix=main%2Fdata%2F&max-keys=2');
    expect(keys(p1.body)).toEqual(['main/data/trips.csv', 'main/data/zones/a.csv']);
    expect(p1.body).toContain('<IsTruncated>true</IsTruncated><NextMarker>main/data/zones/a.csv</NextMarker>');
    const p2 = await xml('/history?prefix=main%2Fdata%2F&max-keys=2&marker=main%2Fdata%2Fzones%2Fa.csv');
    expect(keys(p2.body)).toEqual(['main/data/zones/b c.csv']);
    expect(p2.body).toContain('<IsTruncated>false</IsTruncated>');
    const enc = await xml('/history?list-type=2&prefix=main%2Fdata%2Fzones%2F&encoding-type=url&start-after=main%2Fdata%2Fzones%2Fa.csv');
    expect(keys(enc.body)).toEqual(['main/data/zones/b%20c.csv']);
    const first = await xml('/history?list-type=2&prefix=v1.0%2F&max-keys=1');
    const token = /<NextContinuationToken>([^<]+)</.exec(first.body)![1]!;
    expect(token).not.toMatch(/^[0-9a-f]{32}$/);
    const next = await xml(`/history?list-type=2&prefix=v1.0%2F&max-keys=1&continuation-token=${token}`);
    expect(keys(next.body)).toEqual(['v1.0/.tdvignore']);
    expect((await xml('/history?list-type=2&continuation-token=bogus!')).status).toBe(400);
    expect((await xml('/history?list-type=2&max-keys=-1')).body).toContain('<Code>InvalidArgument</Code>');
  });

  it('NoSuchKey for hostile keys, NoSuchBucket for another bucket, AccessDenied for writes, all as one-line XML', async () => {
    for (const key of [
      'main/../README.md',
      'main/%2e%2e/README.md',
      'main/./README.md',
      'main//README.md',
      '/etc/passwd',
      'main/data%00/trips.csv',
      'main/.git/config',
      'main/.tdv/config.yaml',
      'main',
      'main/',
      'main/data',
      'main/data/',
      `main/${'x/'.repeat(3000)}`,
      'HEAD:README.md',
    ]) {
      const r = await xml(`/history/${key}`);
      expect(r.status, key).toBe(404);
      expect(r.body, key).toMatch(/^<\?xml version="1.0" encoding="UTF-8"\?><Error><Code>NoSuchKey<\/Code>.*<\/Error>\n$/);
    }
    const other = await xml('/nobucket/main/README.md', { 'x-amz-content-sha256': 'UNSIGNED-PAYLOAD' });
    expect(other.body).toContain('<Code>NoSuchBucket</Code>');
    for (const method of ['PUT', 'POST', 'DELETE']) {
      const r = await raw(s.url, '/history/main/new.txt?uploads', { method });
      expect(r.status, method).toBe(403);
      expect(r.body.toString()).toContain('<Code>AccessDenied</Code>');
    }
    const named = await raw(s.url, '/history/main/README.md?response-content-type=text%2Fx-test&response-content-disposition=attachment%3B%20filename%3Dr.md&response-cache-control=%E2%9C%93');
    expect(named.status).toBe(200);
    expect(named.headers).toMatchObject({ 'content-type': 'text/x-test', 'content-disposition': 'attachment; filename=r.md' });
    expect(named.headers['cache-control']).toBeUndefined();
    // A page elsewhere must not turn a repository file into a script or stylesheet it includes (XSSI):
    // script and style types are not taken from response-content-type; the type by extension stays, with nosniff.
    for (const type of ['text/javascript', 'application/javascript; charset=utf-8', ' Text/JavaScript ', 'application/x-ecmascript', 'text/jscript', 'text/javascript1.5', 'module', 'text/css']) {
      const r = await raw(s.url, `/history/main/README.md?response-content-type=${encodeURIComponent(type)}`);
      expect(r.status, type).toBe(200);
      expect(r.headers['content-type'], type).toBe('text/markdown; charset=utf-8');
      expect(r.headers['x-content-type-options'], type).toBe('nosniff');
    }
    const range = await raw(s.url, '/history/main/README.md', { headers: { Range: 'bytes=999-' } });
    expect(range.status).toBe(416);
    expect(range.body.toString()).toContain('<Code>InvalidRange</Code>');
  });

  it('a reader that disconnects mid-download releases the cache file at once', async () => {
    const dir = await newRepo();
    const big = Buffer.alloc(48 << 20, 7);
    write(dir, 'big.bin', big);
    expect((await tdv(dir, 'add', 'big.bin')).code).toBe(0);
    await gitAt(dir, '2016-08-05T12:00:00Z', 'add', '-A');
    await gitAt(dir, '2016-08-05T12:00:00Z', 'commit', '-qm', 'big');
    const srv = await startServe(dir);
    const fdDir = `/proc/${srv.child.pid}/fd`;
    if (!fs.existsSync(fdDir)) return; // no /proc: not Linux
    const obj = fs.realpathSync(objPath(dir, sha(big)));
    const open = () =>
      fs.readdirSync(fdDir).filter((fd) => {
        try {
          return fs.readlinkSync(`${fdDir}/${fd}`) === obj;
        } catch {
          return false;
        }
      }).length;
    // A reader that reads nothing: the socket fills and the file stays open under backpressure.
    const sock = net.connect(srv.port, '127.0.0.1');
    sock.pause();
    sock.write('GET /main/big.bin HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n');
    let seen = 0;
    for (let i = 0; i < 250 && (seen = open()) === 0; i++) await sleep(20);
    expect(seen).toBe(1);
    sock.destroy();
    let left = 1;
    for (let i = 0; i < 250 && (left = open()) > 0; i++) await sleep(20);
    expect(left).toBe(0);
    expect((await fetch(`${srv.url}/main/big.bin`, { headers: { Range: 'bytes=0-3' } })).status).toBe(206);
    await srv.stop();
  });
});

describe('tdv serve: a damaged cache object', () => {
  /** A GET read to its end or its failure: status, bytes received, and whether the body ended early. */
  function getAll(url: string): Promise<{ status: number; body: Buffer; cut: boolean }> {
    return new Promise((resolve) => {
      const chunks: Buffer[] = [];
      const req = http.get(url, (res) => {
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode!, body: Buffer.concat(chunks), cut: false }));
        res.on('error', () => resolve({ status: res.statusCode!, body: Buffer.concat(chunks), cut: true }));
      });
      req.on('error', () => resolve({ status: 0, body: Buffer.concat(chunks), cut: true }));
    });
  }

  it('is never sent whole: a cache file whose bytes no longer match is cut short (small and multi-chunk), and said on stderr', async () => {
    const dir = await newRepo();
    const small = Buffer.from('day,trips\n2016-07-29,10\n');
    const big = Buffer.alloc(3 << 20, 7);
    write(dir, 'small.csv', small);
    write(dir, 'big.bin', big);
    expect((await tdv(dir, 'add', 'small.csv', 'big.bin')).code).toBe(0);
    await gitAt(dir, '2016-08-05T12:00:00Z', 'add', '-A');
    await gitAt(dir, '2016-08-05T12:00:00Z', 'commit', '-qm', 'data');
    const srv = await startServe(dir);
    // Served intact first (and again: a verified file is not hashed twice, and still right).
    for (let i = 0; i < 2; i++) {
      expect((await getAll(`${srv.url}/main/small.csv`)).body.equals(small)).toBe(true);
      expect((await getAll(`${srv.url}/main/big.bin`)).body.equals(big)).toBe(true);
    }
    // Damaged in place, same size (bit rot, an edit through a hard link): its times change.
    for (const [name, buf] of [
      ['small.csv', small],
      ['big.bin', big],
    ] as const) {
      const obj = objPath(dir, sha(buf));
      fs.chmodSync(obj, 0o644);
      const bad = Buffer.from(buf);
      bad[0] = bad[0]! ^ 0xff;
      fs.writeFileSync(obj, bad);
      const r = await getAll(`${srv.url}/main/${name}`);
      expect(r.cut, name).toBe(true);
      expect(r.body.length, name).toBeLessThan(buf.length);
      // A range is not sent from a damaged file either (the whole file is checked first): a one-line 502.
      const part = await fetch(`${srv.url}/main/${name}`, { headers: { Range: 'bytes=1-4' } });
      expect(part.status, name).toBe(502);
      expect((await part.text()).trim(), name).toMatch(
        /^error: the cache object .* is damaged .*it was not served; run `tdv fsck` \(it moves damaged objects aside\), then `tdv pull` fetches it again$/,
      );
    }
    const { stderr } = await srv.stop();
    expect(stderr).toMatch(/the cache object \S+ of small\.csv at \S+ is damaged .*run `tdv fsck` \(it moves damaged objects aside\)/);
    expect(stderr).toMatch(/of big\.bin at \S+ is damaged/);
  });
});

describe('tdv serve: token, listen errors', () => {
  let repo: Awaited<ReturnType<typeof servedRepo>>;
  beforeAll(async () => {
    repo = await servedRepo();
  });

  it('with --token, every request must present it (Bearer, ?token= then its cookie); 401/403 are one line', async () => {
    const token = 'tok-0123456789abcdef-XYZ';
    const s = await startServe(repo.dir, ['--token', token]);
    const no = await fetch(`${s.url}/main/README.md`);
    expect(no.status).toBe(401);
    expect((await no.text()).trim().split('\n')).toHaveLength(1);
    expect((await fetch(`${s.url}/main/README.md`, { headers: { Authorization: 'Bearer wrong' } })).status).toBe(403);
    expect(await (await fetch(`${s.url}/main/README.md`, { headers: { Authorization: `Bearer ${token}` } })).text()).toBe('# served\n');
    const q = await fetch(`${s.url}/main/README.md?token=${token}`);
    expect(q.status).toBe(200);
    const cookie = q.headers.get('set-cookie')!;
    expect(cookie).toMatch(new RegExp(`^tdv_token_${s.port}=[A-Za-z0-9_-]{43}; Path=/; HttpOnly; SameSite=Strict$`));
    expect(cookie).not.toContain(token);
    expect((await fetch(`${s.url}/main/data/`, { headers: { Cookie: cookie.split(';')[0]! } })).status).toBe(200);
    expect((await fetch(`${s.url}/main/README.md?token=nope`)).status).toBe(403);
    await s.stop();
  });

  it('takes the token from TDV_SERVE_TOKEN too (out of the process list); --token wins; a bad one is a usage error naming it', async () => {
    const token = 'env-token-0123456789abcdef';
    const s = await startServe(repo.dir, [], { TDV_SERVE_TOKEN: token });
    expect(s.token).toBeUndefined(); // not generated, not printed
    expect((await fetch(`${s.url}/main/README.md`)).status).toBe(401);
    expect((await fetch(`${s.url}/main/README.md`, { headers: { Authorization: `Bearer ${token}` } })).status).toBe(200);
    await s.stop();
    const both = await startServe(repo.dir, ['--token', 'flag-token-0123456789abcdef'], { TDV_SERVE_TOKEN: token });
    expect((await fetch(`${both.url}/main/README.md`, { headers: { Authorization: 'Bearer flag-token-0123456789abcdef' } })).status).toBe(200);
    expect((await fetch(`${both.url}/main/README.md`, { headers: { Authorization: `Bearer ${token}` } })).status).toBe(403);
    await both.stop();
    const { tdvBin } = await import('../helpers/repo.js');
    const bad = await tdvBin(repo.dir, ['serve', '--port', '0'], { TDV_SERVE_TOKEN: 'short' });
    expect(bad.code).toBe(2);
    expect(bad.stderr.trim()).toMatch(/^error: TDV_SERVE_TOKEN must be 16 to 512 printable ASCII characters/);
  });

  it('off loopback without --token, generates a token, prints it, and requires it', async () => {
    const s = await startServe(repo.dir, ['--host', '0.0.0.0']);
    expect(s.token).toMatch(/^[A-Za-z0-9_-]{43}$/);
    const local = `http://127.0.0.1:${s.port}`;
    expect((await fetch(`${local}/main/README.md`)).status).toBe(401);
    expect((await fetch(`${local}/main/README.md`, { headers: { Authorization: `Bearer ${s.token}` } })).status).toBe(200);
    expect((await s.stop()).code).toBe(0);
  });

  it('follows the repository while it runs: a new commit, then git pack-refs and git gc', async () => {
    const { dir } = await servedRepo();
    const s = await startServe(dir);
    expect(await (await fetch(`${s.url}/main/README.md`)).text()).toBe('# served\n');
    write(dir, 'README.md', '# changed\n');
    await gitAt(dir, '2016-08-06T12:00:00Z', 'commit', '-qam', 'readme');
    expect(await (await fetch(`${s.url}/main/README.md`)).text()).toBe('# changed\n');
    await gitAt(dir, '2016-08-06T12:00:00Z', 'pack-refs', '--all', '--prune');
    write(dir, 'README.md', '# again\n');
    await gitAt(dir, '2016-08-07T12:00:00Z', 'commit', '-qam', 'again');
    await gitAt(dir, '2016-08-07T12:00:00Z', 'pack-refs', '--all', '--prune');
    expect(await (await fetch(`${s.url}/main/README.md`)).text()).toBe('# again\n');
    expect((await fetch(`${s.url}/v1.0/README.md`)).status).toBe(200);
    await gitAt(dir, '2016-08-07T12:00:00Z', 'branch', 'later');
    await gitAt(dir, '2016-08-07T12:00:00Z', 'pack-refs', '--all', '--prune');
    const top = await (await fetch(`${s.url}/${s.bucket}?list-type=2&delimiter=/`)).text();
    expect([...top.matchAll(/<Prefix>([^<]*)<\/Prefix><\/CommonPrefixes>/g)].map((m) => m[1])).toEqual(['feature/', 'later/', 'main/', 'v1.0/']);
    // git gc packs the loose objects; a second gc replaces that pack with another (as many packs as before).
    for (const text of ['# gc one\n', '# gc two\n']) {
      write(dir, 'README.md', text);
      await gitAt(dir, '2016-08-08T12:00:00Z', 'commit', '-qam', text);
      await gitAt(dir, '2016-08-08T12:00:00Z', 'gc', '-q', '--prune=now');
      expect(await (await fetch(`${s.url}/main/README.md`)).text()).toBe(text);
    }
    await s.stop();
  });

  it('warns when the bucket name is also a branch (unsigned /main/... would be S3), and serves it as S3', async () => {
    const s = await startServe(repo.dir, ['--bucket', 'main']);
    const listed = await fetch(`${s.url}/main?list-type=2&prefix=main/data/zones/`);
    expect(await listed.text()).toContain('<Key>main/data/zones/a.csv</Key>');
    const r = await s.stop();
    expect(r.stderr).toMatch(/^warning: the bucket name "main" is also a branch or tag: .* --bucket\n$/);
  });

  it('a port in use, or an address not of this machine: one line naming the flag to change', async () => {
    const blocker = net.createServer();
    await new Promise<void>((r) => blocker.listen(0, '127.0.0.1', r));
    const port = (blocker.address() as net.AddressInfo).port;
    const { tdvBin } = await import('../helpers/repo.js');
    const taken = await tdvBin(repo.dir, ['serve', '--port', String(port)]);
    blocker.close();
    expect(taken.code).toBe(2);
    expect(taken.stderr).toMatch(new RegExp(`^error: port ${port} on 127\\.0\\.0\\.1 is in use; choose another with --port`));
    expect(taken.stderr.trim().split('\n')).toHaveLength(1);
    const bad = await tdvBin(repo.dir, ['serve', '--port', '0', '--host', '192.0.2.1', '--token', 'x'.repeat(20)]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/^error: cannot listen on 192\.0\.2\.1 .*--host/);
    expect(bad.stderr.trim().split('\n')).toHaveLength(1);
  });
});

describe('tdv serve: usage errors', () => {
  it('refuses a bad --port, a short --token and an invalid --bucket before opening anything (exit 2, one line)', async () => {
    const { tdv } = await import('../helpers/repo.js');
    const dir = fs.realpathSync(newDir());
    for (const [args, msg] of [
      [['--port', '70000'], /^error: --port must be a number from 0 to 65535, got "70000"$/],
      [['--port', '0x10'], /^error: --port must be a number/],
      [['--host', ''], /^error: --host must be an address \(127\.0\.0\.1 for this machine only, 0\.0\.0\.0 for every interface\), got ""$/],
      [['--host', ' '], /^error: --host must be an address/],
      [['--token', 'short'], /^error: --token must be 16 to 512 printable ASCII characters/],
      [['--bucket', 'Bad_Name'], /^error: --bucket must be a valid S3 bucket name/],
    ] as const) {
      const r = await tdv(dir, 'serve', ...args);
      expect(r.code, args.join(' ')).toBe(2);
      expect(r.stderr.trim(), args.join(' ')).toMatch(msg);
      expect(r.stderr.trim().split('\n')).toHaveLength(1);
    }
  });
});
