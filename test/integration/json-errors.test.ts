/**
 * Issue 12 §1: `--json` on failure. stdout holds one JSON document whatever
 * happens, so CI can read why a command failed: `{"error": {"code",
 * "message", "data"}}`, printed by the CLI's one error handler, beside the
 * result a command had made before it failed.
 */
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { tdvBin } from '../helpers/repo.js';
import { newDir, objPath, repoWith, sha } from '../helpers/expect.js';

/** Every command with --json, as run outside any repository. */
const COMMANDS = [
  ['status'],
  ['diff'],
  ['log'],
  ['fsck'],
  ['gc', '--workspace', '-f'],
  ['repro'],
  ['checkout'],
  ['push'],
  ['pull'],
  ['fetch'],
  ['remote', 'list'],
  ['metrics', 'show'],
  ['metrics', 'diff'],
  ['params', 'diff'],
  ['ls'],
  ['update'],
];

describe('--json on failure', () => {
  it('every command with --json prints the error as one JSON document on stdout, and the one line on stderr', async () => {
    const dir = newDir();
    for (const cmd of COMMANDS) {
      const r = await tdvBin(dir, [...cmd, '--json']);
      expect(r.code, `tdv ${cmd.join(' ')}: ${r.stderr}`).toBe(1);
      const doc = JSON.parse(r.stdout);
      expect(doc, `tdv ${cmd.join(' ')}`).toEqual({ error: { code: 'NOT_A_REPO', message: expect.stringContaining('not a tdv repository'), data: null } });
      expect(r.stderr).toMatch(/^error: .*not a tdv repository/);
    }
  });

  it('a usage error commander finds is a JSON document too (exit 2)', async () => {
    const dir = newDir();
    const r = await tdvBin(dir, ['status', '--json', '--bogus']);
    expect(r.code).toBe(2);
    expect(JSON.parse(r.stdout)).toEqual({ error: { code: 'USAGE', message: "unknown option '--bogus'", data: { commander: 'commander.unknownOption' } } });
  });

  it('a failure after a result keeps the result beside the error: one document', async () => {
    const dir = await repoWith({ 'a.csv': 'a\n' }, ['a.csv']);
    fs.rmSync(objPath(dir, sha('a\n')));
    const r = await tdvBin(dir, ['fsck', '--json']);
    expect(r.code).toBe(1);
    const doc = JSON.parse(r.stdout);
    expect(doc.error).toMatchObject({ code: 'FSCK_FAILED', message: expect.stringContaining('missing from the cache') });
    expect(Object.keys(doc.error)).toEqual(['code', 'message', 'data']);
    expect(doc.missing).toEqual([{ oid: sha('a\n'), path: 'a.csv', pointer: 'a.csv.tdv' }]);
  });

  it('without --json, stdout stays free of JSON', async () => {
    const r = await tdvBin(newDir(), ['status']);
    expect(r.code).toBe(1);
    expect(r.stdout).toBe('');
  });

  it('a push with no remote configured', async () => {
    const dir = await repoWith({ 'a.csv': 'a\n' }, ['a.csv']);
    const r = await tdvBin(dir, ['push', '--json']);
    expect(r.code).not.toBe(0);
    const doc = JSON.parse(r.stdout);
    expect(Object.keys(doc)).toEqual(['error']);
    expect(doc.error.message).toContain('remote');
    expect(fs.existsSync(path.join(dir, 'a.csv'))).toBe(true);
  });
});
