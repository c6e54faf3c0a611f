// The fault round trip: the target reads a missing page of a
// MISSING-registered region, which queues a PAGEFAULT and blocks the read.
// The monitor (a separate process holding the userfaultfd) waits for the
// message with readWait() and resolves it with UFFDIO_COPY from its hot
// source page, which wakes the target. The round trip ends when the target's
// read settles. One sample resolves every page of the region in turn; the
// region is emptied with madvise(MADV_DONTNEED) outside the timing.

import {
  MADV_DONTNEED, UFFD_API, UFFD_EVENT_PAGEFAULT, UFFDIO_REGISTER_MODE_MISSING, Kernel, type Process, type Userfaultfd,
} from "../../src/index.js";
import { PAGE_SIZE, type SuiteContext } from "../config.js";
import { measureTasks, summaryOf } from "../measure.js";
import { rateFigure, type Figure } from "../stats.js";
import { nsPerItem } from "../native-kernel.js";
import { mapHotSource, snapshotStats, statsSince } from "./setup.js";

export const FAULT_SUITE = "fault";
export const FAULT_GROUP = "fault round trip (target read, PAGEFAULT, UFFDIO_COPY, wake)";
export const FAULT_ID = "fault.round_trip";

async function faultPass(target: Process, uffd: Userfaultfd, region: number, pages: number, source: number): Promise<void> {
  const args = { dst: 0, src: source, len: PAGE_SIZE, mode: 0 };
  for (let page = 0; page < pages; page++) {
    const reading = target.read(region + page * PAGE_SIZE, 1);
    const message = await uffd.readWait();
    if (message.errno !== 0 || !("event" in message) || message.event !== UFFD_EVENT_PAGEFAULT) {
      throw new Error(`readWait() returned ${JSON.stringify(message)} instead of a PAGEFAULT message`);
    }
    args.dst = message.address - (message.address % PAGE_SIZE);
    const result = uffd.copy(args);
    if (result.errno !== 0) throw new Error(`UFFDIO_COPY of the faulting page failed: errno ${result.errno}`);
    await reading;
  }
}

export async function runFault(context: SuiteContext): Promise<Figure[]> {
  const { config, progress } = context;
  const pages = config.faultsPerSample;
  const kernel = await Kernel.create({ maxMemory: 64 << 20 });
  const target = kernel.createProcess();
  const monitor = kernel.createProcess();
  const source = await mapHotSource(monitor);
  const region = target.mmap(pages * PAGE_SIZE);
  if (region < 0) throw new Error(`mmap of the fault region failed with errno ${-region}`);
  const own = target.userfaultfd();
  const uffd = own.dupInto(monitor);
  own.close();
  if (uffd.api({ api: UFFD_API, features: 0 }).errno !== 0) throw new Error("UFFDIO_API failed");
  if (uffd.register({ start: region, len: pages * PAGE_SIZE, mode: UFFDIO_REGISTER_MODE_MISSING }).errno !== 0) throw new Error("UFFDIO_REGISTER failed");
  const reset = async () => {
    const status = await target.madvise(region, pages * PAGE_SIZE, MADV_DONTNEED);
    if (status !== 0) throw new Error(`madvise(MADV_DONTNEED) of the fault region failed with errno ${-status}`);
  };

  progress.task(`counting pass, ${pages} faults`);
  const before = snapshotStats(kernel);
  await faultPass(target, uffd, region, pages, source);
  const delta = statsSince(kernel, before);
  await reset();

  const task = {
    name: FAULT_ID,
    fn: () => faultPass(target, uffd, region, pages, source),
    async: true,
    options: { afterEach: reset },
  };
  progress.task("timing");
  const summaries = await measureTasks(config.timing, [task]);
  const latency = summaryOf(summaries, FAULT_ID);
  return [
    rateFigure(
      {
        id: FAULT_ID,
        name: "fault round trips (process.read, readWait, UFFDIO_COPY, wake)",
        group: FAULT_GROUP,
        suite: FAULT_SUITE,
        counts: { faults: delta.faults, ioctls: delta.ioctls, pagesCopied: delta.pagesCopied },
        note: `${(Number(nsPerItem(latency.p50Ms, pages)) / 1000).toFixed(2)} µs per fault`,
      },
      latency,
      pages,
      "faults/s",
    ),
  ];
}
