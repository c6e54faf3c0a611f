// Progress lines on stderr for long runs: "[bench 12.3 s] suite: task".
// Silent when stderr is not a terminal (CI logs, redirects) or with --quiet.

export interface Progress {
  /** Starts a suite; later task lines carry its name. */
  suite(name: string): void;
  /** Reports the task the current suite starts now. */
  task(message: string): void;
}

export class StderrProgress implements Progress {
  private readonly startMs = performance.now();
  private current = "";

  constructor(private readonly write: (text: string) => void = (text) => process.stderr.write(text)) {}

  suite(name: string): void {
    this.current = name;
    this.line(`suite ${name}`);
  }

  task(message: string): void {
    this.line(this.current ? `${this.current}: ${message}` : message);
  }

  private line(text: string): void {
    const elapsed = ((performance.now() - this.startMs) / 1000).toFixed(1);
    this.write(`[bench ${elapsed} s] ${text}\n`);
  }
}

export const SILENT_PROGRESS: Progress = { suite: () => {}, task: () => {} };

/** Returns the progress reporter for a run: stderr when it is a terminal and `quiet` is false. */
export function createProgress(quiet: boolean, stderrIsTerminal = process.stderr.isTTY === true): Progress {
  return quiet || !stderrIsTerminal ? SILENT_PROGRESS : new StderrProgress();
}
