/**
 * Every hostile or broken input, old and new, in one table, each tried with
 * the commands it could trick: pointer files, directory manifests (in the
 * cache, and served by a remote), tdv.yaml, tdv.lock, the stat cache, the
 * configuration, and `checkout --to`. Each must fail with a one-line error
 * naming the file (or, where noted, be handled and said so), and nothing may
 * be written outside the repository (or the `--to` directory): the directory
 * around the repository, which holds the places the inputs aim at, is
 * snapshotted before and after each one.
 */
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { git, tdv, write } from '../helpers/repo.js';
import { newDir, sha } from '../helpers/expect.js';

interface Sandbox {
  base: string;
  repo: string;
  outside: string;
  /** An absolute directory the inputs aim at. */
  target: string;
  remote: string;
}

interface Case {
  name: string;
  /** Writes the hostile input into the sandbox's repository (or remote). */
  setup(s: Sandbox): unknown;
  /** Commands to try it with. */
  commands: string[][];
  /** The file the error must name (a substring of the one error line), or a pattern. */
  names?: string | RegExp;
  /** Not an error: the command succeeds and `check` says what it did. */
  ok?: (s: Sandbox, r: { stdout: string; stderr: string }) => void;
  /** Extra places the command may write to (`--to DIR`), relative to the base. */
  allowed?: string;
}

const H = sha('x');
const ptr = (p: string, sha256 = H, size: string | number = 1, extra = '') => `outs:\n- path: ${p}\n  sha256: ${sha256}\n  size: ${size}\n${extra}`;
const BOMB = `a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\nc: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]\nd: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]\ne: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]\nf: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]\ng: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]\n`;
const POINTER_COMMANDS = [['checkout'], ['status'], ['pull'], ['push'], ['fetch'], ['gc', '--workspace', '--dry'], ['fsck']];

/** A manifest object in the cache, whatever its content, named by its hash; returns its id. */
function cachedManifest(s: Sandbox, text: string): string {
  const oid = `${sha(text)}.dir`;
  write(s.repo, `.tdv/cache/files/sha256/${oid.slice(0, 2)}/${oid.slice(2)}`, text);
  return oid;
}

function hostileManifest(entries: unknown[] | string): (s: Sandbox) => void {
  return (s) => {
    const text = typeof entries === 'string' ? entries : JSON.stringify(entries);
    write(s.repo, 'data.tdv', ptr('data', cachedManifest(s, text), 1, '  nfiles: 1\n'));
  };
}

const entry = (relpath: unknown, more: Record<string, unknown> = {}) => ({ relpath, sha256: H, size: 1, ...more });

