/**
 * Runs a stage's command in a Docker container through the `docker` CLI, and
 * tells image identity (IDs for tdv.lock, content-tagged builds).
 *
 * Every docker invocation is an argv array: no host shell ever sees a stage
 * name, path, env value or image reference, and each option is one
 * `--flag=value` element, so a value cannot turn into another option.
 */
import { spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { execa } from 'execa';
import { hashFile } from '../../cache/hash.js';
import { type CodeOf, StageError } from '../../errors.js';
import type { DockerImages, RunResult, RunSpec, StageRunner } from '../runner.js';
import { checkCwd, checkEnv, spawnGroup } from './process.js';

/** Docker is missing, stopped, refused access, lacks an image, or a build failed. */
export class DockerError extends StageError {
  constructor(code: CodeOf<'stage'>, message: string, data?: Record<string, unknown>) {
    super(code, message, { data });
    this.name = 'DockerError';
  }
}

const LOCALLY = 'or remove `image:` from the stage to run it locally';

export interface DockerRunnerOptions {
  /** The docker CLI's environment (DOCKER_HOST, DOCKER_CONFIG, ...); default `process.env`. */
  env?: NodeJS.ProcessEnv;
  /** The docker executable; default `docker` (looked up on the PATH of `env`). */
  docker?: string;
  /** `--user` for containers; default the invoking `uid:gid`, so outputs are not owned by root. */
  user?: string;
  /** After an abort, how long the `docker run` client may take to exit once its container is gone; default 5000 ms. */
  killGraceMs?: number;
}

/** The invoking user as `uid:gid`, as containers run by default. */
export function invokingUser(): string {
  const uid = process.getuid?.() ?? 0;
  const gid = process.getgid?.() ?? 0;
  return `${uid}:${gid}`;
}

/**
 * `tdv-<8 hex of the repo root>-<stage>-<8 random hex>`: recognisable in
 * `docker ps`, unique per run. Characters Docker does not allow in names
 * (anything but [a-zA-Z0-9_.-]) become `_`; long stage names are cut.
 */
export function containerName(root: string, stage: string, random = randomBytes(4).toString('hex')): string {
  const repo = createHash('sha256').update(root).digest('hex').slice(0, 8);
  const safe = stage.replace(/[^a-zA-Z0-9_.-]/g, '_').slice(0, 64) || '_';
  return `tdv-${repo}-${safe}-${random}`;
}

/**
 * An argv as a line a POSIX shell would run as the same argv, for `-v` output:
 * what tdv ran, copied and pasted, runs the same container.
 */
export function commandLine(exe: string, args: string[]): string {
  return [exe, ...args].map((a) => (/^[A-Za-z0-9_@%+=:,./-]+$/.test(a) ? a : `'${a.replace(/'/g, `'\\''`)}'`)).join(' ');
}

/** A `--mount` field quoted for the docker CLI's CSV parser, so commas and quotes in paths stay data. */
function csvField(s: string): string {
  return `"${s.replace(/"/g, '""')}"`;
}

/**
 * The `docker run` argv for a stage. The repository is bind-mounted at its own
 * path, so absolute paths mean the same inside and out. The image's entrypoint
 * is replaced by `sh`: the stage's `cmd` runs under `sh -c` as it would locally.
 * The container joins Docker's default network (stages may download things).
 */
export function dockerRunArgs(spec: RunSpec, opts: { name: string; user: string }): string[] {
  const image = spec.image;
  if (!image) throw new Error(`bug: stage ${spec.stage} reached the Docker runner without an image ID`);
  checkImageRef(image);
  return [
    'run',
    '--rm',
    '--pull=never',
    `--name=${opts.name}`,
    `--label=tdv.stage=${spec.stage}`,
    `--label=tdv.root=${spec.root}`,
    `--mount=type=bind,${csvField(`source=${spec.root}`)},${csvField(`target=${spec.root}`)}`,
    `--workdir=${spec.cwd}`,
    `--user=${opts.user}`,
    '--entrypoint=sh',
    // --env=K=V in argv, not `-e K` plus the CLI's own environment: a stage's
    // PATH, HOME or DOCKER_HOST must not change which docker runs or where it connects.
    ...Object.entries(spec.env).map(([k, v]) => `--env=${k}=${v}`),
    '--',
    image,
    '-c',
    spec.cmd,
  ];
}

/** An image reference docker will read as a reference: not empty, no leading `-`, no whitespace or control characters. */
function checkImageRef(ref: string): void {
  // eslint-disable-next-line no-control-regex
  if (ref === '' || ref.startsWith('-') || /[\s\x00-\x1f\x7f]/.test(ref)) {
    throw new DockerError('BAD_IMAGE_REF', `${JSON.stringify(ref)} is not a Docker image reference; fix \`image:\` in tdv.yaml`, { image: ref });
  }
}

/** Containers started by this process and not yet finished, removed if tdv exits while they run. */
const liveContainers = new Map<string, { docker: string; env: NodeJS.ProcessEnv }>();
let exitHook = false;
function trackContainer(name: string, docker: string, env: NodeJS.ProcessEnv): void {
  liveContainers.set(name, { docker, env });
  if (exitHook) return;
  exitHook = true;
  // Killing a `docker run` client does not stop its container; `exit` handlers must be synchronous.
  process.on('exit', () => {
    for (const [n, c] of liveContainers) spawnSync(c.docker, ['rm', '--force', '--', n], { env: c.env, stdio: 'ignore', timeout: 10_000 });
  });
}

/**
 * What of the docker CLI's environment a cleanup action carries: the
 * variables that say which daemon and how to reach it. The reaper adds them
 * to tdv's own environment; nothing else (no secrets) goes into the journal.
 */
function dockerEnv(env: NodeJS.ProcessEnv): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(env)) if (v !== undefined && (k.startsWith('DOCKER_') || k === 'PATH' || k === 'HOME')) out[k] = v;
  return out;
}

