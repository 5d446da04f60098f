import path from 'node:path';
import { FormatError } from '../errors.js';
import { isValidSize } from './manifest.js';
import { isLegalRelPath, relPathProblem } from './paths.js';
import { isDirOid, isOid, type Oid } from './oid.js';
import { parseYaml } from '../util/yaml.js';

export const POINTER_EXT = '.tdv';

/** One tracked output of a pointer file. `path` is relative to the pointer's directory. */
export interface PointerOut {
  path: string;
  sha256: Oid;
  size: number;
  nfiles?: number;
  isexec?: boolean;
  /** Free text for people, kept as written (as DVC's `desc` of an out). */
  desc?: string;
  /** Free data for tools, kept as written and ignored by tdv. */
  meta?: unknown;
}

/** A pointer's own `desc` and `meta` (beside `outs`), kept when tdv rewrites it. */
export interface PointerInfo {
  desc?: string;
  meta?: unknown;
}

export interface Pointer extends PointerInfo {
  /** Absolute path of the `.tdv` file. */
  file: string;
  outs: PointerOut[];
}

/** Files Git and tdv read rules from, which tdv edits: never tracked data. */
const CONTROL_NAMES = new Set(['.gitignore', '.gitattributes', '.tdvignore']);

/** YAML scalars that must be quoted to stay strings. */
const PLAIN = /^[A-Za-z_./][A-Za-z0-9_./-]*$/;
const RESERVED = /^(?:true|false|null|yes|no|on|off|y|n|~|\.inf|\.nan|\.\d.*)$/i;

function yamlString(s: string): string {
  return PLAIN.test(s) && !RESERVED.test(s) ? s : JSON.stringify(s);
}

/**
 * The canonical text of a pointer file. `desc` and `meta` (the pointer's and
 * its outs') are written as JSON, which YAML reads as it is.
 */
export function serializePointer(outs: readonly PointerOut[], info: PointerInfo = {}): string {
  let s = '';
  if (info.desc !== undefined) s += `desc: ${JSON.stringify(info.desc)}\n`;
  if (info.meta !== undefined) s += `meta: ${JSON.stringify(info.meta)}\n`;
  s += 'outs:\n';
  for (const o of outs) {
    s += `- path: ${yamlString(o.path)}\n  sha256: ${o.sha256}\n  size: ${o.size}\n`;
    if (o.nfiles !== undefined) s += `  nfiles: ${o.nfiles}\n`;
    if (o.isexec) s += '  isexec: true\n';
    if (o.desc !== undefined) s += `  desc: ${JSON.stringify(o.desc)}\n`;
    if (o.meta !== undefined) s += `  meta: ${JSON.stringify(o.meta)}\n`;
  }
  return s;
}

/**
 * The exact shape `serializePointer` writes, with plain or JSON-quoted paths.
 * Matching it lets the common case skip loading the YAML parser; anything
 * else (comments, hand edits, flow style) goes through the real parser.
 */
