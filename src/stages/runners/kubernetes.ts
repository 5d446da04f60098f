/**
 * Kubernetes Jobs: one Job per stage, nothing shared with this machine but
 * the S3 remote, and no credential in the cluster but presigned URLs.
 *
 *   tdv                                  the Job's pod (one emptyDir at /tdv)
 *   ---                                  -----------------------------------
 *   inputs -> exchange/objects/<sha256>  init tdv-fetch (helper image): wget each
 *   fetch script (quoted paths + URLs)   input by its presigned URL into
 *     -> exchange/objects/<sha256>       /tdv/repo/<path>, check its sha256
 *   POST Job                             main (the stage's image, by digest):
 *   GET pods (status), GET log ------->  cd wdir; sh -c each command in turn;
 *                                        writes its exit code to /tdv/ctl/exit
 *                                        tdv-return (helper image): waits for
 *                                        /tdv/ctl/exit; on 0 tars the declared
 *                                        outputs that exist, lists their sha256,
 *   exchange/jobs/<job>/outputs.tar <--  POSTs both to presigned upload forms
 *   read, check, write under staging     (busybox wget can POST a file, not PUT)
 *   DELETE Job (Foreground)
 *
 * The user's image needs nothing but `sh`. Outputs go back by a second
 * container in the same pod rather than a native sidecar (Kubernetes 1.28+;
 * podman kube play has none) or a preStop hook (no ordering guarantee): it
 * starts beside the main container and waits for the marker, so the Job ends
 * only once the outputs are in the bucket. A main container killed before it
 * writes the marker (OOM, deadline) ends the run as failed; tdv then deletes
 * the Job, and the waiting helper with it.
 *
 * The API is spoken over plain HTTPS (node:https), not @kubernetes/client-node:
 * tdv needs six endpoints (create, read and delete a Job, list Jobs by label,
 * list a Job's pods, a container's log), and the client would bring a large
 * dependency tree into every install for them. Kubeconfig support covers what
 * is cheap and common (see loadKubeconfig); the rest is refused in one line.
 */
import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import os from 'node:os';
import path from 'node:path';
import { Readable, Transform } from 'node:stream';
import { createGunzip } from 'node:zlib';
import * as v from 'valibot';
import { parse as parseYaml } from 'yaml';
import { TdvError } from '../../errors.js';
import { relPathProblem } from '../../formats/paths.js';
import { Guard } from '../../workspace/guard.js';
import type { CleanupAction, JobFile, JobIO, JobResult, JobRunner, JobSpec, Resources, RunnerConfig, RunnerContext } from '../job.js';
import type { RunnerModule } from './registry.js';

/**
 * The official busybox 1.36.1 image (its multi-platform index), pinned as
 * several public projects pin it; not pulled here (no registry is reachable
 * where tdv is tested, whose helper is a busybox 1.35 built from Debian's
 * busybox-static): sh, wget, sha256sum, tar, gzip, base64.
 */
export const DEFAULT_HELPER_IMAGE = 'docker.io/library/busybox:1.36.1@sha256:73aaf090f3d85aa34ee199857f03fa3a95c8ede2ffd4cc2cdb5b94e566b11662';
/** Where the pod's emptyDir is mounted in every container; the repository's root is /tdv/repo. */
export const POD_ROOT = '/tdv';
const MAIN = 'main';
const FETCH = 'tdv-fetch';
const RETURN = 'tdv-return';
/** How often the Job and its pod are read while it runs. */
const POLL_MS = 500;
/** A pod that cannot start (unschedulable, image not pullable) fails the stage after this long. */
const PENDING_SECONDS = 300;
/** The API out of reach (or answering 5xx) this long while a Job runs loses the run (RUNNER_LOST). */
const LOST_MS = 60_000;
/** Finished Jobs (when tdv could not delete them) are removed by the cluster after this long. */
const TTL_SECONDS = 3600;

const configSchema = v.strictObject({
  kubeconfig: v.optional(v.string()),
  context: v.optional(v.string()),
  namespace: v.optional(v.string()),
  helper_image: v.optional(v.string()),
  remote: v.optional(v.string()),
  service_account: v.optional(v.string()),
  node_selector: v.optional(v.record(v.string(), v.string())),
  image_pull_secrets: v.optional(v.array(v.string())),
  active_deadline_seconds: v.optional(v.pipe(v.number(), v.integer(), v.minValue(1))),
  ttl_seconds: v.optional(v.pipe(v.number(), v.integer(), v.minValue(0))),
  pending_seconds: v.optional(v.pipe(v.number(), v.minValue(0))),
});
type K8sConfig = v.InferOutput<typeof configSchema>;

const configKeys: Record<string, string> = {
  kubeconfig: 'path of the kubeconfig (default $KUBECONFIG, then ~/.kube/config, then the in-cluster service account)',
  context: 'kubeconfig context (default its current-context)',
  namespace: "namespace of the Jobs (default the context's, else `default`)",
  helper_image: `image that moves the bytes (needs sh, wget, sha256sum, tar), pinned by digest (default ${DEFAULT_HELPER_IMAGE})`,
  remote: 'S3 remote that carries inputs and outputs (default core.remote)',
  service_account: "service account of the Jobs' pods",
  node_selector: 'node labels the pods must run on (a mapping)',
  image_pull_secrets: 'names of Secrets for pulling private images (a list)',
  active_deadline_seconds: 'a Job running longer is stopped by the cluster and the stage fails',
  ttl_seconds: `finished Jobs tdv could not delete are removed by the cluster after this (default ${TTL_SECONDS})`,
  pending_seconds: `a pod that cannot start this long fails the stage with its reason (default ${PENDING_SECONDS})`,
};

// ---------------------------------------------------------------------------
// The Job manifest: a pure function of what the stage needs.

/** What jobManifest needs: the stage, resolved to URLs and names. */
export interface ManifestInput {
  name: string;
  namespace: string;
  repoId: string;
  /** The tdv process that creates the Job (RunnerContext.owner): a sweep leaves a live owner's Jobs alone. */
  owner?: string;
  stage: string;
  /** The stage's image, pinned (`name@sha256:...`). */
  image: string;
  helperImage: string;
  cmd: string[];
  env: Record<string, string>;
  wdir: string;
  /** The fetch script's presigned URL and sha256 (see fetchScript). */
  fetch: { url: string; sha256: string };
  outputs: string[];
  /** Upload forms of the two output slots (S3 POST: url and fields). */
  upload: { tar: UploadForm; sums: UploadForm };
  resources?: Resources;
  serviceAccount?: string;
  nodeSelector?: Record<string, string>;
  imagePullSecrets?: string[];
  activeDeadlineSeconds?: number;
  ttlSeconds?: number;
}

