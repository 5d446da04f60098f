/**
 * The cleanup actions the reaper and the next repro carry out (stages/reap-actions.ts),
 * and the next repro's sweep of journals left by killed runs (stages/reaper.ts).
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { carryOut, procStart } from '../../src/stages/reap-actions.js';
import { Reaper, sweepRunning } from '../../src/stages/reaper.js';
import { Guard } from '../../src/workspace/guard.js';
import { tmpDir } from '../helpers/repo.js';

const started: ChildProcess[] = [];
afterEach(() => {
  for (const c of started.splice(0)) {
    try {
      process.kill(-c.pid!, 'SIGKILL');
    } catch {
      // gone
    }
  }
});

/** Pids of live processes whose environment holds `MARK=mark` (zombies have none). */
function marked(mark: string): number[] {
  const out: number[] = [];
  for (const p of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(p)) continue;
    try {
      if (fs.readFileSync(`/proc/${p}/environ`, 'latin1').split('\0').includes(`MARK=${mark}`)) out.push(Number(p));
    } catch {
      // ended, or not ours
    }
  }
  return out;
}

/** A process group like a stage's: a shell, a child, and a grandchild that ignores SIGTERM. */
async function group(): Promise<{ pgid: number; mark: string }> {
  const mark = randomBytes(6).toString('hex');
  const c = spawn('sh', ['-c', `sh -c 'trap "" TERM; sleep 300 & wait' & sleep 300; wait`], { detached: true, stdio: 'ignore', env: { ...process.env, MARK: mark } });
  started.push(c);
  for (let i = 0; i < 100 && marked(mark).length < 4; i++) await new Promise((r) => setTimeout(r, 20));
  expect(marked(mark).length).toBe(4);
  return { pgid: c.pid!, mark };
}

async function gone(mark: string): Promise<boolean> {
  for (let i = 0; i < 100 && marked(mark).length > 0; i++) await new Promise((r) => setTimeout(r, 50));
  return marked(mark).length === 0;
}

