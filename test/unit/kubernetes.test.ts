import fs from 'node:fs';
import path from 'node:path';
import { createHash } from 'node:crypto';
import { spawnSync } from 'node:child_process';
import { Readable } from 'node:stream';
import { gzipSync } from 'node:zlib';
import { pack } from 'tar-stream';
import { describe, expect, it } from 'vitest';
import { TdvError } from '../../src/errors.js';
import {
  decodeOutputs,
  DEFAULT_HELPER_IMAGE,
  extractOutputs,
  fetchScript,
  imageDigest,
  jobManifest,
  loadKubeconfig,
  type ManifestInput,
  parseSums,
  runnerModule,
  shQuote,
  unpinnedProblem,
} from '../../src/stages/runners/kubernetes.js';
import { useTmpDirs } from '../helpers/tmp.js';

const tmp = useTmpDirs('tdv-unit-k8s-');
const sha = (s: string | Buffer) => createHash('sha256').update(s).digest('hex');
const D = 'a'.repeat(64);

function manifest(over: Partial<ManifestInput> = {}) {
  return jobManifest({
    name: 'tdv-train-0011aabb',
    namespace: 'ml',
    repoId: 'repo1234',
    stage: 'train@lr=0.1',
    image: `ghcr.io/acme/train@sha256:${D}`,
    helperImage: `busybox@sha256:${'b'.repeat(64)}`,
    cmd: ['python train.py', "echo 'done'"],
    env: { SEED: '1' },
    wdir: 'src',
    fetch: { url: 'https://s3.example/b/exchange/objects/f?X-Amz-Signature=fetch', sha256: 'c'.repeat(64) },
    outputs: ['model', 'metrics.json'],
    upload: {
      tar: { url: 'https://s3.example/b', fields: { key: 'p/exchange/jobs/j/outputs.tgz.b64', 'x-amz-signature': 'sig1' } },
      sums: { url: 'https://s3.example/b', fields: { key: 'k2', 'x-amz-signature': 'sig2' } },
    },
    ...over,
  }) as {
    metadata: { labels: Record<string, string>; annotations: Record<string, string>; namespace: string };
    spec: {
      backoffLimit: number;
      ttlSecondsAfterFinished: number;
      activeDeadlineSeconds?: number;
      template: {
        spec: { restartPolicy: string; initContainers: Container[]; containers: Container[]; serviceAccountName?: string; nodeSelector?: unknown; imagePullSecrets?: unknown; volumes: unknown[] };
      };
    };
  };
}
interface Container {
  name: string;
  image: string;
  command: string[];
  env?: { name: string; value: string }[];
  resources?: { requests: Record<string, string>; limits: Record<string, string> };
}