export interface UploadForm {
  url: string;
  fields: Record<string, string>;
}

/** Label values: at most 63 of [A-Za-z0-9._-], starting and ending alphanumeric. */
function labelValue(s: string): string {
  const x = s
    .replace(/[^A-Za-z0-9._-]/g, '-')
    .slice(0, 63)
    .replace(/^[^A-Za-z0-9]+|[^A-Za-z0-9]+$/g, '');
  return x || 'x';
}

/** A Job name for `stage`: a DNS label (it becomes the pods' `job-name` label) with a random tail. */
export function jobName(stage: string): string {
  const base =
    stage
      .toLowerCase()
      .replace(/[^a-z0-9-]+/g, '-')
      .replace(/^-+|-+$/g, '')
      .slice(0, 40) || 'stage';
  return `tdv-${base}-${randomBytes(4).toString('hex')}`.replace(/--+/g, '-');
}

/** Inputs the init container downloads at once. */
const FETCH_AT_ONCE = 8;

/** Runs in the init container: fetches the fetch script, checks it, runs it (it calls `f` per input). */
const FETCH_SH = `set -eu
mkdir -p ${POD_ROOT}/repo ${POD_ROOT}/ctl
failed=${POD_ROOT}/ctl/fetch-failed
g() {
  d="${POD_ROOT}/repo/$4"
  mkdir -p "$(dirname "$d")" || return 1
  wget -q -O "$d" "$1" || { echo "tdv-fetch: cannot download $4" >&2; return 1; }
  got=$(sha256sum <"$d" | cut -d' ' -f1)
  [ "$got" = "$2" ] || { echo "tdv-fetch: $4 arrived with sha256 $got, not $2" >&2; return 1; }
  if [ "$3" = x ]; then chmod +x "$d"; fi
}
# ${FETCH_AT_ONCE} downloads at a time (each wget is a process and a connection: for many
# small inputs the latency, not the bandwidth, is the cost); the first failure stops it.
n=0
f() {
  (g "$@" || : >"$failed") &
  n=$((n + 1))
  if [ "$n" -ge ${FETCH_AT_ONCE} ]; then wait; n=0; [ ! -e "$failed" ] || exit 1; fi
}
wget -q -O ${POD_ROOT}/ctl/fetch.sh "$1" || { echo "tdv-fetch: cannot download the input list" >&2; exit 1; }
got=$(sha256sum <${POD_ROOT}/ctl/fetch.sh | cut -d' ' -f1)
[ "$got" = "$2" ] || { echo "tdv-fetch: the input list arrived with sha256 $got, not $2" >&2; exit 1; }
. ${POD_ROOT}/ctl/fetch.sh
wait
[ ! -e "$failed" ] || exit 1
mkdir -p "${POD_ROOT}/repo/$3"
chmod -R a+rwX ${POD_ROOT}/repo ${POD_ROOT}/ctl
`;

/** Runs in the stage's image with nothing but sh: each command by its own sh -c, then the exit code for tdv-return. */
const MAIN_SH = `cd "${POD_ROOT}/repo/$1" || { echo 1 >${POD_ROOT}/ctl/exit; exit 1; }
shift
for c in "$@"; do
  sh -c "$c" || { rc=$?; echo $rc >${POD_ROOT}/ctl/exit; exit $rc; }
done
echo 0 >${POD_ROOT}/ctl/exit
`;

/**
 * Runs beside main in the helper image: waits for the exit code; after a
 * success tars the declared outputs that exist (symlinks as symlinks: tdv
 * refuses them) with a sha256 list, and POSTs each to its form as a
 * multipart body built around the file (the form's fields are in the
 * environment, the boundary too). The tar travels gzipped and in base64:
 * busybox wget sends a --post-file up to its first NUL byte (it takes the
 * file's strlen), and a tar is full of them.
 */
const RETURN_SH = `set -u
until [ -s ${POD_ROOT}/ctl/exit ]; do sleep 1; done
[ "$(cat ${POD_ROOT}/ctl/exit)" = 0 ] || exit 0
cd ${POD_ROOT}/repo || exit 1
n=0
for o in "$@"; do
  shift
  if [ -e "./$o" ] || [ -L "./$o" ]; then set -- "$@" "./$o"; n=$((n+1)); fi
done
c=${POD_ROOT}/ctl
set -o pipefail
if [ "$n" -gt 0 ]; then
  tar -cf - "$@" | gzip -c | base64 >$c/out.b64 || exit 1
  find "$@" -type f -exec sha256sum {} + >$c/out.sha256 || exit 1
else
  : >$c/out.b64; : >$c/out.sha256
fi
post() {
  { printf '%s' "$2"; cat "$1"; printf '\\r\\n--%s--\\r\\n' "$TDV_BOUNDARY"; } >$c/body || exit 1
  wget -q -O /dev/null --header "Content-Type: multipart/form-data; boundary=$TDV_BOUNDARY" --post-file $c/body "$3" || { echo "tdv-return: uploading $1 failed" >&2; exit 1; }
}
post $c/out.b64 "$TDV_TAR_HEAD" "$TDV_TAR_URL"
post $c/out.sha256 "$TDV_SUMS_HEAD" "$TDV_SUMS_URL"
`;

/** The multipart/form-data head of an upload form: its fields, then the file part's header. */
export function formHead(form: UploadForm, boundary: string): string {
  let s = '';
  for (const [k, val] of Object.entries(form.fields)) s += `--${boundary}\r\nContent-Disposition: form-data; name="${k}"\r\n\r\n${val}\r\n`;
  return `${s}--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="upload"\r\nContent-Type: application/octet-stream\r\n\r\n`;
}

