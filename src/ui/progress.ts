import readline from 'node:readline';
import type { Writable } from 'node:stream';
import type { Progress } from '../util/progress.js';
import { formatBytes } from './output.js';

/**
 * A rate smoothed over time, for an ETA that does not jump.
 *
 * Work reports come in bursts: a thousand small files in a millisecond, then
 * nothing for seconds while one large file is read. An estimate over the last
 * N reports (cli-progress' own ETA) therefore swings between "the small files'
 * pace" and "the large file's pace", and the ETA with it (20 min, then 55 s,
 * on a steady transfer). Here the rate is an exponentially weighted moving
 * average of bytes per second over *time*, not per report: samples are taken
 * at most every `sampleSec`, each weighted by how long it spans,
 *
 *     alpha = 1 - exp(-dt / tau);   rate += alpha * (dt_bytes / dt - rate)
 *
 * so a burst moves the estimate by its share of the last `tau` seconds only.
 * Until `tau` seconds have passed the average since the start is used (the
 * EWMA has nothing to average yet), and the EWMA starts from it.
 */
export class SmoothRate {
  private start?: number;
  private lastT = 0;
  private lastDone = 0;
  private ewma?: number;

  constructor(
    private readonly tau = 20,
    private readonly sampleSec = 0.5,
  ) {}

  /** Feeds the amount done so far (cumulative) at time `t` (seconds, any origin). */
  sample(t: number, done: number): void {
    if (this.start === undefined) {
      this.start = this.lastT = t;
      this.lastDone = done;
      return;
    }
    const dt = t - this.lastT;
    if (dt < this.sampleSec) return;
    const instant = (done - this.lastDone) / dt;
    if (t - this.start < this.tau) {
      this.ewma = undefined;
    } else {
      this.ewma ??= this.average(this.lastT, this.lastDone);
      this.ewma += (1 - Math.exp(-dt / this.tau)) * (instant - this.ewma);
    }
    this.lastT = t;
    this.lastDone = done;
  }

  /** Units per second, or undefined before there is anything to tell. */
  get rate(): number | undefined {
    if (this.ewma !== undefined) return this.ewma;
    if (this.start === undefined || this.lastT - this.start < this.sampleSec) return undefined;
    return this.average(this.lastT, this.lastDone);
  }

  /** Seconds until `remaining` more units are done, or undefined when unknown. */
  eta(remaining: number): number | undefined {
    const r = this.rate;
    if (remaining <= 0) return 0;
    return r === undefined || r <= 0 ? undefined : remaining / r;
  }

  private average(t: number, done: number): number {
    return t > this.start! ? done / (t - this.start!) : 0;
  }
}