export class DockerRunner implements StageRunner, DockerImages {
  readonly kind = 'docker' as const;
  private readonly env: NodeJS.ProcessEnv;
  private readonly docker: string;
  private readonly user: string;
  private readonly killGraceMs: number;
  private readonly builds = new Map<string, Promise<{ tag: string; id: string }>>();

  constructor(opts: DockerRunnerOptions = {}) {
    this.env = opts.env ?? process.env;
    this.docker = opts.docker ?? 'docker';
    this.user = opts.user ?? invokingUser();
    this.killGraceMs = opts.killGraceMs ?? 5_000;
  }

  /**
   * Runs `sh -c cmd` in a container of `spec.image` (an ID from resolveImage or
   * buildImage; never pulled). Output streams as it comes; the result is the
   * command's exit code. Aborting removes the container (`docker rm --force`:
   * SIGKILL, no grace: a killed `docker run` client would leave it running) and
   * resolves with `exitCode: null, signal: 'SIGKILL'`. Docker's own failures
   * (no daemon, image gone) throw a DockerError instead of returning 125.
   */
  async run(spec: RunSpec): Promise<RunResult> {
    checkEnv(spec.stage, spec.env);
    checkCwd(spec.stage, spec.root, spec.cwd);
    const name = containerName(spec.root, spec.stage);
    const args = dockerRunArgs(spec, { name, user: this.user });
    if (spec.signal?.aborted) return { exitCode: null, signal: 'SIGKILL' };
    spec.onDebug?.(commandLine(this.docker, args));

    trackContainer(name, this.docker, this.env);
    // If tdv dies (SIGKILL, OOM) the reaper removes the container (named before it exists, so no
    // moment goes unregistered) and stops the `docker run` client.
    const rmDone = spec.onCleanup?.({ kind: 'docker-rm', docker: this.docker, args: ['rm', '--force', '--', name], env: dockerEnv(this.env) });
    const child = spawnGroup(this.docker, args, { env: this.env, onOutput: spec.onOutput });
    const groupDone = child.pid !== undefined ? spec.onCleanup?.({ kind: 'pgid', pgid: child.pid }) : undefined;
    let aborted = false;
    let retry: NodeJS.Timeout | undefined;
    let clientKill: NodeJS.Timeout | undefined;
    const onAbort = () => {
      aborted = true;
      void this.remove(name);
      // The container may not exist yet when the abort comes: try again until the client is gone.
      retry = setInterval(() => void this.remove(name), 1_000);
      clientKill = setTimeout(() => child.killGroup('SIGKILL'), this.killGraceMs);
    };
    spec.signal?.addEventListener('abort', onAbort, { once: true });
    try {
      const r = await child.done;
      if (r.spawnError) throw this.spawnFailure(r.spawnError);
      if (aborted) return { exitCode: null, signal: 'SIGKILL' };
      if (r.signal) return { exitCode: null, signal: r.signal };
      // 125 is docker's own failure, unless the command itself exited 125:
      // docker says so on stderr with a `docker: ` line.
      if (r.exitCode === 125 && /^docker: /m.test(r.stderrTail)) throw this.classify(r.stderrTail, { image: spec.image, stage: spec.stage });
      return { exitCode: r.exitCode };
    } finally {
      spec.signal?.removeEventListener('abort', onAbort);
      clearInterval(retry);
      clearTimeout(clientKill);
      if (aborted) await this.remove(name);
      liveContainers.delete(name);
      groupDone?.();
      rmDone?.();
    }
  }

