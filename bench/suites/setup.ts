// Shared setup of the suites that go through the public API: a process with
// a hot staging region and a userfaultfd registered (MISSING) over a target
// region, plus the bookkeeping of kernel.stats deltas.

import {
  Kernel, MAP_FIXED, MAP_SHARED, UFFD_API, UFFDIO_REGISTER_MODE_MISSING, type KernelStats, type Process, type Userfaultfd,
} from "../../src/index.js";
import { PAGE_SIZE, formatBytes } from "../config.js";

/**
 * Takes `pages` contiguous frames for a benchmark buffer. Throws RangeError
 * when they do not fit in the kernel's memory.
 */
export function allocateFrames(kernel: Kernel, pages: number, purpose: string): number {
  const address = kernel.core.exports.frames_alloc_contiguous(pages) >>> 0;
  if (address === 0) {
    throw new RangeError(`frames_alloc_contiguous(${pages}) returned 0 for the ${purpose}: raise maxMemory above ${formatBytes(pages * PAGE_SIZE)}`);
  }
  return address;
}

/** Pages of the staging region that UFFDIO_COPY reads from. */
export const STAGING_PAGES = 64;
/** Pages of the hot source window: the most pages one UFFDIO_COPY of a benchmark reads. */
export const HOT_SOURCE_PAGES = 512;

export interface RegisteredRegion {
  kernel: Kernel;
  process: Process;
  uffd: Userfaultfd;
  /** Start of the registered region. */
  region: number;
  regionPages: number;
  /** Start of the staging region, written once so its pages are present and hot. */
  staging: number;
}

/**
 * Maps one page of a memfd at HOT_SOURCE_PAGES consecutive addresses of
 * `process` and returns the start. A copy of many pages from there reads one
 * physical page, which stays in cache as the single source page of the
 * memcpy anchor does; bench/native/uffd.c builds the same source.
 */
export async function mapHotSource(process: Process): Promise<number> {
  const file = process.kernel.memfdCreate("bench-hot-source", PAGE_SIZE);
  const window = checkAddress(process.mmap(HOT_SOURCE_PAGES * PAGE_SIZE), "mmap(hot source window)");
  for (let page = 0; page < HOT_SOURCE_PAGES; page++) {
    const address = window + page * PAGE_SIZE;
    checkAddress(process.mmap(PAGE_SIZE, { file, flags: MAP_SHARED | MAP_FIXED, address }), "mmap(hot source alias)");
  }
  const pattern = new Uint8Array(PAGE_SIZE);
  for (let i = 0; i < pattern.length; i++) pattern[i] = (i * 7 + 3) & 0xff;
  await process.write(window, pattern);
  // Reading every alias maps it, so no copy of a timed pass faults its source in.
  for (let page = 0; page < HOT_SOURCE_PAGES; page++) await process.read(window + page * PAGE_SIZE, 1);
  return window;
}

/** Throws unless a system call returned an address (>= 0). */
function checkAddress(result: number, call: string): number {
  if (result < 0) throw new Error(`${call} failed with errno ${-result}`);
  return result;
}

/**
 * Creates a kernel and a process with a registered region of `regionPages`
 * pages and a staging region of STAGING_PAGES pages, with UFFDIO_API
 * features `features`.
 */
export async function createRegisteredRegion(maxMemory: number, regionPages: number, features: number): Promise<RegisteredRegion> {
  const kernel = await Kernel.create({ maxMemory });
  const process = kernel.createProcess();
  const regionBytes = regionPages * PAGE_SIZE;
  const region = checkAddress(process.mmap(regionBytes), `mmap(${formatBytes(regionBytes)})`);
  const staging = checkAddress(process.mmap(STAGING_PAGES * PAGE_SIZE), "mmap(staging)");
  const pattern = new Uint8Array(STAGING_PAGES * PAGE_SIZE);
  for (let i = 0; i < pattern.length; i++) pattern[i] = (i * 7 + 3) & 0xff;
  await process.write(staging, pattern);

  const uffd = process.userfaultfd();
  const api = uffd.api({ api: UFFD_API, features });
  if (api.errno !== 0) throw new Error(`UFFDIO_API with features 0x${features.toString(16)} failed with errno ${api.errno}`);
  const registered = uffd.register({ start: region, len: regionBytes, mode: UFFDIO_REGISTER_MODE_MISSING });
  if (registered.errno !== 0) throw new Error(`UFFDIO_REGISTER of ${formatBytes(regionBytes)} failed with errno ${registered.errno}`);
  return { kernel, process, uffd, region, regionPages, staging };
}

/** Drops every page of the region (madvise MADV_DONTNEED), so the next pass finds it missing again. */
export async function resetRegion(setup: RegisteredRegion, madvDontneed: number): Promise<void> {
  const status = await setup.process.madvise(setup.region, setup.regionPages * PAGE_SIZE, madvDontneed);
  if (status !== 0) throw new Error(`madvise(MADV_DONTNEED) of the registered region failed with errno ${-status}`);
}

/**
 * Counts the timed passes whose first two pages got frames at descending
 * physical addresses. A copy into descending addresses is about half as fast
 * as into ascending ones; the frame allocator reuses freed frames first in,
 * first out, so a refill after MADV_DONTNEED should keep ascending order.
 */
export class FrameOrderCounter {
  descending = 0;
  passes = 0;

  constructor(private readonly setup: RegisteredRegion) {}

  /** Records the order of the pass that just filled the region; call before resetting it. */
  record(): void {
    const { kernel, process, region } = this.setup;
    const first = kernel.core.exports.pte_read(process.mm.pgd, region) >>> 12;
    const second = kernel.core.exports.pte_read(process.mm.pgd, region + PAGE_SIZE) >>> 12;
    this.passes++;
    if (second < first) this.descending++;
  }

  /** Returns a note for the figure, or undefined when no pass was recorded. */
  note(): string | undefined {
    if (this.passes === 0) return undefined;
    return `the first two pages got descending frame addresses in ${this.descending} of ${this.passes} timed passes`;
  }
}

/** The kernel.stats fields reported as counts. */
const STAT_KEYS = ["ioctls", "pagesCopied", "pagesZeroed", "eagain", "faults", "ptesCopied", "forks"] as const satisfies readonly (keyof KernelStats)[];

export type StatCounts = Record<(typeof STAT_KEYS)[number], number>;

export function snapshotStats(kernel: Kernel): StatCounts {
  const counts = {} as StatCounts;
  for (const key of STAT_KEYS) counts[key] = kernel.stats[key];
  return counts;
}

/** Returns the kernel.stats counts accumulated since `before`. */
export function statsSince(kernel: Kernel, before: StatCounts): StatCounts {
  const counts = {} as StatCounts;
  for (const key of STAT_KEYS) counts[key] = kernel.stats[key] - before[key];
  return counts;
}
