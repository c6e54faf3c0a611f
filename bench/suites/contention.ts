// Contention: a monitor copies a large registered region in the background,
// once with no events and once while the target forks after every N copied
// pages. The target has UFFD_FEATURE_EVENT_FORK, so each fork raises
// mmap_changing and queues a FORK event; until the monitor reads it, every
// UFFDIO_COPY returns EAGAIN (copy = -EAGAIN). The monitor then reads the
// event, lets the fork finish (which lowers mmap_changing), exits the child
// and retries. Goodput is pages copied over the wall time of the whole pass.
//
// NOTE: the model runs target and monitor on one thread, so the contended
// time also contains the target's fork and the child's exit. On Linux those
// run on another CPU.

import {
  EAGAIN, MADV_DONTNEED, UFFD_EVENT_FORK, UFFD_FEATURE_EVENT_FORK, type Process,
} from "../../src/index.js";
import { PAGE_SIZE, formatBytes, type SuiteContext } from "../config.js";
import { measureTasks, summaryOf } from "../measure.js";
import { throughputFigure, type Figure } from "../stats.js";
import {
  FrameOrderCounter, STAGING_PAGES, createRegisteredRegion, resetRegion, snapshotStats, statsSince, type RegisteredRegion,
} from "./setup.js";

export const CONTENTION_GROUP = "contention (monitor copy vs. fork events)";
export const contentionId = (run: "uncontended" | "contended", unit: "gbps" | "pages_per_s") => `contention.${run}.${unit}`;

interface PassCounts {
  retries: number;
}

/**
 * Copies the whole region in calls of `pagesPerCall` pages. With
 * `forkEvery` > 0 the target forks after every `forkEvery` copied pages
 * (not after the last page), and the monitor handles the EAGAIN and the
 * FORK event as described above.
 */
async function copyRegionWithForks(setup: RegisteredRegion, pagesPerCall: number, forkEvery: number): Promise<PassCounts> {
  const { process: target, uffd, region, staging } = setup;
  const total = setup.regionPages;
  const args = { dst: region, src: staging, len: pagesPerCall * PAGE_SIZE, mode: 0 };
  let copied = 0;
  let nextFork = forkEvery > 0 ? forkEvery : Infinity;
  let forking: Promise<Process> | null = null;
  let retries = 0;

  while (copied < total) {
    if (copied >= nextFork) {
      forking = target.fork();
      nextFork += forkEvery;
    }
    args.dst = region + copied * PAGE_SIZE;
    const result = uffd.copy(args);
    if (result.errno === 0) {
      copied += pagesPerCall;
      continue;
    }
    if (result.errno !== EAGAIN) {
      throw new Error(`UFFDIO_COPY at 0x${args.dst.toString(16)} failed: errno ${result.errno}, copy ${result.copy}`);
    }
    if (result.copy > 0) {
      // Partial progress: continue after the pages that were filled.
      copied += result.copy / PAGE_SIZE;
      continue;
    }
    retries++;
    const message = uffd.read();
    if (message.errno !== 0 || !("event" in message) || message.event !== UFFD_EVENT_FORK) {
      throw new Error(`UFFDIO_COPY returned EAGAIN but read() returned ${JSON.stringify(message)} instead of a FORK event`);
    }
    if (forking === null) throw new Error("read() returned a FORK event that no fork() of this pass produced");
    const child = await forking;
    forking = null;
    child.exit();
    // The child's userfaultfd was installed in the monitor's file table; a
    // monitor that does not serve the child closes it.
    message.uffd.close();
  }
  return { retries };
}

export async function runContention(context: SuiteContext): Promise<Figure[]> {
  const { config, progress } = context;
  const pages = config.contentionPages;
  const perCall = config.contentionPagesPerCall;
  const forkEvery = config.contentionForkEvery;
  if (pages % perCall !== 0 || forkEvery % perCall !== 0 || STAGING_PAGES < perCall) {
    throw new RangeError(`region (${pages}) and fork interval (${forkEvery}) must be multiples of ${perCall} pages`);
  }
  const setup = await createRegisteredRegion(config.maxMemory, pages, UFFD_FEATURE_EVENT_FORK);
  const runs = [
    { run: "uncontended" as const, forkEvery: 0, name: "no events" },
    { run: "contended" as const, forkEvery, name: `fork every ${forkEvery} pages` },
  ];

  // One untimed pass each: first touch of the frames, and the counts of a pass.
  const countsByRun = new Map<string, Record<string, number>>();
  for (const { run, forkEvery: every } of runs) {
    progress(`contention: counting pass, ${run}, ${formatBytes(pages * PAGE_SIZE)}`);
    const before = snapshotStats(setup.kernel);
    const { retries } = await copyRegionWithForks(setup, perCall, every);
    const delta = statsSince(setup.kernel, before);
    countsByRun.set(run, { pagesPerCall: perCall, ...delta, retries });
    await resetRegion(setup, MADV_DONTNEED);
  }

  const orders = new Map(runs.map(({ run }) => [run, new FrameOrderCounter(setup)]));
  const tasks = runs.map(({ run, forkEvery: every }) => ({
    name: contentionId(run, "gbps"),
    fn: async () => {
      await copyRegionWithForks(setup, perCall, every);
    },
    async: true,
    options: {
      afterEach: async (mode?: string) => {
        if (mode === "run") orders.get(run)!.record();
        await resetRegion(setup, MADV_DONTNEED);
      },
    },
  }));
  progress("contention: timing");
  const summaries = await measureTasks(config.timing, tasks);

  const figures: Figure[] = [];
  for (const { run, name } of runs) {
    const latency = summaryOf(summaries, contentionId(run, "gbps"));
    const counts = countsByRun.get(run)!;
    const noEagain = run === "contended" && counts.eagain === 0;
    const note = noEagain ? "no EAGAIN was returned: the forks did not contend with the copy" : orders.get(run)!.note();
    figures.push(throughputFigure(
      { id: contentionId(run, "gbps"), name: `goodput, ${name}`, group: CONTENTION_GROUP, counts, ...(note ? { note } : {}) },
      latency,
      pages * PAGE_SIZE,
    ));
    figures.push({
      id: contentionId(run, "pages_per_s"),
      name: `goodput, ${name}`,
      group: CONTENTION_GROUP,
      value: pages / (latency.p50Ms / 1000),
      unit: "pages/s",
      spread: latency.rme,
      samples: latency.samples,
      latency,
      counts,
    });
  }
  return figures;
}
