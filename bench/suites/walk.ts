// Page-table walks over every page of a populated region, in address order
// and in a fixed random order, in walks per second. The first two figures
// walk from JS, one kernel.core.exports.pte_read(pgd, va) call per walk.
// The next two walk inside wasm (pte_walk_bench, one call per pass), which
// times the walk alone. A fifth figure times an export that does no work
// (frames_used) to show how much of a walk from JS the call itself costs.
//
// The region is populated with UFFDIO_ZEROPAGE: every PTE is present (it
// maps the shared zero frame), so the walk reaches the last level without
// 256 MiB of page frames behind it.

import { UFFD_API, UFFDIO_REGISTER_MODE_MISSING, Kernel } from "../../src/index.js";
import { PAGE_SIZE, formatBytes, formatPages, type SuiteContext } from "../config.js";
import { measureTasks, summaryOf, type TaskSpec } from "../measure.js";
import { rateFigure, type Figure } from "../stats.js";
import { WALK_RANDOM } from "../../src/wasm/core.js";
// NOTE: the seeded generator is not re-exported by src/index.ts.
import { seededRandom } from "../../src/sched/strategies.js";

export const WALK_SUITE = "walk";
export const WALK_GROUP = "page-table walk (4-level tables, from JS and inside wasm)";
export const walkId = (order: "sequential" | "random" | "sequential_in_wasm" | "random_in_wasm" | "call_overhead") => `walk.${order}`;
/** Seed of the random walk order: the same addresses in the same order on every run. */
const WALK_SEED = 0x5eed;

/** Returns a copy of `values` in a random order fixed by `seed` (Fisher-Yates). */
function seededShuffle(values: Float64Array, seed: number): Float64Array {
  const out = values.slice();
  const next = seededRandom(seed);
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(next() * (i + 1));
    const swap = out[i]!;
    out[i] = out[j]!;
    out[j] = swap;
  }
  return out;
}

export async function runWalk(context: SuiteContext): Promise<Figure[]> {
  const { config, progress } = context;
  const pages = config.walkPages;
  const kernel = await Kernel.create({ maxMemory: 64 << 20 });
  const process = kernel.createProcess();
  const region = process.mmap(pages * PAGE_SIZE);
  if (region < 0) throw new Error(`mmap(${formatBytes(pages * PAGE_SIZE)}) failed with errno ${-region}`);
  const uffd = process.userfaultfd();
  if (uffd.api({ api: UFFD_API, features: 0 }).errno !== 0) throw new Error("UFFDIO_API failed");
  if (uffd.register({ start: region, len: pages * PAGE_SIZE, mode: UFFDIO_REGISTER_MODE_MISSING }).errno !== 0) throw new Error("UFFDIO_REGISTER failed");
  progress.task(`populating ${formatPages(pages)} pages with UFFDIO_ZEROPAGE`);
  const zeroed = uffd.zeropage({ start: region, len: pages * PAGE_SIZE, mode: 0 });
  if (zeroed.errno !== 0) throw new Error(`UFFDIO_ZEROPAGE of the walk region failed with errno ${zeroed.errno}`);

  const exports = kernel.core.exports;
  const pgd = process.mm.pgd;
  const sequential = new Float64Array(pages);
  for (let page = 0; page < pages; page++) sequential[page] = region + page * PAGE_SIZE;
  const random = seededShuffle(sequential, WALK_SEED);
  let sink = 0;
  const walk = (addresses: Float64Array) => {
    let present = 0;
    for (let i = 0; i < addresses.length; i++) present += exports.pte_read(pgd, addresses[i]!) & 1;
    if (present !== addresses.length) throw new Error(`pte_read found ${present} of ${addresses.length} PTEs present`);
    sink += present;
  };
  const walkInWasm = (flags: number) => {
    const present = exports.pte_walk_bench(pgd, region, pages, flags, WALK_SEED, 1);
    if (present !== pages) throw new Error(`pte_walk_bench found ${present} of ${pages} PTEs present`);
    sink += present;
  };
  const callOnly = () => {
    for (let i = 0; i < pages; i++) sink += exports.frames_used();
  };
  const tasks: TaskSpec[] = [
    { name: walkId("sequential"), fn: () => walk(sequential), async: false },
    { name: walkId("random"), fn: () => walk(random), async: false },
    { name: walkId("sequential_in_wasm"), fn: () => walkInWasm(0), async: false },
    { name: walkId("random_in_wasm"), fn: () => walkInWasm(WALK_RANDOM), async: false },
    { name: walkId("call_overhead"), fn: callOnly, async: false },
  ];
  progress.task(`timing ${tasks.length} tasks`);
  const summaries = await measureTasks(config.timing, tasks);
  if (sink < 0) throw new Error("unreachable: keeps the loops' results alive");

  const counts = { ptesVisited: pages, walks: pages };
  const figures = [
    rateFigure({ id: walkId("sequential"), name: `walk, sequential over ${formatPages(pages)} pages`, group: WALK_GROUP, suite: WALK_SUITE, counts }, summaryOf(summaries, walkId("sequential")), pages, "walks/s"),
    rateFigure({ id: walkId("random"), name: `walk, random order over ${formatPages(pages)} pages`, group: WALK_GROUP, suite: WALK_SUITE, counts }, summaryOf(summaries, walkId("random")), pages, "walks/s"),
    rateFigure(
      { id: walkId("sequential_in_wasm"), name: `walk inside wasm, sequential over ${formatPages(pages)} pages`, group: WALK_GROUP, suite: WALK_SUITE, counts, note: "pte_walk_bench: one call walks every page" },
      summaryOf(summaries, walkId("sequential_in_wasm")),
      pages,
      "walks/s",
    ),
    rateFigure(
      { id: walkId("random_in_wasm"), name: `walk inside wasm, random order over ${formatPages(pages)} pages`, group: WALK_GROUP, suite: WALK_SUITE, counts, note: "pte_walk_bench: xorshift order fixed by the seed, pages may repeat" },
      summaryOf(summaries, walkId("random_in_wasm")),
      pages,
      "walks/s",
    ),
    rateFigure(
      {
        id: walkId("call_overhead"),
        name: "JS-to-wasm call, no walk (frames_used)",
        group: WALK_GROUP,
        suite: WALK_SUITE,
        counts: { calls: pages },
        note: "the boundary cost each walk above includes",
      },
      summaryOf(summaries, walkId("call_overhead")),
      pages,
      "calls/s",
    ),
  ];
  return figures;
}
