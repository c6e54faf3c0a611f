// Sizes and time budgets of one benchmark run. --quick keeps every figure
// but shrinks the regions and the time spent per figure.

import type { StreamingReference } from "./suites/reference.js";

const MIB = 1 << 20;
export const PAGE_SIZE = 4096;

/** Time budgets handed to tinybench for each figure. */
export interface Timing {
  /** Minimum time spent in timed samples, in milliseconds. */
  time: number;
  /** Minimum number of timed samples. */
  iterations: number;
  /** Minimum warm-up time, in milliseconds. */
  warmupTime: number;
  warmupIterations: number;
}

export interface BenchConfig {
  quick: boolean;
  timing: Timing;
  /** Destination of the streaming copy figures, in pages. */
  streamingPages: number;
  /** Pages copied per sample by the warm copy figures. */
  warmPagesPerSample: number;
  /** Registered region of the UFFDIO_COPY figures, in pages. */
  uffdioCopyPages: number;
  /** Present pages of the process that fork copies. */
  forkPresentPages: number;
  /** Region the contention figures copy, in pages. */
  contentionPages: number;
  /** The contended run forks once after every this many copied pages. */
  contentionForkEvery: number;
  /** Pages per UFFDIO_COPY call in the contention figures. */
  contentionPagesPerCall: number;
  /** Sample counts of one run of the native anchor, which runs four times. */
  nativeWarmSamples: number;
  nativeStreamingSamples: number;
  /** Simulated physical memory of each kernel, in bytes. */
  maxMemory: number;
}

const FULL: BenchConfig = {
  quick: false,
  timing: { time: 2000, iterations: 10, warmupTime: 300, warmupIterations: 2 },
  streamingPages: (256 * MIB) / PAGE_SIZE,
  warmPagesPerSample: 4096,
  uffdioCopyPages: (256 * MIB) / PAGE_SIZE,
  forkPresentPages: 64 * 1024,
  contentionPages: (256 * MIB) / PAGE_SIZE,
  contentionForkEvery: 4096,
  contentionPagesPerCall: 64,
  nativeWarmSamples: 100,
  nativeStreamingSamples: 15,
  maxMemory: 1024 * MIB,
};

const QUICK: BenchConfig = {
  ...FULL,
  quick: true,
  timing: { time: 250, iterations: 5, warmupTime: 60, warmupIterations: 1 },
  streamingPages: (64 * MIB) / PAGE_SIZE,
  uffdioCopyPages: (64 * MIB) / PAGE_SIZE,
  forkPresentPages: 16 * 1024,
  contentionPages: (64 * MIB) / PAGE_SIZE,
  nativeWarmSamples: 25,
  nativeStreamingSamples: 5,
  maxMemory: 256 * MIB,
};

export function benchConfig(quick: boolean): BenchConfig {
  return quick ? QUICK : FULL;
}

/** Formats a byte count as "256 MiB" or "16 KiB". */
export function formatBytes(bytes: number): string {
  if (bytes >= MIB && bytes % MIB === 0) return `${bytes / MIB} MiB`;
  if (bytes >= 1024 && bytes % 1024 === 0) return `${bytes / 1024} KiB`;
  return `${bytes} B`;
}

/** The run-wide settings and callbacks passed to every suite. */
export interface SuiteContext {
  config: BenchConfig;
  /** Streaming copy tasks to time interleaved with a suite's own, for its ratios. */
  reference: StreamingReference;
  /** Prints a progress line (to stderr, only when it is a terminal). */
  progress: (message: string) => void;
}