describe('jobManifest', () => {
  it('is a Job that runs once: labels for the repository and stage, the fetch first, then the stage and the return helper', () => {
    const m = manifest({ activeDeadlineSeconds: 600, ttlSeconds: 60, serviceAccount: 'tdv', nodeSelector: { pool: 'gpu' }, imagePullSecrets: ['regcred'] });
    expect(m.metadata.labels).toEqual({ 'tdv.repo': 'repo1234', 'tdv.stage': 'train-lr-0.1' });
    expect(m.metadata.annotations['tdv.stage']).toBe('train@lr=0.1');
    expect(m.metadata.namespace).toBe('ml');
    expect(m.spec.backoffLimit).toBe(0);
    expect(m.spec.ttlSecondsAfterFinished).toBe(60);
    expect(m.spec.activeDeadlineSeconds).toBe(600);
    const pod = m.spec.template.spec;
    expect(pod.restartPolicy).toBe('Never');
    expect(pod.volumes).toEqual([{ name: 'tdv', emptyDir: {} }]);
    expect(pod.serviceAccountName).toBe('tdv');
    expect(pod.nodeSelector).toEqual({ pool: 'gpu' });
    expect(pod.imagePullSecrets).toEqual([{ name: 'regcred' }]);
    expect(pod.initContainers.map((c) => [c.name, c.image])).toEqual([['tdv-fetch', `busybox@sha256:${'b'.repeat(64)}`]]);
    expect(pod.containers.map((c) => [c.name, c.image])).toEqual([
      ['main', `ghcr.io/acme/train@sha256:${D}`],
      ['tdv-return', `busybox@sha256:${'b'.repeat(64)}`],
    ]);
    // The commands and wdir travel as arguments (data), never spliced into shell text.
    const main = pod.containers[0]!;
    expect(main.command.slice(0, 2)).toEqual(['sh', '-c']);
    expect(main.command.slice(3)).toEqual(['main', 'src', 'python train.py', "echo 'done'"]);
    expect(main.env).toEqual([{ name: 'SEED', value: '1' }]);
    expect(pod.containers[1]!.command.slice(3)).toEqual(['tdv-return', 'model', 'metrics.json']);
  });

  it('no URL or signature reaches the stage container: only the helpers carry them', () => {
    const m = manifest();
    const main = JSON.stringify(m.spec.template.spec.containers[0]);
    expect(main).not.toMatch(/X-Amz|x-amz|sig1|sig2|s3\.example/);
    expect(JSON.stringify(m.spec.template.spec.initContainers)).toContain('X-Amz-Signature=fetch');
    expect(JSON.stringify(m.spec.template.spec.containers[1])).toContain('sig1');
  });

  it('resources are requests and limits alike; none asked, none set', () => {
    const m = manifest({ resources: { cpus: 1.5, memory: 2 * 1024 ** 3, gpus: 1 } });
    const amounts = { cpu: '1.5', memory: String(2 * 1024 ** 3), 'nvidia.com/gpu': '1' };
    expect(m.spec.template.spec.containers[0]!.resources).toEqual({ requests: amounts, limits: amounts });
    expect(manifest().spec.template.spec.containers[0]!.resources).toBeUndefined();
  });
});

describe('fetchScript', () => {
  it('quotes every path and URL, so the init container sources it as data', () => {
    const files = [
      { path: "it's a $(touch pwned) `x`", sha256: sha('1'), size: 1 },
      { path: 'line\nbreak/b.sh', sha256: sha('2'), size: 1, exec: true },
    ];
    const urls = new Map(files.map((f) => [f.sha256, `https://h/o?a=1&b='2'`]));
    const script = fetchScript(files, urls);
    const dir = tmp();
    fs.writeFileSync(path.join(dir, 'list'), script);
    const out = spawnSync('sh', ['-c', `f() { printf '<%s>' "$@"; echo; }\n. ./list`], { cwd: dir, encoding: 'utf8' });
    expect(out.stdout).toBe(`<https://h/o?a=1&b='2'><${sha('1')}><-><it's a $(touch pwned) \`x\`>\n<https://h/o?a=1&b='2'><${sha('2')}><x><line\nbreak/b.sh>\n`);
    expect(fs.existsSync(path.join(dir, 'pwned'))).toBe(false);
    expect(shQuote("a'b")).toBe(`'a'\\''b'`);
  });
});

describe('images', () => {
  it('only NAME@sha256:DIGEST is pinned; tags and bare image IDs are not', () => {
    expect(unpinnedProblem(`python@sha256:${D}`)).toBeUndefined();
    expect(unpinnedProblem(DEFAULT_HELPER_IMAGE)).toBeUndefined();
    expect(unpinnedProblem(`ghcr.io/a/b:1.0@sha256:${D}`)).toBeUndefined();
    expect(unpinnedProblem('python:3.12')).toBe('python:3.12 is not pinned by digest');
    expect(unpinnedProblem(`sha256:${D}`)).toMatch(/is an image ID, which names an image on one machine only/);
    expect(imageDigest(`docker-pullable://python@sha256:${D}`)).toBe(`sha256:${D}`);
    expect(imageDigest(`docker.io/library/python@sha256:${D}`)).toBe(`sha256:${D}`);
  });
});

type Entry = { name: string; type?: 'file' | 'symlink' | 'link' | 'directory' | 'character-device' | 'fifo'; body?: string; linkname?: string; mode?: number };

