// Contention: a monitor copies a large registered region in the background
// while the target produces non-cooperative events at a fixed rate: fork,
// mremap, madvise(MADV_DONTNEED), munmap, or the four in turn ("mix"), one
// every N copied pages. The monitor is a separate process holding the
// userfaultfd (as a real monitor receives it over a socket) with
// EVENT_FORK, EVENT_REMAP, EVENT_REMOVE and EVENT_UNMAP, and copies from its
// own hot source page.
//
// Each event raises mmap_changing, so the next UFFDIO_COPY returns EAGAIN
// (copy = -EAGAIN). The monitor then reads every queued event, lets the
// producer's system call finish (its promise settles only after the read;
// mremap queues REMAP, then UNMAP of the old range), closes a forked child's
// userfaultfd, and retries. Forked children live on until the pass ends (the
// next pass's Kernel.reset drops them), as a child process runs on by itself:
// its exit is not the monitor's work. madvise, munmap and mremap act
// on the 16 pages just behind the copy cursor, so the pages left to copy stay
// the same and every run copies the whole region. Goodput is the region
// over the wall time of the whole pass.
//
// Every pass starts from a reset kernel (Kernel.reset) with the processes
// built again, so each pass gets the same frames in the same order. Freed
// frames are reused first in, first out: without the reset, the frames an
// event frees mid-pass would shuffle the physical order of the next pass's
// pages, and a shuffled destination copies measurably slower, whatever the
// next pass's own events.
//
// NOTE: the model runs target and monitor on one thread, so the contended
// time also contains the target's system calls (fork's copy_page_range
// included). On Linux those run on another CPU.

import {
  EAGAIN, MADV_DONTNEED, MREMAP_FIXED, MREMAP_MAYMOVE, UFFD_API, UFFD_EVENT_FORK,
  UFFD_FEATURE_EVENT_FORK, UFFD_FEATURE_EVENT_REMAP, UFFD_FEATURE_EVENT_REMOVE, UFFD_FEATURE_EVENT_UNMAP,
  UFFDIO_REGISTER_MODE_MISSING, Kernel, type Process, type UffdMsg, type Userfaultfd,
} from "../../src/index.js";
import { PAGE_SIZE, formatBytes, formatPages, type SuiteContext } from "../config.js";
import { measureTasks, summaryOf, type TaskSpec } from "../measure.js";
import { throughputFigure, type Figure } from "../stats.js";
import { HOT_SOURCE_PAGES, mapHotSource, snapshotStats, statsSince } from "./setup.js";

export const CONTENTION_SUITE = "contention";
export const CONTENTION_GROUP = "contention (monitor copy vs. non-cooperative events)";
export type EventKind = "fork" | "mremap" | "madvise" | "munmap" | "mix";
export const EVENT_KINDS: readonly EventKind[] = ["fork", "mremap", "madvise", "munmap", "mix"];
/** The order in which the "mix" run produces its events. */
const MIX_ORDER: readonly Exclude<EventKind, "mix">[] = ["fork", "mremap", "madvise", "munmap"];
export const UNCONTENDED_ID = "contention.none";
export const contentionId = (kind: EventKind, every: number) => `contention.${kind}.every_${every}`;

/** Room for page tables, forked children's tables and the source above the region's pages. */
const TABLE_MARGIN_BYTES = 64 << 20;
const FEATURES = UFFD_FEATURE_EVENT_FORK | UFFD_FEATURE_EVENT_REMAP | UFFD_FEATURE_EVENT_REMOVE | UFFD_FEATURE_EVENT_UNMAP;

/** The two processes and the address ranges of one pass. */
interface ContentionSetup {
  kernel: Kernel;
  target: Process;
  monitor: Process;
  /** The monitor's handle on the target's userfaultfd. */
  uffd: Userfaultfd;
  region: number;
  regionPages: number;
  /** Where mremap moves ranges to, one slot per event. */
  parking: number;
  parkingPages: number;
  source: number;
}

/** A target system call in flight: its promise settles once the monitor has read its events. */
interface Producer {
  settled: boolean;
  /** Runs after it settled: reports a failed call. */
  finish: () => Promise<void>;
}

function checkStatus(result: number, call: string): number {
  if (result < 0) throw new Error(`${call} failed with errno ${-result}`);
  return result;
}

/**
 * Resets the kernel and builds a pass: the monitor with its hot source, the
 * target with the region and the parking area, and the target's userfaultfd
 * handed to the monitor.
 */
