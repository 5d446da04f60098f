import { type ChildProcess, spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execa } from 'execa';
import type { Browser, Page } from 'playwright-core';
import { describeNeeding } from '../helpers/needs.js';
import { git, TDV_BIN, tmpDir } from '../helpers/repo.js';

// The web view of `tdv serve` against the real bin/tdv.js (npm run build first) in a real
// repository with history (test/helpers/web-fixture.sh): its JSON API with plain fetch,
// and the page in Debian's Chromium driven by playwright-core. Screenshots go to
// test-artifacts/screenshots/.

const CHROMIUM = '/usr/bin/chromium';
const SHOTS = path.resolve(import.meta.dirname, '../../test-artifacts/screenshots');
const HOSTILE_SUBJECT = 'More raw rows <img src=x onerror=alert(1)>';

let repo: string;
let server: ChildProcess;
let base: string;
const commits: Record<string, string> = {};

/** Starts `tdv serve --port 0` and reads its URL from the line `Serving <root> at <url>`. */
async function serve(cwd: string): Promise<{ proc: ChildProcess; url: string }> {
  const proc = spawn(process.execPath, [TDV_BIN, 'serve', '--port', '0'], { cwd, env: { ...process.env, NO_COLOR: '1' }, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  proc.stderr!.on('data', (d) => (err += d));
  const url = await new Promise<string>((resolve, reject) => {
    proc.stdout!.on('data', (d) => {
      out += d;
      const m = / at (http:\/\/\S+)/.exec(out);
      if (m) resolve(m[1]!);
    });
    proc.once('exit', (code) => reject(new Error(`tdv serve exited with ${code}: ${err}`)));
  });
  return { proc, url };
}

async function api(p: string, init?: RequestInit): Promise<{ status: number; body: any }> {
  const res = await fetch(base + p, init);
  const text = await res.text();
  expect(res.headers.get('content-type')).toMatch(/^application\/json/);
  return { status: res.status, body: JSON.parse(text) };
}

beforeAll(async () => {
  if (!fs.existsSync(path.resolve(import.meta.dirname, '../../dist/bundle/web/app.js'))) throw new Error('dist/bundle/web/app.js is missing: run `npm run build` first');
  repo = fs.realpathSync(tmpDir('tdv-web-'));
  await execa('sh', [path.resolve(import.meta.dirname, '../helpers/web-fixture.sh'), repo, TDV_BIN], { env: { NO_COLOR: '1' } });
  for (const line of (await git(repo, 'log', '--format=%H %s', 'main')).split('\n')) {
    const [oid, ...subject] = line.split(' ');
    commits[subject.join(' ')] = oid!;
  }
  // A remote holding every commit's data, for objects missing from the cache.
  await execa('node', [TDV_BIN, 'remote', 'add', '-d', 'store', tmpDir('tdv-web-store-')], { cwd: repo });
  await execa('node', [TDV_BIN, 'push', '--all-commits'], { cwd: repo });
  ({ proc: server, url: base } = await serve(repo));
}, 120_000);

afterAll(() => {
  server?.kill('SIGTERM');
});

describe('web view JSON API', () => {
  it('lists branches, tags and HEAD', async () => {
    const { status, body } = await api('/-/api/refs');
    expect(status).toBe(200);
    expect(body.head).toEqual({ branch: 'main', commit: commits['Scale features by 5'] });
    expect(body.branches.map((b: any) => b.name).sort()).toEqual(['experiment', 'main', 'next']);
    expect(body.tags.map((t: any) => [t.name, t.commit])).toEqual([
      ['v1', commits['Pipeline: features, train, evaluate']],
      ['v2', commits['Scale features by 5']],
    ]);
  });

  it('pages through the data versions of a branch, repository strings as data', async () => {
    const first = await api('/-/api/log?rev=main&limit=2');
    expect(first.status).toBe(200);
    // "Raise the learning rate" changed params and metrics only, no tracked data: not a data version.
    expect(first.body.commits.map((c: any) => c.subject)).toEqual(['Scale features by 5', HOSTILE_SUBJECT]);
    expect(first.body.next).toBe(commits['Pipeline: features, train, evaluate']);
    const rest = await api(`/-/api/log?rev=main&limit=2&from=${first.body.next}`);
    expect(rest.body.commits.map((c: any) => c.subject)).toEqual(['Pipeline: features, train, evaluate', 'Add raw data']);
    expect(rest.body.next).toBeNull();
    const raw = first.body.commits[1].changes.find((c: any) => c.path === 'data/raw.csv');
    expect(raw).toMatchObject({ change: 'modified', previous: { size: 24 }, version: { size: 34 } });
    // Another branch: its own history.
    const exp = await api('/-/api/log?rev=experiment');
    expect(exp.body.commit).toBe(commits['Raise the learning rate']);
    expect(exp.body.commits.map((c: any) => c.subject)).toEqual([HOSTILE_SUBJECT, 'Pipeline: features, train, evaluate', 'Add raw data']);
  });

  it("lists a revision's files, data and Git", async () => {
    const { body } = await api('/-/api/files?rev=v1&path=data');
    expect(body.commit).toBe(commits['Pipeline: features, train, evaluate']);
    expect(body.entries).toEqual([
      expect.objectContaining({ path: 'data/.gitignore', kind: 'file', source: 'git', size: expect.any(Number) }),
      expect.objectContaining({ path: 'data/features.csv', kind: 'file', source: 'data' }),
      expect.objectContaining({ path: 'data/images', kind: 'dir', source: 'data' }),
      expect.objectContaining({ path: 'data/images.tdv', kind: 'file', source: 'git' }),
      expect.objectContaining({ path: 'data/raw.csv', kind: 'file', source: 'data', size: 24 }),
      expect.objectContaining({ path: 'data/raw.csv.tdv', kind: 'file', source: 'git' }),
    ]);
  });

  it('diffs two revisions file by file, data and Git', async () => {
    const { status, body } = await api('/-/api/diff?a=v1&b=main');
    expect(status).toBe(200);
    const by = Object.fromEntries(body.changes.map((c: any) => [c.path, c]));
    expect(by['data/raw.csv']).toMatchObject({ source: 'data', status: 'modified', old: { size: 24 }, new: { size: 34 } });
    expect(by['params.yaml']).toMatchObject({ source: 'git', status: 'modified' });
    expect(by['src/features.sh']).toBeUndefined();
    // A tracked directory's files one by one.
    expect(by['data/images/a.txt']).toMatchObject({ source: 'data', status: 'modified', old: { size: 4 }, new: { size: 6 } });
    expect(by['data/images/c.txt']).toMatchObject({ source: 'data', status: 'added', old: null, new: { size: 2 } });
    expect(by['data/images/b.txt']).toBeUndefined();
    expect(body.summary).toEqual({ added: 1, modified: body.changes.length - 1, deleted: 0 });
    const fromStart = await api(`/-/api/diff?a=${commits['Add raw data']}&b=v1`);
    const added = fromStart.body.changes.filter((c: any) => c.status === 'added').map((c: any) => c.path);
    expect(added).toEqual(expect.arrayContaining(['data/features.csv', 'model.json', 'src/train.sh', 'tdv.yaml', 'tdv.lock']));
  });

  it("draws a revision's pipeline from its own tdv.yaml and tdv.lock", async () => {
    const { body } = await api('/-/api/dag?rev=main');
    expect(body.stages.map((s: any) => [s.name, s.depth, s.upstream])).toEqual([
      ['features', 0, []],
      ['train', 1, ['features']],
      ['evaluate', 2, ['train']],
    ]);
    expect(body.edges).toEqual([
      { from: 'features', to: 'train' },
      { from: 'train', to: 'evaluate' },
    ]);
    const evaluate = body.stages[2];
    expect(evaluate.cmd).toEqual(['sh src/evaluate.sh']);
    expect(evaluate.params).toEqual([{ file: 'params.yaml', key: 'train.lr', value: 0.3 }]);
    expect(evaluate.deps).toEqual([
      expect.objectContaining({ path: 'model.json', kind: 'data', producer: 'train', sha256: expect.stringMatching(/^[0-9a-f]{64}$/) }),
      expect.objectContaining({ path: 'src/evaluate.sh', kind: 'git' }),
    ]);
    expect(evaluate.metrics).toEqual([expect.objectContaining({ path: 'metrics.json', values: { accuracy: expect.any(Number), loss: expect.any(Number) } })]);
    expect(body.stages[0].deps.map((d: any) => [d.path, d.kind])).toEqual([
      ['data/raw.csv', 'data'],
      ['src/features.sh', 'git'],
    ]);
    // At v1 the params were those of v1 (read from Git at that commit, not the workspace).
    const v1 = await api('/-/api/dag?rev=v1');
    expect(v1.body.stages[2].params).toEqual([{ file: 'params.yaml', key: 'train.lr', value: 0.1 }]);
    // A date revision: the last commit on or before that day.
    const dated = await api('/-/api/dag?rev=@2026-07-15');
    expect(dated.body.commit).toBe(commits['Pipeline: features, train, evaluate']);
    // A stage tdv.yaml declares but tdv.lock does not record (never run): drawn from tdv.yaml.
    const next = await api('/-/api/dag?rev=next');
    expect(next.body.stages.at(-1)).toMatchObject({
      name: 'report',
      locked: false,
      depth: 3,
      upstream: ['evaluate', 'train'],
      image: { ref: 'busybox:1.36', digest: null },
      deps: [
        { path: 'metrics.json', sha256: null, kind: 'data', producer: 'evaluate' },
        { path: 'model.json', sha256: null, kind: 'data', producer: 'train' },
      ],
      outs: [{ path: 'report.html', kind: 'missing' }],
    });
    // Before the pipeline existed: no stages.
    const none = await api(`/-/api/dag?rev=${commits['Add raw data']}`);
    expect(none.body.stages).toEqual([]);
  });

  it('gives the metrics of the commits along a branch, oldest first', async () => {
    const { body } = await api('/-/api/metrics?rev=main');
    expect(body.commits.map((c: any) => c.subject)).toEqual(['Pipeline: features, train, evaluate', HOSTILE_SUBJECT, 'Raise the learning rate', 'Scale features by 5']);
    for (const c of body.commits) expect(c.metrics['metrics.json']).toEqual({ accuracy: expect.any(Number), loss: expect.any(Number) });
  });

  it('diffs params between two revisions', async () => {
    const { body } = await api('/-/api/params?a=v1&b=main');
    expect(body.changes).toEqual([
      { file: 'params.yaml', key: 'features.scale', old: 2, new: 5, change: 3 },
      { file: 'params.yaml', key: 'train.lr', old: 0.1, new: 0.3, change: 0.2 },
    ]);
    const same = await api('/-/api/params?a=experiment&b=experiment');
    expect(same.body.changes.every((c: any) => c.unchanged)).toBe(true);
  });

  it("fetches a directory's manifest missing from the cache from the remote to diff it", async () => {
    const manifests = (await execa('find', ['.tdv/cache', '-name', '*.dir', '-type', 'f'], { cwd: repo })).stdout.split('\n').filter(Boolean);
    expect(manifests.length).toBeGreaterThanOrEqual(2);
    for (const m of manifests) fs.rmSync(path.join(repo, m));
    const { status, body } = await api('/-/api/diff?a=v1&b=main');
    expect([status, body.error]).toEqual([200, undefined]);
    expect(body.changes.map((c: any) => c.path)).toEqual(expect.arrayContaining(['data/images/a.txt', 'data/images/c.txt']));
  });

  it('gives the lineage of an output at any revision, as tdv lineage --json', async () => {
    const { status, body } = await api('/-/api/lineage?rev=v1&path=metrics.json');
    expect(status).toBe(200);
    expect(body).toMatchObject({ rev: 'v1', commit: commits['Pipeline: features, train, evaluate'], target: 'metrics.json', producers: ['evaluate'], status: 'fresh' });
    expect(body.stages.map((s: any) => [s.name, s.level])).toEqual([
      ['evaluate', 1],
      ['train', 2],
      ['features', 3],
    ]);
    expect(body.stages[0].params).toEqual({ 'params.yaml': { 'train.lr': 0.1 } });
    expect(body.sources.find((s: any) => s.path === 'data/raw.csv')).toMatchObject({ kind: 'data', pointer: 'data/raw.csv.tdv', commit: { id: commits['Add raw data'] } });
    const down = await api('/-/api/lineage?rev=main&path=data/raw.csv&reverse=1');
    expect(down.body.stages.map((s: any) => s.name)).toEqual(['features', 'train', 'evaluate']);
    expect((await api('/-/api/lineage?rev=main&path=nope.csv')).status).toBe(404);
    expect((await api('/-/api/lineage?rev=main&path=../etc/passwd')).status).toBe(404);
    expect((await api('/-/api/lineage?rev=main')).status).toBe(400);
    expect((await api('/-/api/lineage?rev=main&path=model.json&depth=0')).status).toBe(400);
  });

  it('answers hostile revisions, paths and requests with JSON errors, and keeps serving', async () => {
    const cases: [string, number][] = [
      ['/-/api/dag?rev=../../etc/passwd', 404],
      ['/-/api/dag?rev=--output=/tmp/x', 404],
      ['/-/api/dag?rev=HEAD:tdv.yaml', 404],
      ['/-/api/dag?rev=main%00', 400],
      [`/-/api/dag?rev=${'a'.repeat(5000)}`, 400],
      ['/-/api/dag?rev=@2026-13-45', 404],
      ['/-/api/dag?rev=@1990-01-01', 404],
      ['/-/api/log?rev=nope', 404],
      ['/-/api/log?rev=main&limit=abc', 400],
      ['/-/api/files?rev=main&path=../../etc', 404],
      ['/-/api/files?rev=main&path=.git', 404],
      ['/-/api/files?rev=main&path=data/raw.csv', 404],
      ['/-/api/diff?a=v1', 400],
      ['/-/api/params?a=&b=main', 400],
      ['/-/api/nope', 404],
      ['/-/api/__proto__', 404],
      ['/-/api/constructor', 404],
    ];
    for (const [p, want] of cases) {
      const { status, body } = await api(p);
      expect([p, status]).toEqual([p, want]);
      expect(body.error).toEqual({ code: expect.any(String), message: expect.any(String) });
    }
    const post = await api('/-/api/refs', { method: 'POST' });
    expect(post.status).toBe(405);
    expect((await fetch(`${base}/-/assets/nope.js`)).status).toBe(404);
    expect((await api('/-/api/refs')).status).toBe(200);
  });

  it('serves the page with a strict CSP and its own assets', async () => {
    const page = await fetch(`${base}/`);
    expect(page.status).toBe(200);
    expect(page.headers.get('content-security-policy')).toMatch(/script-src 'self'/);
    const html = await page.text();
    expect(html).toContain('/-/assets/app.js');
    expect(html).not.toMatch(/https?:\/\//);
    const js = await fetch(`${base}/-/assets/app.js`);
    expect(js.headers.get('content-type')).toMatch(/^text\/javascript/);
    expect((await js.text()).length).toBeGreaterThan(10_000);
    const css = await fetch(`${base}/-/assets/app.css`);
    expect(await css.text()).toContain('.u-legend'); // uPlot's stylesheet is in it
  });
});

const chromiumMissing = fs.existsSync(CHROMIUM) ? undefined : `${CHROMIUM} is not installed (apt-get install chromium)`;

describeNeeding('Chromium', chromiumMissing, 'web view in a browser', () => {
  let browser: Browser;
  let page: Page;
  const dialogs: string[] = [];
  const errors: string[] = [];

  beforeAll(async () => {
    const { chromium } = await import('playwright-core');
    browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking'] });
    page = await browser.newPage({ viewport: { width: 1360, height: 900 } });
    page.on('dialog', (d) => {
      dialogs.push(d.message());
      void d.dismiss();
    });
    page.on('pageerror', (e) => errors.push(e.message));
    fs.mkdirSync(SHOTS, { recursive: true });
  }, 60_000);

  afterAll(async () => {
    await browser?.close();
  });

  const ready = () => page.waitForSelector('main[aria-busy=false]');
  const shot = (name: string) => page.screenshot({ path: path.join(SHOTS, `${name}.png`), fullPage: true });

  it('navigates from the branches to the data versions; a commit message is text, not HTML', async () => {
    await page.goto(`${base}/`);
    await ready();
    await shot('branches');
    await page.locator('a.ref', { hasText: 'main' }).click();
    await page.waitForSelector('main[data-view=log]');
    await ready();
    const rows = page.locator('table.log tbody tr');
    expect(await rows.count()).toBe(4);
    expect(await page.locator('button.more').isVisible()).toBe(false); // no older versions
    const dirChange = rows.first().locator('ul.changes li', { hasText: 'data/images/' });
    expect((await dirChange.innerText()).replace(/\s+/g, ' ')).toBe('modified data/images/ 12 B → 16 B (files: 1 added, 1 modified)');
    await expect.poll(() => page.locator('table.log .subject', { hasText: HOSTILE_SUBJECT }).count()).toBe(1);
    expect(await page.locator('main img').count()).toBe(0);
    expect(dialogs).toEqual([]);
    await shot('history');
    // A version's files, down into a tracked directory; each file links to /<commit>/<path>.
    await rows.first().getByRole('link', { name: 'Files' }).click();
    await page.waitForSelector('main[data-view=files]');
    await page.getByRole('link', { name: 'data/', exact: true }).click();
    await page.getByRole('link', { name: 'images/', exact: true }).click();
    await expect.poll(() => page.locator('table.files tbody a.file').allInnerTexts()).toEqual(['a.txt', 'b.txt', 'c.txt']);
    const a = page.locator('table.files tbody tr', { hasText: 'a.txt' });
    expect(await a.locator('td').allInnerTexts()).toEqual(['a.txt', 'data', '6 B', expect.stringMatching(/^[0-9a-f]{8}$/)]);
    expect(await a.locator('a.file').getAttribute('href')).toBe(`/${commits['Scale features by 5']}/data/images/a.txt`);
    expect((await page.locator('.crumbs').innerText()).replace(/\s+/g, '')).toBe('/›data›images');
    await shot('files');
  });

  it('opens the diff of two versions picked in the history', async () => {
    await page.goBack();
    await page.goBack();
    await page.goBack();
    await page.waitForSelector('main[data-view=log][aria-busy=false]');
    await page.locator(`input[value="${commits['Pipeline: features, train, evaluate']}"]`).check();
    await page.locator(`input[value="${commits['Scale features by 5']}"]`).check();
    await page.getByRole('button', { name: 'Compare 2 selected' }).click();
    await page.waitForSelector('main[data-view=diff]');
    await ready();
    const row = page.locator('table.diff tbody tr', { has: page.locator('a.path', { hasText: /^data\/raw\.csv$/ }) });
    await expect.poll(() => row.locator('td').allInnerTexts()).toEqual(['modified', 'data/raw.csv', 'data', '24 B', '34 B', '+10 B']);
    expect(await row.locator('a.path').getAttribute('href')).toBe(`/${commits['Scale features by 5']}/data/raw.csv`);
    await shot('diff');
    // The data only: Git files (params.yaml, pointers, tdv.lock) leave the table.
    await page.locator('a[data-toggle=only]').click();
    await expect.poll(() => page.locator('table.diff tbody .badge.git').count()).toBe(0);
    expect(await page.locator('table.diff tbody tr').count()).toBe(5);
  });

  it('clicks through the DAG from the metrics stage to its input data and code', async () => {
    // As the metrics view links to it: the stage that wrote metrics.json is selected.
    await page.goto(`${base}/#/dag?rev=main&metric=metrics.json`);
    await ready();
    const head = commits['Scale features by 5'];
    expect(await page.locator('svg.dag g.selected').getAttribute('data-stage')).toBe('evaluate');
    // The stage that writes metrics is selected first; its metric values are shown.
    await page.locator('svg.dag g[data-stage=evaluate]').click();
    const panel = page.locator('aside.panel');
    await expect.poll(() => panel.locator('h2').innerText()).toBe('evaluate');
    expect(await panel.locator('.metric-file').innerText()).toMatch(/accuracy\s+0\.\d+/);
    expect(await page.locator('svg.dag path.edge').count()).toBe(2);
    // Up the chain: evaluate <- train <- features.
    await panel.locator('button[data-producer=train]').click();
    await expect.poll(() => panel.locator('h2').innerText()).toBe('train');
    await panel.locator('button[data-producer=features]').click();
    await expect.poll(() => panel.locator('h2').innerText()).toBe('features');
    expect(await page.locator('svg.dag g.selected').getAttribute('data-stage')).toBe('features');
    const dep = (p: string) => panel.locator('table.paths tr', { has: page.locator(`a[data-path="${p}"]`) });
    expect(await dep('data/raw.csv').locator('.badge').innerText()).toBe('data');
    expect(await dep('data/raw.csv').locator('a').getAttribute('href')).toBe(`/${head}/data/raw.csv`);
    expect(await dep('src/features.sh').locator('.badge').innerText()).toBe('code (git)');
    expect(await dep('src/features.sh').locator('a').getAttribute('href')).toBe(`/${head}/src/features.sh`);
    expect(await panel.innerText()).toMatch(/features\.scale\s+5/);
    // And down again: its output is read by train.
    expect(await panel.locator('button[data-consumer=train]').count()).toBe(1);
    await shot('pipeline');
  });

  it("links a stage's metrics to their lineage", async () => {
    await page.goto(`${base}/#/dag?rev=main&metric=metrics.json`);
    await ready();
    await page.locator('aside.panel a.lineage[data-lineage="metrics.json"]').click();
    await page.waitForSelector('main[data-view=lineage][aria-busy=false]');
    expect(page.url()).toContain(`#/lineage?rev=${commits['Scale features by 5']}&path=metrics.json`);
    expect(await page.locator('section[data-stage]').evaluateAll((els) => els.map((e) => e.getAttribute('data-stage')))).toEqual(['evaluate', 'train', 'features']);
    expect(await page.locator('main').innerText()).toMatch(/Lineage of\s+metrics\.json/);
    await shot('lineage');
  });

  it('draws the metrics over commits as a chart', async () => {
    await page.goto(`${base}/#/metrics?rev=main`);
    await ready();
    const canvas = page.locator('#chart canvas');
    await canvas.waitFor();
    const box = await canvas.boundingBox();
    expect(box!.width).toBeGreaterThan(300);
    expect(box!.height).toBeGreaterThan(100);
    // Series drawn: pixels in each series' colour (accuracy #0969da, loss #cf222e).
    const count = () =>
      page.evaluate(() => {
        // Runs in the page (the test's tsconfig has no DOM types).
        const c = (globalThis as any).document.querySelector('#chart canvas');
        const d: Uint8ClampedArray = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        let blue = 0;
        let red = 0;
        for (let i = 0; i < d.length; i += 4) {
          if (d[i]! < 40 && d[i + 1]! > 80 && d[i + 1]! < 130 && d[i + 2]! > 190) blue++;
          if (d[i]! > 180 && d[i + 1]! < 60 && d[i + 2]! < 70) red++;
        }
        return { blue, red };
      });
    const both = await count();
    expect(both.blue).toBeGreaterThan(50);
    expect(both.red).toBeGreaterThan(50);
    expect(await page.locator('table.metrics tbody tr').count()).toBe(4);
    await shot('metrics');
    // From a metric to the stage that wrote it.
    expect(await page.locator('table.metrics thead a', { hasText: 'accuracy' }).getAttribute('href')).toBe(`#/dag?rev=${commits['Scale features by 5']}&metric=metrics.json`);
    // Unselect loss: its line goes.
    await page.locator('label.toggle', { hasText: 'metrics.json:loss' }).locator('input').uncheck();
    await expect.poll(async () => (await count()).red).toBeLessThan(5);
  });

  it('shows the params diff of two revisions', async () => {
    await page.goto(`${base}/#/params?a=v1&b=main`);
    await ready();
    const rows = page.locator('table.params tbody tr');
    await expect.poll(() => rows.count()).toBe(2);
    expect(await rows.nth(0).locator('td').allInnerTexts()).toEqual(['params.yaml', 'features.scale', '2', '5', '+3']);
    expect(await rows.nth(1).locator('td').allInnerTexts()).toEqual(['params.yaml', 'train.lr', '0.1', '0.3', '+0.2']);
    await shot('params');
    expect(errors).toEqual([]);
    expect(dialogs).toEqual([]);
  });
});
