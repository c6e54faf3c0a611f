// copy_page_range: the synchronous part of fork() (dup_mmap, which copies
// every present PTE copy-on-write) for processes with 16 Ki, 64 Ki and
// 256 Ki present pages, in present PTEs copied per second. The child exits
// outside the timing. Each size gets a kernel of its own, so the largest
// (1 GiB of pages) is freed before the next one is built.

import { Kernel, type Process } from "../../src/index.js";
import { PAGE_SIZE, formatBytes, formatPages, type SuiteContext } from "../config.js";
import { measureTasks, summaryOf, type TaskSpec } from "../measure.js";
import { rateFigure, type Figure } from "../stats.js";
import { nsPerItem } from "../native-kernel.js";
import { snapshotStats, statsSince } from "./setup.js";

export const FORK_SUITE = "fork";
export const FORK_GROUP = "copy_page_range (fork, private anonymous memory)";
export const FORK_PREFIX = "fork";
export const forkId = (presentPages: number) => `${FORK_PREFIX}.copy_page_range.present_${presentPages}`;
/** The size whose figure is timed beside the streaming reference, for the copy_page_range vs page copy target. */
export const FORK_REFERENCE_PAGES = 64 * 1024;
/** Pages written per process.write call while populating. */
const WRITE_CHUNK_PAGES = 64;
/** Room for page tables and the zero frame above the pages themselves. */
const TABLE_MARGIN_BYTES = 64 << 20;

async function populatedParent(pages: number): Promise<{ kernel: Kernel; parent: Process }> {
  const kernel = await Kernel.create({ maxMemory: pages * PAGE_SIZE + TABLE_MARGIN_BYTES });
  const parent = kernel.createProcess();
  const area = parent.mmap(pages * PAGE_SIZE);
  if (area < 0) throw new Error(`mmap(${formatBytes(pages * PAGE_SIZE)}) failed with errno ${-area}`);
  const chunk = new Uint8Array(WRITE_CHUNK_PAGES * PAGE_SIZE).fill(0xa5);
  for (let page = 0; page < pages; page += WRITE_CHUNK_PAGES) {
    const count = Math.min(WRITE_CHUNK_PAGES, pages - page);
    await parent.write(area + page * PAGE_SIZE, count === WRITE_CHUNK_PAGES ? chunk : chunk.subarray(0, count * PAGE_SIZE));
  }
  const present = kernel.core.exports.count_present(parent.mm.pgd, area, pages) >>> 0;
  if (present !== pages) throw new Error(`expected ${pages} present pages after writing, found ${present}`);
  return { kernel, parent };
}

async function timeFork(context: SuiteContext, pages: number): Promise<Figure[]> {
  const { config, progress } = context;
  progress.task(`writing ${formatPages(pages)} pages`);
  const { kernel, parent } = await populatedParent(pages);

  // One untimed fork records the counts of a sample.
  const before = snapshotStats(kernel);
  (await parent.fork()).exit();
  const delta = statsSince(kernel, before);

  let pending: Promise<Process> | null = null;
  const id = forkId(pages);
  const task: TaskSpec = {
    name: id,
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
  const withReference = pages === FORK_REFERENCE_PAGES;
  const reference = withReference ? await context.reference() : null;
  const tasks = reference === null ? [task] : [task, ...reference.tasks(FORK_PREFIX, ["streaming"])];
  progress.task(`timing fork() with ${formatPages(pages)} present pages`);
  const summaries = await measureTasks(config.timing, tasks);
  const latency = summaryOf(summaries, id);
  const figure = rateFigure(
    {
      id,
      name: `fork() with ${formatPages(pages)} present pages`,
      group: FORK_GROUP,
      suite: FORK_SUITE,
      counts: { presentPages: pages, ptesCopied: delta.ptesCopied, forks: delta.forks },
      note: `${nsPerItem(latency.p50Ms, delta.ptesCopied)} ns per PTE: the synchronous part of fork(), dup_mmap with copy_page_range`,
    },
    latency,
    delta.ptesCopied,
    "PTEs/s",
  );
  const figures = [figure];
  if (reference !== null) figures.push(...reference.figures(FORK_PREFIX, FORK_GROUP, FORK_SUITE, ["streaming"], summaries));
  return figures;
}

export async function runFork(context: SuiteContext): Promise<Figure[]> {
  const figures: Figure[] = [];
  for (const pages of context.config.forkPresentPages) figures.push(...(await timeFork(context, pages)));
  return figures;
}