async function buildPass(kernel: Kernel, regionPages: number, parkingPages: number): Promise<ContentionSetup> {
  kernel.reset();
  const target = kernel.createProcess();
  const monitor = kernel.createProcess();
  const source = await mapHotSource(monitor);
  const region = checkStatus(target.mmap(regionPages * PAGE_SIZE), "mmap(region)");
  const parking = checkStatus(target.mmap(parkingPages * PAGE_SIZE), "mmap(parking area)");
  const own = target.userfaultfd();
  const uffd = own.dupInto(monitor);
  own.close();
  const api = uffd.api({ api: UFFD_API, features: FEATURES });
  if (api.errno !== 0) throw new Error(`UFFDIO_API with the event features failed with errno ${api.errno}`);
  const registered = uffd.register({ start: region, len: regionPages * PAGE_SIZE, mode: UFFDIO_REGISTER_MODE_MISSING });
  if (registered.errno !== 0) throw new Error(`UFFDIO_REGISTER of ${formatBytes(regionPages * PAGE_SIZE)} failed with errno ${registered.errno}`);
  return { kernel, target, monitor, uffd, region, regionPages, parking, parkingPages, source };
}

/** Starts the target's system call for one event on the pages just behind `cursor`. */
function startEvent(setup: ContentionSetup, kind: Exclude<EventKind, "mix">, cursor: number, slot: number, eventPages: number): Producer {
  const { target, region, parking } = setup;
  const length = eventPages * PAGE_SIZE;
  const start = region + (cursor - eventPages) * PAGE_SIZE;
  const producer: Producer = { settled: false, finish: async () => {} };
  const settle = <T>(promise: Promise<T>, call: string, onValue: (value: T) => void = () => {}) => {
    promise.then(
      (value) => {
        producer.settled = true;
        onValue(value);
      },
      (error: unknown) => {
        producer.settled = true;
        producer.finish = () => Promise.reject(new Error(`${call} in the contention pass failed: ${String(error)}`));
      },
    );
  };
  switch (kind) {
    case "fork":
      settle(target.fork(), "fork()", () => {});
      break;
    case "madvise":
      settle(target.madvise(start, length, MADV_DONTNEED), "madvise(MADV_DONTNEED)", (status) => checkProducer(producer, status, "madvise"));
      break;
    case "munmap":
      settle(target.munmap(start, length), "munmap()", (status) => checkProducer(producer, status, "munmap"));
      break;
    case "mremap": {
      const to = parking + slot * length;
      settle(target.mremap(start, length, length, MREMAP_MAYMOVE | MREMAP_FIXED, to), "mremap()", (status) => checkProducer(producer, status, "mremap"));
      break;
    }
  }
  return producer;
}

function checkProducer(producer: Producer, status: number, call: string): void {
  if (status < 0) producer.finish = () => Promise.reject(new Error(`${call} in the contention pass returned errno ${-status}`));
}

/** Lets every pending promise run, so a producer that was woken queues its next event or settles. */
const nextMacrotask = () => new Promise<void>((resolve) => setImmediate(resolve));

/**
 * Microtask turns to wait for a woken producer before falling back to a
 * macrotask. A producer resumes within a few turns of the read that woke it.
 * A turn is far cheaper than setImmediate, which took tens of microseconds
 * per event on a loaded machine.
 */
const MICROTASK_TURNS = 64;

/** Reads every queued message until the producer's system call has returned; closes forked children's userfaultfds. */
async function serveEvents(uffd: Userfaultfd, producer: Producer): Promise<void> {
  let turns = 0;
  for (;;) {
    for (let message = uffd.read(); message.errno === 0; message = uffd.read()) {
      const msg = message as UffdMsg;
      // A monitor that does not serve the child closes the child's userfaultfd.
      if (msg.event === UFFD_EVENT_FORK) msg.uffd.close();
    }
    if (producer.settled) break;
    if (++turns <= MICROTASK_TURNS) await Promise.resolve();
    else await nextMacrotask();
  }
  await producer.finish();
}

interface PassCounts {
  events: number;
  retries: number;
}

/**
 * Copies the whole region in calls of `pagesPerCall` pages. With `every` > 0
 * the target produces an event of `kind` after every `every` copied pages
 * (not after the last page); the monitor handles the EAGAIN as described above.
 */
