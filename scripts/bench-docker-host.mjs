// Bench of the `docker` runner type's input transfer (issue 15, row 3): the
// time to move 20,000 files of 4 KiB into a container on a Docker host, as
// one tar stream (the runner), vs `docker cp DIR CONTAINER:/tmp/` of the same
// directory. Target <= 1.3.
//
// Usage: node scripts/bench-docker-host.mjs [HOST_URL] [NFILES]
//   HOST_URL default unix:///var/run/docker.sock (this machine's daemon as a
//   "remote" host); an ssh:// URL measures over SSH. Needs the test image
//   (sh test/helpers/docker-image.sh).
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import * as esbuild from 'esbuild';

const HOST = process.argv[2] ?? 'unix:///var/run/docker.sock';
const NFILES = Number(process.argv[3] ?? 20000);
const ROUNDS = 3;
const IMAGE = 'tdv-fixtures/busybox';
const repoRoot = path.resolve(import.meta.dirname, '..');

const work = fs.mkdtempSync(path.join(os.tmpdir(), 'tdv-bench-dhost-'));
try {
  // The runner, bundled on the fly (the CLI bundle does not export it).
  const out = path.join(work, 'docker-host.mjs');
  await esbuild.build({
    entryPoints: [path.join(repoRoot, 'src/stages/runners/docker-host.ts')],
    bundle: true,
    platform: 'node',
    format: 'esm',
    outfile: out,
    packages: 'external',
    logLevel: 'silent',
  });
  fs.symlinkSync(path.join(repoRoot, 'node_modules'), path.join(work, 'node_modules'));
  const { runnerModule } = await import(pathToFileURL(out).href);

  const tree = path.join(work, 'tree');
  const inputs = [];
  for (let i = 0; i < NFILES; i++) {
    const rel = `d${String(i % 100).padStart(2, '0')}/f${String(i).padStart(5, '0')}`;
    const buf = Buffer.alloc(4096, i % 251);
    buf.write(`file ${i}\n`);
    fs.mkdirSync(path.join(tree, path.dirname(rel)), { recursive: true });
    fs.writeFileSync(path.join(tree, rel), buf);
    inputs.push({ path: rel, sha256: createHash('sha256').update(buf).digest('hex'), size: buf.length });
  }
  const hostArgs = HOST.startsWith('context:') ? [`--context=${HOST.slice(8)}`] : [`--host=${HOST}`];
  const docker = (...args) => execFileSync('docker', [...hostArgs, ...args], { encoding: 'utf8', maxBuffer: 1 << 26 }).trim();

  const baseline = () => {
    const c = docker('create', '--entrypoint=sh', IMAGE, '-c', 'true');
    try {
      const t0 = performance.now();
      docker('cp', tree, `${c}:/tmp/`);
      return performance.now() - t0;
    } finally {
      docker('rm', '--force', c);
    }
  };

  const runner = runnerModule.create({ name: 'bench', type: 'docker', hosts: [HOST] }, { root: work, repoId: 'bench', env: process.env });
  const viaRunner = async () => {
    let tIn;
    let tOut;
    const staging = fs.mkdtempSync(path.join(work, 'staging-'));
    const r = await runner.run(
      { stage: 'bench', image: { ref: IMAGE }, cmd: ['test "$(ls d00 | wc -l)" -gt 0'], env: {}, wdir: '.', inputs, outputs: [] },
      {
        openInput: (f) => fs.createReadStream(path.join(tree, f.path)),
        inputPath: (f) => path.join(tree, f.path),
        staging,
        onOutput: (c) => process.stderr.write(c),
        onDebug: (line) => {
          if (/ cp - /.test(line)) tIn = performance.now();
          else if (/ start --attach /.test(line)) tOut = performance.now();
        },
      },
    );
    if (r.exitCode !== 0) throw new Error(`the bench job failed: exit ${r.exitCode}`);
    return tOut - tIn;
  };

  const median = (xs) => xs.sort((a, b) => a - b)[Math.floor(xs.length / 2)];
  baseline(); // warm-up: page cache, image
  await viaRunner();
  const base = [];
  const tdv = [];
  for (let i = 0; i < ROUNDS; i++) {
    base.push(baseline());
    tdv.push(await viaRunner());
  }
  const b = median(base);
  const t = median(tdv);
  console.log(`inputs in, ${NFILES} files of 4 KiB, host ${HOST}`);
  console.log(`  runner (one tar through docker cp -): ${t.toFixed(0)} ms  [${tdv.map((x) => x.toFixed(0)).join(', ')}]`);
  console.log(`  docker cp DIR:                        ${b.toFixed(0)} ms  [${base.map((x) => x.toFixed(0)).join(', ')}]`);
  console.log(`  ratio ${(t / b).toFixed(2)} (target <= 1.3)`);
} finally {
  fs.rmSync(work, { recursive: true, force: true });
}