const CANONICAL =
  /^outs:\n((?:- path: (?:[A-Za-z_./][A-Za-z0-9_./-]*|"(?:[^"\\\n]|\\.)*")\n {2}sha256: [0-9a-f]{64}(?:\.dir)?\n {2}size: \d{1,16}\n(?: {2}nfiles: \d{1,16}\n)?(?: {2}isexec: true\n)?)+)$/;
const CANONICAL_OUT = /- path: ([^\n]+)\n {2}sha256: ([^\n]+)\n {2}size: (\d+)\n(?: {2}nfiles: (\d+)\n)?( {2}isexec: true\n)?/g;

/** Parses and validates a pointer file's text. `file` is its absolute path. */
export async function parsePointer(text: string, file: string, displayName = file): Promise<Pointer> {
  let raw: unknown;
  const m = CANONICAL.exec(text);
  if (m) {
    const outs: Record<string, unknown>[] = [];
    for (const o of m[1]!.matchAll(CANONICAL_OUT)) {
      const p = o[1]!;
      const out: Record<string, unknown> = { path: p.startsWith('"') ? JSON.parse(p) : p, sha256: o[2], size: Number(o[3]) };
      if (o[4] !== undefined) out.nfiles = Number(o[4]);
      if (o[5] !== undefined) out.isexec = true;
      outs.push(out);
    }
    raw = { outs };
  } else {
    raw = (await parseYaml(text, displayName)).value;
  }
  return { file, outs: validate(raw, displayName), ...info(raw as Record<string, unknown>, displayName) };
}

/** The pointer's `desc` (a string) and `meta` (anything), checked; `validate` has checked the keys. */
function info(raw: Record<string, unknown>, name: string): PointerInfo {
  if (raw.desc !== undefined && typeof raw.desc !== 'string')
    throw new FormatError(name, '"desc" must be a string', 'Fix or delete the pointer file (git checkout -- <file> restores the committed one)');
  return { ...(typeof raw.desc === 'string' ? { desc: raw.desc } : {}), ...(raw.meta !== undefined ? { meta: raw.meta } : {}) };
}

/** A value as the user wrote it, for messages (JSON.stringify turns NaN into null). */
function show(v: unknown): string {
  const s = typeof v === 'string' ? JSON.stringify(v) : String(v);
  return s.length > 200 ? `${s.slice(0, 100)}...${s.slice(-20)} (${s.length} characters)` : s; // one readable line, whatever the file holds
}

function validate(raw: unknown, name: string): PointerOut[] {
  const fix = 'Fix or delete the pointer file (git checkout -- <file> restores the committed one)';
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new FormatError(name, 'is not a tdv pointer (expected a mapping with "outs")', fix);
  // `desc` and `meta` are free text and data for people and tools; any other key is a mistake
  // (or a newer format) that tdv must not silently drop when it rewrites the pointer.
  for (const k of Object.keys(raw)) if (k !== 'outs' && k !== 'desc' && k !== 'meta') throw new FormatError(name, `unknown key "${k}"`, fix);
  const outs = (raw as { outs?: unknown }).outs;
  if (!Array.isArray(outs) || outs.length === 0) throw new FormatError(name, '"outs" must be a non-empty list', fix);
  return outs.map((o, i): PointerOut => {
    if (typeof o !== 'object' || o === null || Array.isArray(o)) throw new FormatError(name, `outs[${i}] must be a mapping`, fix);
    const r = o as Record<string, unknown>;
    for (const k of Object.keys(r)) {
      if (!['path', 'sha256', 'size', 'nfiles', 'isexec', 'desc', 'meta'].includes(k)) throw new FormatError(name, `outs[${i}] has unknown key "${k}"`, fix);
    }
    // The one definition of a legal path (formats/paths.ts), as for manifests and tdv.lock.
    if (!isLegalRelPath(r.path)) throw new FormatError(name, `outs[${i}].path ${show(r.path)} must be a relative path inside the repository; it ${relPathProblem(r.path)}`, fix);
    if (r.path.endsWith(POINTER_EXT)) throw new FormatError(name, `outs[${i}].path ${show(r.path)} names a pointer file, which tdv never tracks`, fix);
    // A checkout would put data where Git and tdv read their rules (found by the attack suite: a
    // hostile pointer naming .gitignore as a directory).
    const base = r.path.slice(r.path.lastIndexOf('/') + 1);
    if (CONTROL_NAMES.has(base)) throw new FormatError(name, `outs[${i}].path ${show(r.path)} names a ${base} file, which holds Git's or tdv's rules, not data`, fix);
    if (!isOid(r.sha256)) throw new FormatError(name, `outs[${i}].sha256 must be 64 lowercase hex digits (plus ".dir" for a directory), got ${show(r.sha256)}`, fix);
    if (!isValidSize(r.size)) throw new FormatError(name, `outs[${i}].size must be a whole number of bytes >= 0`, fix);
    const out: PointerOut = { path: r.path, sha256: r.sha256, size: r.size };
    if (r.nfiles !== undefined) {
      if (!isValidSize(r.nfiles)) throw new FormatError(name, `outs[${i}].nfiles must be a whole number >= 0`, fix);
      out.nfiles = r.nfiles;
    }
    if (isDirOid(out.sha256) && out.nfiles === undefined) throw new FormatError(name, `outs[${i}] is a directory but has no nfiles`, fix);
    if (r.isexec !== undefined) {
      if (typeof r.isexec !== 'boolean') throw new FormatError(name, `outs[${i}].isexec must be true or false`, fix);
      if (r.isexec) out.isexec = true;
    }
    if (r.desc !== undefined) {
      if (typeof r.desc !== 'string') throw new FormatError(name, `outs[${i}].desc must be a string`, fix);
      out.desc = r.desc;
    }
    if (r.meta !== undefined) out.meta = r.meta;
    return out;
  });
}

/** The pointer file name for a tracked path: `data` -> `data.tdv`. */
export function pointerFileFor(absTarget: string): string {
  return absTarget + POINTER_EXT;
}

/** Absolute workspace path of an out. */
export function outAbsPath(ptr: Pointer, out: PointerOut): string {
  return path.join(path.dirname(ptr.file), ...out.path.split('/'));
}
