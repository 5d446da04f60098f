/**
 * A `tdv repro` killed with SIGKILL (or OOM-killed: no handler runs either way)
 * leaves nothing running: its reaper process stops the stage's process group
 * and removes its container; when the reaper was killed too, the next repro
 * finds the journal in .tdv/tmp/running and stops what is left. (Ctrl-C is
 * repro-interrupt.test.ts.)
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { execa } from 'execa';
import { afterEach, describe, expect, it } from 'vitest';
import { TDV_BIN, tdvBin, write } from '../helpers/repo.js';
import { newRepo } from '../helpers/expect.js';
import { describeDocker, TEST_IMAGE } from '../helpers/docker.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Pids of live processes whose environment holds `REAP_MARK=mark` (a stage's, which all inherit it). */
function marked(mark: string): number[] {
  const out: number[] = [];
  for (const p of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(p)) continue;
    try {
      if (fs.readFileSync(`/proc/${p}/environ`, 'latin1').split('\0').includes(`REAP_MARK=${mark}`)) out.push(Number(p));
    } catch {
      // ended, or not ours
    }
  }
  return out;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

async function until(what: string, ok: () => boolean | Promise<boolean>, ms = 15_000): Promise<void> {
  for (const end = Date.now() + ms; Date.now() < end; await sleep(50)) if (await ok()) return;
  throw new Error(`timed out waiting until ${what}`);
}

/** Leftovers of a failed test: the marked processes are stopped whatever happened. */
const marks: string[] = [];
afterEach(() => {
  for (const m of marks.splice(0)) for (const p of marked(m)) process.kill(p, 'SIGKILL');
});

/**
 * A stage that starts a background child and a grandchild that ignores
 * SIGTERM, all marked by `REAP_MARK` in their environment.
 */
function stubbornStage(dir: string): string {
  const mark = randomBytes(6).toString('hex');
  marks.push(mark);
  write(dir, 'tdv.yaml', `stages:\n  slow:\n    cmd: sh -c 'trap "" TERM; sleep 300 & wait' & sleep 300; wait\n    env: {REAP_MARK: "${mark}"}\n    outs: [o.txt]\n`);
  return mark;
}

/**
 * Starts `tdv repro -v` (with `group`, as the leader of its own process group,
 * as a shell starts a job); resolves once `n` marked processes run, with
 * tdv's and its reaper's pids.
 */
async function startRepro(dir: string, mark: string, n: number, group = false): Promise<{ child: ChildProcess; reaper: number; output: () => string }> {
  const child = spawn('node', [TDV_BIN, 'repro', '-v'], { cwd: dir, env: { ...process.env, NO_COLOR: '1' }, stdio: ['ignore', 'pipe', 'pipe'], detached: group });
  let output = '';
  child.stdout!.on('data', (d) => (output += d));
  child.stderr!.on('data', (d) => (output += d));
  await until(`${n} stage processes run (output: ${output})`, () => marked(mark).length >= n);
  await until('the reaper started', () => /reaper process (\d+) started/.test(output));
  return { child, reaper: Number(/reaper process (\d+) started/.exec(output)![1]), output: () => output };
}

async function kill9(child: ChildProcess): Promise<void> {
  const exited = new Promise((r) => child.once('exit', r));
  child.kill('SIGKILL');
  await exited;
}

