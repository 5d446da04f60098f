/**
 * The `docker` runner type: Docker engines on other machines, reached with the
 * docker CLI (`--host=ssh://user@host`, `tcp://host:port` with TLS keys,
 * `unix:///path`, or `--context=NAME`), one host or a pool.
 *
 * There is no shared file system: a bind mount would name the remote host's
 * disk, not this one. Inputs go in and outputs come out by hash, through the
 * Docker API the CLI already speaks, so the remote host needs nothing but a
 * Docker engine (no S3 credentials, no network path to the remote, no tdv):
 *
 *   tdv (this machine)                          Docker host
 *   ------------------                          -----------
 *   image inspect / save | load / build -  -->  the image, by ID
 *   create (labels tdv.repo, tdv.stage)    -->  container, not started
 *   ONE tar of the inputs (tar-stream,     -->  docker cp - C:/   (files at /tdv/repo/<path>,
 *     each file streamed from the cache)          owned by the container's user)
 *   start --attach                         <->  runs `sh -c` per command, output streamed back
 *   inspect, after a non-zero exit         <--  the exit code, or the container still running:
 *                                                 the connection was cut (RUNNER_LOST)
 *   docker cp C:/tdv/repo/<output> -       <--  a tar per declared output, checked entry by
 *     (tar-stream extract)                        entry, written under io.staging, hashed while written
 *   rm --force                             -->  gone (also on abort, error, lost connection)
 *
 * The alternative, containers fetching from and pushing to the S3 remote,
 * needs credentials or presigned URLs inside the user's image, a network path
 * from the host to the remote, and tools (curl) the image may lack; the
 * Kubernetes runner has to pay that, this one does not. One tar stream keeps
 * 20,000 small inputs as cheap as one `docker cp` of a directory (no process
 * per file: 0.72x the time of `docker cp DIR` over SSH for 20,000 files of
 * 4 KiB, scripts/bench-docker-host.mjs).
 *
 * Every docker invocation is an argv array with one `--flag=value` element
 * per option, as in docker.ts: no shell on this machine sees a stage name,
 * path, env value or image reference.
 */
import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import * as tar from 'tar-stream';
import * as v from 'valibot';
import { TdvError } from '../../errors.js';
import { relPathProblem } from '../../formats/paths.js';
import { Guard } from '../../workspace/guard.js';
import type { JobFile, JobIO, JobResult, JobRunner, JobSpec, RunnerConfig, RunnerContext } from '../job.js';
import { commandLine, containerName, DockerError } from './docker.js';
import { checkEnv } from './process.js';
import type { RunnerModule } from './registry.js';

/** Where the repository's files are inside the container: a fixed root, so a container never learns this machine's paths. */
export const CONTAINER_ROOT = '/tdv/repo';

/**
 * The container's command: each of the stage's commands by its own `sh -c`,
 * in order, stopping at the first failure with its exit code. The commands
 * travel as positional parameters (`"$@"`), data, never spliced into the script.
 */
export const RUN_SCRIPT = 'for c do sh -c "$c" || exit $?; done';

// ---------------------------------------------------------------------------
// Configuration

/**
 * A host this runner may use, or why not: `ssh://[user@]host[:port]`,
 * `tcp://host:port`, `unix:///absolute/path`, or `context:NAME` (a Docker
 * context made with `docker context create`). Passwords in URLs are refused:
 * the docker CLI does not take them, and config files are no place for them.
 */
export function hostProblem(url: unknown): string | undefined {
  if (typeof url !== 'string' || url === '') return 'is not a host URL';
  // eslint-disable-next-line no-control-regex
  if (/[\s\x00-\x1f\x7f]/.test(url)) return 'holds whitespace or control characters';
  if (url.startsWith('-')) return 'starts with "-"';
  const ctx = /^context:(.*)$/.exec(url);
  if (ctx) return /^[A-Za-z0-9][A-Za-z0-9_.+-]*$/.test(ctx[1]!) ? undefined : 'names no valid Docker context (context:NAME)';
  if (url.startsWith('unix://')) {
    const p = url.slice('unix://'.length);
    return p.startsWith('/') && !p.split('/').includes('..') ? undefined : 'must name an absolute socket path (unix:///var/run/docker.sock)';
  }
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    return 'is not a URL (ssh://user@host, tcp://host:2376, unix:///path or context:NAME)';
  }
  if (u.password) return 'holds a password; use an SSH key (ssh-agent or ~/.ssh/config) instead';
  if (u.hostname === '') return 'names no host';
  // ssh would read `-oProxyCommand=...` as an option (docker refuses it too, later and less clearly).
  if (u.hostname.startsWith('-') || decodeURIComponent(u.username).startsWith('-')) return 'names a host or user starting with "-"';
  if ((u.pathname !== '' && u.pathname !== '/') || u.search || u.hash) return 'has a path, query or fragment; give only user, host and port';
  if (u.protocol === 'ssh:') return undefined;
  if (u.protocol === 'tcp:') return u.port ? undefined : 'needs a port (tcp://host:2376)';
  return `has scheme ${u.protocol.replace(/:$/, '')}; use ssh://, tcp://, unix:// or context:NAME`;
}

const boolish = v.union([
  v.boolean(),
  v.pipe(
    v.picklist(['true', 'false', '1', '0', 'yes', 'no']),
    v.transform((s) => ['true', '1', 'yes'].includes(s)),
  ),
]);

/** A host list: a YAML list, or one string (several separated by commas or spaces, as `tdv runner add` passes them). */
const hostList = v.pipe(
  v.union([
    v.array(v.string()),
    v.pipe(
      v.string(),
      v.transform((s) => s.split(/[\s,]+/).filter(Boolean)),
    ),
  ]),
  v.minLength(1, 'hosts must name at least one Docker host'),
  v.check(
    (hs) => hs.every((h) => hostProblem(h) === undefined),
    (issue) => {
      const bad = (issue.input as string[]).find((h) => hostProblem(h) !== undefined)!;
      return `host ${JSON.stringify(bad)} ${hostProblem(bad)}`;
    },
  ),
  v.check((hs) => new Set(hs).size === hs.length, 'hosts lists a host twice'),
);

/** The keys of a `runner.<name>` section of type `docker`. */
export const configSchema = v.looseObject({
  hosts: hostList,
  user: v.optional(v.pipe(v.string(), v.regex(/^[A-Za-z0-9_][A-Za-z0-9_.-]*(:[A-Za-z0-9_][A-Za-z0-9_.-]*)?$/, 'user must be NAME, UID or UID:GID'))),
  tls_verify: v.optional(boolish),
  cert_path: v.optional(
    v.pipe(
      v.string(),
      v.check((p) => path.isAbsolute(p), 'cert_path must be an absolute directory'),
    ),
  ),
  // A bare command (looked up on PATH) or an absolute path: a relative one would be found
  // from wherever tdv runs, and not at all by the watchdog, which runs in `/`.
  docker: v.optional(
    v.pipe(
      v.string(),
      v.check((d) => /^[A-Za-z0-9_][A-Za-z0-9_.+-]*$/.test(d) || (d.startsWith('/') && !d.includes('\0')), 'must be a command name (found on PATH) or an absolute path'),
    ),
  ),
});