describe('cleanup actions', () => {
  it('pgid: SIGTERM, then SIGKILL what ignores it, for the whole group', async () => {
    const g = await group();
    expect(await carryOut({ kind: 'pgid', pgid: g.pgid }, { start: procStart(g.pgid), graceMs: 300 })).toEqual({ stopped: true });
    expect(await gone(g.mark)).toBe(true);
    expect(await carryOut({ kind: 'pgid', pgid: g.pgid }, { graceMs: 300 })).toEqual({ gone: true });
  });

  it('pgid: a live leader with another start time is a reused pid and is never signalled', async () => {
    const g = await group();
    expect(await carryOut({ kind: 'pgid', pgid: g.pgid }, { start: '1', graceMs: 300 })).toEqual({ gone: true });
    expect(marked(g.mark).length).toBe(4);
  });

  it('pgid: never -1 (every process) or 0 (its own group)', async () => {
    expect(await carryOut({ kind: 'pgid', pgid: 1 })).toHaveProperty('failed');
    expect(await carryOut({ kind: 'pgid', pgid: 0 })).toHaveProperty('failed');
    expect(await carryOut({ kind: 'pgid', pgid: process.pid })).toHaveProperty('failed');
  });

  it('docker-rm: runs the argv given with the variables given; "No such container" is gone, anything else failed', async () => {
    const dir = tmpDir();
    const log = path.join(dir, 'log');
    const fake = path.join(dir, 'docker');
    fs.writeFileSync(
      fake,
      `#!/bin/sh\necho "$* $DOCKER_HOST" >> '${log}'\ncase "$4" in\n  there) echo there ;;\n  absent) echo "Error response from daemon: No such container: absent" >&2; exit 1 ;;\n  absent0) echo "Error response from daemon: No such container: absent0" >&2; exit 0 ;;\n  *) echo "Cannot connect to the Docker daemon" >&2; exit 1 ;;\nesac\n`,
      { mode: 0o755 },
    );
    const env = { DOCKER_HOST: 'tcp://example:2376' };
    expect(await carryOut({ kind: 'docker-rm', docker: fake, args: ['rm', '--force', '--', 'there'], env })).toEqual({ stopped: true });
    expect(await carryOut({ kind: 'docker-rm', docker: fake, args: ['rm', '--force', '--', 'absent'], env })).toEqual({ gone: true });
    // Docker 28's `rm --force` of a container already gone exits 0, saying so on stderr: gone, not stopped.
    expect(await carryOut({ kind: 'docker-rm', docker: fake, args: ['rm', '--force', '--', 'absent0'], env })).toEqual({ gone: true });
    expect(await carryOut({ kind: 'docker-rm', docker: fake, args: ['rm', '--force', '--', 'down'], env })).toEqual({ failed: expect.stringContaining('Cannot connect to the Docker daemon') });
    expect(await carryOut({ kind: 'docker-rm', docker: path.join(dir, 'nope'), args: ['rm'] })).toEqual({ failed: expect.stringContaining('cannot run') });
    expect(fs.readFileSync(log, 'utf8')).toBe(
      'rm --force -- there tcp://example:2376\nrm --force -- absent tcp://example:2376\nrm --force -- absent0 tcp://example:2376\nrm --force -- down tcp://example:2376\n',
    );
  });

  it('http-delete: a DELETE with the headers given; 2xx stopped, 404 gone, other statuses failed', async () => {
    const seen: { method?: string; url?: string; auth?: string }[] = [];
    const server = http.createServer((req, res) => {
      seen.push({ method: req.method, url: req.url, auth: req.headers.authorization });
      res.statusCode = req.url!.includes('/there') ? 200 : req.url!.includes('/absent') ? 404 : 500;
      res.end();
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    try {
      const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}/apis/batch/v1/namespaces/ns/jobs`;
      const headers = { authorization: 'Bearer t0ken' };
      expect(await carryOut({ kind: 'http-delete', url: `${base}/there?propagationPolicy=Background`, headers })).toEqual({ stopped: true });
      expect(await carryOut({ kind: 'http-delete', url: `${base}/absent`, headers })).toEqual({ gone: true });
      expect(await carryOut({ kind: 'http-delete', url: `${base}/broken`, headers })).toEqual({ failed: expect.stringContaining('HTTP 500') });
      expect(seen).toEqual([
        { method: 'DELETE', url: '/apis/batch/v1/namespaces/ns/jobs/there?propagationPolicy=Background', auth: 'Bearer t0ken' },
        { method: 'DELETE', url: '/apis/batch/v1/namespaces/ns/jobs/absent', auth: 'Bearer t0ken' },
        { method: 'DELETE', url: '/apis/batch/v1/namespaces/ns/jobs/broken', auth: 'Bearer t0ken' },
      ]);
    } finally {
      server.close();
    }
  });

  const openssl = spawnSync('openssl', ['version']).status === 0;
  it.skipIf(!openssl)('http-delete over TLS trusts the CA given (PEM text), and refuses a server it does not', async () => {
    const dir = tmpDir();
    const made = spawnSync(
      'openssl',
      ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1', '-keyout', `${dir}/key.pem`, '-out', `${dir}/cert.pem`],
      { encoding: 'utf8' },
    );
    expect(made.status, made.stderr).toBe(0);
    const cert = fs.readFileSync(`${dir}/cert.pem`, 'utf8');
    const server = https.createServer({ key: fs.readFileSync(`${dir}/key.pem`), cert }, (req, res) => {
      res.statusCode = req.method === 'DELETE' ? 202 : 405;
      res.end();
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    try {
      const url = `https://127.0.0.1:${(server.address() as AddressInfo).port}/job`;
      expect(await carryOut({ kind: 'http-delete', url, ca: cert })).toEqual({ stopped: true });
      expect(await carryOut({ kind: 'http-delete', url })).toHaveProperty('failed');
      expect(await carryOut({ kind: 'http-delete', url, insecure: true })).toEqual({ stopped: true });
    } finally {
      server.close();
    }
  });
});

describe('the next run sweeps journals of killed runs', () => {
  /** A `.tdv` directory with `tmp/running/<pid>.json` as a killed tdv would have left it. */
  function journal(j: object, pid: number): { own: Guard; file: string } {
    const tdvDir = tmpDir();
    const own = new Guard(tdvDir, { label: '.tdv/', allControl: true });
    own.writeControlFile(`tmp/running/${pid}.json`, JSON.stringify(j));
    return { own, file: path.join(tdvDir, `tmp/running/${pid}.json`) };
  }

  /** The pid of a process that has exited (a dead tdv). */
  function deadPid(): number {
    const r = spawnSync('sh', ['-c', 'echo $$'], { encoding: 'utf8' });
    return Number(r.stdout.trim());
  }

  it('stops the group a dead tdv left running when its leader has the recorded start time, and removes the journal', async () => {
    const g = await group();
    const pid = deadPid();
    const { own, file } = journal({ pid, start: '12345', host: os.hostname(), cmd: 'repro', actions: [{ action: { kind: 'pgid', pgid: g.pgid }, start: procStart(g.pgid) }] }, pid);
    const res = await sweepRunning(own, { graceMs: 300 });
    expect(res).toEqual({ stopped: [`\`tdv repro\` (pid ${pid}) process group ${g.pgid}`], failed: [] });
    expect(await gone(g.mark)).toBe(true);
    expect(fs.existsSync(file)).toBe(false);
  });

  it('never signals a live unrelated process whose pid the journal names with another start time', async () => {
    const g = await group();
    const pid = deadPid();
    const start = String(Number(procStart(g.pgid)) - 100);
    const { own, file } = journal({ pid, start: '12345', host: os.hostname(), cmd: 'repro', actions: [{ action: { kind: 'pgid', pgid: g.pgid }, start }] }, pid);
    expect(await sweepRunning(own, { graceMs: 300 })).toEqual({ stopped: [], failed: [] });
    expect(marked(g.mark).length).toBe(4);
    expect(fs.existsSync(file)).toBe(false);
  });

  it('never signals a group whose start time was not recorded (the leader had ended when it was registered)', async () => {
    const g = await group();
    const pid = deadPid();
    const { own } = journal({ pid, start: '12345', host: os.hostname(), cmd: 'repro', actions: [{ action: { kind: 'pgid', pgid: g.pgid } }] }, pid);
    expect((await sweepRunning(own, { graceMs: 300 })).stopped).toEqual([]);
    expect(marked(g.mark).length).toBe(4);
  });

  it("leaves a running tdv's journal (pid and start time match), and another host's", async () => {
    const g = await group();
    const live = journal({ pid: g.pgid, start: procStart(g.pgid), host: os.hostname(), cmd: 'repro', actions: [{ action: { kind: 'pgid', pgid: g.pgid }, start: procStart(g.pgid) }] }, g.pgid);
    expect(await sweepRunning(live.own, { graceMs: 300 })).toEqual({ stopped: [], failed: [] });
    expect(fs.existsSync(live.file)).toBe(true);
    const pid = deadPid();
    const other = journal({ pid, start: '1', host: `not-${os.hostname()}`, cmd: 'repro', actions: [{ action: { kind: 'pgid', pgid: g.pgid }, start: procStart(g.pgid) }] }, pid);
    expect(await sweepRunning(other.own, { graceMs: 300 })).toEqual({ stopped: [], failed: [] });
    expect(fs.existsSync(other.file)).toBe(true);
    expect(marked(g.mark).length).toBe(4);
  });

  it("a dead run's journal named with this process's own pid (a reused pid) is swept, not taken for this run's", async () => {
    const g = await group();
    const { own, file } = journal({ pid: process.pid, start: '1', host: os.hostname(), cmd: 'repro', actions: [{ action: { kind: 'pgid', pgid: g.pgid }, start: procStart(g.pgid) }] }, process.pid);
    expect((await sweepRunning(own, { graceMs: 300 })).stopped).toEqual([`\`tdv repro\` (pid ${process.pid}) process group ${g.pgid}`]);
    expect(await gone(g.mark)).toBe(true);
    expect(fs.existsSync(file)).toBe(false);
  });

  it('removes a file there that is not a journal tdv wrote, acting on nothing in it', async () => {
    const pid = deadPid();
    const { own, file } = journal({ pid, actions: [{ action: { kind: 'pgid', pgid: 1 } }] }, pid);
    expect(await sweepRunning(own)).toEqual({ stopped: [], failed: [] });
    expect(fs.existsSync(file)).toBe(false);
  });
});

describe('Reaper journal', () => {
  it('names what is registered and not done, mode 0600, and is removed when all is done', () => {
    const tdvDir = tmpDir();
    const own = new Guard(tdvDir, { label: '.tdv/', allControl: true });
    const r = new Reaper({ own, script: null });
    const file = path.join(tdvDir, `tmp/running/${process.pid}.json`);
    const a = r.register({ kind: 'docker-rm', docker: 'docker', args: ['rm', '--force', '--', 'c1'] });
    const b = r.register({ kind: 'pgid', pgid: process.pid });
    const j = JSON.parse(fs.readFileSync(file, 'utf8'));
    expect(j).toMatchObject({ pid: process.pid, start: procStart(process.pid), host: os.hostname() });
    expect(j.actions).toEqual([
      { action: { kind: 'docker-rm', docker: 'docker', args: ['rm', '--force', '--', 'c1'] } },
      { action: { kind: 'pgid', pgid: process.pid }, start: procStart(process.pid) },
    ]);
    expect(fs.statSync(file).mode & 0o777).toBe(0o600);
    a();
    expect(JSON.parse(fs.readFileSync(file, 'utf8')).actions).toHaveLength(1);
    b();
    expect(fs.existsSync(file)).toBe(false);
    r.close();
    expect(fs.existsSync(file)).toBe(false);
  });
});