/** `1h 05m`, `4m 07s`, `9s`; `--` when unknown. */
export function formatEta(sec: number | undefined): string {
  if (sec === undefined || !Number.isFinite(sec)) return '--';
  const s = Math.round(sec);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m ${String(s % 60).padStart(2, '0')}s`;
  return `${Math.floor(s / 3600)}h ${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
}

/** When to draw progress: `tty` on a terminal, `forced` by TDV_PROGRESS=1 (drawn as periodic lines when not a terminal). */
export type ProgressMode = 'tty' | 'forced';

/**
 * Whether progress is drawn: on a terminal only, never with --json or -q,
 * never in CI logs (CI set) and never when stderr is piped, unless
 * TDV_PROGRESS=1 forces it; TDV_PROGRESS=0 turns it off everywhere.
 */
export function progressMode(o: { isTTY: boolean; quiet: boolean; json: boolean; env: NodeJS.ProcessEnv }): ProgressMode | undefined {
  if (o.json || o.quiet) return undefined;
  const forced = o.env.TDV_PROGRESS;
  if (forced === '0') return undefined;
  if (forced === '1') return o.isTTY ? 'tty' : 'forced';
  if (!o.isTTY || (o.env.CI ?? '') !== '' || o.env.TERM === 'dumb') return undefined;
  return 'tty';
}

/**
 * A drawn progress: the Progress to report to, `clear()` to make room for a
 * line of other output (the bar comes back at its next redraw, under it), and
 * `finish()` to remove it before the summary.
 */
export type ProgressBar = Progress & { clear(): void; finish(): void };

/**
 * A progress bar on a terminal: files and bytes done of planned, smoothed
 * rate, ETA. Drawn by cli-progress (loaded only when a terminal will show it);
 * `finish()` removes it so the one-line summary that follows stands alone.
 * `label` names the command; a `phase` replaces it. `unit` names the files
 * ("files", "objects", "stages"); `units` names them per phase.
 */
export async function progressBar(
  label: string,
  stream: Writable & { isTTY?: boolean },
  opts: { unit?: string; units?: Record<string, string>; mode?: ProgressMode; now?: () => number } = {},
): Promise<ProgressBar> {
  const { default: cli } = await import('cli-progress');
  const now = opts.now ?? (() => performance.now() / 1000);
  let unit = opts.unit ?? 'files';
  let name = label;
  let files = 0;
  let totalFiles = 0;
  let bytes = 0;
  let totalBytes = 0;
  let running = false;
  let byteRate = new SmoothRate();
  let fileRate = new SmoothRate();
  const byBytes = () => totalBytes > 0;
  const value = () => (byBytes() ? bytes : files);
  const total = () => Math.max(byBytes() ? totalBytes : totalFiles, 1);
  const line = (options: { barsize?: number; barCompleteString?: string; barIncompleteString?: string }, progress: number): string => {
    const t = now();
    byteRate.sample(t, bytes);
    fileRate.sample(t, files);
    const width = options.barsize ?? 24;
    const filled = Math.max(0, Math.min(width, Math.round(progress * width)));
    const bar = (options.barCompleteString ?? '').slice(0, filled) + (options.barIncompleteString ?? '').slice(0, width - filled);
    const parts = [`${name} ${bar} ${Math.floor(progress * 100)}%`, `${files}/${totalFiles} ${unit}`];
    if (byBytes()) {
      const r = byteRate.rate;
      parts.push(`${formatBytes(Math.round(bytes))}/${formatBytes(totalBytes)}`, r === undefined ? '' : `${formatBytes(Math.round(r))}/s`);
      parts.push(`ETA ${formatEta(byteRate.eta(totalBytes - bytes))}`);
    } else {
      parts.push(`ETA ${formatEta(fileRate.eta(totalFiles - files))}`);
    }
    return parts.filter((p) => p !== '').join(' | ');
  };
  const bar = new cli.SingleBar(
    {
      stream,
      format: (options, params) => line(options, params.progress),
      hideCursor: true,
      clearOnComplete: true,
      noTTYOutput: opts.mode === 'forced',
      notTTYSchedule: 2000,
      fps: 8,
      barsize: 24,
      // Redrawn every frame even when unchanged: `clear()` may have erased it.
      forceRedraw: true,
    },
    cli.Presets.shades_classic,
  );
  // Ctrl-C while the bar is drawn: put the cursor back, then die of the signal as usual
  // (a shell reports 130), unless the command handles it itself (repro stops its stages
  // and records what finished): this listener runs first, so others are still listening.
  const onSignal = (sig: NodeJS.Signals) => {
    stop();
    if (process.listenerCount(sig) === 0) process.kill(process.pid, sig);
  };
  const stop = () => {
    if (running) bar.stop();
    running = false;
    process.removeListener('SIGINT', onSignal);
    process.removeListener('SIGTERM', onSignal);
  };
  const update = () => {
    if (running) bar.update(value());
  };
  return {
    plan(nFiles, nBytes) {
      totalFiles += nFiles;
      totalBytes += nBytes;
      if (running) {
        bar.setTotal(total());
        update();
      } else if (totalFiles > 0) {
        byteRate.sample(now(), bytes);
        fileRate.sample(now(), files);
        bar.start(total(), value());
        running = true;
        process.prependOnceListener('SIGINT', onSignal);
        process.prependOnceListener('SIGTERM', onSignal);
      }
    },
    bytes(n) {
      bytes += n;
      update();
    },
    files(n = 1) {
      files += n;
      update();
    },
    phase(next) {
      stop();
      name = next;
      unit = opts.units?.[next] ?? unit;
      files = totalFiles = bytes = totalBytes = 0;
      byteRate = new SmoothRate();
      fileRate = new SmoothRate();
    },
    clear() {
      if (!running || opts.mode === 'forced') return;
      readline.cursorTo(stream, 0);
      readline.clearLine(stream, 0);
    },
    finish: stop,
  };
}
