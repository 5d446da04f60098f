import { corruptGit } from './objects.js';

/** A person line of a commit: name, email, seconds since the epoch and the zone as written (`+0200`). */
export interface Person {
  name: string;
  email: string;
  time: number;
  tz: string;
}

export interface Commit {
  oid: string;
  tree: string;
  parents: string[];
  author: Person;
  committer: Person;
  /** The whole message; `subject` is its first line. */
  message: string;
}

/** Parses a commit object's bytes. */
export function parseCommit(oid: string, data: Buffer): Commit {
  const text = data.toString('utf8');
  let end = text.indexOf('\n\n');
  if (end === -1) end = text.length;
  let tree = '';
  const parents: string[] = [];
  let author: Person | undefined;
  let committer: Person | undefined;
  for (let p = 0; p < end;) {
    let nl = text.indexOf('\n', p);
    if (nl === -1 || nl > end) nl = end;
    // Continuation lines of a multi-line header (gpgsig) start with a space.
    if (text.charCodeAt(p) !== 0x20) {
      const sp = text.indexOf(' ', p);
      const key = text.slice(p, sp);
      if (key === 'tree') tree = text.slice(sp + 1, nl);
      else if (key === 'parent') parents.push(text.slice(sp + 1, nl));
      else if (key === 'author') author = parsePerson(text.slice(sp + 1, nl));
      else if (key === 'committer') committer = parsePerson(text.slice(sp + 1, nl));
    }
    p = nl + 1;
  }
  if (!/^[0-9a-f]{40}$/.test(tree)) throw corruptGit(`commit ${oid} has no tree`);
  const nobody: Person = { name: '', email: '', time: 0, tz: '+0000' };
  return { oid, tree, parents, author: author ?? committer ?? nobody, committer: committer ?? author ?? nobody, message: text.slice(end + 2) };
}

export function subject(c: Commit): string {
  const nl = c.message.indexOf('\n');
  return (nl === -1 ? c.message : c.message.slice(0, nl)).trim();
}

function parsePerson(v: string): Person {
  const m = /^(.*?) ?<([^>]*)> (\d+) ([+-]\d{4})$/.exec(v);
  if (!m) return { name: v, email: '', time: 0, tz: '+0000' };
  return { name: m[1]!, email: m[2]!, time: Number(m[3]), tz: m[4]! };
}

/** ISO 8601 in the person's own time zone, as `git log --date=iso-strict` prints it. */
export function isoDate(p: Person): string {
  const sign = p.tz.startsWith('-') ? -1 : 1;
  const offsetMin = sign * (Number(p.tz.slice(1, 3)) * 60 + Number(p.tz.slice(3, 5)));
  const local = new Date((p.time + offsetMin * 60) * 1000).toISOString().slice(0, 19);
  return `${local}${p.tz.slice(0, 3)}:${p.tz.slice(3, 5)}`;
}

export type EntryKind = 'tree' | 'blob' | 'link' | 'commit';

export interface TreeEntry {
  name: string;
  oid: string;
  kind: EntryKind;
}

function kindOf(mode: string): EntryKind {
  if (mode === '40000' || mode === '040000') return 'tree';
  if (mode === '120000') return 'link';
  if (mode === '160000') return 'commit';
  return 'blob';
}

/** Every entry of a tree object, in Git's order. */
export function treeEntries(data: Buffer): TreeEntry[] {
  const out: TreeEntry[] = [];
  let p = 0;
  while (p < data.length) {
    const sp = data.indexOf(0x20, p);
    const nul = data.indexOf(0, sp);
    if (sp === -1 || nul === -1 || nul + 21 > data.length) throw corruptGit('a tree object is truncated');
    out.push({ kind: kindOf(data.toString('latin1', p, sp)), name: data.toString('utf8', sp + 1, nul), oid: data.toString('hex', nul + 1, nul + 21) });
    p = nul + 21;
  }
  return out;
}

/** The entry named `name` in a tree object, without decoding the others. */
const names = new Map<string, Buffer>();

export function findTreeEntry(data: Buffer, name: string): TreeEntry | undefined {
  let want = names.get(name);
  if (!want) {
    want = Buffer.from(name, 'utf8');
    if (names.size < 1024) names.set(name, want);
  }
  let p = 0;
  while (p < data.length) {
    const sp = data.indexOf(0x20, p);
    const nul = data.indexOf(0, sp);
    if (sp === -1 || nul === -1 || nul + 21 > data.length) throw corruptGit('a tree object is truncated');
    if (nul - sp - 1 === want.length && data.compare(want, 0, want.length, sp + 1, nul) === 0) {
      return { kind: kindOf(data.toString('latin1', p, sp)), name, oid: data.toString('hex', nul + 1, nul + 21) };
    }
    p = nul + 21;
  }
  return undefined;
}

/** The object an annotated tag points at, and that object's type. */
export function parseTag(oid: string, data: Buffer): { object: string; type: string } {
  const m = /^object ([0-9a-f]{40})\ntype (\w+)\n/.exec(data.toString('utf8', 0, Math.min(data.length, 200)));
  if (!m) throw corruptGit(`tag ${oid} is malformed`);
  return { object: m[1]!, type: m[2]! };
}
