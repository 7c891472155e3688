/** Where the trainer writes: log lines (stderr) and whether that is a terminal. Replaceable in tests. */
export interface Io {
  log(line: string): void;
  isTTY: boolean;
  /** Rewrite the current terminal line (progress bar). */
  status(line: string): void;
}

export const processIo: Io = {
  log: (line) => process.stderr.write(line + '\n'),
  isTTY: Boolean(process.stderr.isTTY),
  status: (line) => process.stderr.write(`\r${line}\x1b[K`),
};

/** A progress bar (step, loss, tokens/s, ETA) on a terminal; a log line every `logEvery` steps otherwise. */
export class Progress {
  private readonly started = performance.now();
  private firstStep: number | null = null;
  private shown = false;

  constructor(
    private readonly io: Io,
    private readonly total: number,
    private readonly logEvery: number,
  ) {}

  update(step: number, loss: number, tokensPerSecond: number): void {
    this.firstStep ??= step - 1;
    const elapsed = (performance.now() - this.started) / 1000;
    const done = step - this.firstStep;
    const eta = done > 0 ? ((this.total - step) * elapsed) / done : 0;
    const text = `step ${step}/${this.total}  loss ${loss.toFixed(4)}  ${Math.round(tokensPerSecond)} tok/s  ETA ${formatSeconds(eta)}`;
    if (this.io.isTTY) {
      const width = 24;
      const filled = Math.round((width * step) / this.total);
      this.io.status(`[${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${text}`);
      this.shown = true;
    } else if (step % this.logEvery === 0 || step === this.total) {
      this.io.log(text);
    }
  }

  /** A message on its own line (the bar continues below it). */
  note(line: string): void {
    if (this.shown) this.io.status('');
    this.io.log(line);
  }

  done(): void {
    if (this.shown) this.io.log('');
    this.shown = false;
  }
}

export function formatSeconds(s: number): string {
  if (!Number.isFinite(s)) return '?';
  const m = Math.floor(s / 60);
  return m > 0 ? `${m}m${String(Math.round(s % 60)).padStart(2, '0')}s` : `${Math.round(s)}s`;
}