/** sh single quoting: any string as one word. */
export function shQuote(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

/** The input list the init container sources: one `f URL SHA256 x|- PATH` per input, every word quoted. */
export function fetchScript(inputs: readonly JobFile[], urls: ReadonlyMap<string, string>): string {
  let s = '';
  for (const f of inputs) {
    const url = urls.get(f.sha256);
    if (url === undefined) throw new Error(`no URL for ${f.sha256}`);
    s += `f ${shQuote(url)} ${f.sha256} ${f.exec ? 'x' : '-'} ${shQuote(f.path)}\n`;
  }
  return s;
}

/** The Job for one stage (pure: unit-tested, and its pod template run by podman kube play in tests). */
export function jobManifest(m: ManifestInput): Record<string, unknown> {
  const mount = [{ name: 'tdv', mountPath: POD_ROOT }];
  const res = m.resources;
  const amounts: Record<string, string> = {};
  if (res?.cpus !== undefined) amounts.cpu = String(res.cpus);
  if (res?.memory !== undefined) amounts.memory = String(res.memory);
  if (res?.gpus !== undefined) amounts['nvidia.com/gpu'] = String(res.gpus);
  const boundary = `tdv-${createHash('sha256').update(m.name).digest('hex').slice(0, 24)}`;
  const labels: Record<string, string> = { 'tdv.repo': labelValue(m.repoId), 'tdv.stage': labelValue(m.stage), ...(m.owner ? { 'tdv.owner': labelValue(m.owner) } : {}) };
  const spec: Record<string, unknown> = {
    restartPolicy: 'Never',
    volumes: [{ name: 'tdv', emptyDir: {} }],
    initContainers: [{ name: FETCH, image: m.helperImage, command: ['sh', '-c', FETCH_SH, FETCH, m.fetch.url, m.fetch.sha256, m.wdir === '.' ? '' : m.wdir], volumeMounts: mount }],
    containers: [
      {
        name: MAIN,
        image: m.image,
        command: ['sh', '-c', MAIN_SH, MAIN, m.wdir === '.' ? '' : m.wdir, ...m.cmd],
        env: Object.entries(m.env).map(([name, value]) => ({ name, value })),
        volumeMounts: mount,
        ...(Object.keys(amounts).length ? { resources: { requests: amounts, limits: amounts } } : {}),
      },
      {
        name: RETURN,
        image: m.helperImage,
        command: ['sh', '-c', RETURN_SH, RETURN, ...m.outputs],
        env: [
          { name: 'TDV_BOUNDARY', value: boundary },
          { name: 'TDV_TAR_URL', value: m.upload.tar.url },
          { name: 'TDV_TAR_HEAD', value: formHead(m.upload.tar, boundary) },
          { name: 'TDV_SUMS_URL', value: m.upload.sums.url },
          { name: 'TDV_SUMS_HEAD', value: formHead(m.upload.sums, boundary) },
        ],
        volumeMounts: mount,
      },
    ],
  };
  if (m.serviceAccount) spec.serviceAccountName = m.serviceAccount;
  if (m.nodeSelector) spec.nodeSelector = m.nodeSelector;
  if (m.imagePullSecrets?.length) spec.imagePullSecrets = m.imagePullSecrets.map((name) => ({ name }));
  return {
    apiVersion: 'batch/v1',
    kind: 'Job',
    metadata: { name: m.name, namespace: m.namespace, labels, annotations: { 'tdv.stage': m.stage } },
    spec: {
      backoffLimit: 0,
      ttlSecondsAfterFinished: m.ttlSeconds ?? TTL_SECONDS,
      ...(m.activeDeadlineSeconds ? { activeDeadlineSeconds: m.activeDeadlineSeconds } : {}),
      template: { metadata: { labels }, spec },
    },
  };
}

/** Why `ref` cannot run on a cluster, or undefined: nodes pull by reference, so it must name its digest. */
export function unpinnedProblem(ref: string): string | undefined {
  if (/^[^@\s]+@sha256:[0-9a-f]{64}$/.test(ref)) return undefined;
  if (/^(sha256:)?[0-9a-f]{64}$/.test(ref)) return `${ref} is an image ID, which names an image on one machine only`;
  return `${ref} is not pinned by digest`;
}

// ---------------------------------------------------------------------------
// kubeconfig and the API

/** How to reach the API server: what loadKubeconfig found. */
export interface ApiAccess {
  server: string;
  namespace: string;
  ca?: string;
  cert?: string;
  key?: string;
  insecure?: boolean;
  token?: string;
  /** Where this came from, for messages. */
  source: string;
}

type Named<T> = { name?: string } & T;
interface KubeconfigDoc {
  'current-context'?: string;
  contexts?: Named<{ context?: { cluster?: string; user?: string; namespace?: string } }>[];
  clusters?: Named<{ cluster?: Record<string, unknown> }>[];
  users?: Named<{ user?: Record<string, unknown> }>[];
}

function unavailable(name: string, message: string): TdvError {
  return new TdvError('RUNNER_UNAVAILABLE', `runner ${name}: ${message}`);
}

/**
 * Reads the kubeconfig as kubectl would: `kubeconfig` (the runner's key),
 * else $KUBECONFIG (a `:`-separated list, merged: the first file naming an
 * entry wins), else ~/.kube/config, else the in-cluster service account.
 * Supported: server, certificate-authority(-data), insecure-skip-tls-verify,
 * client-certificate(-data), client-key(-data), token, tokenFile, and exec
 * credential plugins (run each time a runner is made). auth-provider and
 * username/password are refused in one line.
 */
export async function loadKubeconfig(runner: string, cfg: K8sConfig, env: NodeJS.ProcessEnv): Promise<ApiAccess> {
  const home = env.HOME ?? os.homedir();
  const files = cfg.kubeconfig ? [path.resolve(cfg.kubeconfig.replace(/^~(?=\/)/, home))] : env.KUBECONFIG ? env.KUBECONFIG.split(':').filter(Boolean) : [path.join(home, '.kube', 'config')];
  const docs: { file: string; doc: KubeconfigDoc }[] = [];
  for (const file of files) {
    let text: string;
    try {
      text = fs.readFileSync(file, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT' && !cfg.kubeconfig) continue;
      throw unavailable(runner, `cannot read kubeconfig ${file}: ${(err as Error).message}`);
    }
    try {
      docs.push({ file, doc: (parseYaml(text) ?? {}) as KubeconfigDoc });
    } catch (err) {
      throw unavailable(runner, `kubeconfig ${file} is not YAML: ${(err as Error).message.split('\n')[0]}`);
    }
  }
  if (docs.length === 0) return inCluster(runner, cfg, env);
  const find = <T>(key: 'contexts' | 'clusters' | 'users', name: string): { item: T; dir: string } | undefined => {
    for (const { file, doc } of docs) {
      const hit = (doc[key] as Named<T>[] | undefined)?.find((x) => x?.name === name);
      if (hit) return { item: hit, dir: path.dirname(file) };
    }
    return undefined;
  };
  const shown = docs.map((d) => d.file).join(':');
  const ctxName = cfg.context ?? docs.find((d) => d.doc['current-context'])?.doc['current-context'];
  if (!ctxName) throw unavailable(runner, `kubeconfig ${shown} names no current-context; set the runner's context key`);
  const ctx = find<{ context?: { cluster?: string; user?: string; namespace?: string } }>('contexts', ctxName)?.item.context;
  if (!ctx) throw unavailable(runner, `kubeconfig ${shown} has no context ${JSON.stringify(ctxName)}`);
  const clusterHit = ctx.cluster === undefined ? undefined : find<{ cluster?: Record<string, unknown> }>('clusters', ctx.cluster);
  const cluster = clusterHit?.item.cluster;
  if (!cluster || typeof cluster.server !== 'string') throw unavailable(runner, `kubeconfig ${shown}: context ${ctxName} names no cluster with a server`);
  const access: ApiAccess = { server: cluster.server.replace(/\/+$/, ''), namespace: cfg.namespace ?? ctx.namespace ?? 'default', source: `context ${ctxName} of ${shown}` };
  const fileOrData = (obj: Record<string, unknown>, key: string, dir: string): string | undefined => {
    const data = obj[`${key}-data`];
    if (typeof data === 'string') return Buffer.from(data, 'base64').toString();
    const file = obj[key];
    if (typeof file !== 'string') return undefined;
    try {
      return fs.readFileSync(path.resolve(dir, file), 'utf8');
    } catch (err) {
      throw unavailable(runner, `kubeconfig ${shown}: cannot read ${key} ${file}: ${(err as Error).message}`);
    }
  };
  access.ca = fileOrData(cluster, 'certificate-authority', clusterHit!.dir);
  if (cluster['insecure-skip-tls-verify'] === true) access.insecure = true;
  if (ctx.user === undefined) return access;
  const userHit = find<{ user?: Record<string, unknown> }>('users', ctx.user);
  const user = userHit?.item.user ?? {};
  access.cert = fileOrData(user, 'client-certificate', userHit?.dir ?? '.');
  access.key = fileOrData(user, 'client-key', userHit?.dir ?? '.');
  if (typeof user.token === 'string') access.token = user.token;
  else if (typeof user.tokenFile === 'string') {
    try {
      access.token = fs.readFileSync(path.resolve(userHit!.dir, user.tokenFile), 'utf8').trim();
    } catch (err) {
      throw unavailable(runner, `kubeconfig ${shown}: cannot read tokenFile ${user.tokenFile}: ${(err as Error).message}`);
    }
  } else if (user.exec && typeof user.exec === 'object') {
    Object.assign(access, await execCredential(runner, user.exec as Record<string, unknown>, env, shown));
  } else if (user['auth-provider'] || user.username) {
    const what = user['auth-provider'] ? 'auth-provider' : 'username/password';
    throw unavailable(runner, `kubeconfig ${shown}: user ${ctx.user} logs in by ${what}, which tdv does not support; use a token, a client certificate or an exec credential plugin`);
  }
  return access;
}

/** Runs an exec credential plugin (client.authentication.k8s.io) and takes the token or certificate it prints. */
async function execCredential(runner: string, exec: Record<string, unknown>, env: NodeJS.ProcessEnv, shown: string): Promise<Partial<ApiAccess>> {
  const { execa } = await import('execa');
  const command = String(exec.command ?? '');
  const args = Array.isArray(exec.args) ? exec.args.map(String) : [];
  const extra = Object.fromEntries(((exec.env as { name: string; value: string }[] | undefined) ?? []).map((e) => [e.name, e.value]));
  const apiVersion = typeof exec.apiVersion === 'string' ? exec.apiVersion : 'client.authentication.k8s.io/v1';
  const r = await execa(command, args, {
    env: { ...env, ...extra, KUBERNETES_EXEC_INFO: JSON.stringify({ apiVersion, kind: 'ExecCredential', spec: { interactive: false } }) },
    extendEnv: false,
    reject: false,
    timeout: 60_000,
    stdin: 'ignore',
  });
  if (r.exitCode !== 0) {
    const why = r.failed && r.exitCode === undefined ? (r.shortMessage ?? 'did not run') : `exit ${r.exitCode}: ${String(r.stderr).split('\n')[0]}`;
    throw unavailable(runner, `kubeconfig ${shown}: the credential plugin ${command} failed (${why})`);
  }
  let status: { token?: string; clientCertificateData?: string; clientKeyData?: string } | undefined;
  try {
    status = (JSON.parse(String(r.stdout)) as { status?: typeof status }).status;
  } catch {
    // reported below
  }
  if (!status || (!status.token && !status.clientCertificateData))
    throw unavailable(runner, `kubeconfig ${shown}: the credential plugin ${command} printed no ExecCredential with a token or certificate`);
  return { token: status.token, cert: status.clientCertificateData, key: status.clientKeyData };
}

const SA_DIR = '/var/run/secrets/kubernetes.io/serviceaccount';

function inCluster(runner: string, cfg: K8sConfig, env: NodeJS.ProcessEnv): ApiAccess {
  const host = env.KUBERNETES_SERVICE_HOST;
  const port = env.KUBERNETES_SERVICE_PORT ?? '443';
  if (!host || !fs.existsSync(`${SA_DIR}/token`)) {
    throw unavailable(runner, `no kubeconfig (${cfg.kubeconfig ?? env.KUBECONFIG ?? '~/.kube/config'}) and not inside a cluster; set KUBECONFIG or the runner's kubeconfig key`);
  }
  const read = (f: string) => fs.readFileSync(`${SA_DIR}/${f}`, 'utf8').trim();
  const ns = fs.existsSync(`${SA_DIR}/namespace`) ? read('namespace') : 'default';
  return { server: `https://${host.includes(':') ? `[${host}]` : host}:${port}`, namespace: cfg.namespace ?? ns, ca: read('ca.crt'), token: read('token'), source: 'the in-cluster service account' };
}

interface ApiStatus {
  message?: string;
  reason?: string;
}

/** The six requests tdv makes, over node:https (or http for a plain-HTTP server). */
export class KubeApi {
  private readonly agent: http.Agent;

  constructor(
    private readonly runner: string,
    readonly access: ApiAccess,
  ) {
    this.agent = access.server.startsWith('https:')
      ? new https.Agent({ keepAlive: true, ca: access.ca, cert: access.cert, key: access.key, rejectUnauthorized: !access.insecure })
      : new http.Agent({ keepAlive: true });
  }

  headers(): Record<string, string> {
    return this.access.token ? { authorization: `Bearer ${this.access.token}` } : {};
  }

  jobsPath(name?: string): string {
    return `/apis/batch/v1/namespaces/${encodeURIComponent(this.access.namespace)}/jobs${name ? `/${name}` : ''}`;
  }

  podsPath(): string {
    return `/api/v1/namespaces/${encodeURIComponent(this.access.namespace)}/pods`;
  }

  /** A request whose answer is JSON; a status other than 2xx is a one-line error. */
  async json<T>(method: string, p: string, body?: unknown, signal?: AbortSignal): Promise<T> {
    const res = await this.open(method, p, body, signal);
    const text = await readAll(res);
    if (res.statusCode! >= 300) throw this.apiError(method, p, res.statusCode!, text);
    return JSON.parse(text) as T;
  }

  /** A streamed response (a log), or an error as json() gives. */
  async stream(p: string, signal?: AbortSignal): Promise<http.IncomingMessage> {
    const res = await this.open('GET', p, undefined, signal);
    if (res.statusCode! >= 300) throw this.apiError('GET', p, res.statusCode!, await readAll(res));
    return res;
  }

  private open(method: string, p: string, body: unknown, signal?: AbortSignal): Promise<http.IncomingMessage> {
    const url = new URL(this.access.server + p);
    const data = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
    const mod = url.protocol === 'https:' ? https : http;
    return new Promise((resolve, reject) => {
      const req = mod.request(
        url,
        {
          method,
          agent: this.agent,
          signal,
          headers: { accept: 'application/json', ...this.headers(), ...(data ? { 'content-type': 'application/json', 'content-length': String(data.length) } : {}) },
        },
        resolve,
      );
      req.on('error', (err: NodeJS.ErrnoException) => {
        if (err.name === 'AbortError') reject(err);
        else reject(unavailable(this.runner, `cannot reach the Kubernetes API at ${this.access.server} (${this.access.source}): ${err.code ?? err.message}`));
      });
      req.end(data);
    });
  }

  private apiError(method: string, p: string, status: number, text: string): TdvError {
    let st: ApiStatus = {};
    try {
      st = JSON.parse(text) as ApiStatus;
    } catch {
      st = { message: text.split('\n')[0]?.slice(0, 200) };
    }
    const what = `${method} ${p.split('?')[0]}: HTTP ${status}${st.reason ? ` ${st.reason}` : ''}: ${st.message ?? 'no message'}`;
    // Refusals of the runner itself (credentials, permissions, a namespace that is not there) are configuration.
    const code = status === 401 || status === 403 || (status === 404 && method === 'POST') ? 'RUNNER_UNAVAILABLE' : 'JOB_FAILED';
    const hint =
      status === 401
        ? '; check the credentials in the kubeconfig'
        : status === 403
          ? `; the account needs create, get, list, delete on jobs and get, list on pods and pods/log in namespace ${this.access.namespace}`
          : '';
    return new TdvError(code, `runner ${this.runner}: Kubernetes API ${what}${hint}`, { data: { status } });
  }

  close(): void {
    this.agent.destroy();
  }
}

async function readAll(res: AsyncIterable<unknown>): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of res) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString();
}

