// Sizes and time budgets of one benchmark run. --quick keeps every figure
// but shrinks the regions and the time spent per figure.

import type { Progress } from "./progress.js";
import type { StreamingReference } from "./suites/reference.js";

const MIB = 1 << 20;
export const PAGE_SIZE = 4096;

/** Every suite, in run order; --suite selects a subset, kept in this order. */
export const SUITE_NAMES = ["copy-kernels", "uffdio", "contention", "fork", "walk", "fault", "explore", "memory"] as const;
export type SuiteName = (typeof SUITE_NAMES)[number];

/** The regression threshold when --max-regression is not given, in percent. */
export const DEFAULT_MAX_REGRESSION_PERCENT = 10;

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
  /** Registered region of the UFFDIO_COPY and UFFDIO_ZEROPAGE figures, in pages. */
  uffdioPages: number;
  /** Pages per call of the UFFDIO_COPY and UFFDIO_ZEROPAGE figures. */
  uffdioPagesPerCall: readonly number[];
  /** Present pages of the processes that fork copies, one figure each. */
  forkPresentPages: readonly number[];
  /** Region the contention figures copy, in pages; the same in quick runs, so every event interval fits in it. */
  contentionPages: number;
  /** Event intervals of the contention figures: one event per this many copied pages. */
  contentionEventEvery: readonly number[];
  /** Pages per UFFDIO_COPY call in the contention figures. */
  contentionPagesPerCall: number;
  /** Pages each madvise, munmap or mremap event of the contention figures covers. */
  contentionEventPages: number;
  /** Populated region the page-table walk figures walk, in pages. */
  walkPages: number;
  /** Faults per sample of the fault round-trip figure. */
  faultsPerSample: number;
  /** Schedules explored per sample of the exploration figure. */
  schedulesPerSample: number;
  /** Region of the peak-memory probe, in pages; the same in quick and full runs. */
  memoryProbePages: number;
  /** Sample counts of one run of the memcpy anchor, which runs four times. */
  nativeWarmSamples: number;
  nativeStreamingSamples: number;
  /** Samples of each part of the kernel anchor (bench/native/uffd.c), and its fault batches. */
  nativeKernelSamples: number;
  nativeFaultSamples: number;
  /** Simulated physical memory of each kernel, in bytes. */
  maxMemory: number;
}

const FULL: BenchConfig = {
  quick: false,
  timing: { time: 2000, iterations: 10, warmupTime: 300, warmupIterations: 2 },
  streamingPages: (256 * MIB) / PAGE_SIZE,
  warmPagesPerSample: 4096,
  uffdioPages: (256 * MIB) / PAGE_SIZE,
  uffdioPagesPerCall: [1, 16, 64, 512],
  forkPresentPages: [16 * 1024, 64 * 1024, 256 * 1024],
  contentionPages: (256 * MIB) / PAGE_SIZE,
  contentionEventEvery: [1024, 4096, 16384],
  contentionPagesPerCall: 64,
  contentionEventPages: 16,
  walkPages: 64 * 1024,
  faultsPerSample: 256,
  schedulesPerSample: 200,
  memoryProbePages: (256 * MIB) / PAGE_SIZE,
  nativeWarmSamples: 100,
  nativeStreamingSamples: 15,
  nativeKernelSamples: 7,
  nativeFaultSamples: 100,
  maxMemory: 1024 * MIB,
};

const QUICK: BenchConfig = {
  ...FULL,
  quick: true,
  timing: { time: 250, iterations: 5, warmupTime: 60, warmupIterations: 1 },
  streamingPages: (64 * MIB) / PAGE_SIZE,
  uffdioPages: (64 * MIB) / PAGE_SIZE,
  nativeWarmSamples: 25,
  nativeStreamingSamples: 5,
  nativeKernelSamples: 3,
  nativeFaultSamples: 30,
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

/** Formats a page count as "16 Ki" or "512". */
export function formatPages(pages: number): string {
  return pages >= 1024 && pages % 1024 === 0 ? `${pages / 1024} Ki` : String(pages);
}

/** The run-wide settings and services passed to every suite. */
export interface SuiteContext {
  config: BenchConfig;
  /** Streaming copy tasks to time interleaved with a suite's own, for its ratios; created on first use. */
  reference: () => Promise<StreamingReference>;
  progress: Progress;
}