export const configKeys: Record<string, string> = {
  hosts: 'Docker hosts, one or a pool: ssh://user@host[:port], tcp://host:port, unix:///path or context:NAME',
  user: "the container's user (NAME, UID or UID:GID); default: the image's",
  tls_verify: 'for tcp:// hosts: verify the daemon with TLS (DOCKER_TLS_VERIFY)',
  cert_path: 'for tcp:// hosts: directory of ca.pem, cert.pem, key.pem (DOCKER_CERT_PATH)',
  docker: 'the docker CLI to run; default `docker` on PATH',
};

export interface DockerHostConfig {
  hosts: string[];
  user?: string;
  tls_verify?: boolean;
  cert_path?: string;
  docker?: string;
}

/** The docker CLI options that select `host`: `--context=NAME` or `--host=URL` (each one argv element). */
export function hostArgs(host: string): string[] {
  return host.startsWith('context:') ? [`--context=${host.slice('context:'.length)}`] : [`--host=${host}`];
}

/**
 * The docker CLI's environment for `host`: the caller's, minus what would
 * point it elsewhere (DOCKER_HOST, DOCKER_CONTEXT: the argv names the host),
 * with the TLS keys for tcp:// hosts.
 */
export function hostEnv(base: NodeJS.ProcessEnv, host: string, cfg: Pick<DockerHostConfig, 'tls_verify' | 'cert_path'>): NodeJS.ProcessEnv {
  const env = { ...base };
  delete env.DOCKER_HOST;
  delete env.DOCKER_CONTEXT;
  if (host.startsWith('tcp://')) {
    delete env.DOCKER_TLS_VERIFY;
    if (cfg.tls_verify) env.DOCKER_TLS_VERIFY = '1';
    if (cfg.cert_path) env.DOCKER_CERT_PATH = cfg.cert_path;
  }
  return env;
}

/** What a cleanup record carries of the environment: only what the docker CLI and ssh need, never the caller's secrets. */
const CLEANUP_ENV = ['PATH', 'HOME', 'SSH_AUTH_SOCK', 'DOCKER_CONFIG', 'DOCKER_TLS_VERIFY', 'DOCKER_CERT_PATH'];

// ---------------------------------------------------------------------------
// Argv

/**
 * The `docker create` argv (after the host options) for a job: labels to find
 * it again (`tdv.repo` for sweeps), the user, resources, the working
 * directory under the fixed root, `sh` as entrypoint, env as `--env=K=V`
 * (data, never the CLI's own environment), then RUN_SCRIPT with the commands
 * as its positional parameters.
 */
export function createArgs(job: JobSpec, opts: { name: string; repoId: string; image: string; user?: string; owner?: string }): string[] {
  const wdir = job.wdir === '.' || job.wdir === '' ? CONTAINER_ROOT : path.posix.join(CONTAINER_ROOT, job.wdir);
  const r = job.resources ?? {};
  return [
    'create',
    '--pull=never',
    `--name=${opts.name}`,
    `--label=tdv.repo=${opts.repoId}`,
    ...(opts.owner ? [`--label=tdv.owner=${opts.owner}`] : []),
    `--label=tdv.stage=${job.stage}`,
    ...(opts.user ? [`--user=${opts.user}`] : []),
    ...(r.cpus !== undefined ? [`--cpus=${r.cpus}`] : []),
    ...(r.memory !== undefined ? [`--memory=${Math.round(r.memory)}b`] : []),
    ...(r.gpus !== undefined ? [`--gpus=${r.gpus}`] : []),
    `--workdir=${wdir}`,
    '--entrypoint=sh',
    ...Object.entries(job.env).map(([k, val]) => `--env=${k}=${val}`),
    '--',
    opts.image,
    '-c',
    RUN_SCRIPT,
    'tdv',
    ...job.cmd,
  ];
}

// ---------------------------------------------------------------------------
// Error classification

/** What a docker CLI failure means, from its stderr. */
export type Failure =
  { kind: 'connection'; detail: string } | { kind: 'permission'; detail: string } | { kind: 'no-image'; detail: string } | { kind: 'no-file'; detail: string } | { kind: 'other'; detail: string };

const CONNECTION =
  /error during connect|Cannot connect to the Docker daemon|ssh: |dial-stdio|has exited with|broken pipe|connection reset|connection refused|connection closed|no route to host|i\/o timeout|unexpected EOF|\bEOF\b|use of closed network connection|context deadline exceeded|Could not resolve hostname|Host key verification failed|Permission denied \(publickey/i;

/** Classifies a docker CLI failure (stderr) into what tdv does about it. */
export function classifyFailure(stderr: string): Failure {
  const detail = firstLine(stderr);
  if (/permission denied while trying to connect to the docker daemon/i.test(stderr)) return { kind: 'permission', detail };
  if (/Could not find the file|No such container:path/i.test(stderr)) return { kind: 'no-file', detail };
  if (CONNECTION.test(stderr)) return { kind: 'connection', detail };
  if (/no such image|unable to find image|pull access denied|manifest unknown|repository does not exist|reference does not exist/i.test(stderr)) return { kind: 'no-image', detail };
  return { kind: 'other', detail };
}

/**
 * The line of a docker CLI failure worth showing. For the ssh transport that
 * is what ssh said (`stderr=Connection to HOST closed by remote host.`),
 * buried in `time=... level=error msg="error waiting for container: command
 * [ssh ...] has exited with exit status 255, ...: stderr=..."`.
 */
export function firstLine(stderr: string): string {
  const ssh = /stderr=((?:[^"\\\r\n]|\\[^rn])+)/.exec(stderr);
  if (ssh?.[1]?.trim()) return ssh[1].trim().slice(0, 200);
  const msg = /level=(?:error|fatal) msg="((?:[^"\\]|\\.)*)"/.exec(stderr);
  if (msg?.[1]) return msg[1].slice(0, 200);
  const lines = stderr
    .split('\n')
    .map((l) => l.trim())
    .filter(Boolean);
  const line = lines.find((l) => /^(docker: |Error|ERROR|error)/.test(l)) ?? lines[0] ?? '';
  return line.replace(/^docker: /, '').slice(0, 300);
}

// ---------------------------------------------------------------------------
// Outputs

/**
 * The repo-relative path a tar entry from `docker cp CONTAINER:<output> -`
 * stands for, or the reason it is refused. The tar's top-level name is the
 * output's base name; what follows must stay under it (no `..`, not absolute,
 * no NUL, a legal path per formats/paths.ts), and only regular files and
 * directories may come back: a symlink, hard link, FIFO or device could point
 * anywhere once checked out.
 */
export function outputEntryPath(output: string, header: { name: string; type?: string | null }): { path: string } | { refused: string } {
  const base = path.posix.basename(output);
  const type = header.type ?? 'file';
  let name = header.name;
  if (name.includes('\0')) return { refused: `an entry name with a NUL byte` };
  if (name.endsWith('/')) name = name.replace(/\/+$/, '');
  let rest: string;
  if (name === base) rest = '';
  else if (name.startsWith(`${base}/`)) rest = name.slice(base.length + 1);
  else return { refused: `${JSON.stringify(header.name)}, outside the declared output` };
  const rel = rest === '' ? output : `${output}/${rest}`;
  if (rest !== '' && (rest.split('/').includes('..') || rest.startsWith('/'))) return { refused: `${JSON.stringify(header.name)}, which escapes the declared output` };
  const problem = relPathProblem(rel);
  if (problem !== undefined) return { refused: `${JSON.stringify(rel)}, which ${problem}` };
  if (type !== 'file' && type !== 'contiguous-file' && type !== 'directory') return { refused: `${JSON.stringify(rel)}, a ${type}, not a regular file or directory` };
  return { path: rel };
}

const fsWrite = promisify(fs.write);

// ---------------------------------------------------------------------------
// Running docker

interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  spawnError?: NodeJS.ErrnoException;
}