// ---------------------------------------------------------------------------
// The runner

interface ContainerStatus {
  name: string;
  imageID?: string;
  state?: {
    waiting?: { reason?: string; message?: string };
    running?: { startedAt?: string };
    terminated?: { exitCode: number; reason?: string; message?: string; startedAt?: string; finishedAt?: string };
  };
}
interface Pod {
  metadata: { name: string };
  spec?: { nodeName?: string };
  status?: {
    phase?: string;
    reason?: string;
    message?: string;
    conditions?: { type: string; status: string; reason?: string; message?: string }[];
    initContainerStatuses?: ContainerStatus[];
    containerStatuses?: ContainerStatus[];
  };
}
interface Job {
  metadata: { name: string; labels?: Record<string, string> };
  status?: { active?: number; succeeded?: number; failed?: number; completionTime?: string; conditions?: { type: string; status: string; reason?: string; message?: string }[] };
}

type Slot = Awaited<ReturnType<NonNullable<JobIO['exchange']>['outputSlot']>>;

/** A Job ready to be created: its manifest and its output slots (outputs, sha256 list). */
export interface Prepared {
  manifest: Record<string, unknown>;
  slots: [Slot, Slot];
}

/** Waiting reasons that will not go away by themselves. */
const HOPELESS = new Set(['InvalidImageName', 'CreateContainerConfigError', 'CreateContainerError', 'ErrImageNeverPull']);

