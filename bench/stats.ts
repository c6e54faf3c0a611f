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

/** Whether a larger or a smaller value of a figure is better. */
export type Direction = "higher" | "lower";

/** A ratio of this figure to another one, oriented so that larger is better. */
export interface Ratio {
  value: number;
  /** Description of the reference, printed after the ratio: "native memcpy warm". */
  against: string;
  /** The id of the reference figure. */
  referenceId: string;
}

export interface Figure {
  /** Stable identifier used in the JSON output and as the benchmark name of the CI formats, e.g. "uffdio.copy.per_call_64". */
  id: string;
  /** Human-readable name for the table. */
  name: string;
  /** Table section. */
  group: string;
  /** The --suite name that measured the figure; "native" for the native anchors. */
  suite: string;
  /** The measured value, or null when the figure could not be measured. */
  value: number | null;
  unit: string;
  better: Direction;
  /** Relative margin of error of the mean sample time (95 % confidence), in percent; null when unknown. */
  spread: number | null;
  samples: number;
  latency?: LatencySummary;
  /**
   * Deterministic counts of the work one sample does (pagesCopied,
   * ptesVisited, ioctls, eagainRetries, ...): the same on every run of the
   * same code and configuration, so a regression check compares them exactly.
   */
  counts?: Record<string, number>;
  ratios?: Ratio[];
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
  base: Pick<Figure, "id" | "name" | "group" | "suite" | "counts" | "note">,
  latency: LatencySummary,
  bytesPerSample: number,
): Figure {
  return {
    ...base,
    value: gbPerSecond(bytesPerSample, latency.p50Ms),
    unit: "GB/s",
    better: "higher",
    spread: latency.rme,
    samples: latency.samples,
    latency,
  };
}

/** Builds a figure from the median sample time as `items` per second, e.g. pages/s. */
export function rateFigure(
  base: Pick<Figure, "id" | "name" | "group" | "suite" | "counts" | "note">,
  latency: LatencySummary,
  itemsPerSample: number,
  unit: string,
): Figure {
  return {
    ...base,
    value: itemsPerSample / (latency.p50Ms / 1000),
    unit,
    better: "higher",
    spread: latency.rme,
    samples: latency.samples,
    latency,
  };
}

/** Builds a figure that could not be measured, with a one-line `reason`. */
export function missingFigure(base: Pick<Figure, "id" | "name" | "group" | "suite" | "unit" | "better">, reason: string): Figure {
  return { ...base, value: null, spread: null, samples: 0, note: reason };
}

/**
 * Units whose figures can be compared with each other: `family` names what
 * is counted and `perSecond` turns a value into that many per second.
 */
const RATE_UNITS: Record<string, { family: string; perSecond: (value: number) => number }> = {
  "GB/s": { family: "page", perSecond: (value) => (value * GB) / 4096 },
  "pages/s": { family: "page", perSecond: (value) => value },
  "ns/page": { family: "page", perSecond: (value) => 1e9 / value },
  "µs/page": { family: "page", perSecond: (value) => 1e6 / value },
  "ns/PTE": { family: "pte", perSecond: (value) => 1e9 / value },
  "PTEs/s": { family: "pte", perSecond: (value) => value },
  "µs/fault": { family: "fault", perSecond: (value) => 1e6 / value },
  "faults/s": { family: "fault", perSecond: (value) => value },
};

/**
 * Returns how many times faster `figure` is than `reference` (above 1 when
 * it is faster), converting between units of one family such as GB/s and
 * ns/page; null when a value is missing or the units cannot be compared.
 */
export function speedRatio(figure: Figure | undefined, reference: Figure | undefined): number | null {
  if (figure?.value == null || reference?.value == null || figure.value <= 0 || reference.value <= 0) return null;
  if (figure.unit === reference.unit) {
    return figure.better === "higher" ? figure.value / reference.value : reference.value / figure.value;
  }
  const a = RATE_UNITS[figure.unit];
  const b = RATE_UNITS[reference.unit];
  if (a === undefined || b === undefined || a.family !== b.family) return null;
  return a.perSecond(figure.value) / b.perSecond(reference.value);
}

/** Infers the direction of a figure saved without one (schema 1), from its unit. */
export function directionOfUnit(unit: string): Direction {
  return /\/s$/.test(unit) ? "higher" : "lower";
}

/** Nanoseconds per 4 KiB page for a throughput figure in GB/s, or null. */
export function nsPerPage(figure: Figure | undefined, pageSize = 4096): number | null {
  if (figure === undefined || figure.value === null || figure.unit !== "GB/s" || figure.value <= 0) return null;
  return (pageSize / (figure.value * GB)) * 1e9;
}