const CASES: Case[] = [
  // Pointer files.
  ...(
    [
      ['path: ../../x', ptr('../../x')],
      ['an absolute path', ''],
      // A backslash is an ordinary character on POSIX (names.test.ts round-trips one); .git in any case is not.
      ['a path into .GIT (another letter case)', ptr('.GIT/hooks/post-checkout')],
      ['a path with a NUL', ptr('"x\\u0000y"')],
      ['a path into .git', ptr('.git/hooks/post-checkout')],
      ['a path into .tdv', ptr('.tdv/config.yaml')],
      ['a path of 5,000 characters', ptr('x'.repeat(5000))],
      ['sha256 that is not hex', ptr('x', '../../../etc/passwd')],
      ['sha256 in upper case', ptr('x', H.toUpperCase())],
      ['sha256 of 63 digits', ptr('x', H.slice(1))],
      ['a directory without nfiles', ptr('x', `${H}.dir`)],
      ['a negative size', ptr('x', H, -1)],
      ['a huge size (1e300)', ptr('x', H, '1e300')],
      ['a size past 2^53', ptr('x', H, '99999999999999999999')],
      ['size .nan', ptr('x', H, '.nan')],
      ['a YAML alias bomb', BOMB],
      ['YAML that does not parse', 'outs: [\n'],
      ['outs that is not a list', 'outs: x\n'],
      ['an unknown key', `${ptr('x')}  cmd: rm -rf /\n`],
      ['a duplicate key', `outs:\n- path: x\n  path: ../../y\n  sha256: ${H}\n  size: 1\n`],
    ] as const
  ).map(([what, text]): Case => ({
    name: `pointer file with ${what}`,
    setup: (s) => write(s.repo, 'a.tdv', text || ptr(path.join(s.target, 'x'))),
    commands: POINTER_COMMANDS,
    names: 'a.tdv',
  })),
  {
    name: 'pointer file with bytes that are not UTF-8',
    setup: (s) => fs.writeFileSync(path.join(s.repo, 'a.tdv'), Buffer.concat([Buffer.from('outs:\n- path: x'), Buffer.from([0xff]), Buffer.from(`\n  sha256: ${H}\n  size: 1\n`)])),
    commands: POINTER_COMMANDS,
    names: 'a.tdv',
  },
  {
    name: 'pointer file whose path goes through a symlink out of the repository',
    setup: async (s) => {
      fs.symlinkSync(s.outside, path.join(s.repo, 'link'));
      write(s.repo, 'x', 'x');
      expect((await tdv(s.repo, 'add', 'x')).code).toBe(0); // its object is cached: only the path is wrong
      write(s.repo, 'a.tdv', ptr('link/x'));
    },
    commands: [['checkout'], ['pull']],
    names: 'a.tdv: link/x goes through the symlink link',
  },
  {
    name: 'two pointer files tracking the same path',
    setup: (s) => {
      write(s.repo, 'a.tdv', ptr('x'));
      write(s.repo, 'b/../a2.tdv', ptr('x'));
    },
    commands: [['checkout'], ['status']],
    names: 'a2.tdv',
  },

  // Directory manifests in the cache (their bytes match their name: only a hostile writer makes these).
  ...(
    [
      ['relpath ../x', [entry('../x')]],
      ['relpath a/../../x', [entry('a/../../x')]],
      ['an absolute relpath', [entry('/etc/cron.d/x')]],
      ['relpath into .git', [entry('.git/config')]],
      ['a relpath into .Git (another letter case)', [entry('sub/.Git/config')]],
      ["a submodule's .git file", [entry('mod/.git')]],
      ['a duplicate relpath', [entry('a'), entry('a')]],
      ['a file and a directory of the same name', [entry('a'), entry('a/b')]],
      ['a bad sha256', [entry('a', { sha256: 'zz' })]],
      ['a negative size', [entry('a', { size: -5 })]],
      ['a huge size', [entry('a', { size: 1e300 })]],
      ['a relpath that is not a string', [entry(42)]],
      ['not a list', '{"relpath":"a"}'],
      ['not JSON', '[{"relpath":'],
    ] as const
  ).map(([what, entries]): Case => ({
    name: `manifest with ${what}`,
    setup: hostileManifest(entries as unknown as unknown[] | string),
    commands: [['checkout'], ['status'], ['push']],
    names: /\.tdv\/cache\/files\/sha256\/[0-9a-f]{2}\/[0-9a-f]{62}\.dir/,
  })),
  {
    name: 'manifest with a file name longer than the file system allows',
    setup: async (s) => {
      write(s.repo, 'x', 'x');
      expect((await tdv(s.repo, 'add', 'x')).code).toBe(0);
      hostileManifest([entry('y'.repeat(300))])(s);
    },
    commands: [['checkout']],
    // Refused when the manifest is read, by the one legal-path rule, before any write is tried.
    names: /\.tdv\/cache\/files\/sha256\/[0-9a-f]{2}\/[0-9a-f]{62}\.dir: manifest entry 0 has an unsafe relpath y+\.\.\.y+: it has a component longer than 255 bytes/,
  },
  {
    name: 'manifest with a path deeper than the system allows',
    setup: async (s) => {
      write(s.repo, 'x', 'x');
      expect((await tdv(s.repo, 'add', 'x')).code).toBe(0);
      // Under the 4,096 characters a relpath may have, over the system's limit once under the repository.
      hostileManifest([entry(Array(20).fill('z'.repeat(203)).join('/'))])(s);
    },
    commands: [['checkout']],
    names: /file name too long for this file system: \S*\/repo\/data\/z+/,
  },
  {
    name: 'hostile manifest served by a remote (hash right, content hostile)',
    setup: (s) => {
      const text = JSON.stringify([entry('../../escape')]);
      const oid = `${sha(text)}.dir`;
      write(s.remote, `files/sha256/${oid.slice(0, 2)}/${oid.slice(2)}`, text);
      write(s.repo, 'data.tdv', ptr('data', oid, 1, '  nfiles: 1\n'));
    },
    commands: [['pull'], ['fetch']],
    names: /\.dir/,
  },
  {
    name: 'remote object replaced with other content',
    setup: (s) => {
      write(s.remote, `files/sha256/${H.slice(0, 2)}/${H.slice(2)}`, 'not x');
      write(s.repo, 'a.tdv', ptr('x'));
    },
    commands: [['pull'], ['fetch']],
    names: `object ${H} on remote "store"`,
  },

  // A tracked directory holding a symlink that points out: not followed, and said so.
  {
    name: 'tracked directory containing a symlink to a file outside',
    setup: (s) => {
      write(s.repo, 'd/a', 'a');
      fs.symlinkSync(path.join(s.outside, 'secret'), path.join(s.repo, 'd/leak'));
    },
    commands: [['add', 'd']],
    ok: (s, r) => {
      expect(r.stderr).toContain('skipped d/leak: symlink not followed');
      expect(fs.readFileSync(path.join(s.repo, 'd.tdv'), 'utf8')).toContain('nfiles: 1\n');
    },
  },
  {
    name: 'tracked directory containing a symlink to a directory outside',
    setup: (s) => {
      write(s.repo, 'd/a', 'a');
      fs.symlinkSync(s.outside, path.join(s.repo, 'd/leak'));
    },
    commands: [['add', 'd']],
    ok: (_s, r) => expect(r.stderr).toContain('skipped d/leak: symlink not followed'),
  },

  // tdv.yaml.
  ...(
    [
      ['a stage name that is a docker option', 'stages:\n  "--privileged":\n    cmd: x\n'],
      ['a stage name with a newline', 'stages:\n  "a\\nb":\n    cmd: x\n'],
      ['a stage name with a space and a semicolon', 'stages:\n  "a; rm -rf /":\n    cmd: x\n'],
      ['an output outside the repository', 'stages:\n  a:\n    cmd: x\n    outs: [../../x]\n'],
      ['an absolute output', 'stages:\n  a:\n    cmd: x\n    outs: [TARGET/x]\n'],
      ['an output in .git', 'stages:\n  a:\n    cmd: x\n    outs: [.git/hooks/pre-commit]\n'],
      ['wdir outside the repository', 'stages:\n  a:\n    cmd: x\n    wdir: ../..\n'],
      ['a build context outside the repository', 'stages:\n  a:\n    cmd: x\n    build: ../..\n'],
      ['an env name that is not a name', 'stages:\n  a:\n    cmd: x\n    env: {"A=B --privileged": 1}\n'],
      ['a YAML alias bomb', BOMB],
      ['YAML that does not parse', 'stages: [\n'],
    ] as const
  ).map(([what, text]): Case => ({
    name: `tdv.yaml with ${what}`,
    setup: (s) => write(s.repo, 'tdv.yaml', text.replace('TARGET', s.target)),
    commands: [['repro'], ['dag'], ['status']],
    names: 'tdv.yaml',
  })),
  {
    name: 'tdv.yaml with an output through a symlink out of the repository',
    setup: (s) => {
      fs.symlinkSync(s.outside, path.join(s.repo, 'link'));
      write(s.repo, 'tdv.yaml', 'stages:\n  a:\n    cmd: echo hi > link/precious\n    outs: [link/precious]\n');
    },
    commands: [['repro']],
    names: 'tdv.yaml',
  },
  {
    name: 'tdv.yaml with env values holding newlines and shell syntax',
    setup: (s) => write(s.repo, 'tdv.yaml', 'stages:\n  a:\n    cmd: printf "%s" "$V" > out.txt\n    env: {V: "line1\\n--privileged; touch ../pwned $(touch ../pwned2)"}\n    outs: [out.txt]\n'),
    commands: [['repro']],
    ok: (s) => expect(fs.readFileSync(path.join(s.repo, 'out.txt'), 'utf8')).toBe('line1\n--privileged; touch ../pwned $(touch ../pwned2)'),
  },

  // tdv.lock, the stat cache, the configuration.
  ...(
    [
      ['YAML that does not parse', 'schema: 1\nstages:\n  a:\n    cmd: [x\n'],
      ['an output outside the repository', `schema: 1\nstages:\n  a:\n    cmd: x\n    outs:\n    - path: ../../x\n      sha256: ${H}\n      size: 1\n`],
      ['an output in .git', `schema: 1\nstages:\n  a:\n    cmd: x\n    outs:\n    - path: .git/hooks/x\n      sha256: ${H}\n      size: 1\n`],
      ['a bad sha256', 'schema: 1\nstages:\n  a:\n    cmd: x\n    outs:\n    - path: x\n      sha256: nope\n      size: 1\n'],
      ['a negative size', `schema: 1\nstages:\n  a:\n    cmd: x\n    outs:\n    - path: x\n      sha256: ${H}\n      size: -1\n`],
      ['a YAML alias bomb', BOMB],
    ] as const
  ).map(([what, text]): Case => ({
    name: `tdv.lock with ${what}`,
    setup: (s) => write(s.repo, 'tdv.lock', text),
    commands: [['checkout'], ['status'], ['pull']],
    names: 'tdv.lock',
  })),
  {
    name: 'a corrupt stat cache',
    setup: async (s) => {
      write(s.repo, 'x', 'x');
      expect((await tdv(s.repo, 'add', 'x')).code).toBe(0);
      write(s.repo, '.tdv/tmp/statcache-files.bin', 'TDVSC\u0002\n\u0000 torn');
      write(s.repo, '.tdv/tmp/statcache-dirs.json', '\u0000\u0001garbage');
    },
    commands: [['status']],
    ok: (_s, r) => {
      expect(r.stderr).toMatch(/ignoring damaged stat cache .*statcache-(files\.bin|dirs\.json)/);
      expect(r.stdout).toContain('up to date');
    },
  },
  ...(
    [
      ['YAML that does not parse', 'core:\n  lock_timeout: [1\n', '.tdv/config.yaml:'],
      ['an unknown key', 'core:\n  lock_timeout: 1\n  hooks: rm -rf /\n', '.tdv/config.yaml:3'],
      ['a wrong value', 'core:\n  lock_timeout: -5\n', '.tdv/config.yaml:2'],
      ['a YAML alias bomb', BOMB, '.tdv/config.yaml'],
    ] as const
  ).map(([what, text, names]): Case => ({
    name: `.tdv/config.yaml with ${what}`,
    setup: (s) => fs.writeFileSync(path.join(s.repo, '.tdv', 'config.yaml'), text),
    commands: [['status'], ['push']],
    names,
  })),

  {
    name: '.tdv/config.yaml with a remote pointing into .tdv',
    setup: (s) => fs.writeFileSync(path.join(s.repo, '.tdv', 'config.yaml'), 'core:\n  remote: r\nremote:\n  r:\n    url: .tdv/cache\n'),
    commands: [['push'], ['pull']],
    names: 'remote "r"',
  },

  // checkout --to: never outside the snapshot directory, not through a symlink in it.
  {
    name: 'checkout --to a directory holding a symlink that leads out',
    setup: async (s) => {
      write(s.repo, 'x', 'x');
      write(s.repo, 'data/a', 'a');
      expect((await tdv(s.repo, 'add', 'x', 'data')).code).toBe(0);
      await git(s.repo, 'add', '-A');
      await git(s.repo, 'commit', '-qm', 'data');
      fs.mkdirSync(path.join(s.base, 'snap'));
      fs.symlinkSync(s.outside, path.join(s.base, 'snap', 'data'));
    },
    commands: [['checkout', '--rev', 'HEAD', '--to', '../snap']],
    names: 'would be lost: data;',
    allowed: 'snap',
  },
  {
    name: 'checkout --to --force over a symlink that leads out: the link is replaced, never followed',
    setup: async (s) => {
      write(s.repo, 'data/a', 'a');
      expect((await tdv(s.repo, 'add', 'data')).code).toBe(0);
      await git(s.repo, 'add', '-A');
      await git(s.repo, 'commit', '-qm', 'data');
      fs.mkdirSync(path.join(s.base, 'snap'));
      fs.symlinkSync(s.outside, path.join(s.base, 'snap', 'data'));
    },
    commands: [['checkout', '--rev', 'HEAD', '--to', '../snap', '--force']],
    ok: (s) => {
      expect(fs.lstatSync(path.join(s.base, 'snap', 'data')).isDirectory()).toBe(true);
      expect(fs.readFileSync(path.join(s.base, 'snap', 'data', 'a'), 'utf8')).toBe('a');
    },
    allowed: 'snap',
  },
];