export class KubernetesRunner implements JobRunner {
  readonly type = 'kubernetes';
  private apiP: Promise<KubeApi> | undefined;

  constructor(
    readonly name: string,
    private readonly cfg: K8sConfig,
    private readonly ctx: RunnerContext,
  ) {}

  private api(): Promise<KubeApi> {
    this.apiP ??= loadKubeconfig(this.name, this.cfg, this.ctx.env).then((a) => new KubeApi(this.name, a));
    return this.apiP;
  }

  async resolveImage(ref: string): Promise<string | undefined> {
    return unpinnedProblem(ref) === undefined ? ref.slice(ref.indexOf('@') + 1) : undefined;
  }

  async run(job: JobSpec, io: JobIO): Promise<JobResult> {
    // Refused before the cluster or the remote is asked anything.
    this.image(job);
    this.exchangeOf(job, io);
    const api = await this.api();
    const name = jobName(job.stage);
    let prepared: Prepared;
    try {
      prepared = await this.prepare(job, io, name, api.access.namespace);
    } catch (err) {
      // Interrupted while the inputs were uploading: nothing runs yet, nothing to stop.
      if (io.signal?.aborted) return interrupted(name);
      throw err;
    }
    if (io.signal?.aborted) return interrupted(name);
    io.onDebug?.(`kubernetes: POST ${api.access.server}${api.jobsPath()} (${name}, ${job.inputs.length} inputs)`);
    await api.json('POST', api.jobsPath(), prepared.manifest);
    const done = io.onCleanup?.(this.cleanupOf(api, name)) ?? (() => {});
    try {
      const run = await this.follow(api, name, io);
      if (run.result.exitCode !== 0 || io.signal?.aborted) return run.result;
      run.result.outputs = await this.collect(job, io, prepared, name);
      return run.result;
    } finally {
      // Released only once the Job is gone: one tdv could not delete (the API lost) stays
      // registered, for the reaper or the next repro to delete.
      if (
        await this.deleteJob(api, name).then(
          () => true,
          () => false,
        )
      )
        done();
      await Promise.allSettled(prepared.slots.map((s) => s.remove()));
    }
  }