/** A stream that can feed a child's stdin (a node Readable, or tar-stream's streamx Pack). */
interface Pipeable {
  pipe(dest: NodeJS.WritableStream): unknown;
}

interface Call {
  child: ReturnType<typeof spawn>;
  done: Promise<Exit>;
}

const TAIL = 16 << 10;

/** A host plus how to reach it. */
interface Host {
  url: string;
  args: string[];
  env: NodeJS.ProcessEnv;
  /** Jobs in flight (the pool sends each new job to the least busy host). */
  busy: number;
  /** Image IDs known to be on this host, with the image's user (an ID is immutable: once there, there until removed). */
  images: Map<string, Promise<string>>;
}

/** Containers of this process not yet removed, removed if tdv exits while they exist (as docker.ts does locally). */
const liveContainers = new Map<string, { docker: string; args: string[]; env: NodeJS.ProcessEnv }>();
let exitHook = false;
function trackContainer(key: string, docker: string, args: string[], env: NodeJS.ProcessEnv): void {
  liveContainers.set(key, { docker, args, env });
  if (exitHook) return;
  exitHook = true;
  // `exit` handlers must be synchronous; a SIGKILLed tdv runs none: the cleanup record
  // (io.onCleanup) and the next sweep cover that.
  process.on('exit', () => {
    for (const c of liveContainers.values()) spawnSync(c.docker, c.args, { env: c.env, stdio: 'ignore', timeout: 10_000 });
  });
}

export class DockerHostRunner implements JobRunner {
  readonly type = 'docker';
  readonly name: string;
  private readonly docker: string;
  private readonly hosts: Host[];
  private readonly user?: string;
  private readonly repoId: string;
  private readonly root: string;
  private readonly localEnv: NodeJS.ProcessEnv;
  private readonly ctx: RunnerContext;
  /** Builds by tag (on the first host), so concurrent stages with one context build once. */
  private readonly builds = new Map<string, Promise<{ id: string; tag: string }>>();

  constructor(cfg: DockerHostConfig & { name: string }, ctx: RunnerContext) {
    this.name = cfg.name;
    this.docker = cfg.docker ?? 'docker';
    this.user = cfg.user;
    this.repoId = ctx.repoId;
    this.root = ctx.root;
    this.localEnv = ctx.env;
    this.ctx = ctx;
    this.hosts = cfg.hosts.map((url) => ({ url, args: hostArgs(url), env: hostEnv(ctx.env, url, cfg), busy: 0, images: new Map() }));
  }

  /** The image ID `ref` names on the first host, loading it there from this machine's daemon when only that has it. */
  async resolveImage(ref: string, signal?: AbortSignal): Promise<string> {
    return this.resolveOnFirst(ref, signal);
  }

  private async resolveOnFirst(ref: string, signal: AbortSignal | undefined, io?: JobIO): Promise<string> {
    checkRef(ref);
    const host = this.hosts[0]!;
    const got = await this.inspectImageFull(host, ref, signal);
    if (got) {
      if (!host.images.has(got.id)) host.images.set(got.id, Promise.resolve(got.user));
      return got.id;
    }
    const local = await this.inspectImage(undefined, ref, signal).catch(() => undefined);
    if (!local) {
      throw new DockerError(
        'IMAGE_NOT_FOUND',
        `runner ${this.name}: Docker image ${ref} is not on ${host.url} nor on this machine; \`docker --host=${host.url} pull ${ref}\`, or pull or build it here (tdv then copies it over)`,
        { image: ref, host: host.url },
      );
    }
    const user = await this.copyImage(undefined, host, ref, local, signal, io);
    host.images.set(local, Promise.resolve(user));
    return local;
  }

  async run(job: JobSpec, io: JobIO): Promise<JobResult> {
    checkEnv(job.stage, job.env);
    checkJob(job);
    const host = this.hosts.reduce((best, h) => (h.busy < best.busy ? h : best), this.hosts[0]!);
    host.busy++;
    try {
      return await this.runOn(host, job, io);
    } finally {
      host.busy--;
    }
  }

