/**
 * Edits of `tdv.yaml` text for `tdv freeze`, `tdv unfreeze` and `tdv stage
 * add`. They go through the YAML library's Document API, which keeps
 * comments, key order and flow or block style; it may respace a comment or
 * requote a string, nothing more. Callers validate the result (loadPipeline)
 * before writing it: these functions only change text.
 */
import { FormatError, UsageError } from '../errors.js';
import { PIPELINE_FILE } from './load.js';

/** How the Document API writes a changed file: no folding of long commands, `[a, b]` as people write it. */
const TO_STRING = { lineWidth: 0, flowCollectionPadding: false } as const;

type YamlModule = typeof import('yaml');

/**
 * The schema's number tags, writing a number that was read from the file as
 * it was written. The library writes a number from its value: digits past a
 * double's precision (`12345678901234567890`, `0.1000000000000000055`) would
 * be lost, and `007`, `1e3` or `1e400` rewritten (`7`, `1e+3`, `.inf`), in a
 * `meta`, a `vars` value or a foreach item the edit never touched.
 */
function numbersAsWritten(tags: import('yaml').Tags): import('yaml').Tags {
  return tags.map((t) => {
    if (typeof t === 'string' || !('resolve' in t) || !t.stringify || (t.tag !== 'tag:yaml.org,2002:int' && t.tag !== 'tag:yaml.org,2002:float')) return t;
    const own = t.stringify;
    const asWritten: typeof own = (node, ...rest) => (typeof (node as { source?: unknown }).source === 'string' ? (node as { source: string }).source : own(node, ...rest));
    return { ...t, stringify: asWritten };
  });
}

/** Parse options for a tdv.yaml edit: numbers written back as they were (also for `tdv remove`'s edits). */
export const EDIT_OPTIONS = { customTags: numbersAsWritten } as const;

async function parse(text: string): Promise<{ y: YamlModule; doc: import('yaml').Document.Parsed }> {
  const y = await import('yaml');
  const doc = y.parseDocument(text, { uniqueKeys: true, prettyErrors: false, strict: true, ...EDIT_OPTIONS });
  const err = doc.errors[0];
  if (err) throw new FormatError(PIPELINE_FILE, `invalid YAML: ${err.message.split('\n')[0]}`);
  return { y, doc };
}

/**
 * Sets (`true`) or removes (`false`) `frozen` on each named stage. Stages
 * already in that state are left alone; returns the new text and the stages
 * that changed.
 */
export async function setFrozen(text: string, names: readonly string[], frozen: boolean): Promise<{ text: string; changed: string[] }> {
  const { y, doc } = await parse(text);
  const stages = doc.get('stages');
  const changed: string[] = [];
  for (const name of names) {
    const written = y.isMap(stages) ? stages.get(name) : undefined;
    if (!y.isMap(written)) {
      const group = name.includes('@') ? name.slice(0, name.indexOf('@')) : undefined;
      if (group !== undefined && y.isMap(stages) && y.isMap(stages.get(group))) {
        throw new UsageError(
          `stage "${name}" is made by the foreach or matrix of "${group}" in ${PIPELINE_FILE}; freeze all of its stages with \`tdv ${frozen ? 'freeze' : 'unfreeze'} ${group}\`, or set "frozen" there by hand from a value of its items`,
        );
      }
      throw new UsageError(`stage "${name}" is not written in ${PIPELINE_FILE} as a mapping of its own; edit "frozen" there by hand`);
    }
    // A foreach group keeps its stage's keys under `do:` (a matrix keeps them beside `matrix:`):
    // frozen there applies to every stage the group makes.
    const doBody = written.has('foreach') ? written.get('do') : undefined;
    const stage = y.isMap(doBody) ? doBody : written;
    const now = stage.get('frozen') === true;
    if (now === frozen) continue;
    // Unfreezing removes the key (as DVC does) rather than writing `frozen: false`.
    if (frozen) stage.set('frozen', true);
    else stage.delete('frozen');
    changed.push(name);
  }
  return { text: changed.length ? doc.toString(TO_STRING) : text, changed };
}

/** One stage as `tdv stage add` writes it: keys in the order people read them. */
export interface NewStage {
  desc?: string;
  cmd: string;
  image?: string;
  wdir?: string;
  deps: string[];
  /** `params.yaml` keys as strings, other files as `{file: [keys]}`. */
  params: (string | Record<string, string[]>)[];
  outs: { path: string; cache?: false; persist?: true }[];
  metrics: string[];
  alwaysChanged?: boolean;
}

/**
 * Adds stage `name` to the pipeline text (or `undefined`: no tdv.yaml yet).
 * An existing stage of that name is an error unless `force`, which replaces
 * it where it stands.
 */
export async function addStage(text: string | undefined, name: string, stage: NewStage, force: boolean): Promise<{ text: string; replaced: boolean }> {
  const { y, doc } = await parse(text ?? '');
  if (doc.contents === null) doc.contents = doc.createNode({}) as never;
  if (!y.isMap(doc.contents)) throw new FormatError(PIPELINE_FILE, 'must be a mapping with a "stages" key');
  let stages = doc.get('stages');
  if (stages === null || stages === undefined) {
    stages = doc.createNode({});
    doc.set('stages', stages);
  }
  if (!y.isMap(stages)) throw new FormatError(PIPELINE_FILE, '"stages" must be a mapping of stage names to stages');
  // `stages: {}` (an empty flow mapping) becomes a block one: the new stage is written as people write them.
  if (stages.items.length === 0) stages.flow = false;
  const replaced = stages.has(name);
  if (replaced && !force) throw new UsageError(`stage "${name}" already exists in ${PIPELINE_FILE}; choose another name, or replace it with --force`);
  const body: Record<string, unknown> = {};
  if (stage.desc !== undefined) body.desc = stage.desc;
  body.cmd = stage.cmd;
  if (stage.image !== undefined) body.image = stage.image;
  if (stage.wdir !== undefined && stage.wdir !== '.') body.wdir = stage.wdir;
  if (stage.deps.length) body.deps = stage.deps;
  if (stage.params.length) body.params = stage.params;
  if (stage.outs.length) {
    body.outs = stage.outs.map((o) => {
      const flags = { ...(o.cache === false ? { cache: false } : {}), ...(o.persist ? { persist: true } : {}) };
      return Object.keys(flags).length ? { [o.path]: flags } : o.path;
    });
  }
  if (stage.metrics.length) body.metrics = stage.metrics;
  if (stage.alwaysChanged) body.always_changed = true;
  stages.set(name, doc.createNode(body));
  return { text: doc.toString(TO_STRING), replaced };
}
