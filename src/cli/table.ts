/**
 * Tables of values (metrics, params), as aligned plain text for a terminal or
 * as a GitHub-flavoured Markdown table for a pull request or a report. The
 * first row is the header. Cells must already be one line each (see
 * escapeLine): a newline would break either form.
 */
export function formatTable(rows: readonly (readonly string[])[], md = false): string[] {
  return md ? markdownTable(rows) : alignedTable(rows);
}

/** Columns padded to their widest cell and separated by two spaces; no trailing blanks. */
export function alignedTable(rows: readonly (readonly string[])[]): string[] {
  const n = Math.max(0, ...rows.map((r) => r.length));
  const w = Array.from({ length: n }, (_, i) => Math.max(0, ...rows.map((r) => width(r[i] ?? ''))));
  return rows.map((r) =>
    Array.from({ length: n }, (_, i) => {
      const c = r[i] ?? '';
      return c + ' '.repeat(w[i]! - width(c));
    })
      .join('  ')
      .trimEnd(),
  );
}

/**
 * A Markdown table: `|` and `\` in cells are escaped, so a key or a value
 * holding them stays in its cell; an empty cell stays empty.
 */
export function markdownTable(rows: readonly (readonly string[])[]): string[] {
  if (!rows.length) return [];
  const n = Math.max(...rows.map((r) => r.length));
  const line = (r: readonly string[]) => `| ${Array.from({ length: n }, (_, i) => (r[i] ?? '').replace(/[\\|]/g, '\\$&')).join(' | ')} |`;
  return [line(rows[0]!), `|${' --- |'.repeat(n)}`, ...rows.slice(1).map(line)];
}

/** Display width: code points, so an accented key does not push its column out. */
function width(s: string): number {
  let n = 0;
  for (const _ of s) n++;
  return n;
}