  /**
   * Everything before the Job is created: the inputs and the input list in
   * the exchange, the two output slots, and the manifest. (Public for the
   * test that runs the manifest's pod with podman kube play.)
   */
  async prepare(job: JobSpec, io: JobIO, name: string, namespace: string): Promise<Prepared> {
    const image = this.image(job);
    const exchange = this.exchangeOf(job, io);
    const inputs = [...job.inputs];
    const urls = await exchange.inputUrls(inputs, (f) => io.openInput(f), io.signal);
    // The input list travels as an input too: a Job's spec has a size limit (etcd's 1.5 MB), 20,000 URLs do not fit.
    const script = Buffer.from(fetchScript(inputs, urls));
    const list: JobFile = { path: '.tdv-fetch.sh', sha256: createHash('sha256').update(script).digest('hex'), size: script.length };
    const listUrl = (await exchange.inputUrls([list], () => Readable.from([script]), io.signal)).get(list.sha256)!;
    const tarSlot = await exchange.outputSlot(name, 'outputs.tgz.b64');
    const sumSlot = await exchange.outputSlot(name, 'outputs.sha256');
    if (!tarSlot.form || !sumSlot.form) throw unavailable(this.name, 'the remote cannot sign upload forms, which the Job needs to return its outputs');
    const manifest = jobManifest({
      name,
      namespace,
      repoId: this.ctx.repoId,
      owner: this.ctx.owner,
      stage: job.stage,
      image,
      helperImage: this.cfg.helper_image ?? DEFAULT_HELPER_IMAGE,
      cmd: job.cmd,
      env: job.env,
      wdir: job.wdir,
      fetch: { url: listUrl, sha256: list.sha256 },
      outputs: job.outputs,
      upload: { tar: tarSlot.form, sums: sumSlot.form },
      resources: job.resources,
      serviceAccount: this.cfg.service_account,
      nodeSelector: this.cfg.node_selector,
      imagePullSecrets: this.cfg.image_pull_secrets,
      activeDeadlineSeconds: this.cfg.active_deadline_seconds,
      ttlSeconds: this.cfg.ttl_seconds,
    });
    return { manifest, slots: [tarSlot, sumSlot] };
  }

  /** After a successful run: the returned outputs, checked and written under io.staging. */
  async collect(job: JobSpec, io: JobIO, prepared: Prepared, name: string): Promise<JobFile[]> {
    const [tarSlot, sumSlot] = prepared.slots;
    const tar = await tarSlot.read();
    const sums = await sumSlot.read();
    if (!tar || !sums) throw new TdvError('JOB_FAILED', `runner ${this.name}: stage ${job.stage}: the Job ended without returning its outputs (${name}'s ${RETURN} container uploaded nothing)`);
    const listed = parseSums(await readAll(sums));
    const what = `stage ${job.stage}`;
    return (await isEmpty(tar)) ? emptyOutputs(listed, what) : extractOutputs(decodeOutputs(tar), io.staging, job.outputs, listed, what);
  }

  private exchangeOf(job: JobSpec, io: JobIO): NonNullable<JobIO['exchange']> {
    if (io.exchange) return io.exchange;
    throw unavailable(
      this.name,
      `stage ${job.stage}: a Kubernetes Job fetches its inputs and returns its outputs through an S3 remote, and ${this.cfg.remote ? `remote ${this.cfg.remote}` : 'the default remote'} is not one (or there is none); set the runner's remote key to an s3:// remote`,
    );
  }

  /** The stage's image as the cluster must see it: a reference pinned by digest. */
  private image(job: JobSpec): string {
    if (!job.image) throw unavailable(this.name, `stage ${job.stage} has no image; a Kubernetes Job runs in one: add \`image: NAME@sha256:DIGEST\` to the stage`);
    if ('build' in job.image)
      throw unavailable(
        this.name,
        `stage ${job.stage} builds its image, which a Kubernetes runner cannot do; build and push it to a registry the cluster pulls from, and name it as image: NAME@sha256:DIGEST`,
      );
    const problem = unpinnedProblem(job.image.ref);
    if (problem) {
      throw new TdvError(
        'IMAGE_NOT_PINNED',
        `stage ${job.stage}: image ${problem}, and a Kubernetes node pulls by reference; pin it: image: ${job.image.ref.split('@')[0]!.replace(/^sha256:.*/, 'NAME')}@sha256:DIGEST (\`docker inspect --format '{{index .RepoDigests 0}}' ${job.image.ref}\` shows it)`,
        { data: { stage: job.stage, image: job.image.ref } },
      );
    }
    return job.image.ref;
  }

  private cleanupOf(api: KubeApi, name: string): CleanupAction {
    return {
      kind: 'http-delete',
      url: `${api.access.server}${api.jobsPath(name)}?propagationPolicy=Foreground`,
      headers: api.headers(),
      ca: api.access.ca,
      cert: api.access.cert,
      key: api.access.key,
      insecure: api.access.insecure,
    };
  }

  private async deleteJob(api: KubeApi, name: string): Promise<void> {
    try {
      await api.json('DELETE', `${api.jobsPath(name)}?propagationPolicy=Foreground`, { kind: 'DeleteOptions', apiVersion: 'v1', propagationPolicy: 'Foreground' });
    } catch (err) {
      if (!(err instanceof TdvError && err.data?.status === 404)) throw err;
    }
  }