describe('tdv repro killed with SIGKILL (local stages)', () => {
  it('leaves no process of the running stage (the grandchild that ignores SIGTERM included), and the rerun succeeds', async () => {
    const dir = await newRepo();
    const mark = stubbornStage(dir);
    const r = await startRepro(dir, mark, 4);
    // The reaper leads its own session, holds neither tdv's stdout/stderr (a pipe reading them
    // would not end with tdv) nor anything in the repository (the lock file, a log), nor its cwd.
    const stat = fs.readFileSync(`/proc/${r.reaper}/stat`, 'utf8');
    expect(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[3]).toBe(String(r.reaper));
    expect(fs.readlinkSync(`/proc/${r.reaper}/fd/1`)).toBe('/dev/null');
    expect(fs.readlinkSync(`/proc/${r.reaper}/fd/2`)).toBe('/dev/null');
    expect(fs.readlinkSync(`/proc/${r.reaper}/cwd`)).toBe('/');
    const fds = fs.readdirSync(`/proc/${r.reaper}/fd`).map((fd) => fs.readlinkSync(`/proc/${r.reaper}/fd/${fd}`));
    expect(fds.filter((f) => f.startsWith(dir))).toEqual([]);
    await kill9(r.child);
    await until('no process of the stage is left', () => marked(mark).length === 0);
    await until('the reaper exited', () => !alive(r.reaper));
    write(dir, 'tdv.yaml', 'stages:\n  slow:\n    cmd: echo ok > o.txt\n    outs: [o.txt]\n');
    const again = await tdvBin(dir, ['repro']);
    expect(again.code, again.stderr).toBe(0);
    expect(fs.readFileSync(path.join(dir, 'o.txt'), 'utf8')).toBe('ok\n');
    expect(fs.readdirSync(path.join(dir, '.tdv/tmp/running'))).toEqual([]);
  });

  it("a SIGKILL to tdv's whole process group (a shell job killed) does not reach the reaper, which stops the stage", async () => {
    const dir = await newRepo();
    const mark = stubbornStage(dir);
    const r = await startRepro(dir, mark, 4, true);
    const exited = new Promise((res) => r.child.once('exit', res));
    process.kill(-r.child.pid!, 'SIGKILL');
    await exited;
    await until('no process of the stage is left', () => marked(mark).length === 0);
    await until('the reaper exited', () => !alive(r.reaper));
  });

  it("Ctrl-C (SIGINT to tdv's process group, as a terminal sends it) stops the stage; the reaper exits and the journal is removed", async () => {
    const dir = await newRepo();
    const mark = stubbornStage(dir);
    const r = await startRepro(dir, mark, 4, true);
    const exited = new Promise<number | null>((res) => r.child.once('exit', (code) => res(code)));
    process.kill(-r.child.pid!, 'SIGINT');
    expect(await exited).toBe(130);
    await until('no process of the stage is left', () => marked(mark).length === 0);
    await until('the reaper exited', () => !alive(r.reaper));
    expect(fs.readdirSync(path.join(dir, '.tdv/tmp/running'))).toEqual([]);
  });

  it('with its reaper killed too, the next repro stops what was left from the journal and says so', async () => {
    const dir = await newRepo();
    const mark = stubbornStage(dir);
    const r = await startRepro(dir, mark, 4);
    const journal = path.join(dir, `.tdv/tmp/running/${r.child.pid}.json`);
    const pgid = (JSON.parse(fs.readFileSync(journal, 'utf8')) as { actions: { action: { pgid: number } }[] }).actions[0]!.action.pgid;
    process.kill(r.reaper, 'SIGKILL');
    await kill9(r.child);
    await sleep(500);
    expect(marked(mark)).toHaveLength(4); // nobody stopped them
    write(dir, 'tdv.yaml', 'stages:\n  slow:\n    cmd: echo ok > o.txt\n    outs: [o.txt]\n');
    const again = await tdvBin(dir, ['repro']);
    expect(again.code, again.stderr).toBe(0);
    expect(again.stderr).toContain(`a killed \`tdv repro\` (pid ${r.child.pid}) process group ${pgid} left running; stopped it now`);
    expect(marked(mark)).toEqual([]);
    expect(fs.existsSync(journal)).toBe(false);
  });

  it('a run that ends normally leaves no reaper process and no journal', async () => {
    const dir = await newRepo();
    write(dir, 'tdv.yaml', 'stages:\n  t:\n    cmd: "true"\n    always_changed: true\n');
    const r = await tdvBin(dir, ['repro', '-v']);
    expect(r.code, r.stderr).toBe(0);
    const reaper = Number(/reaper process (\d+) started/.exec(r.stderr + r.stdout)?.[1]);
    expect(reaper).toBeGreaterThan(0);
    await until('the reaper exited', () => !alive(reaper));
    expect(fs.readdirSync(path.join(dir, '.tdv/tmp/running'))).toEqual([]);
  });

  it('a run with nothing to run starts no reaper', async () => {
    const dir = await newRepo();
    write(dir, 'tdv.yaml', 'stages:\n  t:\n    cmd: echo 1 > t.txt\n    outs: [t.txt]\n');
    expect((await tdvBin(dir, ['repro'])).code).toBe(0);
    const r = await tdvBin(dir, ['repro', '-v']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr + r.stdout).not.toContain('reaper process');
  });
});