  private async runOn(host: Host, job: JobSpec, io: JobIO): Promise<JobResult> {
    const signal = io.signal;
    const started = new Date().toISOString();
    const stopped = (): JobResult => ({ exitCode: null, signal: 'SIGKILL', started, ended: new Date().toISOString(), where: host.url, outputs: [] });
    if (signal?.aborted) return stopped();

    let image: { id: string; user: string };
    try {
      image = await this.imageOn(host, job, io);
    } catch (err) {
      if (signal?.aborted) return stopped();
      throw err;
    }
    if (signal?.aborted) return stopped();

    const name = containerName(this.root, job.stage);
    // Registered before the create: a tdv killed while docker creates it (or a create whose
    // answer was lost with the connection) still leaves a record of the name to remove.
    const rmArgs = [...host.args, 'rm', '--force', '--', name];
    const key = `${host.url} ${name}`;
    trackContainer(key, this.docker, rmArgs, host.env);
    const registered = io.onCleanup?.({ kind: 'docker-rm', docker: this.docker, args: rmArgs, env: pick(host.env, CLEANUP_ENV) });
    const done = () => {
      liveContainers.delete(key);
      registered?.();
    };
    const create = await this.call(host, createArgs(job, { name, repoId: this.repoId, image: image.id, user: this.user, owner: this.ctx.owner }), { io, signal }).catch(async (err: unknown) => {
      done();
      throw err;
    });
    if (create.code !== 0) {
      if (await this.remove(host, name)) done();
      if (signal?.aborted) return stopped();
      throw this.failure(host, create, { stage: job.stage, image: image.id });
    }
    // From here on a connection failure is a lost connection: the container exists on the host.
    try {
      const ids = await this.containerIds(host, name, this.user ?? image.user, job, io);
      if (signal?.aborted) return stopped();
      // Nothing to send when there are no inputs and root runs in the root directory (a
      // `true` stage): every docker command over ssh:// costs a connection (~250 ms).
      const needsTar = job.inputs.length > 0 || ids.uid !== 0 || ids.gid !== 0 || (job.wdir !== '.' && job.wdir !== '') || job.outputs.some((o) => o.includes('/'));
      if (needsTar) await this.sendInputs(host, name, job, io, ids);
      if (signal?.aborted) return stopped();

      const attached = new Date().toISOString();
      const exit = await this.attach(host, name, io);
      if (signal?.aborted) return stopped();
      if (exit.code === 0) {
        // The CLI exits 0 only when the daemon reported the container's exit status 0 (a cut
        // attach or wait exits 1 or 125), and the container was created from the image ID
        // itself, which is immutable: no `docker inspect` needed to know what ran and how.
        const outputs = await this.fetchOutputs(host, name, job, io);
        return { exitCode: 0, started: attached, ended: new Date().toISOString(), image: image.id, where: host.url, outputs };
      }
      const state = await this.call(host, ['inspect', '--type=container', '--format={{.State.Status}} {{.State.ExitCode}} {{.Image}} {{.State.StartedAt}} {{.State.FinishedAt}}', '--', name], { io });
      if (state.code !== 0) throw this.lostOr(host, state, job.stage, 'reading the exit code');
      const [status, code, ranImage, t0, t1] = state.stdout.trim().split(' ');
      if (status !== 'exited') {
        // `docker start --attach` ended but the container did not: the attach connection was cut,
        // unless the container could not start at all (an OCI runtime error, say).
        if (status === 'created' && exit.code !== 0 && classifyFailure(exit.stderr).kind !== 'connection') throw this.failure(host, exit, { stage: job.stage, image: image.id });
        throw this.lost(host, job.stage, exit.stderr ? firstLine(exit.stderr) : `the container is still ${status}`);
      }
      const outputs = await this.fetchOutputs(host, name, job, io);
      return {
        exitCode: Number(code),
        started: isoOr(t0, started),
        ended: isoOr(t1, new Date().toISOString()),
        image: ranImage,
        where: host.url,
        outputs,
      };
    } catch (err) {
      if (signal?.aborted && !(err instanceof TdvError && err.code === 'JOB_OUTPUT_REFUSED')) return stopped();
      throw err;
    } finally {
      if (await this.remove(host, name)) done();
    }
  }

  /** Removes the whole stage's leftovers of earlier runs of `repoId` on every host: their names. */
  async sweep(repoId: string): Promise<string[]> {
    const found: string[] = [];
    const failed: Error[] = [];
    // One host of a pool being down must not stop the others' sweep (nor a repro that
    // will not use it); its leftovers are found by the next sweep that reaches it.
    await Promise.all(
      this.hosts.map(async (host) => {
        try {
          const ps = await this.call(host, ['ps', '--all', `--filter=label=tdv.repo=${repoId}`, '--format={{.Names}}\t{{.Label "tdv.owner"}}']);
          if (ps.code !== 0) throw this.failure(host, ps, {});
          for (const line of ps.stdout.split('\n').filter(Boolean)) {
            const [n, owner] = line.split('\t');
            // A container whose tdv still runs is not a leftover (another repro of a clone with this id).
            if (!n || (owner && this.ctx.ownerAlive?.(owner))) continue;
            if (await this.remove(host, n)) found.push(n);
          }
        } catch (err) {
          this.onDebug?.(`runner ${this.name}: sweep of ${host.url} failed: ${(err as Error).message}`);
          failed.push(err as Error);
        }
      }),
    );
    if (failed.length === this.hosts.length) throw failed[0]!;
    return found.sort();
  }

  // --- images ---------------------------------------------------------------

  /** The image ID the job runs in on `host`, put there first when missing. */
  private async imageOn(host: Host, job: JobSpec, io: JobIO): Promise<{ id: string; user: string }> {
    const img = job.image;
    if (!img) throw new DockerError('BAD_IMAGE_REF', `stage ${job.stage}: runner ${this.name} runs stages in containers; give the stage an \`image:\` or \`build:\``, { stage: job.stage });
    const first = this.hosts[0]!;
    let id: string;
    let ref: string | undefined;
    if ('ref' in img) {
      checkRef(img.ref);
      ref = img.ref;
      id = img.id ?? (await this.resolveOnFirst(img.ref, io.signal, io));
    } else {
      // The other hosts of a pool get the built image under its tag too (saved by tag from the first).
      ({ id, tag: ref } = await this.build(first, job, io));
    }
    return { id, user: await this.ensureImage(host, id, ref, io) };
  }

  /**
   * Makes image `id` present on `host` and returns the image's user: when
   * missing, streamed from the pool's first host or from this machine with
   * `docker save | docker load`, so every host runs the very same image ID (a
   * pull or build there could give another, and tdv.lock records one).
   */
  private async ensureImage(host: Host, id: string, ref: string | undefined, io: JobIO): Promise<string> {
    let pending = host.images.get(id);
    if (!pending) {
      pending = (async () => {
        const there = await this.inspectImageFull(host, id, io.signal);
        if (there) return there.user;
        const first = this.hosts[0]!;
        const source = host !== first && (await this.inspectImage(first, id, io.signal)) ? first : (await this.inspectImage(undefined, id, io.signal).catch(() => undefined)) ? undefined : null;
        if (source === null) {
          const others = host === first ? '' : `, ${first.url}`;
          throw new DockerError(
            'IMAGE_NOT_FOUND',
            `runner ${this.name}: image ${ref ?? id} (${id}) is on neither ${host.url}${others} nor this machine; pull or build it on one of them, or run tdv repro to resolve \`image:\` again`,
            {
              image: id,
              host: host.url,
            },
          );
        }
        // Saving by reference keeps the tag on the receiving host, when the reference still names that ID.
        const name = ref && (await this.inspectImage(source, ref, io.signal).catch(() => undefined)) === id ? ref : id;
        return this.copyImage(source, host, name, id, io.signal, io);
      })();
      pending.catch(() => host.images.delete(id));
      host.images.set(id, pending);
    }
    return pending;
  }

  /** `docker image inspect` of `ref` on `host` (undefined: this machine's default daemon): its ID, or undefined when absent. */
  private async inspectImage(host: Host | undefined, ref: string, signal?: AbortSignal): Promise<string | undefined> {
    return (await this.inspectImageFull(host, ref, signal))?.id;
  }

  /** The ID and user (`USER` of the Dockerfile, '' for root) of image `ref` on `host`, or undefined when absent. */
  private async inspectImageFull(host: Host | undefined, ref: string, signal?: AbortSignal): Promise<{ id: string; user: string } | undefined> {
    const r = await this.call(host, ['image', 'inspect', '--format={{.Id}} {{json .Config.User}}', '--', ref], { signal });
    if (r.code === 0) {
      const [id, user] = splitOnce(r.stdout.trim(), ' ');
      let u: unknown;
      try {
        u = JSON.parse(user || '""');
      } catch {
        // reported below
      }
      if (!/^sha256:[0-9a-f]{64}$/.test(id) || typeof u !== 'string') {
        throw new DockerError('DOCKER_FAILED', `docker image inspect ${ref} printed ${JSON.stringify(r.stdout.slice(0, 80))}, not an image ID`, { image: ref });
      }
      return { id, user: u };
    }
    const f = classifyFailure(r.stderr);
    if (f.kind === 'no-image' || /No such object/i.test(r.stderr)) return undefined;
    throw this.failure(host, r, { image: ref });
  }

