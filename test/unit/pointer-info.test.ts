import { describe, expect, it } from 'vitest';
import { FormatError } from '../../src/errors.js';
import { parsePointer, serializePointer } from '../../src/formats/pointer.js';

const SHA = 'a'.repeat(64);

describe('desc and meta in pointers', () => {
  it('are read beside outs and on an out, and written back as they were', async () => {
    const text = `desc: "raw e-mails, 2001"\nmeta: {source: enron, licence: [public]}\nouts:\n- path: mail\n  sha256: ${SHA}.dir\n  size: 10\n  nfiles: 2\n  desc: one file per message\n  meta: {owner: me}\n`;
    const p = await parsePointer(text, '/r/mail.tdv', 'mail.tdv');
    expect(p.desc).toBe('raw e-mails, 2001');
    expect(p.meta).toEqual({ source: 'enron', licence: ['public'] });
    expect(p.outs[0]).toEqual({ path: 'mail', sha256: `${SHA}.dir`, size: 10, nfiles: 2, desc: 'one file per message', meta: { owner: 'me' } });
    const again = serializePointer(p.outs, p);
    expect(await parsePointer(again, '/r/mail.tdv')).toEqual(p);
  });

  it('leave the canonical form unchanged when absent', async () => {
    const plain = `outs:\n- path: a\n  sha256: ${SHA}\n  size: 1\n`;
    const p = await parsePointer(plain, '/r/a.tdv');
    expect(p).toEqual({ file: '/r/a.tdv', outs: [{ path: 'a', sha256: SHA, size: 1 }] });
    expect(serializePointer(p.outs, p)).toBe(plain);
  });

  it('a desc that is not text is an error, and other keys still are', async () => {
    await expect(parsePointer(`desc: [1]\nouts:\n- path: a\n  sha256: ${SHA}\n  size: 1\n`, '/r/a.tdv', 'a.tdv')).rejects.toThrow(/a\.tdv:1:1: "desc" must be a string/);
    await expect(parsePointer(`outs:\n- path: a\n  sha256: ${SHA}\n  size: 1\n  desc: {x: 1}\n`, '/r/a.tdv', 'a.tdv')).rejects.toThrow(/outs\[0\]\.desc must be a string/);
    await expect(parsePointer(`labels: [x]\nouts:\n- path: a\n  sha256: ${SHA}\n  size: 1\n`, '/r/a.tdv', 'a.tdv')).rejects.toThrow(FormatError);
  });
});