  /**
   * Watches the Job and its pod until the main container has ended and (after
   * a success) the outputs are uploaded, streaming the main container's log.
   */
  private async follow(api: KubeApi, name: string, io: JobIO): Promise<{ result: JobResult }> {
    const pendingLimit = (this.cfg.pending_seconds ?? PENDING_SECONDS) * 1000;
    const startedWaiting = Date.now();
    let lastSeen = Date.now();
    let logs: Promise<void> | undefined;
    const logAbort = new AbortController();
    const stopLogs = () => logAbort.abort();
    io.signal?.addEventListener('abort', stopLogs, { once: true });
    try {
      for (;;) {
        if (io.signal?.aborted) {
          await this.deleteJob(api, name).catch(() => {});
          return { result: interrupted(name) };
        }
        let job: Job;
        let pods: { items: Pod[] };
        try {
          job = await api.json<Job>('GET', api.jobsPath(name));
          pods = await api.json<{ items: Pod[] }>('GET', `${api.podsPath()}?labelSelector=${encodeURIComponent(`job-name=${name}`)}`);
          lastSeen = Date.now();
        } catch (err) {
          if (!(err instanceof TdvError)) throw err;
          const status = err.data?.status as number | undefined;
          if (status === 404) {
            throw new TdvError('JOB_FAILED', `runner ${this.name}: Job ${name} was deleted while it ran (kubectl delete, a sweep by another tdv, or its namespace's cleanup); nothing was recorded`);
          }
          // The API out of reach, or answering 5xx: a blip is waited out, a longer loss ends the run.
          if ((status === undefined || status >= 500) && Date.now() - lastSeen < lostMs()) {
            await sleep(POLL_MS, io.signal);
            continue;
          }
          throw new TdvError(
            'RUNNER_LOST',
            `runner ${this.name}: lost the Kubernetes API while Job ${name} ran: ${err.message.replace(/^runner [^:]+: /, '')}; nothing was recorded (the Job is deleted when the API answers again, or by its ttl)`,
          );
        }
        const pod = pods.items[0];
        const failed = job.status?.conditions?.find((c) => c.type === 'Failed' && c.status === 'True');
        const main = pod?.status?.containerStatuses?.find((c) => c.name === MAIN);
        if (pod) {
          const fetch = pod.status?.initContainerStatuses?.find((c) => c.name === FETCH);
          const fetchEnd = fetch?.state?.terminated;
          if (fetchEnd && fetchEnd.exitCode !== 0) {
            const log = await this.tail(api, pod, FETCH);
            throw new TdvError('JOB_FAILED', `runner ${this.name}: Job ${name}: fetching the inputs failed (exit ${fetchEnd.exitCode}${log ? `: ${log}` : ''})`);
          }
          for (const c of [...(pod.status?.initContainerStatuses ?? []), ...(pod.status?.containerStatuses ?? [])]) {
            const w = c.state?.waiting;
            if (w?.reason && HOPELESS.has(w.reason))
              throw new TdvError('JOB_FAILED', `runner ${this.name}: Job ${name}: container ${c.name} cannot start: ${w.reason}${w.message ? `: ${w.message}` : ''}`);
          }
          if (!logs && main && (main.state?.running || main.state?.terminated)) logs = this.streamLog(api, pod, io, logAbort.signal);
          const end = main?.state?.terminated;
          const ret = pod.status?.containerStatuses?.find((c) => c.name === RETURN)?.state?.terminated;
          if (end && (end.exitCode !== 0 || ret || failed)) {
            // The rest of the log, for at most 10 s (a log stream that never ends must not hold the run).
            const waited = new AbortController();
            await Promise.race([logs, sleep(10_000, waited.signal)]);
            waited.abort();
            if (end.exitCode === 0 && ret && ret.exitCode !== 0) {
              const log = await this.tail(api, pod, RETURN);
              throw new TdvError('JOB_FAILED', `runner ${this.name}: Job ${name}: returning the outputs failed (exit ${ret.exitCode}${log ? `: ${log}` : ''})`);
            }
            if (end.exitCode === 0 && !ret)
              throw new TdvError('JOB_FAILED', `runner ${this.name}: Job ${name} failed before its outputs were returned: ${failed?.reason ?? 'Failed'}: ${failed?.message ?? ''}`);
            const killed = end.reason === 'OOMKilled';
            if (killed) io.onOutput(Buffer.from(`tdv: the container was killed: OOMKilled (memory limit)\n`), 'stderr');
            return {
              result: {
                exitCode: killed ? null : end.exitCode,
                ...(killed ? { signal: 'SIGKILL' } : {}),
                started: end.startedAt ?? new Date().toISOString(),
                ended: end.finishedAt ?? new Date().toISOString(),
                image: imageDigest(main!.imageID),
                where: `kubernetes node ${pod.spec?.nodeName ?? '?'} pod ${pod.metadata.name}`,
                outputs: [],
              },
            };
          }
        }
        if (failed) throw new TdvError('JOB_FAILED', `runner ${this.name}: Job ${name} failed: ${failed.reason ?? 'Failed'}${failed.message ? `: ${failed.message}` : ''}`);
        if (!main?.state?.running && !main?.state?.terminated && Date.now() - startedWaiting > pendingLimit) {
          throw new TdvError('JOB_FAILED', `runner ${this.name}: Job ${name} did not start within ${Math.round(pendingLimit / 1000)} s: ${pendingReason(pod)}`);
        }
        await sleep(POLL_MS, io.signal);
      }
    } finally {
      io.signal?.removeEventListener('abort', stopLogs);
      logAbort.abort();
    }
  }

  /** Streams the main container's log to io.onOutput until it ends (the API merges stdout and stderr). */
  private async streamLog(api: KubeApi, pod: Pod, io: JobIO, signal: AbortSignal): Promise<void> {
    try {
      const res = await api.stream(`${api.podsPath()}/${pod.metadata.name}/log?container=${MAIN}&follow=true`, signal);
      for await (const chunk of res) io.onOutput(chunk as Buffer, 'stdout');
    } catch (err) {
      if (!signal.aborted) io.onDebug?.(`kubernetes: log stream ended: ${(err as Error).message}`);
    }
  }

  /** The last lines of a container's log, for an error message. */
  private async tail(api: KubeApi, pod: Pod, container: string): Promise<string> {
    try {
      const res = await api.stream(`${api.podsPath()}/${pod.metadata.name}/log?container=${container}&tailLines=3`);
      return (await readAll(res)).trim().split('\n').join(' | ');
    } catch {
      return '';
    }
  }

  async sweep(repoId: string): Promise<string[]> {
    const api = await this.api();
    const jobs = await api.json<{ items: Job[] }>('GET', `${api.jobsPath()}?labelSelector=${encodeURIComponent(`tdv.repo=${labelValue(repoId)}`)}`);
    const stopped: string[] = [];
    for (const j of jobs.items) {
      const finished = j.status?.completionTime || j.status?.conditions?.some((c) => (c.type === 'Complete' || c.type === 'Failed') && c.status === 'True');
      if (finished) continue;
      // A Job whose tdv still runs is not a leftover (another repro of a clone with this id).
      const owner = j.metadata.labels?.['tdv.owner'];
      if (owner && this.ctx.ownerAlive?.(owner)) continue;
      await this.deleteJob(api, j.metadata.name);
      stopped.push(j.metadata.name);
    }
    return stopped;
  }

  async close(): Promise<void> {
    if (this.apiP) (await this.apiP.catch(() => undefined))?.close();
  }
}

/** How long the API may be out of reach mid-run before the run is lost (TDV_K8S_LOST_MS shortens it for tests). */
function lostMs(): number {
  const ms = Number(process.env.TDV_K8S_LOST_MS);
  return Number.isInteger(ms) && ms > 0 ? ms : LOST_MS;
}

/** The result of a run stopped by io.signal (the pod's containers get SIGTERM): no exit code, nothing returned. */
function interrupted(name: string): JobResult {
  const now = new Date().toISOString();
  return { exitCode: null, signal: 'SIGTERM', started: now, ended: now, where: `kubernetes job ${name}`, outputs: [] };
}

function pendingReason(pod: Pod | undefined): string {
  if (!pod) return 'no pod was created';
  const cond = pod.status?.conditions?.find((c) => c.type === 'PodScheduled' && c.status === 'False');
  if (cond) return `${cond.reason ?? 'Unschedulable'}: ${cond.message ?? ''}`.trim();
  for (const c of [...(pod.status?.initContainerStatuses ?? []), ...(pod.status?.containerStatuses ?? [])]) {
    const w = c.state?.waiting;
    if (w?.reason && w.reason !== 'PodInitializing' && w.reason !== 'ContainerCreating') return `container ${c.name}: ${w.reason}${w.message ? `: ${w.message}` : ''}`;
  }
  return `pod ${pod.metadata.name} is ${pod.status?.phase ?? 'Pending'}${pod.status?.reason ? ` (${pod.status.reason})` : ''}`;
}