  /** `docker save NAME` on `from` piped into `docker load` on `to`; checks that `to` then has `id`, and returns the image's user. */
  private async copyImage(from: Host | undefined, to: Host, name: string, id: string, signal: AbortSignal | undefined, io: JobIO | undefined): Promise<string> {
    const where = from ? from.url : 'this machine';
    const say = `runner ${this.name}: ${to.url} lacks image ${name}; copying it from ${where} (docker save | docker load)`;
    (io?.onDebug ?? this.onDebug)?.(say);
    const save = this.start(from, ['save', '--', name], { stdout: 'pipe', signal });
    const load = this.start(to, ['load', '--quiet'], { stdin: save.child.stdout!, signal });
    const [s, l] = await Promise.all([save.done, load.done]);
    if (s.code !== 0) throw this.failure(from, s, { image: name });
    if (l.code !== 0) throw this.failure(to, l, { image: name });
    const got = await this.inspectImageFull(to, id, signal);
    if (got?.id !== id) {
      throw new DockerError('DOCKER_FAILED', `runner ${this.name}: loading image ${name} into ${to.url} did not give ${id}`, { image: id, host: to.url });
    }
    return got.user;
  }

  /** Debug lines of calls without a JobIO (resolveImage copying an image over). */
  onDebug?: (line: string) => void;

  /**
   * Builds a `build:` stage's image on the first host from its context files,
   * sent as one tar on stdin (`docker build -`): tagged
   * `tdv-build/<32 hex of the context's content>` like docker.ts's builds, so
   * an unchanged context is not built again.
   */
  private async build(host: Host, job: JobSpec, io: JobIO): Promise<{ id: string; tag: string }> {
    const b = (job.image as { build: { context: JobFile[]; dir: string; dockerfile?: string } }).build;
    const dir = b.dir === '.' ? '' : b.dir.replace(/\/+$/, '');
    const dockerfileRel = path.posix.normalize(path.posix.join(dir || '.', b.dockerfile ?? 'Dockerfile'));
    const entries: { name: string; file: JobFile }[] = [];
    let dockerfileName: string | undefined;
    for (const f of b.context) {
      const inside = dir === '' ? f.path : f.path.startsWith(`${dir}/`) ? f.path.slice(dir.length + 1) : undefined;
      if (f.path === dockerfileRel) dockerfileName = inside ?? '.tdv-Dockerfile';
      if (inside !== undefined) entries.push({ name: inside, file: f });
      else if (f.path === dockerfileRel) entries.push({ name: '.tdv-Dockerfile', file: f });
    }
    if (!dockerfileName)
      throw new DockerError('BUILD_CONTEXT_MISSING', `stage ${job.stage}: the build context ${b.dir} has no ${dockerfileRel}; add a Dockerfile or fix \`dockerfile\``, { context: b.dir });
    entries.sort((x, y) => (x.name < y.name ? -1 : x.name > y.name ? 1 : 0));
    const h = createHash('sha256').update(`dockerfile ${JSON.stringify(dockerfileName)}\n`);
    for (const e of entries) h.update(`file ${e.file.exec ? 755 : 644} ${JSON.stringify(e.name)} ${e.file.sha256}\n`);
    const tag = `tdv-build/${h.digest('hex').slice(0, 32)}`;
    let pending = this.builds.get(tag);
    if (!pending) {
      pending = (async () => {
        const have = await this.inspectImageFull(host, tag, io.signal);
        if (have) {
          if (!host.images.has(have.id)) host.images.set(have.id, Promise.resolve(have.user));
          return { id: have.id, tag };
        }
        const pack = newPack();
        const args = ['build', '--force-rm', `--tag=${tag}`, `--file=${dockerfileName}`, '--label=tdv.build=1', '-'];
        const call = this.start(host, args, { stdin: pack, io, onOutput: (c) => io.onOutput(c, 'stderr'), signal: io.signal });
        const packing = writeEntries(
          pack,
          entries.map((e) => ({ name: e.name, file: e.file, uid: 0, gid: 0 })),
          io,
        ).catch((err: unknown) => {
          pack.destroy(err as Error);
          call.child.kill('SIGKILL');
          throw err;
        });
        // docker's exit says why a copy failed (an input read error kills it: see the catch above).
        packing.catch(() => undefined);
        const r = await call.done;
        if (r.code === 0) await packing;
        else {
          if (r.spawnError) throw this.spawnFailure(r.spawnError);
          await packing.catch((err: unknown) => {
            if (err instanceof TdvError) throw err;
          });
          if (io.signal?.aborted) throw new DockerError('BUILD_ABORTED', `docker build of ${b.dir} on ${host.url} was stopped`, { context: b.dir });
          const f = classifyFailure(r.stderr);
          if (f.kind === 'connection' || f.kind === 'permission') throw this.failure(host, r, {});
          const tail = r.stderr
            .split('\n')
            .map((l) => l.trim())
            .filter(Boolean);
          throw new DockerError('BUILD_FAILED', `docker build of ${b.dir} on ${host.url} failed: ${tail.at(-1) ?? `exit ${r.code}`}; fix the Dockerfile or the context, the build log is above`, {
            context: b.dir,
            tail: tail.slice(-20),
          });
        }
        const got = await this.inspectImageFull(host, tag, io.signal);
        if (!got) throw new DockerError('DOCKER_FAILED', `runner ${this.name}: docker build on ${host.url} succeeded but ${tag} is not there`, { image: tag });
        host.images.set(got.id, Promise.resolve(got.user));
        return { id: got.id, tag };
      })().finally(() => this.builds.delete(tag));
      this.builds.set(tag, pending);
    }
    return pending;
  }

  // --- one run ----------------------------------------------------------------