  /** The image ID (`sha256:...`) `ref` names in the local image store. Never pulls. */
  async resolveImage(ref: string): Promise<string> {
    checkImageRef(ref);
    const r = await this.exec(['image', 'inspect', '--format={{.Id}}', '--', ref]);
    if (r.exitCode !== 0) throw this.classify(r.stderr, { image: ref });
    const id = r.stdout.trim();
    if (!/^sha256:[0-9a-f]{64}$/.test(id)) throw new DockerError('DOCKER_FAILED', `docker image inspect ${ref} printed ${JSON.stringify(id.slice(0, 80))}, not an image ID`, { image: ref });
    return id;
  }

  /**
   * Builds `contextDir` tagged `tdv-build/<32 hex of the context's content>`
   * (see hashContext), or reuses that tag when it exists: the same content
   * gives the same tag and, as long as the image is kept, the same ID. Builds
   * of one tag asked for concurrently run once.
   */
  async buildImage(contextDir: string, opts: { dockerfile?: string; onOutput?: (chunk: Buffer) => void; signal?: AbortSignal } = {}): Promise<{ tag: string; id: string }> {
    const ctx = path.resolve(contextDir);
    const dockerfile = path.resolve(ctx, opts.dockerfile ?? 'Dockerfile');
    checkContext(ctx, dockerfile);
    const tag = `tdv-build/${(await hashContext(ctx, dockerfile)).slice(0, 32)}`;
    let pending = this.builds.get(tag);
    if (!pending) {
      pending = this.buildTag(tag, ctx, dockerfile, opts).finally(() => this.builds.delete(tag));
      this.builds.set(tag, pending);
    }
    return pending;
  }