/** `sha256:<hex>` out of a container status's imageID (`docker-pullable://name@sha256:...`, `name@sha256:...`). */
export function imageDigest(imageID: string | undefined): string | undefined {
  const m = /sha256:[0-9a-f]{64}/.exec(imageID ?? '');
  return m ? m[0] : undefined;
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const t = setTimeout(done, ms);
    function done() {
      clearTimeout(t);
      signal?.removeEventListener('abort', done);
      resolve();
    }
    signal?.addEventListener('abort', done, { once: true });
  });
}

// ---------------------------------------------------------------------------
// Outputs: a tar and a sha256 list, checked entry by entry before a byte is written.

/** `sha256  ./path` lines (busybox sha256sum) as path -> sha256. */
export function parseSums(text: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const line of text.split('\n')) {
    const m = /^([0-9a-f]{64}) [ *](.+)$/.exec(line);
    if (m) out.set(m[2]!.replace(/^\.\//, ''), m[1]!);
  }
  return out;
}

/** Whether a stream ends without a byte (no output existed): the first chunk, if any, is put back. */
async function isEmpty(s: Readable): Promise<boolean> {
  for (;;) {
    const chunk = s.read() as Buffer | null;
    if (chunk !== null) {
      s.unshift(chunk);
      return false;
    }
    if (s.readableEnded) return true;
    const ended = await new Promise<boolean>((resolve, reject) => {
      const done = (v: boolean) => {
        s.off('readable', onReadable);
        s.off('end', onEnd);
        s.off('error', reject);
        resolve(v);
      };
      const onReadable = () => done(false);
      const onEnd = () => done(true);
      s.once('readable', onReadable);
      s.once('end', onEnd);
      s.once('error', reject);
    });
    if (ended) return true;
  }
}

function emptyOutputs(listed: Map<string, string>, what: string): JobFile[] {
  if (listed.size) throw refused(`${what}: the Job listed ${[...listed.keys()][0]} but returned no files; nothing was recorded`);
  return [];
}

/** The tar inside the returned slot (base64 of gzip), errors passed along. */
export function decodeOutputs(body: Readable): Readable {
  const decoded = body.pipe(base64Decoder());
  body.on('error', (err) => decoded.destroy(err));
  const tar = decoded.pipe(createGunzip());
  decoded.on('error', (err) => tar.destroy(err));
  return tar;
}

/** Decodes base64 as it streams (busybox base64 wraps lines; whitespace is skipped). */
export function base64Decoder(): Transform {
  let rest = '';
  return new Transform({
    transform(chunk: Buffer, _enc, cb) {
      const s = rest + chunk.toString('latin1').replace(/[^A-Za-z0-9+/=]/g, '');
      const cut = s.length - (s.length % 4);
      rest = s.slice(cut);
      cb(null, Buffer.from(s.slice(0, cut), 'base64'));
    },
    flush(cb) {
      cb(rest ? new Error('the outputs arrived cut short (base64 not a multiple of 4)') : null, rest ? undefined : Buffer.alloc(0));
    },
  });
}

function refused(message: string): TdvError {
  return new TdvError('JOB_OUTPUT_REFUSED', message);
}

/**
 * Writes the outputs in `tar` under `staging` through a Guard, hashing each
 * file as it is written: a symlink, a special file, a path that is not legal
 * or not inside a declared output, or a file whose bytes do not match the
 * sha256 list, is refused (JOB_OUTPUT_REFUSED) before it is written.
 */
export async function extractOutputs(tar: Readable, staging: string, outputs: readonly string[], listed: Map<string, string>, what: string): Promise<JobFile[]> {
  const { extract } = await import('tar-stream');
  const guard = new Guard(staging, { label: 'the staging directory' });
  const declared = (rel: string) => outputs.some((o) => rel === o || rel.startsWith(`${o}/`));
  const files: JobFile[] = [];
  const ex = extract();
  tar.on('error', (err) => ex.destroy(err));
  tar.pipe(ex);
  for await (const entry of ex) {
    const h = entry.header;
    const rel = h.name.replace(/^\.\//, '').replace(/\/+$/, '');
    const problem = relPathProblem(rel);
    if (problem) throw refused(`${what}: the Job returned ${JSON.stringify(h.name)}, which ${problem}; nothing was recorded`);
    if (!declared(rel)) throw refused(`${what}: the Job returned ${rel}, which is not a declared output (${outputs.join(', ')}); nothing was recorded`);
    if (h.type === 'directory') {
      guard.mkdirp(rel, what);
      entry.resume();
      continue;
    }
    if (h.type !== 'file') throw refused(`${what}: output ${rel} came back as a ${h.type}${h.linkname ? ` to ${h.linkname}` : ''}; a stage's outputs must be regular files and directories`);
    const fd = guard.openForWrite(rel, what);
    const hash = createHash('sha256');
    let size = 0;
    try {
      for await (const chunk of entry) {
        hash.update(chunk as Buffer);
        size += (chunk as Buffer).length;
        fs.writeSync(fd, chunk as Buffer);
      }
    } finally {
      fs.closeSync(fd);
    }
    const sha256 = hash.digest('hex');
    const claimed = listed.get(rel);
    if (claimed !== sha256) throw refused(`${what}: output ${rel} arrived with sha256 ${sha256}, but the Job listed ${claimed ?? 'no sha256 for it'}; nothing was recorded`);
    if ((h.mode ?? 0) & 0o100) guard.chmod(rel, 0o755, what);
    files.push({ path: rel, sha256, size, ...((h.mode ?? 0) & 0o100 ? { exec: true } : {}) });
  }
  const got = new Set(files.map((f) => f.path));
  const missing = [...listed.keys()].filter((p) => !got.has(p));
  if (missing.length) throw refused(`${what}: the Job listed ${missing[0]} but did not return it; nothing was recorded`);
  return files;
}

export const runnerModule: RunnerModule = {
  configSchema,
  configKeys,
  create(cfg: RunnerConfig, ctx: RunnerContext): JobRunner {
    const { name, type: _type, ...keys } = cfg;
    const parsed = v.safeParse(configSchema, keys);
    if (!parsed.success) {
      const issue = parsed.issues[0];
      const key = issue.path?.map((p) => String(p.key)).join('.') ?? '';
      throw unavailable(name, `${key ? `${key}: ` : ''}${issue.message}`);
    }
    return new KubernetesRunner(name, parsed.output, ctx);
  },
};