  /**
   * The numeric uid:gid the container runs as, for the owner of the input tar's
   * entries (a container user must be able to write its outputs beside its
   * inputs). Names are looked up in the container's own /etc/passwd and
   * /etc/group, read with `docker cp` before it starts.
   */
  private async containerIds(host: Host, name: string, user: string, job: JobSpec, io: JobIO): Promise<{ uid: number; gid: number }> {
    if (user === '') return { uid: 0, gid: 0 };
    const [u, g] = user.split(':') as [string, string | undefined];
    const num = (s: string) => (/^\d+$/.test(s) ? Number(s) : undefined);
    let uid = num(u);
    let gid = g === undefined ? undefined : num(g);
    if (uid !== undefined && gid !== undefined) return { uid, gid };
    const passwd = await this.readContainerFile(host, name, '/etc/passwd', io);
    const pw = passwd.split('\n').map((l) => l.split(':'));
    const entry = uid === undefined ? pw.find((f) => f[0] === u) : pw.find((f) => f[2] === String(uid));
    if (uid === undefined) {
      if (!entry) throw new DockerError('DOCKER_FAILED', `stage ${job.stage}: user ${u} is not in the image's /etc/passwd; fix \`user\` of runner ${this.name}`, { stage: job.stage });
      uid = Number(entry[2]);
    }
    if (g === undefined) gid = entry ? Number(entry[3]) : 0;
    else if (gid === undefined) {
      const group = (await this.readContainerFile(host, name, '/etc/group', io)).split('\n').map((l) => l.split(':'));
      const ge = group.find((f) => f[0] === g);
      if (!ge) throw new DockerError('DOCKER_FAILED', `stage ${job.stage}: group ${g} is not in the image's /etc/group; fix \`user\` of runner ${this.name}`, { stage: job.stage });
      gid = Number(ge[2]);
    }
    return { uid, gid: gid ?? 0 };
  }

  private async readContainerFile(host: Host, name: string, file: string, io: JobIO): Promise<string> {
    const call = this.start(host, ['cp', `${name}:${file}`, '-'], { stdout: 'pipe', io });
    const ex = tar.extract();
    let text = '';
    const reading = (async () => {
      for await (const e of ex) {
        if (e.header.type === 'file' && text.length < 1 << 20) for await (const c of e) text += (c as Buffer).toString('utf8');
        else e.resume();
      }
    })();
    call.child.stdout!.pipe(ex);
    const [r] = await Promise.all([call.done, reading.catch(() => undefined)]);
    if (r.code !== 0 && classifyFailure(r.stderr).kind !== 'no-file') throw this.failure(host, r, {});
    return text;
  }

  /**
   * Sends every input as ONE tar stream into `docker cp - CONTAINER:/`:
   * files at `/tdv/repo/<path>` with mode 0644 or 0755 (exec), directories
   * for the inputs, the working directory and the outputs' parents, all owned
   * by the container's user. Each file is streamed from the cache; nothing is
   * read whole, no process per file.
   */
  private async sendInputs(host: Host, name: string, job: JobSpec, io: JobIO, ids: { uid: number; gid: number }): Promise<void> {
    const pack = newPack();
    const call = this.start(host, ['cp', '-', `${name}:/`], { stdin: pack, io, signal: io.signal });
    const rootName = CONTAINER_ROOT.slice(1);
    const dirs = new Set<string>();
    const addDir = (rel: string) => {
      for (let d = rel; d !== '.' && d !== '' && !dirs.has(d); d = path.posix.dirname(d)) dirs.add(d);
    };
    for (const f of job.inputs) addDir(path.posix.dirname(f.path));
    for (const o of job.outputs) addDir(path.posix.dirname(o));
    addDir(job.wdir);
    const files = [...job.inputs].sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
    const packing = (async () => {
      const mtime = new Date();
      await entry(pack, { name: 'tdv/', type: 'directory', mode: 0o755, uid: ids.uid, gid: ids.gid, mtime });
      await entry(pack, { name: `${rootName}/`, type: 'directory', mode: 0o755, uid: ids.uid, gid: ids.gid, mtime });
      for (const d of [...dirs].sort()) await entry(pack, { name: `${rootName}/${d}/`, type: 'directory', mode: 0o755, uid: ids.uid, gid: ids.gid, mtime });
      await writeEntries(
        pack,
        files.map((f) => ({ name: `${rootName}/${f.path}`, file: f, uid: ids.uid, gid: ids.gid })),
        io,
      );
    })().catch((err: unknown) => {
      pack.destroy(err as Error);
      call.child.kill('SIGKILL');
      throw err;
    });
    // docker's exit says why a copy failed (an input read error kills it: see the catch above);
    // a reader that went away rejects the packing, so nothing waits for a drain that never comes.
    packing.catch(() => undefined);
    const r = await call.done;
    if (r.code !== 0) {
      await packing.catch((err: unknown) => {
        if (err instanceof TdvError) throw err;
      });
      throw this.lostOr(host, r, job.stage, 'sending the inputs');
    }
    await packing;
  }

  /** `docker start --attach`: the command's output streamed as it comes; aborting removes the container, which ends the client. */
  private async attach(host: Host, name: string, io: JobIO): Promise<Exit> {
    const call = this.start(host, ['start', '--attach', '--', name], { io, onOutput: (c, s) => io.onOutput(c, s) });
    const onAbort = () => void this.remove(host, name);
    io.signal?.addEventListener('abort', onAbort, { once: true });
    try {
      const r = await call.done;
      if (r.spawnError) throw this.spawnFailure(r.spawnError);
      return r;
    } finally {
      io.signal?.removeEventListener('abort', onAbort);
    }
  }

  /**
   * Copies each declared output out (`docker cp CONTAINER:PATH -`, a tar on
   * stdout) and writes it under io.staging, checking each entry before a
   * byte is written and hashing while writing. An output the container did
   * not create is absent from the result: repro reports it.
   */
  private async fetchOutputs(host: Host, name: string, job: JobSpec, io: JobIO): Promise<JobFile[]> {
    const guard = new Guard(io.staging, { label: `the staging directory of stage ${job.stage}` });
    const out: JobFile[] = [];
    const seen = new Set<string>();
    const refuse = (why: string) =>
      new TdvError('JOB_OUTPUT_REFUSED', `stage ${job.stage}: runner ${this.name} brought back ${why}; nothing was recorded, fix the stage's command`, { data: { stage: job.stage } });
    for (const output of [...job.outputs].sort()) {
      const call = this.start(host, ['cp', '--', `${name}:${path.posix.join(CONTAINER_ROOT, output)}`, '-'], { stdout: 'pipe', io, signal: io.signal });
      const ex = tar.extract();
      const reading = (async () => {
        for await (const e of ex) {
          const r = outputEntryPath(output, e.header);
          if ('refused' in r) throw refuse(r.refused);
          if (seen.has(r.path)) throw refuse(`${JSON.stringify(r.path)} twice`);
          seen.add(r.path);
          if (e.header.type === 'directory') {
            guard.mkdirp(r.path, `runner ${this.name}`);
            e.resume();
            continue;
          }
          out.push(await writeStaged(guard, r.path, e as AsyncIterable<Buffer>, ((e.header.mode ?? 0) & 0o111) !== 0));
        }
      })();
      call.child.stdout!.pipe(ex);
      let failed: unknown;
      await reading.catch((err: unknown) => {
        failed = err;
        call.child.kill('SIGKILL');
      });
      const r = await call.done;
      if (failed) throw failed;
      if (r.code !== 0) {
        if (classifyFailure(r.stderr).kind === 'no-file') continue;
        throw this.lostOr(host, r, job.stage, `copying out ${output}`);
      }
    }
    return out;
  }

  // --- docker processes -----------------------------------------------------