  private async buildTag(tag: string, ctx: string, dockerfile: string, opts: { onOutput?: (chunk: Buffer) => void; signal?: AbortSignal }): Promise<{ tag: string; id: string }> {
    const have = await this.exec(['image', 'inspect', '--format={{.Id}}', '--', tag]);
    if (have.exitCode === 0) return { tag, id: have.stdout.trim() };
    if (!/no such image/i.test(have.stderr)) throw this.classify(have.stderr, { image: tag });
    let log = '';
    const r = await this.exec(['build', '--force-rm', `--tag=${tag}`, `--file=${dockerfile}`, `--label=tdv.context=${ctx}`, '--', ctx], {
      signal: opts.signal,
      onOutput: (c) => {
        log = (log + c.toString('utf8')).slice(-16 << 10);
        opts.onOutput?.(c);
      },
    });
    if (r.exitCode !== 0) {
      if (opts.signal?.aborted) throw new DockerError('BUILD_ABORTED', `docker build of ${ctx} was stopped`, { context: ctx });
      const down = daemonProblem(log);
      if (down) throw down;
      const lines = log
        .split('\n')
        .map((l) => l.trim())
        .filter((l) => l && !/^(DEPRECATED:|Install the buildx|BuildKit is currently|https:\/\/docs\.docker\.com)/.test(l));
      const tail = lines.slice(-20);
      throw new DockerError('BUILD_FAILED', `docker build of ${ctx} failed: ${tail.at(-1) ?? `exit ${r.exitCode}`}; fix the Dockerfile or the context, the build log is above`, { context: ctx, tail });
    }
    return { tag, id: await this.resolveImage(tag) };
  }

  /** `docker rm --force`, quietly: the container may be gone already, or not created yet. */
  private async remove(name: string): Promise<void> {
    await this.exec(['rm', '--force', '--', name]).catch(() => undefined);
  }

  /** Runs one short docker command, collecting its output. */
  private async exec(args: string[], opts: { signal?: AbortSignal; onOutput?: (chunk: Buffer) => void } = {}): Promise<{ exitCode: number; stdout: string; stderr: string }> {
    const sub = execa(this.docker, args, {
      env: this.env,
      extendEnv: false,
      stdin: 'ignore',
      reject: false,
      cancelSignal: opts.signal,
      buffer: opts.onOutput ? false : true,
      encoding: 'utf8',
    });
    if (opts.onOutput) {
      sub.stdout?.on('data', (c: Buffer) => opts.onOutput!(Buffer.from(c)));
      sub.stderr?.on('data', (c: Buffer) => opts.onOutput!(Buffer.from(c)));
    }
    const r = await sub;
    if (r.exitCode === undefined && r.signal === undefined) {
      const cause = r.cause as NodeJS.ErrnoException | undefined;
      throw this.spawnFailure({ code: r.code ?? cause?.code, message: cause?.message ?? r.shortMessage ?? 'could not start' });
    }
    return { exitCode: r.exitCode ?? -1, stdout: typeof r.stdout === 'string' ? r.stdout : '', stderr: typeof r.stderr === 'string' ? r.stderr : '' };
  }

  private spawnFailure(e: { code?: string; message: string }): DockerError {
    if (e.code === 'ENOENT') {
      return new DockerError('DOCKER_NOT_INSTALLED', `Docker is not installed (no \`${this.docker}\` command on PATH); install it (e.g. \`apt-get install docker.io\`) ${LOCALLY}`);
    }
    return new DockerError('DOCKER_FAILED', `cannot run ${this.docker}: ${e.message}`, { code: e.code });
  }

  /** Turns a docker CLI failure into the error users can act on. */
  private classify(stderr: string, ctx: { image?: string; stage?: string }): DockerError {
    const down = daemonProblem(stderr);
    if (down) return down;
    if (/no such image|unable to find image|pull access denied|manifest unknown|repository does not exist/i.test(stderr)) {
      const ref = ctx.image ?? 'the image';
      const who = ctx.stage ? ` (stage ${ctx.stage})` : '';
      return new DockerError('IMAGE_NOT_FOUND', `Docker image ${ref}${who} is not present locally; \`docker pull ${ref}\` or \`docker build -t ${ref} DIR\` first`, {
        image: ctx.image,
        stage: ctx.stage,
      });
    }
    const line =
      stderr
        .split('\n')
        .map((l) => l.trim())
        .find((l) => /^(docker: |Error|ERROR)/.test(l)) ??
      stderr.trim().split('\n')[0] ??
      '';
    return new DockerError('DOCKER_FAILED', `docker failed: ${line.replace(/^docker: /, '')}`, { image: ctx.image, stage: ctx.stage });
  }
}

