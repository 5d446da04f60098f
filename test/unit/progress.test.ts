import { describe, expect, it } from 'vitest';
import { formatEta, progressMode, SmoothRate } from '../../src/ui/progress.js';

/**
 * A steady workload with bursty items: clumps of 500 small files (2 KB, each
 * costing 2 ms of open/close) alternate with one 100 MB file read at 100 MB/s,
 * about one second each, for 60 cycles. Small files are reported one by one or
 * in batches of 64 (as the two-thread pool hands out chunks), the large file
 * in 4 MiB reads. Returns the report events (time, cumulative bytes) and the
 * true end time.
 */
function workload(batch: number): { events: [number, number][]; end: number; total: number } {
  const events: [number, number][] = [];
  let t = 0;
  let done = 0;
  for (let cycle = 0; cycle < 60; cycle++) {
    for (let i = 0; i < 500; i++) {
      t += 0.002 + 2048 / 100e6;
      done += 2048;
      if (i % batch === batch - 1 || i === 499) events.push([t, done]);
    }
    for (let left = 100e6; left > 0;) {
      const n = Math.min(left, 4 * 2 ** 20);
      t += n / 100e6;
      done += n;
      left -= n;
      events.push([t, done]);
    }
  }
  return { events, end: t, total: done };
}

/** Runs an estimator over the workload, asking for the ETA 8 times a second (as the bar redraws). */
function etas(batch: number, estimate: (t: number, done: number, remaining: number) => number | undefined): { t: number; eta: number | undefined; truth: number }[] {
  const { events, end, total } = workload(batch);
  const out: { t: number; eta: number | undefined; truth: number }[] = [];
  let k = 0;
  let done = 0;
  for (let t = 0; t < end; t += 0.125) {
    // Every report reaches the estimator (cli-progress redraws on updates too), then the redraw asks.
    while (k < events.length && events[k]![0] <= t) {
      done = events[k]![1];
      estimate(events[k]![0], done, total - done);
      k++;
    }
    out.push({ t, eta: estimate(t, done, total - done), truth: end - t });
  }
  return out;
}

describe('SmoothRate: the ETA of a steady transfer does not jump', () => {
  it.each([1, 64])('stays within a fifth of the true remaining time after the first 25 s, with bursty item sizes (small files reported %i at a time)', (batch) => {
    const rate = new SmoothRate();
    const seen = etas(batch, (t, done, remaining) => {
      rate.sample(t, done);
      return rate.eta(remaining);
    });
    const judged = seen.filter((s) => s.t >= 25 && s.truth > 10);
    expect(judged.length).toBeGreaterThan(500);
    for (const s of judged) {
      expect(s.eta, `at ${s.t.toFixed(1)} s`).toBeDefined();
      expect(Math.abs(s.eta! - s.truth) / s.truth, `at ${s.t.toFixed(1)} s: ETA ${s.eta!.toFixed(0)} s, truly ${s.truth.toFixed(0)} s`).toBeLessThan(0.2);
    }
    // And from one redraw to the next (1/8 s) it moves by a few percent at most, never by half.
    for (let i = 1; i < judged.length; i++) expect(Math.abs(judged[i]!.eta! - judged[i - 1]!.eta!) / judged[i - 1]!.eta!, `at ${judged[i]!.t.toFixed(1)} s`).toBeLessThan(0.05);
  });

  it('the band is a real test: an ETA over the last 50 reports (per item, not over time) leaves it', () => {
    const window: [number, number][] = [];
    const seen = etas(1, (t, done, remaining) => {
      if (window.at(-1)?.[1] !== done) window.push([t, done]);
      if (window.length > 50) window.shift();
      if (window.length < 2) return undefined;
      const r = (window.at(-1)![1] - window[0]![1]) / (window.at(-1)![0] - window[0]![0]);
      return remaining / r;
    });
    const worst = Math.max(...seen.filter((s) => s.t >= 25 && s.truth > 10).map((s) => Math.abs((s.eta ?? Infinity) - s.truth) / s.truth));
    expect(worst).toBeGreaterThan(0.5);
  });

  it('knows nothing before the first half second, and uses the average until the EWMA has data', () => {
    const r = new SmoothRate(10, 0.5);
    r.sample(100, 0);
    expect(r.rate).toBeUndefined();
    r.sample(100.2, 500);
    expect(r.eta(1000)).toBeUndefined();
    r.sample(101, 1000);
    expect(r.rate).toBeCloseTo(1000);
    expect(r.eta(3000)).toBeCloseTo(3);
    expect(r.eta(0)).toBe(0);
  });
});

describe('formatEta', () => {
  it('prints seconds, minutes and hours, and -- when unknown', () => {
    expect(formatEta(undefined)).toBe('--');
    expect(formatEta(Infinity)).toBe('--');
    expect(formatEta(9.4)).toBe('9s');
    expect(formatEta(247)).toBe('4m 07s');
    expect(formatEta(3900)).toBe('1h 05m');
  });
});

describe('progressMode: a terminal only', () => {
  const base = { isTTY: true, quiet: false, json: false, env: {} };
  it('draws on a terminal, never with --json, -q, a pipe, CI or a dumb terminal', () => {
    expect(progressMode(base)).toBe('tty');
    expect(progressMode({ ...base, json: true })).toBeUndefined();
    expect(progressMode({ ...base, quiet: true })).toBeUndefined();
    expect(progressMode({ ...base, isTTY: false })).toBeUndefined();
    expect(progressMode({ ...base, env: { CI: 'true' } })).toBeUndefined();
    expect(progressMode({ ...base, env: { TERM: 'dumb' } })).toBeUndefined();
  });
  it('TDV_PROGRESS=1 forces it (CI logs, pipes) but not into --json; TDV_PROGRESS=0 turns it off', () => {
    expect(progressMode({ ...base, env: { CI: 'true', TDV_PROGRESS: '1' } })).toBe('tty');
    expect(progressMode({ ...base, isTTY: false, env: { TDV_PROGRESS: '1' } })).toBe('forced');
    expect(progressMode({ ...base, json: true, env: { TDV_PROGRESS: '1' } })).toBeUndefined();
    expect(progressMode({ ...base, env: { TDV_PROGRESS: '0' } })).toBeUndefined();
  });
});

describe('progressBar and Ctrl-C', () => {
  it('puts the cursor back and leaves the signal to a command that handles it (repro records, then exits 130)', async () => {
    const { PassThrough } = await import('node:stream');
    const { vi } = await import('vitest');
    const { progressBar } = await import('../../src/ui/progress.js');
    const stream = Object.assign(new PassThrough(), { isTTY: true, columns: 100 });
    let drawn = '';
    stream.on('data', (d) => (drawn += d));
    const kill = vi.spyOn(process, 'kill').mockImplementation(() => true);
    let handled = 0;
    const repro = () => handled++;
    process.once('SIGINT', repro);
    try {
      const bar = await progressBar('repro', stream, { unit: 'stages' });
      bar.plan(3, 0);
      bar.files();
      expect(drawn).toMatch(/repro \S+ \d+% \| \d\/3 stages \| ETA/);
      process.emit('SIGINT', 'SIGINT');
      expect(handled).toBe(1); // the command's own handler ran
      expect(kill).not.toHaveBeenCalled(); // and the bar did not kill the process under it
      expect(drawn).toContain('\x1b[?25h'); // cursor shown again
      bar.finish();
    } finally {
      process.removeListener('SIGINT', repro);
      kill.mockRestore();
    }
  });
});