async function tarOf(entries: Entry[]): Promise<Buffer> {
  const p = pack();
  for (const e of entries) {
    if (e.type === undefined || e.type === 'file') p.entry({ name: e.name, mode: e.mode ?? 0o644 }, e.body ?? '');
    else p.entry({ name: e.name, type: e.type, linkname: e.linkname, mode: e.mode ?? 0o755 });
  }
  p.finalize();
  const chunks: Buffer[] = [];
  for await (const c of p) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

/** The slot's bytes as tdv-return sends them: gzip, then base64 wrapped at 76 columns (busybox base64). */
function asSlot(tar: Buffer): Readable {
  const b64 = gzipSync(tar).toString('base64').replace(/.{76}/g, '$&\n');
  return Readable.from([Buffer.from(b64.slice(0, 33)), Buffer.from(b64.slice(33))]);
}

describe('extractOutputs', () => {
  const sums = (files: Record<string, string>) => new Map(Object.entries(files).map(([p, b]) => [p, sha(b)]));

  it('writes declared files and directories under staging, hashing them, keeping the exec bit', async () => {
    const staging = tmp();
    const tar = await tarOf([
      { name: './model/', type: 'directory' },
      { name: './model/w.bin', body: 'weights' },
      { name: './model/run.sh', body: 'echo', mode: 0o755 },
      { name: './metrics.json', body: '{}' },
    ]);
    const files = await extractOutputs(decodeOutputs(asSlot(tar)), staging, ['model', 'metrics.json'], sums({ 'model/w.bin': 'weights', 'model/run.sh': 'echo', 'metrics.json': '{}' }), 'stage t');
    expect(files).toEqual([
      { path: 'model/w.bin', sha256: sha('weights'), size: 7 },
      { path: 'model/run.sh', sha256: sha('echo'), size: 4, exec: true },
      { path: 'metrics.json', sha256: sha('{}'), size: 2 },
    ]);
    expect(fs.readFileSync(path.join(staging, 'model/w.bin'), 'utf8')).toBe('weights');
    expect(fs.statSync(path.join(staging, 'model/run.sh')).mode & 0o100).toBe(0o100);
  });

  const refusals: [string, Entry[], RegExp][] = [
    ['a path with ..', [{ name: './model/../../escape', body: 'x' }], /returned "\.\/model\/\.\.\/\.\.\/escape", which has a "\.\." component/],
    ['an absolute path', [{ name: '/etc/cron.d/x', body: 'x' }], /which is absolute/],
    ['an undeclared path', [{ name: './other.txt', body: 'x' }], /returned other\.txt, which is not a declared output \(model\)/],
    ['a path beside a declared one', [{ name: './model2/x', body: 'x' }], /returned model2\/x, which is not a declared output/],
    ['a symlink', [{ name: './model/l', type: 'symlink', linkname: '/etc/passwd' }], /output model\/l came back as a symlink to \/etc\/passwd/],
    ['a hard link', [{ name: './model/h', type: 'link', linkname: 'model/a' }], /came back as a link/],
    ['a device', [{ name: './model/d', type: 'character-device' }], /came back as a character-device/],
    ['a FIFO', [{ name: './model/f', type: 'fifo' }], /came back as a fifo/],
    ['a .git component', [{ name: './model/.git/config', body: 'x' }], /has a "\.git" component/],
  ];
  for (const [what, entries, message] of refusals) {
    it(`refuses ${what} (JOB_OUTPUT_REFUSED), writing nothing outside staging`, async () => {
      const root = tmp();
      const staging = path.join(root, 'staging');
      fs.mkdirSync(staging);
      const err = await extractOutputs(decodeOutputs(asSlot(await tarOf(entries))), staging, ['model'], new Map(), 'stage t').catch((e: unknown) => e);
      expect(err).toBeInstanceOf(TdvError);
      expect((err as TdvError).code).toBe('JOB_OUTPUT_REFUSED');
      expect((err as TdvError).message).toMatch(message);
      expect((err as TdvError).message).not.toContain('\n');
      expect(fs.readdirSync(root)).toEqual(['staging']);
    });
  }

  it('refuses a file whose bytes are not what the list says, and a listed file that did not come', async () => {
    const staging = tmp();
    const tar = await tarOf([{ name: './model/w', body: 'changed on the way' }]);
    await expect(extractOutputs(decodeOutputs(asSlot(tar)), staging, ['model'], sums({ 'model/w': 'original' }), 'stage t')).rejects.toThrow(
      /output model\/w arrived with sha256 [0-9a-f]{64}, but the Job listed [0-9a-f]{64}/,
    );
    const tar2 = await tarOf([{ name: './model/w', body: 'a' }]);
    await expect(extractOutputs(decodeOutputs(asSlot(tar2)), tmp(), ['model'], sums({ 'model/w': 'a', 'model/gone': 'b' }), 'stage t')).rejects.toThrow(/listed model\/gone but did not return it/);
  });

  it('parseSums reads busybox sha256sum lines', () => {
    expect(parseSums(`${sha('a')}  ./model/a b\n${sha('b')}  ./m\n\n`)).toEqual(
      new Map([
        ['model/a b', sha('a')],
        ['m', sha('b')],
      ]),
    );
  });
});

describe('kubeconfig', () => {
  const cfg = (doc: string, dir = tmp()) => {
    fs.writeFileSync(path.join(dir, 'config'), doc);
    return path.join(dir, 'config');
  };
  const base = (user: string, ns = '') => `current-context: c
contexts:
- name: c
  context: {cluster: k, user: u${ns}}
clusters:
- name: k
  cluster: {server: "https://10.0.0.1:6443/", insecure-skip-tls-verify: true}
users:
- name: u
  user: ${user}
`;

  it('reads the current context: server, namespace (default "default"), a token from a file beside the kubeconfig', async () => {
    const dir = tmp();
    fs.writeFileSync(path.join(dir, 'tok'), 'sekrit\n');
    const a = await loadKubeconfig('k8s', { kubeconfig: cfg(base('{tokenFile: tok}'), dir) }, {});
    expect(a).toMatchObject({ server: 'https://10.0.0.1:6443', namespace: 'default', token: 'sekrit', insecure: true });
    const b = await loadKubeconfig('k8s', { kubeconfig: cfg(base('{token: t}', ', namespace: ml')) }, {});
    expect(b.namespace).toBe('ml');
    expect((await loadKubeconfig('k8s', { kubeconfig: cfg(base('{token: t}', ', namespace: ml')), namespace: 'over' }, {})).namespace).toBe('over');
  });

  it('KUBECONFIG is a list, merged: the first file naming an entry wins', async () => {
    const users = cfg('users:\n- name: u\n  user: {token: from-first}\n');
    const rest = cfg(base('{token: from-second}'));
    const a = await loadKubeconfig('k8s', {}, { KUBECONFIG: `/nonexistent/k:${users}:${rest}` });
    expect(a.token).toBe('from-first');
  });

  it('runs an exec credential plugin and takes its token', async () => {
    const dir = tmp();
    const plugin = path.join(dir, 'plugin.sh');
    fs.writeFileSync(plugin, `#!/bin/sh\necho '{"apiVersion":"client.authentication.k8s.io/v1","kind":"ExecCredential","status":{"token":"from-plugin-'$1'"}}'\n`, { mode: 0o755 });
    const a = await loadKubeconfig('k8s', { kubeconfig: cfg(base(`{exec: {apiVersion: client.authentication.k8s.io/v1, command: ${plugin}, args: [x]}}`)) }, { PATH: process.env.PATH });
    expect(a.token).toBe('from-plugin-x');
    const failing = path.join(dir, 'fail.sh');
    fs.writeFileSync(failing, '#!/bin/sh\necho "not logged in" >&2\nexit 4\n', { mode: 0o755 });
    await expect(loadKubeconfig('k8s', { kubeconfig: cfg(base(`{exec: {command: ${failing}}}`)) }, {})).rejects.toThrow(/credential plugin .*fail\.sh failed \(exit 4: not logged in\)/);
  });

  it('refuses auth-provider logins in one line, and says where to point it when there is no kubeconfig at all', async () => {
    await expect(loadKubeconfig('k8s', { kubeconfig: cfg(base('{auth-provider: {name: gcp}}')) }, {})).rejects.toThrow(
      /logs in by auth-provider, which tdv does not support; use a token, a client certificate or an exec credential plugin$/,
    );
    await expect(loadKubeconfig('k8s', {}, { HOME: tmp() })).rejects.toThrow(/^runner k8s: no kubeconfig .* and not inside a cluster; set KUBECONFIG or the runner's kubeconfig key$/);
  });

  it('an API server that is not there is one line naming it (RUNNER_UNAVAILABLE)', async () => {
    const kubeconfig = cfg(base('{token: t}').replace('https://10.0.0.1:6443/', 'http://127.0.0.1:9'));
    const r = runnerModule.create({ name: 'k8s', type: 'kubernetes', kubeconfig }, { root: '/', repoId: 'r', env: {} });
    const err = await r.sweep!('r').catch((e: unknown) => e);
    expect((err as TdvError).code).toBe('RUNNER_UNAVAILABLE');
    expect((err as TdvError).message).toMatch(/^runner k8s: cannot reach the Kubernetes API at http:\/\/127\.0\.0\.1:9 \(context c of .*\): ECONNREFUSED$/);
  });

  it('without an S3 exchange the stage is refused in one line, before the cluster is asked', async () => {
    const r = runnerModule.create({ name: 'k8s', type: 'kubernetes', kubeconfig: '/nonexistent/kubeconfig' }, { root: '/', repoId: 'r', env: {} });
    const job = { stage: 's', image: { ref: `python@sha256:${D}` }, cmd: ['true'], env: {}, wdir: '.', inputs: [], outputs: [] };
    const io = { staging: tmp(), openInput: () => Readable.from([]), inputPath: () => '', onOutput: () => {} };
    const err = await r.run(job, io).catch((e: unknown) => e);
    expect((err as TdvError).code).toBe('RUNNER_UNAVAILABLE');
    expect((err as TdvError).message).toBe(
      "runner k8s: stage s: a Kubernetes Job fetches its inputs and returns its outputs through an S3 remote, and the default remote is not one (or there is none); set the runner's remote key to an s3:// remote",
    );
  });

  it('interrupted while the inputs upload: resolves with no exit code, and no Job is created', async () => {
    const kubeconfig = cfg(base('{token: t}').replace('https://10.0.0.1:6443/', 'http://127.0.0.1:9'));
    const r = runnerModule.create({ name: 'k8s', type: 'kubernetes', kubeconfig }, { root: '/', repoId: 'r', env: {} });
    const ac = new AbortController();
    const exchange = {
      inputUrls: (_f: unknown, _o: unknown, signal?: AbortSignal) =>
        new Promise<Map<string, string>>((_res, reject) => {
          signal!.addEventListener('abort', () => reject(new Error('upload aborted')));
          ac.abort();
        }),
      outputSlot: () => Promise.reject(new Error('not reached')),
    };
    const job = { stage: 's', image: { ref: `python@sha256:${D}` }, cmd: ['true'], env: {}, wdir: '.', inputs: [{ path: 'a', sha256: sha('a'), size: 1 }], outputs: [] };
    const io = { staging: tmp(), openInput: () => Readable.from([]), inputPath: () => '', onOutput: () => {}, signal: ac.signal, exchange };
    // 127.0.0.1:9 refuses connections: a request would fail the run instead.
    expect(await r.run(job, io)).toMatchObject({ exitCode: null, signal: 'SIGTERM', outputs: [] });
  });

  it('config keys are checked when the runner is made', () => {
    expect(() => runnerModule.create({ name: 'k8s', type: 'kubernetes', nodeselector: {} }, { root: '/', repoId: 'r', env: {} })).toThrow(/^runner k8s: nodeselector: /);
  });
});
