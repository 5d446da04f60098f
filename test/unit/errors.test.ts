import { readFileSync, readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  causeChain,
  ConfigError,
  ConflictError,
  ERROR_CODES,
  type ErrorCode,
  ExitCode,
  exitCodeOf,
  FAMILY_EXIT,
  familyOf,
  FormatError,
  InterruptedError,
  isErrorCode,
  MissingObjectsError,
  NotARepoError,
  NotFoundError,
  RemoteError,
  StageError,
  TdvError,
  UsageError,
} from '../../src/errors.js';
import { DockerError } from '../../src/stages/runners/docker.js';
import { UnsafePathError } from '../../src/workspace/guard.js';

const SRC = path.join(import.meta.dirname, '../../src');

function sources(dir: string): string[] {
  return readdirSync(dir).flatMap((n) => {
    const p = path.join(dir, n);
    return statSync(p).isDirectory() ? sources(p) : p.endsWith('.ts') ? [p] : [];
  });
}

describe('the error table', () => {
  const codes = Object.keys(ERROR_CODES) as ErrorCode[];

  it('maps every code to exactly one family and every family to one exit code', () => {
    for (const c of codes) {
      expect(FAMILY_EXIT[familyOf(c)], c).toBeDefined();
      expect([ExitCode.failed, ExitCode.usage, ExitCode.interrupted], c).toContain(exitCodeOf(c));
      expect(new TdvError(c, 'x').exitCode, c).toBe(exitCodeOf(c));
    }
    expect(Object.keys(FAMILY_EXIT).sort()).toEqual([...new Set(Object.values(ERROR_CODES))].sort());
  });

  it('decides the documented exit codes: usage 2, interrupted 130, everything else 1', () => {
    expect(exitCodeOf('USAGE')).toBe(2);
    expect(exitCodeOf('NOT_TRACKED')).toBe(2);
    expect(exitCodeOf('UNKNOWN_REVISION')).toBe(2);
    expect(exitCodeOf('INTERRUPTED')).toBe(130);
    expect(exitCodeOf('MISSING_OBJECTS')).toBe(1);
    expect(exitCodeOf('UNSAFE_PATH')).toBe(1);
    expect(exitCodeOf('STAGE_FAILED')).toBe(1);
    // A wrong core.remote is a configuration problem, not a typo on the command line.
    expect(exitCodeOf('UNKNOWN_REMOTE')).toBe(2);
    expect(exitCodeOf('UNKNOWN_DEFAULT_REMOTE')).toBe(1);
  });

  it('lists every code the sources throw, and nothing else is a code', () => {
    // Codes appear as string literals in ALL_CAPS passed to an error class; find them all.
    const used = new Set<string>();
    for (const f of sources(SRC)) {
      const text = readFileSync(f, 'utf8');
      for (const m of text.matchAll(/(?:TdvError|RemoteError|DockerError|StageError|NotFoundError|ConfigError|wide|super)\(\s*'([A-Z][A-Z_]+)'/g)) used.add(m[1]!);
    }
    expect(used.size).toBeGreaterThan(40);
    for (const c of used) expect(isErrorCode(c), c).toBe(true);
    expect(isErrorCode('EACCES')).toBe(false);
    expect(isErrorCode('toString')).toBe(false);
  });

  it('gives families their classes, each with the family its codes belong to', () => {
    const cases: [TdvError, string, number][] = [
      [new UsageError('u'), 'usage', 2],
      [new NotFoundError('NO_PIPELINE', 'n'), 'not-found', 1],
      [new NotARepoError('n'), 'not-found', 1],
      [new MissingObjectsError('m', ['a']), 'not-found', 1],
      [new ConflictError('c', ['a']), 'conflict', 1],
      [new UnsafePathError('p'), 'unsafe-path', 1],
      [new RemoteError('REMOTE_UNREACHABLE', 'r', { wide: true }), 'transfer', 1],
      [new StageError('STAGE_FAILED', 's'), 'stage', 1],
      [new DockerError('DOCKER_DAEMON_DOWN', 'd'), 'stage', 1],
      [new ConfigError('CONFIG_INVALID', 'c'), 'config', 1],
      [new FormatError('a.tdv', 'bad'), 'config', 1],
      [new InterruptedError(), 'interrupted', 130],
    ];
    for (const [e, family, exit] of cases) {
      expect(e).toBeInstanceOf(TdvError);
      expect(e.family, e.code).toBe(family);
      expect(e.exitCode, e.code).toBe(exit);
    }
    expect(new NotARepoError('n')).toBeInstanceOf(NotFoundError);
    expect(new FormatError('a', 'b')).toBeInstanceOf(ConfigError);
    expect(new DockerError('IMAGE_NOT_FOUND', 'i')).toBeInstanceOf(StageError);
  });
});

describe('causeChain (what -v prints)', () => {
  it('lists every cause outermost first with its errno code, then the innermost stack', () => {
    const sys = Object.assign(new Error('EACCES: permission denied, open /x'), { code: 'EACCES' });
    const mid = new Error('cannot write object', { cause: sys });
    const top = new TdvError('IO_ERROR', 'add failed', { cause: mid });
    const lines = causeChain(top);
    expect(lines[0]).toBe('caused by: cannot write object');
    expect(lines[1]).toBe('caused by: [EACCES] EACCES: permission denied, open /x');
    expect(lines[2]).toContain('EACCES: permission denied');
    expect(lines[2]).toContain('errors.test.ts');
    expect(lines).toHaveLength(3);
  });

  it('is empty without a cause and stops at a cycle', () => {
    expect(causeChain(new TdvError('NOT_FOUND', 'x'))).toEqual([]);
    const a = new Error('a');
    const b = new Error('b', { cause: a });
    (a as { cause?: unknown }).cause = b;
    expect(causeChain(new TdvError('IO_ERROR', 'top', { cause: b })).filter((l) => l.startsWith('caused by'))).toEqual(['caused by: b', 'caused by: a']);
  });
});
