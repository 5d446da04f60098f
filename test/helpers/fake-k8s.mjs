/**
 * A fake Kubernetes API server for the Kubernetes runner's tests: exactly the
 * endpoints the runner uses (create, read, list, delete Jobs; list a Job's
 * pods; a container's log), over HTTPS with a self-signed certificate made
 * here with openssl (so the runner's CA and token handling are exercised as
 * against a real server), and a bearer token.
 *
 * It really runs each Job's pod with the test's Docker daemon: the emptyDir is
 * a host directory mounted into every container, init containers run first,
 * one after another, then the containers side by side, all with
 * --network=host so they reach the S3 test server on 127.0.0.1. Statuses,
 * imageID and logs are reported in the API's shapes. An image must be named
 * `NAME@sha256:<id>` where <id> is a local image's ID (there is no registry):
 * the fake runs that image and reports `docker-pullable://NAME@sha256:<id>`.
 *
 * Not a Kubernetes: no watch, no scheduler beyond refusing GPUs and node
 * selectors it does not have (the pod stays Pending, Unschedulable), no
 * restarts, no activeDeadlineSeconds, no ttl.
 */
import { execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import https from 'node:https';
import os from 'node:os';
import path from 'node:path';

/** A self-signed certificate for 127.0.0.1 in `dir`: { cert, key } as PEM. */
export function makeCert(dir, name = 'server', cn = 'fake-k8s') {
  const key = path.join(dir, `${name}-key.pem`);
  const cert = path.join(dir, `${name}-cert.pem`);
  execFileSync(
    'openssl',
    ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', key, '-out', cert, '-days', '2', '-subj', `/CN=${cn}`, '-addext', 'subjectAltName=IP:127.0.0.1'],
    { stdio: 'ignore' },
  );
  return { cert: fs.readFileSync(cert, 'utf8'), key: fs.readFileSync(key, 'utf8') };
}

/** A kubeconfig naming the fake (written to `file`), as kubectl would read it. */
export function writeKubeconfig(file, { server, ca, token, client, namespace = 'default' }) {
  const user = client ? `    client-certificate-data: ${Buffer.from(client.cert).toString('base64')}\n    client-key-data: ${Buffer.from(client.key).toString('base64')}\n` : `    token: ${token}\n`;
  const yaml = `apiVersion: v1
kind: Config
current-context: fake
clusters:
- name: fake
  cluster:
    server: ${server}
    certificate-authority-data: ${Buffer.from(ca).toString('base64')}
contexts:
- name: fake
  context:
    cluster: fake
    user: tester
    namespace: ${namespace}
users:
- name: tester
  user:
${user}`;
  fs.writeFileSync(file, yaml);
  return file;
}

const now = () => new Date().toISOString();

function status(res, code, reason, message) {
  res.writeHead(code, { 'content-type': 'application/json' });
  res.end(JSON.stringify({ kind: 'Status', apiVersion: 'v1', status: 'Failure', message, reason, code }));
}

function send(res, code, body) {
  res.writeHead(code, { 'content-type': 'application/json' });
  res.end(JSON.stringify(body));
}

function docker(args, opts = {}) {
  return new Promise((resolve) => {
    const p = spawn('docker', args, { stdio: ['ignore', 'pipe', 'pipe'], ...opts });
    let out = '';
    let err = '';
    p.stdout.on('data', (d) => (out += d));
    p.stderr.on('data', (d) => (err += d));
    p.on('close', (code) => resolve({ code, out: out.trim(), err: err.trim() }));
  });
}

function matches(labels, selector) {
  if (!selector) return true;
  return selector.split(',').every((term) => {
    const [k, v] = term.split('=');
    return (labels ?? {})[k] === v;
  });
}

/**
 * Starts the fake. Options: `token` (the bearer token), or `client` (a
 * client certificate's PEM: requests must present it instead), `namespaces`
 * (known; default ['default']), `forbid` (answer 403 to everything),
 * `nodeLabels`. Returns { url, ca, jobs, deleted, requests, close }.
 */
export async function startFakeK8s({ dir, token, client, namespaces = ['default'], forbid = false, nodeLabels = { 'kubernetes.io/hostname': 'fake-node' } }) {
  const { cert, key } = makeCert(dir);
  // With `client` (a certificate's PEM), requests authenticate by that client certificate instead of the token.
  const tls = client ? { cert, key, requestCert: true, rejectUnauthorized: false, ca: client } : { cert, key };
  /** name -> { job, pod, cids: Map(container -> id), dir, deleted } */
  const jobs = new Map();
  const deleted = [];
  const requests = [];
  const containers = new Set();
  /** `down`: answer 503 to everything (the API restarting). */
  const state = { down: false };

  async function runPod(entry) {
    const { job, pod } = entry;
    const spec = pod.spec;
    const gpus = spec.containers.some((c) => c.resources?.limits?.['nvidia.com/gpu']);
    const unmatched = Object.entries(spec.nodeSelector ?? {}).filter(([k, v]) => nodeLabels[k] !== v);
    if (gpus || unmatched.length) {
      pod.status.conditions = [
        {
          type: 'PodScheduled',
          status: 'False',
          reason: 'Unschedulable',
          message: `0/1 nodes are available: 1 ${gpus ? 'Insufficient nvidia.com/gpu' : "node(s) didn't match Pod's node affinity/selector"}.`,
        },
      ];
      return;
    }
    pod.spec.nodeName = 'fake-node';
    pod.status.conditions = [{ type: 'PodScheduled', status: 'True' }];
    const waiting = (c, reason) => ({ name: c.name, image: c.image, ready: false, restartCount: 0, state: { waiting: { reason } } });
    pod.status.initContainerStatuses = (spec.initContainers ?? []).map((c) => waiting(c, 'PodInitializing'));
    pod.status.containerStatuses = spec.containers.map((c) => waiting(c, 'PodInitializing'));
    for (const [i, c] of (spec.initContainers ?? []).entries()) {
      const st = await runContainer(entry, c, pod.status.initContainerStatuses, i);
      if (entry.deleted) return;
      if (st !== 0) {
        pod.status.phase = 'Failed';
        job.status = { failed: 1, conditions: [{ type: 'Failed', status: 'True', reason: 'BackoffLimitExceeded', message: 'Job has reached the specified backoff limit' }] };
        return;
      }
    }
    pod.status.phase = 'Running';
    const codes = await Promise.all(spec.containers.map((c, i) => runContainer(entry, c, pod.status.containerStatuses, i)));
    if (entry.deleted) return;
    const ok = codes.every((c) => c === 0);
    pod.status.phase = ok ? 'Succeeded' : 'Failed';
    job.status = ok
      ? { succeeded: 1, completionTime: now(), conditions: [{ type: 'Complete', status: 'True' }] }
      : { failed: 1, conditions: [{ type: 'Failed', status: 'True', reason: 'BackoffLimitExceeded', message: 'Job has reached the specified backoff limit' }] };
  }

  /** Runs one container to its end; its status in `statuses[i]` as the kubelet would report it. */
  async function runContainer(entry, c, statuses, i) {
    const m = /^([^@]+)@(sha256:[0-9a-f]{64})$/.exec(c.image);
    const id = m && (await docker(['image', 'inspect', '--format', '{{.Id}}', m[2]]));
    if (!m || id.code !== 0) {
      statuses[i].state = { waiting: { reason: 'ErrImagePull', message: `rpc error: pull access denied for ${c.image}` } };
      return new Promise(() => {}); // never starts: the runner's pending limit or a delete ends it
    }
    const name = `fake-k8s-${entry.pod.metadata.name}-${c.name}`;
    const env = {};
    const args = ['run', '-d', '--name', name, '--network=host', '-v', `${entry.dir}:/tdv`];
    for (const e of c.env ?? []) {
      env[e.name] = e.value;
      args.push('-e', e.name);
    }
    const lim = c.resources?.limits ?? {};
    if (lim.cpu) args.push('--cpus', String(lim.cpu));
    if (lim.memory) args.push('--memory', String(lim.memory));
    const [cmd, ...rest] = c.command ?? [];
    if (cmd) args.push('--entrypoint', cmd);
    args.push(m[2], ...rest, ...(c.args ?? []));
    containers.add(name);
    if (entry.deleted) return 137;
    const started = await docker(args, { env: { ...process.env, ...env } });
    if (started.code !== 0) {
      statuses[i].state = { waiting: { reason: 'CreateContainerError', message: started.err.split('\n')[0] } };
      return new Promise(() => {});
    }
    entry.cids.set(c.name, name);
    statuses[i] = { ...statuses[i], imageID: `docker-pullable://${m[1]}@${m[2]}`, containerID: `docker://${started.out}`, state: { running: { startedAt: now() } } };
    const waited = await docker(['wait', name]);
    const info = await docker(['inspect', '--format', '{{json .State}}', name]);
    const st = info.code === 0 ? JSON.parse(info.out) : { ExitCode: Number(waited.out), OOMKilled: false };
    const code = st.ExitCode;
    statuses[i] = {
      ...statuses[i],
      state: { terminated: { exitCode: code, reason: st.OOMKilled ? 'OOMKilled' : code === 0 ? 'Completed' : 'Error', startedAt: st.StartedAt, finishedAt: st.FinishedAt } },
    };
    return code;
  }

  async function remove(entry) {
    entry.deleted = true;
    deleted.push(entry.job.metadata.name);
    jobs.delete(entry.job.metadata.name);
    await Promise.all([...entry.cids.values()].map((n) => docker(['rm', '-f', n])));
    // Containers still being created when the delete came.
    for (const c of [...(entry.pod.spec.initContainers ?? []), ...entry.pod.spec.containers]) await docker(['rm', '-f', `fake-k8s-${entry.pod.metadata.name}-${c.name}`]);
    fs.rmSync(entry.dir, { recursive: true, force: true });
  }

  const server = https.createServer(tls, async (req, res) => {
    const url = new URL(req.url, 'https://x');
    requests.push(`${req.method} ${url.pathname}${url.search}`);
    if (state.down) return status(res, 503, 'ServiceUnavailable', 'the fake is down (as an API server restarting)');
    const authorized = client ? req.socket.authorized === true : req.headers.authorization === `Bearer ${token}`;
    if (!authorized) return status(res, 401, 'Unauthorized', 'Unauthorized');
    if (forbid)
      return status(
        res,
        403,
        'Forbidden',
        `jobs.batch is forbidden: User "system:serviceaccount:ci:tdv" cannot ${req.method === 'POST' ? 'create' : 'get'} resource "jobs" in API group "batch" in the namespace "default"`,
      );
    let m = /^\/apis\/batch\/v1\/namespaces\/([^/]+)\/jobs(?:\/([^/]+))?$/.exec(url.pathname);
    if (m) {
      const [, ns, name] = m;
      if (!namespaces.includes(ns)) return status(res, 404, 'NotFound', `namespaces "${ns}" not found`);
      if (req.method === 'POST' && !name) {
        let body = '';
        for await (const c of req) body += c;
        const job = JSON.parse(body);
        if (jobs.has(job.metadata.name)) return status(res, 409, 'AlreadyExists', `jobs.batch "${job.metadata.name}" already exists`);
        job.metadata = { ...job.metadata, namespace: ns, uid: randomBytes(8).toString('hex'), creationTimestamp: now() };
        job.status = { active: 1, startTime: now() };
        const podName = `${job.metadata.name}-${randomBytes(3).toString('hex').slice(0, 5)}`;
        const pod = {
          metadata: { name: podName, namespace: ns, labels: { ...job.spec.template.metadata?.labels, 'job-name': job.metadata.name } },
          spec: structuredClone(job.spec.template.spec),
          status: { phase: 'Pending' },
        };
        const entry = { job, pod, cids: new Map(), dir: fs.mkdtempSync(path.join(dir, 'pod-')), deleted: false };
        fs.chmodSync(entry.dir, 0o777);
        jobs.set(job.metadata.name, entry);
        void runPod(entry);
        return send(res, 201, job);
      }
      if (req.method === 'GET' && !name) {
        const sel = url.searchParams.get('labelSelector');
        return send(res, 200, { kind: 'JobList', items: [...jobs.values()].filter((e) => matches(e.job.metadata.labels, sel)).map((e) => e.job) });
      }
      const entry = name && jobs.get(name);
      if (!entry) return status(res, 404, 'NotFound', `jobs.batch "${name}" not found`);
      if (req.method === 'GET') return send(res, 200, entry.job);
      if (req.method === 'DELETE') {
        if (url.searchParams.get('propagationPolicy') !== 'Foreground') return status(res, 400, 'BadRequest', 'the fake expects propagationPolicy=Foreground');
        await remove(entry);
        return send(res, 200, { kind: 'Status', status: 'Success' });
      }
      return status(res, 405, 'MethodNotAllowed', `${req.method} is not allowed`);
    }
    m = /^\/api\/v1\/namespaces\/([^/]+)\/pods(?:\/([^/]+)\/log)?$/.exec(url.pathname);
    if (m && req.method === 'GET') {
      const [, , podName] = m;
      if (!podName) {
        const sel = url.searchParams.get('labelSelector');
        return send(res, 200, { kind: 'PodList', items: [...jobs.values()].map((e) => e.pod).filter((p) => matches(p.metadata.labels, sel)) });
      }
      const entry = [...jobs.values()].find((e) => e.pod.metadata.name === podName);
      if (!entry) return status(res, 404, 'NotFound', `pods "${podName}" not found`);
      const cname = url.searchParams.get('container');
      const cid = entry.cids.get(cname);
      if (!cid) return status(res, 400, 'BadRequest', `container "${cname}" in pod "${podName}" is waiting to start: PodInitializing`);
      const args = ['logs'];
      if (url.searchParams.get('follow') === 'true') args.push('-f');
      if (url.searchParams.get('tailLines')) args.push('--tail', url.searchParams.get('tailLines'));
      res.writeHead(200, { 'content-type': 'text/plain' });
      const p = spawn('docker', [...args, cid], { stdio: ['ignore', 'pipe', 'pipe'] });
      p.stdout.pipe(res, { end: false });
      p.stderr.pipe(res, { end: false });
      p.on('close', () => res.end());
      res.on('close', () => p.kill());
      return;
    }
    return status(res, 404, 'NotFound', `the fake does not serve ${req.method} ${url.pathname}`);
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = `https://127.0.0.1:${server.address().port}`;
  return {
    url,
    ca: cert,
    jobs,
    deleted,
    state,
    requests,
    async close() {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
      for (const n of containers) await docker(['rm', '-f', n]);
      for (const e of jobs.values()) fs.rmSync(e.dir, { recursive: true, force: true });
    },
  };
}

export const tmpBase = os.tmpdir();