describeDocker('tdv repro killed with SIGKILL (Docker stages)', () => {
  it('leaves no container and no docker client running, and the rerun succeeds', async () => {
    const dir = await newRepo();
    const mark = randomBytes(6).toString('hex');
    marks.push(mark);
    write(dir, 'tdv.yaml', `stages:\n  slow:\n    image: ${TEST_IMAGE}\n    cmd: sleep 300\n    outs: [o.txt]\n`);
    const child = spawn('node', [TDV_BIN, 'repro', '-v'], { cwd: dir, env: { ...process.env, NO_COLOR: '1', REAP_MARK: mark }, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (d) => (output += d));
    child.stderr.on('data', (d) => (output += d));
    const containers = async () => (await execa('docker', ['ps', '-a', '--filter', `label=tdv.root=${dir}`, '--format', '{{.Names}}'])).stdout.trim();
    await until(`the container runs (output: ${output})`, async () => (await containers()) !== '', 30_000);
    await until('the reaper started', () => /reaper process \d+ started/.test(output));
    await kill9(child);
    // The docker client (in its own process group) carries tdv's environment, REAP_MARK included.
    await until('the container is gone', async () => (await containers()) === '', 30_000);
    await until('no docker client is left', () => marked(mark).length === 0);
    write(dir, 'tdv.yaml', `stages:\n  slow:\n    image: ${TEST_IMAGE}\n    cmd: echo ok > o.txt\n    outs: [o.txt]\n`);
    const again = await tdvBin(dir, ['repro']);
    expect(again.code, again.stderr).toBe(0);
    expect(fs.readFileSync(path.join(dir, 'o.txt'), 'utf8')).toBe('ok\n');
  });

  it('with its reaper killed too, the next repro removes the container from the journal and says so', async () => {
    const dir = await newRepo();
    write(dir, 'tdv.yaml', `stages:\n  slow:\n    image: ${TEST_IMAGE}\n    cmd: sleep 300\n    outs: [o.txt]\n`);
    const child = spawn('node', [TDV_BIN, 'repro', '-v'], { cwd: dir, env: { ...process.env, NO_COLOR: '1' }, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (d) => (output += d));
    child.stderr.on('data', (d) => (output += d));
    const containers = async () => (await execa('docker', ['ps', '-a', '--filter', `label=tdv.root=${dir}`, '--format', '{{.Names}}'])).stdout.trim();
    await until(`the container runs (output: ${output})`, async () => (await containers()) !== '', 30_000);
    await until('the reaper started', () => /reaper process \d+ started/.test(output));
    const name = await containers();
    process.kill(Number(/reaper process (\d+) started/.exec(output)![1]), 'SIGKILL');
    await kill9(child);
    await sleep(500);
    try {
      expect(await containers()).toBe(name); // nobody removed it
      write(dir, 'tdv.yaml', `stages:\n  slow:\n    image: ${TEST_IMAGE}\n    cmd: echo ok > o.txt\n    outs: [o.txt]\n`);
      const again = await tdvBin(dir, ['repro']);
      expect(again.code, again.stderr).toBe(0);
      expect(again.stderr).toContain(`a killed \`tdv repro\` (pid ${child.pid}) container ${name}, process group `);
      expect(await containers()).toBe('');
    } finally {
      await execa('docker', ['rm', '--force', '--', name], { reject: false });
    }
  });
});