/** Every path below `dir` with what it is: file content, symlink target, or a directory. */
function survey(dir: string, skip: readonly string[]): Map<string, string> {
  const out = new Map<string, string>();
  const visit = (abs: string, rel: string) => {
    for (const n of fs.readdirSync(abs)) {
      const r = rel ? `${rel}/${n}` : n;
      if (skip.includes(r)) continue;
      const p = path.join(abs, n);
      const st = fs.lstatSync(p);
      if (st.isSymbolicLink()) out.set(r, `-> ${fs.readlinkSync(p)}`);
      else if (st.isDirectory()) {
        out.set(r, `dir ${st.mode & 0o7777}`);
        visit(p, r);
      } else out.set(r, `${st.mode & 0o7777} ${sha(fs.readFileSync(p))}`);
    }
  };
  visit(dir, '');
  return out;
}

async function sandbox(): Promise<Sandbox> {
  const base = newDir();
  const s: Sandbox = { base, repo: path.join(base, 'repo'), outside: path.join(base, 'outside'), target: path.join(base, 'target'), remote: path.join(base, 'remote') };
  for (const d of [s.repo, s.outside, s.target, s.remote]) fs.mkdirSync(d);
  fs.writeFileSync(path.join(s.outside, 'secret'), 'secret');
  fs.writeFileSync(path.join(s.outside, 'precious'), 'precious');
  fs.writeFileSync(path.join(s.target, 'x'), 'do not touch');
  await git(s.repo, 'init', '-q', '-b', 'main');
  expect((await tdv(s.repo, 'init', '-q')).code).toBe(0);
  fs.appendFileSync(path.join(s.repo, '.tdv', 'config.yaml'), `core:\n  remote: store\nremote:\n  store:\n    url: ${s.remote}\n`);
  return s;
}

