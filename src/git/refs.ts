import fs from 'node:fs';
import path from 'node:path';
import { errnoCode, TdvError } from '../errors.js';

const OID = /^[0-9a-f]{40}$/;

/** A ref and the object it names (for a tag ref, maybe an annotated tag object). */
export interface Ref {
  name: string;
  oid: string;
}

/**
 * The refs of a repository: loose files and `packed-refs`, read directly. In
 * a linked worktree HEAD (and the other per-worktree refs) live in its own
 * git directory, everything else in the common one.
 */
export class Refs {
  private packed?: Map<string, string>;
  private packedStamp?: string;

  constructor(
    readonly gitdir: string,
    readonly commondir: string,
  ) {
    if (fs.existsSync(path.join(commondir, 'reftable'))) {
      throw new TdvError('GIT_UNSUPPORTED', `${commondir} stores its refs in the reftable format, which tdv cannot read yet; \`git refs migrate --ref-format=files\` converts it`);
    }
  }

  /** The content of a ref: another ref's name (`ref: ...`) or an object id; undefined if absent. */
  private raw(name: string): string | undefined {
    const perWorktree = name === 'HEAD' || name.startsWith('refs/worktree/') || name.startsWith('refs/bisect/') || name.startsWith('refs/rewritten/');
    const file = path.join(perWorktree ? this.gitdir : this.commondir, ...name.split('/'));
    try {
      const text = fs.readFileSync(file, 'utf8').trim();
      if (text.startsWith('ref:') || OID.test(text)) return text;
    } catch (err) {
      const code = errnoCode(err);
      if (code !== 'ENOENT' && code !== 'EISDIR' && code !== 'ENOTDIR') throw err;
    }
    return this.packedRefs().get(name);
  }

  /** The object id a full ref name resolves to, following symbolic refs. */
  resolve(name: string): string | undefined {
    let cur = name;
    for (let depth = 0; depth < 10; depth++) {
      const v = this.raw(cur);
      if (v === undefined) return undefined;
      if (!v.startsWith('ref:')) return v;
      cur = v.slice(4).trim();
    }
    return undefined;
  }

  /**
   * The objects a ref's reflog (`logs/<name>`) says it pointed to, newest
   * last: for `refs/stash`, every stash entry (`stash@{n}`), which lives only
   * there. Empty when the ref has no reflog.
   */
  reflog(name: string): string[] {
    const perWorktree = name === 'HEAD' || name.startsWith('refs/worktree/') || name.startsWith('refs/bisect/') || name.startsWith('refs/rewritten/');
    let text: string;
    try {
      text = fs.readFileSync(path.join(perWorktree ? this.gitdir : this.commondir, 'logs', ...name.split('/')), 'utf8');
    } catch (err) {
      const code = errnoCode(err);
      if (code === 'ENOENT' || code === 'EISDIR' || code === 'ENOTDIR') return [];
      throw err;
    }
    const out: string[] = [];
    // "<old> <new> <name> <<email>> <time> <tz>\t<message>"
    for (const line of text.split('\n')) {
      const m = /^[0-9a-f]{40} ([0-9a-f]{40}) /.exec(line);
      if (m && !/^0+$/.test(m[1]!)) out.push(m[1]!);
    }
    return out;
  }

  /** The branch HEAD is on (`refs/heads/main`), or undefined when detached. */
  headBranch(): string | undefined {
    const v = this.raw('HEAD');
    return v?.startsWith('ref:') ? v.slice(4).trim() : undefined;
  }

  /** A short name expanded the way `git rev-parse` does: as given, then under refs/, tags, heads, remotes. */
  dwim(name: string): Ref | undefined {
    if (name.includes('..') || name.startsWith('/') || name.endsWith('/') || /[\0\\\s~^:?*[]/.test(name)) return undefined;
    for (const full of [name, `refs/${name}`, `refs/tags/${name}`, `refs/heads/${name}`, `refs/remotes/${name}`, `refs/remotes/${name}/HEAD`]) {
      if (full !== 'HEAD' && !full.startsWith('refs/') && !/^[A-Z_]+$/.test(full)) continue;
      const oid = this.resolve(full);
      if (oid) return { name: full, oid };
    }
    return undefined;
  }

  /** Every ref under `prefix` (`refs/heads/`, `refs/tags/`, or `refs/`), loose ones winning over packed. */
  list(prefix: string): Ref[] {
    const found = new Map<string, string>();
    for (const [name, oid] of this.packedRefs()) if (name.startsWith(prefix)) found.set(name, oid);
    const visit = (dir: string, rel: string) => {
      let ents: fs.Dirent[];
      try {
        ents = fs.readdirSync(dir, { withFileTypes: true });
      } catch (err) {
        if (errnoCode(err) === 'ENOENT' || errnoCode(err) === 'ENOTDIR') return;
        throw err;
      }
      for (const e of ents) {
        const r = `${rel}/${e.name}`;
        if (e.isDirectory()) visit(path.join(dir, e.name), r);
        else if (e.isFile() && r.startsWith(prefix)) {
          const oid = this.resolve(r);
          if (oid) found.set(r, oid);
        }
      }
    };
    visit(path.join(this.commondir, 'refs'), 'refs');
    return [...found].map(([name, oid]) => ({ name, oid })).sort((a, b) => (a.name < b.name ? -1 : 1));
  }

  private packedRefs(): Map<string, string> {
    // Read again when the file changed (`git pack-refs`, `git gc`, a fetch): a long-running
    // reader (`tdv serve`) would otherwise keep refs that moved, and miss every packed new one.
    let stamp = 'absent';
    try {
      const st = fs.statSync(path.join(this.commondir, 'packed-refs'));
      stamp = `${st.ino}:${st.size}:${st.mtimeMs}`;
    } catch (err) {
      if (errnoCode(err) !== 'ENOENT') throw err;
    }
    if (this.packed && stamp === this.packedStamp) return this.packed;
    this.packedStamp = stamp;
    this.packed = new Map();
    let text = '';
    try {
      text = fs.readFileSync(path.join(this.commondir, 'packed-refs'), 'utf8');
    } catch (err) {
      if (errnoCode(err) !== 'ENOENT') throw err;
    }
    for (const line of text.split('\n')) {
      if (line.startsWith('#') || line.startsWith('^')) continue;
      const m = /^([0-9a-f]{40}) (\S+)$/.exec(line.trim());
      if (m) this.packed.set(m[2]!, m[1]!);
    }
    return this.packed;
  }
}
