import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { Repo } from '../../src/repo/repo.js';
import { startServer } from '../../src/serve/server.js';
import { git, makeRepo, write } from '../helpers/repo.js';

// The web view's assets are found however tdv runs: bundled (dist/bundle, the e2e tests),
// compiled by tsc (dist/), or from source, as here (vitest runs src/ in-process).
describe('web view assets', () => {
  it('are served when tdv runs from source', async () => {
    if (!fs.existsSync(path.resolve(import.meta.dirname, '../../dist/bundle/web/app.js'))) throw new Error('run `npm run build` first');
    const dir = await makeRepo();
    write(dir, 'a.txt', 'a');
    await git(dir, 'add', '-A');
    await git(dir, 'commit', '-qm', 'one');
    const served = await startServer(await Repo.open(dir), { host: '127.0.0.1', port: 0 });
    try {
      for (const [name, type] of [
        ['app.js', /^text\/javascript/],
        ['app.css', /^text\/css/],
      ] as const) {
        const res = await fetch(`${served.url}/-/assets/${name}`);
        expect([name, res.status]).toEqual([name, 200]);
        expect(res.headers.get('content-type')).toMatch(type);
        expect((await res.arrayBuffer()).byteLength).toBe(fs.statSync(path.resolve(import.meta.dirname, '../../dist/bundle/web', name)).size);
      }
      const refs = (await (await fetch(`${served.url}/-/api/refs`)).json()) as { head: { branch: string } };
      expect(refs.head.branch).toBe('main');
    } finally {
      await served.close();
    }
  });
});