let tried = 0;
let attempts = 0;
const escapes: string[] = [];

describe('hostile and broken input: one-line errors naming the file, nothing written outside', () => {
  for (const c of CASES) {
    it(c.name, async () => {
      const s = await sandbox();
      await c.setup(s);
      const skip = ['repo', ...(c.allowed ? [c.allowed] : [])];
      const before = survey(s.base, skip);
      for (const args of c.commands) {
        const r = await tdv(s.repo, ...args);
        attempts++;
        const what = `${c.name}: tdv ${args.join(' ')}`;
        if (c.ok) {
          expect(r.code, `${what}: ${r.stderr}`).toBe(0);
          c.ok(s, r);
        } else {
          // One error line, last; before it at most warnings listing what failed (transfers, fsck).
          expect([1, 2], `${what} should fail: ${r.stdout}${r.stderr}`).toContain(r.code);
          const lines = r.stderr.trimEnd().split('\n');
          expect(lines.at(-1), what).toMatch(/^error: /);
          for (const l of lines.slice(0, -1)) expect(l, what).toMatch(/^warning: /);
          for (const l of lines) expect(l.length, `${what}: a line too long to read: ${l.slice(0, 200)}`).toBeLessThan(1000);
          expect(r.stderr, what).not.toContain('this is a bug');
          if (typeof c.names === 'string') expect(r.stderr, what).toContain(c.names);
          else if (c.names) expect(r.stderr, what).toMatch(c.names);
        }
        const after = survey(s.base, skip);
        const changed = [...new Set([...before.keys(), ...after.keys()])].filter((k) => before.get(k) !== after.get(k));
        if (changed.length) escapes.push(`${what}: ${changed.join(', ')}`);
        expect(changed, `${what} wrote outside the repository`).toEqual([]);
      }
      tried++;
    });
  }
});

afterAll(() => {
  console.log(
    `[hostile] ${tried} of ${CASES.length} hostile inputs tried with ${attempts} commands; wrote outside the repository (or --to directory): ${escapes.length === 0 ? 'none' : escapes.join('; ')}`,
  );
});
