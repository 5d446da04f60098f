// The generated attack suite of issue 11, as CI runs it: a few hundred cases
// of hostile repositories, clones and remotes, every writing command on each,
// one invariant (test/attack/README.md). Batches keep each test within its
// timeout and show progress; a failure lists every violation with the command
// that reruns its case alone.
//
// TDV_ATTACK_SEED (default fixed, so CI is reproducible), TDV_ATTACK_CASES
// (default 240) and TDV_ATTACK_JOBS (default 2) tune it. Needs `npm run build`.
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';

const RUN = path.resolve(import.meta.dirname, 'run.mjs');
const SEED = process.env.TDV_ATTACK_SEED ?? '20250611';
const CASES = Number(process.env.TDV_ATTACK_CASES ?? 240);
const JOBS = process.env.TDV_ATTACK_JOBS ?? '2';
const BATCH = 60;

interface Violation {
  kind: string;
  path?: string;
  detail: string;
}
interface Failure {
  seed: string;
  caseNo: number;
  index?: number;
  cmd?: string[];
  code?: number | string;
  stderr?: string;
  harness?: boolean;
  violations: Violation[];
  mutations?: { name: string; cls: string[]; detail: string }[];
}

function describeFailure(f: Failure): string {
  const lines = [`seed ${f.seed} case ${f.caseNo}: \`tdv ${(f.cmd ?? []).join(' ')}\` (command #${f.index}, exit ${f.code})`];
  for (const m of f.mutations ?? []) lines.push(`    case: ${m.name} [class ${m.cls.join(',')}] ${m.detail}`);
  for (const v of f.violations) lines.push(`    ${v.kind}${v.path !== undefined ? ` ${v.path}` : ''}: ${v.detail}`);
  if (f.stderr) lines.push(`    stderr: ${JSON.stringify(f.stderr.trim().slice(0, 300))}`);
  lines.push(`    rerun: npm run attack -- --seed ${f.seed} --case ${f.caseNo}`);
  return lines.join('\n');
}

function runBatch(from: number, count: number): Promise<{ failures: Failure[]; cases: number; log: string }> {
  const json = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'tdv-attack-json-')), 'result.json');
  const args = [RUN, '--seed', SEED, '--from', String(from), '--cases', String(count), '--jobs', JOBS, '--quiet', '--json', json];
  return new Promise((resolve, reject) => {
    execFile(process.execPath, args, { maxBuffer: 1 << 26 }, (err, stdout, stderr) => {
      try {
        const r = JSON.parse(fs.readFileSync(json, 'utf8')) as { failures: Failure[]; cases: number };
        resolve({ failures: r.failures, cases: r.cases, log: stdout });
      } catch {
        reject(new Error(`the attack runner did not finish (${err?.message ?? 'no result'}):\n${stdout}\n${stderr}`));
      } finally {
        fs.rmSync(path.dirname(json), { recursive: true, force: true });
      }
    });
  });
}

describe(`attack suite: seed ${SEED}, ${CASES} cases`, () => {
  for (let from = 0; from < CASES; from += BATCH) {
    const count = Math.min(BATCH, CASES - from);
    it(`cases ${from}..${from + count - 1} keep the invariant`, { timeout: 15 * 60_000 }, async () => {
      const r = await runBatch(from, count);
      expect(r.cases).toBe(count);
      const report = r.failures.map(describeFailure).join('\n');
      expect(
        r.failures.length,
        `${r.failures.length} command(s) violated the invariant:\n${report}\n${r.log
          .split('\n')
          .filter((l) => l.startsWith('attack:') || l.startsWith('  '))
          .join('\n')}`,
      ).toBe(0);
    });
  }
});
