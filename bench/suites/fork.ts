// copy_page_range: the synchronous part of fork() (dup_mmap, which copies
// every present PTE copy-on-write) for a process with many present pages,
// in nanoseconds per present PTE. The child exits outside the timing.

import { Kernel, type Process } from "../../src/index.js";
import { PAGE_SIZE, formatBytes, type SuiteContext } from "../config.js";
import { measureTasks, summaryOf } from "../measure.js";
import type { Figure } from "../stats.js";
import { snapshotStats, statsSince } from "./setup.js";

export const FORK_GROUP = "copy_page_range (fork, private anonymous memory)";
export const FORK_PREFIX = "fork";
export const FORK_ID = `${FORK_PREFIX}.copy_page_range`;
/** Pages written per process.write call while populating. */
const WRITE_CHUNK_PAGES = 64;

export async function runFork(context: SuiteContext): Promise<Figure[]> {
  const { config, progress } = context;
  const pages = config.forkPresentPages;
  const kernel = await Kernel.create({ maxMemory: config.maxMemory });
  const parent = kernel.createProcess();
  const area = parent.mmap(pages * PAGE_SIZE);
  if (area < 0) throw new Error(`mmap(${formatBytes(pages * PAGE_SIZE)}) failed with errno ${-area}`);

  progress(`fork: writing ${pages} pages`);
  const chunk = new Uint8Array(WRITE_CHUNK_PAGES * PAGE_SIZE).fill(0xa5);
  for (let page = 0; page < pages; page += WRITE_CHUNK_PAGES) {
    const count = Math.min(WRITE_CHUNK_PAGES, pages - page);
    await parent.write(area + page * PAGE_SIZE, count === WRITE_CHUNK_PAGES ? chunk : chunk.subarray(0, count * PAGE_SIZE));
  }
  const present = kernel.core.exports.count_present(parent.mm.pgd, area, pages) >>> 0;
  if (present !== pages) throw new Error(`expected ${pages} present pages after writing, found ${present}`);

  // One untimed fork records the counts of a sample.
  const before = snapshotStats(kernel);
  (await parent.fork()).exit();
  const delta = statsSince(kernel, before);

  let pending: Promise<Process> | null = null;
  const task = {
    name: FORK_ID,
    fn: () => {
      pending = parent.fork();
    },
    async: false,
    options: {
      afterEach: async () => {
        if (pending === null) return;
        const child = await pending;
        pending = null;
        child.exit();
      },
    },
  };
  progress("fork: timing");
  const summaries = await measureTasks(config.timing, [task, ...context.reference.tasks(FORK_PREFIX, ["streaming"])]);
  const latency = summaryOf(summaries, FORK_ID);
  const forkFigure: Figure = {
    id: FORK_ID,
    name: `fork() with ${formatBytes(pages * PAGE_SIZE)} present`,
    group: FORK_GROUP,
    value: (latency.p50Ms * 1e6) / delta.ptesCopied,
    unit: "ns/PTE",
    spread: latency.rme,
    samples: latency.samples,
    latency,
    counts: { presentPages: pages, ptesCopied: delta.ptesCopied, forks: delta.forks },
    note: "synchronous part of fork(): dup_mmap with copy_page_range, per present PTE",
  };
  return [forkFigure, ...context.reference.figures(FORK_PREFIX, FORK_GROUP, ["streaming"], summaries)];
}
