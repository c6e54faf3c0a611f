// UFFDIO_COPY through the public API: a monitor in the same process fills a
// whole registered region, at 1 page per call and at 64 pages per call,
// from a hot staging region. Each sample is one full pass; the region is
// emptied again with madvise(MADV_DONTNEED) outside the timing.

import { MADV_DONTNEED } from "../../src/index.js";
import { PAGE_SIZE, formatBytes, type SuiteContext } from "../config.js";
import { measureTasks, summaryOf, type TaskSpec } from "../measure.js";
import { throughputFigure, type Figure } from "../stats.js";
import {
  FrameOrderCounter, STAGING_PAGES, createRegisteredRegion, resetRegion, snapshotStats, statsSince, type RegisteredRegion,
} from "./setup.js";

export const UFFDIO_COPY_GROUP = "UFFDIO_COPY (public API, region registered MISSING)";
export const UFFDIO_COPY_SIZES = [1, 64] as const;
export const UFFDIO_COPY_PREFIX = "uffdio_copy";
export const uffdioCopyId = (pagesPerCall: number, unit: "gbps" | "pages_per_s") => `${UFFDIO_COPY_PREFIX}.per_call_${pagesPerCall}.${unit}`;

/**
 * Copies every page of the region with calls of `pagesPerCall` pages, all
 * from the start of the staging region: one hot page at 1 page per call,
 * as in the streaming copy figures, and the whole staging region at 64.
 * One argument object is reused, as a monitor reuses its struct uffdio_copy.
 */
function copyRegion(setup: RegisteredRegion, pagesPerCall: number): void {
  const { uffd, region, staging } = setup;
  const len = pagesPerCall * PAGE_SIZE;
  const calls = setup.regionPages / pagesPerCall;
  const args = { dst: region, src: staging, len, mode: 0 };
  for (let i = 0; i < calls; i++) {
    args.dst = region + i * len;
    const result = uffd.copy(args);
    if (result.errno !== 0) {
      throw new Error(`UFFDIO_COPY at 0x${args.dst.toString(16)} failed: errno ${result.errno}, copy ${result.copy}`);
    }
  }
}

export async function runUffdioCopy(context: SuiteContext): Promise<Figure[]> {
  const { config, progress } = context;
  const regionPages = config.uffdioCopyPages;
  for (const size of UFFDIO_COPY_SIZES) {
    if (regionPages % size !== 0 || STAGING_PAGES < size) throw new RangeError(`region and staging must be multiples of ${size} pages`);
  }
  const setup = await createRegisteredRegion(config.maxMemory, regionPages, 0);

  // One untimed pass per size: it touches every frame once and records the
  // deterministic counts of a pass.
  const countsBySize = new Map<number, Record<string, number>>();
  for (const size of UFFDIO_COPY_SIZES) {
    progress(`UFFDIO_COPY: counting pass, ${size} page(s) per call over ${formatBytes(regionPages * PAGE_SIZE)}`);
    const before = snapshotStats(setup.kernel);
    copyRegion(setup, size);
    const delta = statsSince(setup.kernel, before);
    countsBySize.set(size, { pagesPerCall: size, srcPages: size, ioctls: delta.ioctls, pagesCopied: delta.pagesCopied, eagain: delta.eagain });
    await resetRegion(setup, MADV_DONTNEED);
  }

  const orders = new Map(UFFDIO_COPY_SIZES.map((size) => [size, new FrameOrderCounter(setup)]));
  const tasks: TaskSpec[] = UFFDIO_COPY_SIZES.map((size) => ({
    name: uffdioCopyId(size, "gbps"),
    fn: () => copyRegion(setup, size),
    async: false,
    options: {
      afterEach: async (mode?: string) => {
        if (mode === "run") orders.get(size)!.record();
        await resetRegion(setup, MADV_DONTNEED);
      },
    },
  }));
  const referenceKinds = ["streaming", "streaming_wide_source"] as const;
  tasks.push(...context.reference.tasks(UFFDIO_COPY_PREFIX, referenceKinds));
  progress("UFFDIO_COPY: timing");
  const summaries = await measureTasks(config.timing, tasks);

  const figures: Figure[] = [];
  for (const size of UFFDIO_COPY_SIZES) {
    const latency = summaryOf(summaries, uffdioCopyId(size, "gbps"));
    const counts = countsBySize.get(size)!;
    const name = `${size} page${size === 1 ? "" : "s"} per call`;
    const note = orders.get(size)!.note();
    const throughput = throughputFigure(
      { id: uffdioCopyId(size, "gbps"), name, group: UFFDIO_COPY_GROUP, counts, ...(note ? { note } : {}) },
      latency,
      regionPages * PAGE_SIZE,
    );
    figures.push(throughput);
    figures.push({
      id: uffdioCopyId(size, "pages_per_s"),
      name,
      group: UFFDIO_COPY_GROUP,
      value: regionPages / (latency.p50Ms / 1000),
      unit: "pages/s",
      spread: latency.rme,
      samples: latency.samples,
      latency,
      counts,
    });
  }
  figures.push(...context.reference.figures(UFFDIO_COPY_PREFIX, UFFDIO_COPY_GROUP, referenceKinds, summaries));
  return figures;
}