  /** Starts one docker CLI process on `host` (undefined: this machine's default daemon). */
  private start(
    host: Host | undefined,
    args: string[],
    opts: { stdin?: Pipeable; stdout?: 'pipe'; io?: JobIO; signal?: AbortSignal; onOutput?: (c: Buffer, s: 'stdout' | 'stderr') => void } = {},
  ): Call {
    const argv = [...(host?.args ?? []), ...args];
    opts.io?.onDebug?.(commandLine(this.docker, argv));
    const child = spawn(this.docker, argv, { env: host?.env ?? this.localEnv, stdio: [opts.stdin ? 'pipe' : 'ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    let spawnError: NodeJS.ErrnoException | undefined;
    child.on('error', (e: NodeJS.ErrnoException) => {
      spawnError ??= e;
    });
    if (opts.stdin) {
      // EPIPE when docker exits early (a refused copy): its exit status tells why.
      child.stdin!.on('error', () => undefined);
      opts.stdin.pipe(child.stdin!);
    }
    if (opts.stdout !== 'pipe') {
      child.stdout!.on('data', (c: Buffer) => {
        if (opts.onOutput) opts.onOutput(c, 'stdout');
        else stdout = (stdout + c.toString('utf8')).slice(-TAIL);
      });
    }
    child.stderr!.on('data', (c: Buffer) => {
      opts.onOutput?.(c, 'stderr');
      stderr = (stderr + c.toString('utf8')).slice(-TAIL);
    });
    const onAbort = () => child.kill('SIGKILL');
    opts.signal?.addEventListener('abort', onAbort, { once: true });
    const done = new Promise<Exit>((resolve) => {
      child.on('close', (code, signal) => {
        opts.signal?.removeEventListener('abort', onAbort);
        resolve({ code, signal, stdout, stderr, spawnError });
      });
    });
    return { child, done };
  }

  /** Runs one short docker command, collecting its output; a missing CLI throws. */
  private async call(host: Host | undefined, args: string[], opts: { io?: JobIO; signal?: AbortSignal } = {}): Promise<Exit> {
    const r = await this.start(host, args, opts).done;
    if (r.spawnError) throw this.spawnFailure(r.spawnError);
    return r;
  }

  /** `docker rm --force`, quietly: true when the container is gone (removed now or before). */
  private async remove(host: Host, name: string): Promise<boolean> {
    try {
      const r = await this.call(host, ['rm', '--force', '--', name]);
      return r.code === 0 || /No such container/i.test(r.stderr);
    } catch {
      return false;
    }
  }

  // --- errors ---------------------------------------------------------------

  private spawnFailure(e: NodeJS.ErrnoException): DockerError {
    if (e.code === 'ENOENT') {
      return new DockerError(
        'DOCKER_NOT_INSTALLED',
        `runner ${this.name}: the docker CLI is not installed (no \`${this.docker}\` command on PATH); install it (e.g. \`apt-get install docker.io\`): it reaches the Docker hosts`,
      );
    }
    return new DockerError('DOCKER_FAILED', `runner ${this.name}: cannot run ${this.docker}: ${e.message}`, { code: e.code });
  }

  /** A docker failure before the stage's container existed: host unreachable, permission, image, other. */
  private failure(host: Host | undefined, r: Exit, ctx: { stage?: string; image?: string }): DockerError {
    if (r.spawnError) return this.spawnFailure(r.spawnError);
    const where = host ? host.url : 'this machine';
    const f = classifyFailure(r.stderr);
    const data = { host: host?.url, stage: ctx.stage, image: ctx.image };
    switch (f.kind) {
      case 'permission':
        return new DockerError(
          'DOCKER_PERMISSION',
          `runner ${this.name}: permission denied on the Docker daemon at ${where}; give the user there access to it (the docker group) or fix \`hosts\``,
          data,
        );
      case 'connection':
        if (/Permission denied \(|Host key verification failed|REMOTE HOST IDENTIFICATION HAS CHANGED/i.test(r.stderr)) {
          return new DockerError(
            'DOCKER_PERMISSION',
            `runner ${this.name}: ssh refused the connection to ${where} (${f.detail}); set up the key (ssh-agent, ~/.ssh/config) and known_hosts for it, or fix \`hosts\``,
            data,
          );
        }
        return new DockerError(
          'DOCKER_DAEMON_DOWN',
          `runner ${this.name}: cannot reach the Docker daemon at ${where} (${f.detail}); check that the host is up and dockerd runs there, or fix \`hosts\``,
          data,
        );
      case 'no-image':
        return new DockerError('IMAGE_NOT_FOUND', `runner ${this.name}: Docker image ${ctx.image ?? ''} is not on ${where}; pull or build it there, or here (tdv copies it over)`, data);
      default:
        return new DockerError('DOCKER_FAILED', `runner ${this.name}: docker failed on ${where}${ctx.stage ? ` (stage ${ctx.stage})` : ''}: ${f.detail || `exit ${r.code}`}`, data);
    }
  }

  /** A failure once the container exists: a connection problem there means the stage's connection was lost. */
  private lostOr(host: Host, r: Exit, stage: string, doing: string): TdvError {
    if (r.spawnError) return this.spawnFailure(r.spawnError);
    const f = classifyFailure(r.stderr);
    if (f.kind === 'connection' || r.signal) return this.lost(host, stage, `${doing}: ${f.detail || r.signal}`);
    return this.failure(host, r, { stage });
  }

  private lost(host: Host, stage: string, detail: string): TdvError {
    return new TdvError('RUNNER_LOST', `runner ${this.name}: lost the connection to ${host.url} during stage ${stage} (${detail}); nothing was recorded for it; run tdv repro again`, {
      data: { runner: this.name, host: host.url, stage },
    });
  }
}

// ---------------------------------------------------------------------------
// Helpers

function checkRef(ref: string): void {
  // eslint-disable-next-line no-control-regex
  if (ref === '' || ref.startsWith('-') || /[\s\x00-\x1f\x7f]/.test(ref)) {
    throw new DockerError('BAD_IMAGE_REF', `${JSON.stringify(ref)} is not a Docker image reference; fix \`image:\` in tdv.yaml`, { image: ref });
  }
}

/** Paths a job names must be legal repo-relative paths: they become tar entries and `docker cp` paths. */
function checkJob(job: JobSpec): void {
  const bad = (what: string, p: string, problem: string) =>
    new TdvError('JOB_FAILED', `stage ${job.stage}: ${what} ${JSON.stringify(p)} ${problem}; fix tdv.yaml`, { data: { stage: job.stage, path: p } });
  for (const f of job.inputs) {
    const problem = relPathProblem(f.path);
    if (problem !== undefined) throw bad('input', f.path, problem);
  }
  for (const o of job.outputs) {
    const problem = relPathProblem(o);
    if (problem !== undefined) throw bad('output', o, problem);
  }
  if (job.wdir !== '.' && job.wdir !== '') {
    const problem = relPathProblem(job.wdir);
    if (problem !== undefined) throw bad('wdir', job.wdir, problem);
  }
}

function splitOnce(s: string, sep: string): [string, string] {
  const i = s.indexOf(sep);
  return i < 0 ? [s, ''] : [s.slice(0, i), s.slice(i + sep.length)];
}

function pick(env: NodeJS.ProcessEnv, keys: string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const k of keys) if (env[k] !== undefined) out[k] = env[k];
  return out;
}

function isoOr(t: string | undefined, fallback: string): string {
  const d = t ? new Date(t) : undefined;
  return d && !Number.isNaN(d.getTime()) && d.getTime() > 0 ? d.toISOString() : fallback;
}

type TarHeader = Partial<tar.Header> & { name: string };

/** A tar writer whose errors reach the entries' callbacks (an 'error' event nobody listens to would end the process). */
function newPack(): tar.Pack {
  const pack = tar.pack();
  pack.on('error', () => undefined);
  return pack;
}

/** Adds one entry without a body. */
function entry(pack: tar.Pack, header: TarHeader): Promise<void> {
  if (pack.destroying) return Promise.reject(new Error('the tar stream into docker was closed'));
  return new Promise((resolve, reject) => pack.entry(header, (err) => (err ? reject(err) : resolve())).on('error', () => undefined));
}

/**
 * Files up to this size are read whole, synchronously; larger ones stream
 * (memory stays flat). For 20,000 files of 4 KiB, synchronous reads pack the
 * tar in 0.7-0.9 s against 3.5 s awaiting each read (2.4 s with 32 reads in
 * flight): the thread pool's round trip costs more than the read. One read of
 * 64 KiB holds the event loop for tens of microseconds.
 */
const SMALL = 64 << 10;

/**
 * Appends each file, its bytes read from the cache (`io.inputPath`), then
 * finalizes the tar. When the reader goes away (docker exits early: a lost
 * connection), streamx destroys the pack and each entry's callback gets the
 * error: this rejects instead of waiting for a drain that never comes.
 */
async function writeEntries(pack: tar.Pack, items: { name: string; file: JobFile; uid: number; gid: number }[], io: JobIO): Promise<void> {
  const closed = () => new Error('the tar stream into docker was closed');
  const mtime = new Date();
  for (let i = 0; i < items.length; i++) {
    const { name, file, uid, gid } = items[i]!;
    const header: TarHeader = { name, type: 'file', size: file.size, mode: file.exec ? 0o755 : 0o644, uid, gid, mtime };
    if (pack.destroying) throw closed();
    let settle: { resolve: () => void; reject: (e: Error) => void } = { resolve: () => undefined, reject: () => undefined };
    const written = new Promise<void>((resolve, reject) => (settle = { resolve, reject }));
    if (file.size <= SMALL) {
      let buf: Buffer;
      try {
        buf = readSmall(io.inputPath(file), file.size);
      } catch (err) {
        throw unreadable(file, err);
      }
      if (buf.length !== file.size) throw new TdvError('JOB_FAILED', `input ${file.path}: its cached object has ${buf.length} bytes, not ${file.size}; run tdv fsck`, { data: { path: file.path } });
      if (pack.destroying) throw closed();
      pack.entry(header, buf, (err) => (err ? settle.reject(err) : settle.resolve())).on('error', () => undefined);
      await written;
      continue;
    }
    // streamx's Writable, driven as a node one: write, wait for 'drain' (or the end of the pack), end.
    const sink = pack.entry(header, (err) => (err ? settle.reject(err) : settle.resolve()));
    sink.on('error', () => undefined);
    const node = sink as unknown as NodeJS.WritableStream;
    written.catch(() => undefined);
    const fh = await fs.promises.open(io.inputPath(file), fs.constants.O_RDONLY | (fs.constants.O_NOFOLLOW ?? 0)).catch((err: unknown) => {
      throw unreadable(file, err);
    });
    try {
      const chunks = fh.createReadStream({ highWaterMark: 1 << 20, autoClose: false }) as AsyncIterable<Buffer>;
      const it = chunks[Symbol.asyncIterator]();
      for (;;) {
        const step = await it.next().catch((err: unknown) => {
          throw unreadable(file, err);
        });
        if (step.done || sink.destroying) break;
        if (!node.write(step.value)) await Promise.race([new Promise((resolve) => node.once('drain', resolve)), written.catch(() => undefined)]);
      }
      await it.return?.();
    } finally {
      await fh.close();
    }
    if (!sink.destroying) node.end();
    await written;
  }
  pack.finalize();
}

/** An input whose cached object cannot be read: this machine's problem, not the host's. */
function unreadable(file: JobFile, err: unknown): TdvError {
  const e = err as NodeJS.ErrnoException;
  return new TdvError('JOB_FAILED', `input ${file.path}: cannot read its cached object (${e.code ?? e.message}); run tdv fsck, or tdv pull to fetch it again`, {
    data: { path: file.path, code: e.code },
  });
}

/** A small file's bytes (at most `expect` + 1, so a grown file shows as a size mismatch), never through a symlink. */
function readSmall(file: string, expect: number): Buffer {
  const fd = fs.openSync(file, fs.constants.O_RDONLY | (fs.constants.O_NOFOLLOW ?? 0));
  try {
    const buf = Buffer.allocUnsafe(expect + 1);
    let n = 0;
    for (;;) {
      const got = fs.readSync(fd, buf, n, buf.length - n, n);
      if (got === 0) break;
      n += got;
      if (n === buf.length) break;
    }
    return buf.subarray(0, n);
  } finally {
    fs.closeSync(fd);
  }
}

/** Writes one regular file from a tar entry under the staging guard, hashing while writing. */
async function writeStaged(guard: Guard, rel: string, body: AsyncIterable<Buffer>, exec: boolean): Promise<JobFile> {
  const fd = guard.openForWrite(rel, 'docker cp');
  const h = createHash('sha256');
  let size = 0;
  try {
    for await (const chunk of body) {
      h.update(chunk);
      let off = 0;
      while (off < chunk.length) off += (await fsWrite(fd, chunk, off, chunk.length - off)).bytesWritten;
      size += chunk.length;
    }
    if (exec) fs.fchmodSync(fd, 0o755);
  } finally {
    fs.closeSync(fd);
  }
  return { path: rel, sha256: h.digest('hex'), size, ...(exec ? { exec: true } : {}) };
}

export const runnerModule: RunnerModule = {
  configSchema: configSchema as unknown as v.GenericSchema<Record<string, unknown>>,
  configKeys,
  create(cfg: RunnerConfig, ctx: RunnerContext): JobRunner {
    const r = v.safeParse(configSchema, cfg);
    if (!r.success) {
      const issue = r.issues[0];
      const key = issue.path?.map((p) => String(p.key)).join('.') ?? '';
      throw new TdvError('RUNNER_UNAVAILABLE', `runner ${cfg.name}: ${key && !issue.message.startsWith(key) ? `${key}: ` : ''}${issue.message}; fix it with \`tdv runner modify ${cfg.name}\``, {
        data: { runner: cfg.name },
      });
    }
    const c = r.output as DockerHostConfig;
    return new DockerHostRunner({ ...c, name: cfg.name }, ctx);
  },
};