/** A daemon that is not running or refuses us, from the docker CLI's stderr. */
function daemonProblem(stderr: string): DockerError | undefined {
  if (/permission denied while trying to connect to the docker daemon/i.test(stderr)) {
    return new DockerError('DOCKER_PERMISSION', `permission denied on the Docker daemon's socket; add yourself to the docker group (\`sudo usermod -aG docker $USER\`, then log in again) ${LOCALLY}`);
  }
  const m = /Cannot connect to the Docker daemon at (\S+?)\.? Is the docker daemon running\?|error during connect/i.exec(stderr);
  if (m) {
    const where = m[1] ? ` at ${m[1]}` : '';
    return new DockerError('DOCKER_DAEMON_DOWN', `the Docker daemon is not running${where}; start it with \`sudo systemctl start docker\` or \`dockerd\`, ${LOCALLY}`, { host: m[1] });
  }
  return undefined;
}

function checkContext(ctx: string, dockerfile: string): void {
  let st: fs.Stats | undefined;
  try {
    st = fs.statSync(ctx);
  } catch {
    // reported below
  }
  if (!st?.isDirectory()) throw new DockerError('BUILD_CONTEXT_MISSING', `build context ${ctx} is not a directory; fix \`build: {context: ...}\` in tdv.yaml`, { context: ctx });
  const df = fs.lstatSync(dockerfile, { throwIfNoEntry: false });
  if (!df) throw new DockerError('BUILD_CONTEXT_MISSING', `${dockerfile} does not exist; add a Dockerfile to the build context or fix \`dockerfile\``, { context: ctx });
  // Hashed by tdv before the build: a FIFO or device would never end, a huge file is not a Dockerfile.
  if (!df.isFile()) throw new DockerError('BUILD_CONTEXT_MISSING', `${dockerfile} is not a regular file; a Dockerfile must be one`, { context: ctx });
  if (df.size > MAX_DOCKERFILE_BYTES)
    throw new DockerError('BUILD_CONTEXT_MISSING', `${dockerfile} is ${df.size} bytes, more than the ${MAX_DOCKERFILE_BYTES} a Dockerfile may have here`, { context: ctx });
}

const MAX_DOCKERFILE_BYTES = 1 << 20;

/**
 * SHA-256 over everything `docker build` is sent: each entry of the context
 * (sorted path, kind, permission bits, and content hash or link target) and
 * the Dockerfile's path and content (it may live outside the context).
 * `.dockerignore` is not honoured: an ignored file still changes the hash,
 * which can rebuild needlessly but never misses a change.
 */
export async function hashContext(ctx: string, dockerfile: string): Promise<string> {
  const h = createHash('sha256');
  h.update(`dockerfile ${JSON.stringify(path.relative(ctx, dockerfile))} ${(await hashFile(dockerfile)).sha256}\n`);
  const walk = async (dir: string, rel: string): Promise<void> => {
    const names = (await fs.promises.readdir(dir)).sort();
    for (const n of names) {
      const abs = path.join(dir, n);
      const r = rel ? `${rel}/${n}` : n;
      const st = await fs.promises.lstat(abs);
      const mode = (st.mode & 0o7777).toString(8);
      if (st.isDirectory()) {
        h.update(`dir ${mode} ${JSON.stringify(r)}\n`);
        await walk(abs, r);
      } else if (st.isFile()) {
        h.update(`file ${mode} ${JSON.stringify(r)} ${(await hashFile(abs)).sha256}\n`);
      } else if (st.isSymbolicLink()) {
        h.update(`link ${JSON.stringify(r)} ${JSON.stringify(await fs.promises.readlink(abs))}\n`);
      } else {
        h.update(`other ${mode} ${JSON.stringify(r)}\n`);
      }
    }
  };
  await walk(ctx, '');
  return h.digest('hex');
}