async function copyPass(setup: ContentionSetup, kind: EventKind | null, every: number, pagesPerCall: number, eventPages: number): Promise<PassCounts> {
  const { region, source, uffd } = setup;
  const total = setup.regionPages;
  const args = { dst: region, src: source, len: pagesPerCall * PAGE_SIZE, mode: 0 };
  let copied = 0;
  let nextEvent = kind !== null ? every : Infinity;
  let producer: Producer | null = null;
  let events = 0;
  let retries = 0;

  while (copied < total) {
    if (copied >= nextEvent && copied < total) {
      const eventKind = kind === "mix" ? MIX_ORDER[events % MIX_ORDER.length]! : (kind as Exclude<EventKind, "mix">);
      producer = startEvent(setup, eventKind, copied, events, eventPages);
      events++;
      nextEvent += every;
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
    if (producer === null) throw new Error("UFFDIO_COPY returned EAGAIN with no event of this pass in flight");
    await serveEvents(uffd, producer);
    producer = null;
  }
  return { events, retries };
}

/** The time samples of a run and the counts of one of its passes. */
interface RunSpec {
  id: string;
  kind: EventKind | null;
  every: number;
}

export async function runContention(context: SuiteContext): Promise<Figure[]> {
  const { config, progress } = context;
  const pages = config.contentionPages;
  const perCall = config.contentionPagesPerCall;
  const eventPages = config.contentionEventPages;
  for (const every of config.contentionEventEvery) {
    if (pages % perCall !== 0 || every % perCall !== 0 || every < eventPages) {
      throw new RangeError(`region (${pages}) and event interval (${every}) must be multiples of ${perCall} pages, the interval at least ${eventPages}`);
    }
  }
  if (perCall > HOT_SOURCE_PAGES) throw new RangeError(`at most ${HOT_SOURCE_PAGES} pages per call`);
  const kernel = await Kernel.create({ maxMemory: pages * PAGE_SIZE + TABLE_MARGIN_BYTES });
  const maxEvents = Math.ceil(pages / Math.min(...config.contentionEventEvery));
  const parkingPages = maxEvents * eventPages;
  let setup = await buildPass(kernel, pages, parkingPages);

  const runs: RunSpec[] = [{ id: UNCONTENDED_ID, kind: null, every: 0 }];
  for (const kind of EVENT_KINDS) {
    for (const every of config.contentionEventEvery) runs.push({ id: contentionId(kind, every), kind, every });
  }

  // One untimed pass each: first touch of the frames, and the counts of a pass.
  const countsById = new Map<string, Record<string, number>>();
  for (const run of runs) {
    progress.task(`counting pass, ${run.kind ?? "no events"}${run.kind ? ` every ${run.every} pages` : ""}`);
    const before = snapshotStats(kernel);
    const { events, retries } = await copyPass(setup, run.kind, run.every, perCall, eventPages);
    const delta = statsSince(kernel, before);
    setup = await buildPass(kernel, pages, parkingPages);
    countsById.set(run.id, {
      pagesPerCall: perCall,
      events,
      ioctls: delta.ioctls,
      pagesCopied: delta.pagesCopied,
      eagainRetries: retries,
      ptesCopied: delta.ptesCopied,
      forks: delta.forks,
    });
  }

  const tasks: TaskSpec[] = runs.map((run) => ({
    name: run.id,
    fn: async () => {
      await copyPass(setup, run.kind, run.every, perCall, eventPages);
    },
    async: true,
    options: {
      afterEach: async () => {
        setup = await buildPass(kernel, pages, parkingPages);
      },
    },
  }));
  progress.task(`timing ${tasks.length} tasks over ${formatBytes(pages * PAGE_SIZE)} each`);
  // Eight rounds spread every run's samples over the whole measurement: with
  // two halves, a change of the VM's memory speed mid-run made contended
  // runs look up to 1.3 times faster than the uncontended one.
  const summaries = await measureTasks(config.timing, tasks, { rounds: 8 });

  return runs.map((run) => {
    const counts = countsById.get(run.id)!;
    const name = run.kind === null ? "goodput, no events" : `goodput, ${run.kind} every ${formatPages(run.every)} pages`;
    const noEagain = run.kind !== null && counts.eagainRetries === 0;
    const base = {
      id: run.id,
      name,
      group: CONTENTION_GROUP,
      suite: CONTENTION_SUITE,
      counts,
      ...(noEagain ? { note: "no EAGAIN was returned: the events did not contend with the copy" } : {}),
    };
    return throughputFigure(base, summaryOf(summaries, run.id), pages * PAGE_SIZE);
  });
}

/** EAGAIN retries per 1000 copied pages of a contention figure, or null without counts. */
export function eagainPerThousandPages(figure: Figure): number | null {
  const retries = figure.counts?.eagainRetries;
  const copied = figure.counts?.pagesCopied;
  if (retries === undefined || copied === undefined || copied === 0) return null;
  return (retries * 1000) / copied;
}
