// UFFDIO_COPY and UFFDIO_ZEROPAGE through the public API: a monitor in the
// same process fills a whole registered region at 1, 16, 64 and 512 pages
// per call. Every copy reads the hot source (one memfd page mapped at every
// source address; see mapHotSource), as the memcpy anchor and
// bench/native/uffd.c do. Each sample is one full pass; the region is
// emptied again with madvise(MADV_DONTNEED) outside the timing.

import { MADV_DONTNEED, type Userfaultfd } from "../../src/index.js";
import { PAGE_SIZE, formatBytes, type SuiteContext } from "../config.js";
import { measureTasks, summaryOf, type TaskSpec } from "../measure.js";
import { rateFigure, throughputFigure, type Figure } from "../stats.js";
import {
  FrameOrderCounter, HOT_SOURCE_PAGES, createRegisteredRegion, mapHotSource, resetRegion, snapshotStats, statsSince,
  type RegisteredRegion,
} from "./setup.js";

export const UFFDIO_SUITE = "uffdio";
export const UFFDIO_GROUP = "UFFDIO_COPY and UFFDIO_ZEROPAGE (public API, region registered MISSING)";
export const UFFDIO_PREFIX = "uffdio";
export type FillKind = "copy" | "zeropage";
export const uffdioId = (kind: FillKind, pagesPerCall: number) => `${UFFDIO_PREFIX}.${kind}.per_call_${pagesPerCall}`;

/**
 * Fills every page of the region with calls of `pagesPerCall` pages. One
 * argument object is reused, as a monitor reuses its struct uffdio_copy.
 */
function fillRegion(setup: RegisteredRegion, kind: FillKind, source: number, pagesPerCall: number): void {
  const { uffd, region } = setup;
  const len = pagesPerCall * PAGE_SIZE;
  const calls = setup.regionPages / pagesPerCall;
  if (kind === "copy") {
    copyCalls(uffd, region, source, len, calls);
    return;
  }
  const args = { start: region, len, mode: 0 };
  for (let i = 0; i < calls; i++) {
    args.start = region + i * len;
    const result = uffd.zeropage(args);
    if (result.errno !== 0) {
      throw new Error(`UFFDIO_ZEROPAGE at 0x${args.start.toString(16)} failed: errno ${result.errno}, zeropage ${result.zeropage}`);
    }
  }
}

function copyCalls(uffd: Userfaultfd, region: number, source: number, len: number, calls: number): void {
  const args = { dst: region, src: source, len, mode: 0 };
  for (let i = 0; i < calls; i++) {
    args.dst = region + i * len;
    const result = uffd.copy(args);
    if (result.errno !== 0) {
      throw new Error(`UFFDIO_COPY at 0x${args.dst.toString(16)} failed: errno ${result.errno}, copy ${result.copy}`);
    }
  }
}

export async function runUffdio(context: SuiteContext): Promise<Figure[]> {
  const { config, progress } = context;
  const regionPages = config.uffdioPages;
  const sizes = config.uffdioPagesPerCall;
  for (const size of sizes) {
    if (regionPages % size !== 0 || size > HOT_SOURCE_PAGES) {
      throw new RangeError(`the region (${regionPages} pages) must be a multiple of ${size} pages, and ${size} at most ${HOT_SOURCE_PAGES}`);
    }
  }
  const setup = await createRegisteredRegion(config.maxMemory, regionPages, 0);
  progress.task(`mapping the hot source (${HOT_SOURCE_PAGES} aliases of one page)`);
  const source = await mapHotSource(setup.process);
  const kinds: FillKind[] = ["copy", "zeropage"];

  // One untimed pass per task: it touches every frame once and records the
  // deterministic counts of a pass.
  const countsById = new Map<string, Record<string, number>>();
  for (const kind of kinds) {
    for (const size of sizes) {
      progress.task(`counting pass, ${kind}, ${size} page(s) per call over ${formatBytes(regionPages * PAGE_SIZE)}`);
      const before = snapshotStats(setup.kernel);
      fillRegion(setup, kind, source, size);
      const delta = statsSince(setup.kernel, before);
      const pages: Record<string, number> = kind === "copy" ? { pagesCopied: delta.pagesCopied } : { pagesZeroed: delta.pagesZeroed };
      countsById.set(uffdioId(kind, size), { pagesPerCall: size, ioctls: delta.ioctls, ...pages, eagainRetries: delta.eagain });
      await resetRegion(setup, MADV_DONTNEED);
    }
  }

  const orders = new Map<string, FrameOrderCounter>();
  const tasks: TaskSpec[] = kinds.flatMap((kind) =>
    sizes.map((size) => {
      const id = uffdioId(kind, size);
      const order = new FrameOrderCounter(setup);
      if (kind === "copy") orders.set(id, order);
      return {
        name: id,
        fn: () => fillRegion(setup, kind, source, size),
        async: false,
        options: {
          afterEach: async (mode?: string) => {
            if (mode === "run" && kind === "copy") order.record();
            await resetRegion(setup, MADV_DONTNEED);
          },
        },
      };
    }),
  );
  const reference = await context.reference();
  tasks.push(...reference.tasks(UFFDIO_PREFIX, ["streaming"]));
  progress.task(`timing ${tasks.length} tasks`);
  const summaries = await measureTasks(config.timing, tasks);

  const figures: Figure[] = [];
  for (const kind of kinds) {
    for (const size of sizes) {
      const id = uffdioId(kind, size);
      const latency = summaryOf(summaries, id);
      const counts = countsById.get(id)!;
      const ioctl = kind === "copy" ? "UFFDIO_COPY" : "UFFDIO_ZEROPAGE";
      const name = `${ioctl}, ${size} page${size === 1 ? "" : "s"} per call`;
      const note = orders.get(id)?.note();
      const base = { id, name, group: UFFDIO_GROUP, suite: UFFDIO_SUITE, counts, ...(note ? { note } : {}) };
      figures.push(kind === "copy" ? throughputFigure(base, latency, regionPages * PAGE_SIZE) : rateFigure(base, latency, regionPages, "pages/s"));
    }
  }
  figures.push(...reference.figures(UFFDIO_PREFIX, UFFDIO_GROUP, UFFDIO_SUITE, ["streaming"], summaries));
  return figures;
}
