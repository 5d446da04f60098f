import { randomBytes } from 'node:crypto';
import type { Document } from 'yaml';
import { CONFIG_FILE, configFromTexts } from '../../formats/config.js';
import { FormatError, RemoteError, UsageError } from '../../errors.js';
import type { Remote } from '../../remote/remote.js';
import type { Repo } from '../repo.js';
import { openHistory } from './revision.js';

/*
 * Which repositories use a remote. Every remote holds objects by content, so
 * two repositories pushing to one remote share it silently; `gc --cloud` sees
 * only this repository's pointers and would delete the other's objects. So
 * `push` leaves a marker, `repos/<id>`, naming the repository, and gc refuses
 * a remote that names another one (or holds objects but no marker of this
 * repository) unless told `--shared-remote`.
 *
 * A repository's id is the id of its root commit (following first parents from
 * HEAD), which every clone shares; before the first commit, a random id that
 * the first push records as `core.id` in the committed config.yaml (it then
 * stays the id). A marker counts as this repository's when it is that id, the
 * configured one, or any commit this clone's Git has (another branch's root).
 */

/** The marker a push writes when it finds objects on a remote that has no markers: tdv before markers, or another tool. */
export const UNMARKED = 'unmarked';

const MARKER_TEXT = (id: string) => Buffer.from(`tdv repository ${id}\n`);

/** The id of this repository, or undefined when it has none yet (no commit, no core.id). */
export function repoId(repo: Repo): string | undefined {
  if (repo.config.core.id) return repo.config.core.id;
  if (!repo.git) return undefined;
  const history = openHistory(repo);
  try {
    const head = history.refs.resolve('HEAD');
    if (!head || !history.db.has(head)) return undefined;
    let c = history.commit(head);
    // First parents to the root; a shallow clone stops at its boundary (gc refuses shallow clones anyway).
    for (let p = history.parents(c)[0]; p !== undefined; p = history.parents(c)[0]) c = history.commit(p);
    return c.oid;
  } finally {
    history.close();
  }
}

/**
 * Writes this repository's marker on `remote` unless it is there. A remote
 * holding objects but no marker at all gets the UNMARKED marker too: whoever
 * pushed them is unknown, and gc must not take them for this repository's.
 * Before any commit, a new id is recorded in config.yaml first.
 */
export async function markRemote(repo: Repo, remote: Remote): Promise<void> {
  const id = repoId(repo) ?? (await recordNewId(repo));
  const markers = await remote.listRepoMarkers();
  if (markers.includes(id)) return;
  try {
    if (markers.length === 0 && (await hasObjects(remote))) await remote.putRepoMarker(UNMARKED, Buffer.from('objects pushed before tdv wrote repository markers, by unknown repositories\n'));
    await remote.putRepoMarker(id, MARKER_TEXT(id));
  } catch (err) {
    // Nothing was uploaded yet: the whole push is safe to run again.
    if (err instanceof RemoteError && !err.wide) throw new RemoteError(err.code, `${err.message}; nothing was uploaded, run \`tdv push\` again`, { cause: err, data: err.data });
    throw err;
  }
}

/**
 * Refuses `gc --cloud` on a remote other repositories may use: one whose
 * markers name another repository, or that holds objects but no marker of
 * this one. Returns the reason (for `--dry` and `--shared-remote`, which go
 * on), or undefined for a remote only this repository uses.
 */
export async function sharedRemote(repo: Repo, remote: Remote): Promise<SharedRemote | undefined> {
  const id = repoId(repo);
  const markers = await remote.listRepoMarkers();
  const others = markers.filter((m) => !isOurs(repo, id, m));
  if (others.length > 0) return { remote: remote.name, url: remote.url, others, ...(id ? { id } : {}) };
  if (markers.length > 0 || !(await hasObjects(remote))) return undefined;
  return { remote: remote.name, url: remote.url, others: [], ...(id ? { id } : {}) };
}

/** Why a remote counts as shared: the other repositories' markers (none: objects but no marker of this repository). */
export interface SharedRemote {
  remote: string;
  url: string;
  others: string[];
  /** This repository's id, when it has one. */
  id?: string;
}

/** The one-line refusal for a shared remote, naming the other repositories and the risk. */
export function sharedRemoteError(s: SharedRemote): UsageError {
  const where = `remote "${s.remote}" (${s.url})`;
  const risk = "gc sees only this repository's pointers, so objects only they use would be deleted; pass --shared-remote to collect it anyway, or --dry to see the plan";
  const named = s.others.filter((o) => o !== UNMARKED);
  if (s.others.length === 0) {
    return new UsageError(`${where} holds objects but no marker of this repository (repos/${s.id ?? '<id>'}), so they were pushed by an older tdv or by other repositories: ${risk}`, {
      remote: s.remote,
      others: s.others,
    });
  }
  const who = [
    ...(named.length > 0 ? [`other repositories (${named.map((o) => `repos/${o}`).join(', ')})`] : []),
    ...(s.others.includes(UNMARKED) ? [`repositories that pushed before tdv wrote markers (repos/${UNMARKED}; delete it on the remote if only this repository ever pushed there)`] : []),
  ].join(' and ');
  return new UsageError(`${where} is shared: it holds objects of ${who}, and ${risk}`, { remote: s.remote, others: s.others });
}

function isOurs(repo: Repo, id: string | undefined, marker: string): boolean {
  if (marker === id || marker === repo.config.core.id) return true;
  if (!/^[0-9a-f]{40}$/.test(marker) || !repo.git) return false;
  // Another root commit of this repository's history (an orphan branch, a merged project).
  try {
    const history = openHistory(repo);
    try {
      return history.db.has(marker);
    } finally {
      history.close();
    }
  } catch {
    return false;
  }
}

/** Whether the remote holds any object (stops at the first). */
async function hasObjects(remote: Remote): Promise<boolean> {
  for await (const _ of remote.list()) return true;
  return false;
}

/**
 * A random id, recorded as `core.id` in config.yaml (edited as a YAML
 * document, so its comments stay) for a repository without commits; an id
 * already there wins. Called under the repository lock.
 */
async function recordNewId(repo: Repo): Promise<string> {
  const Y = await import('yaml');
  const before = repo.own.readControlFile(CONFIG_FILE) ?? '';
  const doc: Document = Y.parseDocument(before, { uniqueKeys: true });
  const existing = doc.getIn(['core', 'id']);
  if (typeof existing === 'string') return existing;
  const id = randomBytes(20).toString('hex');
  if (!Y.isMap(doc.contents)) doc.contents = doc.createNode({});
  const core = doc.get('core', true);
  if (core === undefined || (Y.isScalar(core) && core.value === null)) doc.set('core', doc.createNode({ id }));
  else if (Y.isMap(core)) core.set('id', id);
  else throw new FormatError(`.tdv/${CONFIG_FILE}`, '"core" is not a mapping');
  const text = doc.toString({ lineWidth: 0 });
  await configFromTexts(repo.tdvDir, { [CONFIG_FILE]: text }); // it must still load
  repo.own.writeControlFile(CONFIG_FILE, text, { mode: (repo.own.lstat(CONFIG_FILE)?.mode ?? 0o644) & 0o7777 });
  return id;
}
