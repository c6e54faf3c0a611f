// Figures and the statistics behind them. A figure is one reported number
// with its unit, its spread and the deterministic counts of the work that
// one sample did.

/** Timing of one sample, in milliseconds, over all samples of a figure. */
export interface LatencySummary {
  meanMs: number;
  p50Ms: number;
  p99Ms: number;
  /** Relative margin of error of the mean (95 % confidence), in percent. */
  rme: number;
  samples: number;
}

/** A ratio of this figure to another one, oriented so that larger is better. */
export interface Ratio {
  value: number;
  /** Description of the reference, printed after the ratio: "native memcpy warm". */
  against: string;
}

export interface Figure {
  /** Stable identifier used in the JSON output, e.g. "uffdio_copy.64_pages.gbps". */
  id: string;
  /** Human-readable name for the table. */
  name: string;
  /** Table section. */
  group: string;
  /** The measured value, or null when the figure could not be measured. */
  value: number | null;
  unit: string;
  /** Relative margin of error of the mean sample time, in percent. */
  spread: number | null;
  samples: number;
  latency?: LatencySummary;
  /** Deterministic counts of the work one sample does (pages copied, ioctls, ...). */
  counts?: Record<string, number>;
  ratio?: Ratio;
  /** Reason the value is missing, or a caveat about how it was measured. */
  note?: string;
}

/** Bytes per decimal gigabyte: GB/s in this benchmark means 10^9 bytes per second. */
export const GB = 1e9;

// Two-sided 95 % critical values of Student's t for 1 to 30 degrees of freedom.
const T_CRITICAL_95 = [
  12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228,
  2.201, 2.179, 2.16, 2.145, 2.131, 2.12, 2.11, 2.101, 2.093, 2.086,
  2.08, 2.074, 2.069, 2.064, 2.06, 2.056, 2.052, 2.048, 2.045, 2.042,
];

function tCritical(degreesOfFreedom: number): number {
  const df = Math.max(1, degreesOfFreedom);
  // NOTE: above 30 degrees of freedom the normal value 1.96 is used; it
  // understates the interval by under 2 % at df = 31.
  return T_CRITICAL_95[df - 1] ?? 1.96;
}

/** Linear-interpolated quantile of ascending `sorted`, q in [0, 1]. */
function quantile(sorted: readonly number[], q: number): number {
  if (sorted.length === 0) return NaN;
  const position = (sorted.length - 1) * q;
  const below = Math.floor(position);
  const above = Math.min(sorted.length - 1, below + 1);
  const low = sorted[below]!;
  return low + (sorted[above]! - low) * (position - below);
}

/** Summarizes raw sample times in milliseconds the way tinybench does. */
export function summarizeSamples(samplesMs: readonly number[]): LatencySummary {
  const sorted = [...samplesMs].sort((a, b) => a - b);
  const n = sorted.length;
  const mean = sorted.reduce((sum, x) => sum + x, 0) / n;
  const variance = n > 1 ? sorted.reduce((sum, x) => sum + (x - mean) ** 2, 0) / (n - 1) : 0;
  const sem = Math.sqrt(variance / n);
  return {
    meanMs: mean,
    p50Ms: quantile(sorted, 0.5),
    p99Ms: quantile(sorted, 0.99),
    rme: mean === 0 ? Infinity : (100 * sem * tCritical(n - 1)) / mean,
    samples: n,
  };
}

/** Throughput in GB/s for `bytes` moved in a sample of `ms` milliseconds. */
export function gbPerSecond(bytes: number, ms: number): number {
  return bytes / GB / (ms / 1000);
}

/** Builds a throughput figure from the median sample time. */
export function throughputFigure(
  base: Pick<Figure, "id" | "name" | "group" | "counts" | "note">,
  latency: LatencySummary,
  bytesPerSample: number,
): Figure {
  return {
    ...base,
    value: gbPerSecond(bytesPerSample, latency.p50Ms),
    unit: "GB/s",
    spread: latency.rme,
    samples: latency.samples,
    latency,
  };
}

/** Builds a figure that could not be measured, with a one-line `reason`. */
export function missingFigure(base: Pick<Figure, "id" | "name" | "group" | "unit">, reason: string): Figure {
  return { ...base, value: null, spread: null, samples: 0, note: reason };
}

/** Nanoseconds per 4 KiB page for a throughput figure in GB/s, or null. */
export function nsPerPage(figure: Figure | undefined, pageSize = 4096): number | null {
  if (figure === undefined || figure.value === null || figure.unit !== "GB/s" || figure.value <= 0) return null;
  return (pageSize / (figure.value * GB)) * 1e9;
}
