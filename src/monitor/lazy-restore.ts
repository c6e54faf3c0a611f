// A reference lazy-restore monitor, in the manner of CRIU's lazy-pages
// daemon or a post-copy migration handler, run as one simulated thread.
//
// The monitor keeps a snapshot of the target's registered memory, each page
// stored in the monitor's own address space. For each process it serves, it
// also keeps the set of pages it believes are still missing. Each turn of its loop does
// one thing, in this order of priority:
//
//   1. read one message if a served userfaultfd has one queued;
//   2. serve the oldest fault not yet resolved;
//   3. stop, once every target thread has finished;
//   4. copy one missing page in the background (one UFFDIO_COPY);
//   5. otherwise sleep in poll until a message arrives or the target ends.
//
// Faults on a page it believes missing get UFFDIO_COPY from the snapshot;
// any other fault gets UFFDIO_ZEROPAGE. EEXIST means the page is present
// (the monitor marks it so and wakes the range), ENOENT that the range is
// gone (the page leaves the missing set), EAGAIN that an event is pending:
// the monitor reads its events first and retries. Events update the view:
// FORK starts serving the child with the parent's missing set as read
// time, REMAP moves addresses, REMOVE makes pages zero-on-fault, UNMAP
// forgets them.
//
// This policy trusts that a successful UFFDIO_COPY means the page is now
// present in every process that will later read it. The mmap_changing gate
// is what makes that true; without it, a COPY that lands after fork copied
// the page tables, or after mremap moved them, updates the monitor's view
// wrongly, and the target later reads zeros where snapshot data belongs.

import { EAGAIN, EEXIST, ENOENT, PAGE_SIZE, UFFD_EVENT_FORK, UFFD_EVENT_PAGEFAULT, UFFD_EVENT_REMAP, UFFD_EVENT_REMOVE, UFFD_EVENT_UNMAP, UFFD_PAGEFAULT_FLAG_WRITE } from "../constants.js";
import { Scheduler, type SimThread } from "../sched/scheduler.js";
import type { UffdMsg } from "../uffd/messages.js";
import { Userfaultfd } from "../uffd/userfaultfd.js";
import { hex } from "./oracle.js";

/** A process the monitor serves, on its own userfaultfd. */
export interface ServedProcess {
  /** The name used in traces: "target" for the first, "child", "child 2", ... for forked ones. */
  readonly name: string;
  readonly uffd: Userfaultfd;
  /** Page addresses the monitor believes are still missing. */
  readonly missing: Set<number>;
  /** Page address in the process → address of the page's snapshot in the monitor's memory. */
  readonly snapshot: Map<number, number>;
}

export interface LazyRestoreOptions {
  /** The monitor's handle on the target's userfaultfd, with the target's memory registered MISSING. */
  uffd: Userfaultfd;
  /**
   * The snapshot: target page address → address of that page's contents in
   * the memory of the process that owns `uffd`, which is where each COPY
   * reads. Every page starts out missing.
   */
  snapshot: ReadonlyMap<number, number>;
  /** Returns true once every target thread has finished; the monitor then stops when nothing is queued. */
  targetDone: () => boolean;
  /** Name of the monitor's thread; default "monitor". */
  threadName?: string;
}

/** Counts of what the monitor did, for tests and reports. */
export interface LazyRestoreStats {
  messages: number;
  copies: number;
  zeropages: number;
  /** COPY and ZEROPAGE calls that returned EAGAIN. */
  eagain: number;
}

interface PendingFault {
  readonly process: ServedProcess;
  readonly address: number;
}

const ERRNO_NAMES = new Map<number, string>([[EAGAIN, "EAGAIN"], [EEXIST, "EEXIST"], [ENOENT, "ENOENT"]]);

function errnoName(errno: number): string {
  return ERRNO_NAMES.get(errno) ?? `errno ${errno}`;
}

function pageStart(address: number): number {
  return address - (address % PAGE_SIZE);
}

export class LazyRestoreMonitor {
  /** The served processes, the target first, then children in the order their FORK was read. */
  readonly processes: ServedProcess[] = [];
  readonly stats: LazyRestoreStats = { messages: 0, copies: 0, zeropages: 0, eagain: 0 };
  /** Faults read but not yet resolved, oldest first. */
  private readonly pending: PendingFault[] = [];
  private readonly targetDone: () => boolean;
  private children = 0;

  /** Throws TypeError or RangeError for options of the wrong type or range; see checkOptions. */
  constructor(options: LazyRestoreOptions) {
    checkOptions(options);
    this.targetDone = options.targetDone;
    const snapshot = new Map(options.snapshot);
    this.processes.push({ name: "target", uffd: options.uffd, missing: new Set(snapshot.keys()), snapshot });
  }

  /** The monitor's loop; returns when the target has finished and no message is queued. */
  async run(thread: SimThread): Promise<void> {
    for (;;) {
      const source = this.processes.find((process) => process.uffd.readable);
      if (source !== undefined) {
        await this.readMessage(thread, source);
        continue;
      }
      const fault = this.pending[0];
      if (fault !== undefined) {
        await this.serveFault(thread, fault);
        continue;
      }
      if (this.targetDone()) return;
      const next = this.nextMissing();
      if (next !== null) {
        await this.copyInBackground(thread, next.process, next.address);
        continue;
      }
      await thread.waitUntil("poll", "a message or the end of the target", () => this.anyReadable() || this.targetDone());
    }
  }

  private anyReadable(): boolean {
    return this.processes.some((process) => process.uffd.readable);
  }

  /** Returns the lowest missing page of the first served process that has one. */
  private nextMissing(): { process: ServedProcess; address: number } | null {
    for (const process of this.processes) {
      if (process.missing.size > 0) return { process, address: Math.min(...process.missing) };
    }
    return null;
  }

  private async readMessage(thread: SimThread, process: ServedProcess): Promise<void> {
    const result = await thread.op(`read ${process.name}'s uffd`, () => process.uffd.read());
    if (result.errno !== 0) throw new Error(`monitor: read of ${process.name}'s uffd failed with ${errnoName(result.errno)} although it was readable`);
    this.stats.messages++;
    const msg = result as UffdMsg;
    switch (msg.event) {
      case UFFD_EVENT_PAGEFAULT: {
        const write = (msg.flags & UFFD_PAGEFAULT_FLAG_WRITE) !== 0 ? "write " : "";
        thread.note(`${write}PAGEFAULT at ${hex(msg.address)}`);
        const fault = { process, address: pageStart(msg.address) };
        this.pending.push(fault);
        await this.serveFault(thread, fault);
        return;
      }
      case UFFD_EVENT_FORK: {
        this.children++;
        const name = this.children === 1 ? "child" : `child ${this.children}`;
        // The child shares what the parent had at fork time; what the parent
        // still misses now, the child misses too.
        this.processes.push({ name, uffd: msg.uffd, missing: new Set(process.missing), snapshot: new Map(process.snapshot) });
        thread.note(`FORK: serving ${name} on uffd ${msg.uffd.fd}`);
        return;
      }
      case UFFD_EVENT_REMAP:
        thread.note(`REMAP ${hex(msg.from)} → ${hex(msg.to)}, ${msg.len} bytes`);
        this.moveRange(process, msg.from, msg.to, msg.len);
        return;
      case UFFD_EVENT_REMOVE:
        thread.note(`REMOVE ${hex(msg.start)}-${hex(msg.end)}`);
        // Removed pages read as zeros from now on: a later fault there gets ZEROPAGE.
        for (let page = msg.start; page < msg.end; page += PAGE_SIZE) process.missing.delete(page);
        return;
      case UFFD_EVENT_UNMAP:
        thread.note(`UNMAP ${hex(msg.start)}-${hex(msg.end)}`);
        this.forgetRange(process, msg.start, msg.end);
        return;
    }
  }

  /** Moves the view of [from, from + length) to `to`, as REMAP reports a move. */
  private moveRange(process: ServedProcess, from: number, to: number, length: number): void {
    const moved: Array<{ address: number; source: number | undefined; missing: boolean }> = [];
    for (let offset = 0; offset < length; offset += PAGE_SIZE) {
      const address = from + offset;
      moved.push({ address: to + offset, source: process.snapshot.get(address), missing: process.missing.has(address) });
    }
    this.forgetRange(process, from, from + length);
    this.forgetRange(process, to, to + length);
    for (const page of moved) {
      if (page.source !== undefined) process.snapshot.set(page.address, page.source);
      if (page.missing) process.missing.add(page.address);
    }
  }

  private forgetRange(process: ServedProcess, start: number, end: number): void {
    for (let page = start; page < end; page += PAGE_SIZE) {
      process.missing.delete(page);
      process.snapshot.delete(page);
    }
  }

  /** Resolves `fault` with COPY from the snapshot when the page is missing, else with ZEROPAGE. */
  private async serveFault(thread: SimThread, fault: PendingFault): Promise<void> {
    const { process, address } = fault;
    const source = process.missing.has(address) ? process.snapshot.get(address) : undefined;
    let errno: number;
    if (source !== undefined) {
      const result = await thread.op(`COPY ${hex(address)} for ${process.name}'s fault`, () =>
        process.uffd.copy({ dst: address, src: source, len: PAGE_SIZE, mode: 0 }),
      );
      errno = result.errno;
      if (errno === 0) this.stats.copies++;
    } else {
      const result = await thread.op(`ZEROPAGE ${hex(address)} for ${process.name}'s fault`, () =>
        process.uffd.zeropage({ start: address, len: PAGE_SIZE, mode: 0 }),
      );
      errno = result.errno;
      if (errno === 0) this.stats.zeropages++;
    }
    thread.note(errno === 0 ? "done" : errnoName(errno));
    if (errno === EAGAIN) {
      await this.afterEagain(thread, process);
      return;
    }
    this.pending.splice(this.pending.indexOf(fault), 1);
    process.missing.delete(address);
    if (errno === EEXIST || errno === ENOENT) {
      // The page is there already, or its range is gone: the faulting thread
      // retries its access and either finds the page or gets SIGSEGV.
      await thread.op(`WAKE ${hex(address)} for ${process.name}`, () => process.uffd.wake({ start: address, len: PAGE_SIZE }));
    } else if (errno !== 0) {
      throw new Error(`monitor: fault at ${hex(address)} of ${process.name} failed with ${errnoName(errno)}`);
    }
  }

  private async copyInBackground(thread: SimThread, process: ServedProcess, address: number): Promise<void> {
    const source = process.snapshot.get(address)!;
    const result = await thread.op(`COPY ${hex(address)} for ${process.name} (background)`, () =>
      process.uffd.copy({ dst: address, src: source, len: PAGE_SIZE, mode: 0 }),
    );
    thread.note(result.errno === 0 ? "done" : errnoName(result.errno));
    if (result.errno === EAGAIN) {
      await this.afterEagain(thread, process);
      return;
    }
    process.missing.delete(address);
    if (result.errno === 0) {
      this.stats.copies++;
    } else if (result.errno === EEXIST) {
      await thread.op(`WAKE ${hex(address)} for ${process.name}`, () => process.uffd.wake({ start: address, len: PAGE_SIZE }));
    } else if (result.errno !== ENOENT) {
      throw new Error(`monitor: background COPY to ${hex(address)} of ${process.name} failed with ${errnoName(result.errno)}`);
    }
  }

  /**
   * Handles EAGAIN. When a message is queued, the loop reads it next. When
   * none is, the event was read already but its producer has not yet
   * resumed to lower mmap_changing, so a retry now would fail the same way.
   */
  private async afterEagain(thread: SimThread, process: ServedProcess): Promise<void> {
    this.stats.eagain++;
    if (this.anyReadable()) return;
    // NOTE: a real monitor retries in a loop until the producer has run.
    // This one sleeps on the gate itself, which only the model can see, so
    // that every schedule stays finite.
    await thread.waitUntil("retry", `the mmap_changing gate of ${process.name}'s uffd to open, or a message`, () => {
      return !process.uffd.ctx.gateClosed || this.anyReadable();
    });
  }
}

/**
 * Throws TypeError unless `options` has a Userfaultfd, a Map snapshot, a
 * targetDone function and, if given, a string threadName; RangeError for a
 * snapshot entry whose target address is not page aligned or whose source
 * address is not a whole number.
 */
function checkOptions(options: LazyRestoreOptions): void {
  if (typeof options !== "object" || options === null) throw new TypeError("LazyRestoreMonitor: options must be an object");
  if (!(options.uffd instanceof Userfaultfd)) throw new TypeError("LazyRestoreMonitor: uffd must be a Userfaultfd");
  if (!(options.snapshot instanceof Map)) throw new TypeError("LazyRestoreMonitor: snapshot must be a Map of target page address to source address");
  for (const [page, source] of options.snapshot as ReadonlyMap<unknown, unknown>) {
    if (typeof page !== "number" || typeof source !== "number") throw new TypeError("LazyRestoreMonitor: snapshot keys and values must be numbers");
    if (!Number.isSafeInteger(page) || page < 0 || page % PAGE_SIZE !== 0) {
      throw new RangeError(`LazyRestoreMonitor: snapshot page address ${page} is not a page-aligned whole number`);
    }
    if (!Number.isSafeInteger(source) || source < 0) {
      throw new RangeError(`LazyRestoreMonitor: source address ${source} of page ${hex(page)} is not a whole number >= 0`);
    }
  }
  if (typeof options.targetDone !== "function") throw new TypeError("LazyRestoreMonitor: targetDone must be a function");
  if (options.threadName !== undefined && typeof options.threadName !== "string") {
    throw new TypeError("LazyRestoreMonitor: threadName must be a string");
  }
}

/** Creates a lazy-restore monitor and spawns its thread on `scheduler`; throws TypeError unless `scheduler` is a Scheduler. */
export function spawnLazyRestore(scheduler: Scheduler, options: LazyRestoreOptions): LazyRestoreMonitor {
  if (!(scheduler instanceof Scheduler)) throw new TypeError("spawnLazyRestore: scheduler must be a Scheduler");
  const monitor = new LazyRestoreMonitor(options);
  scheduler.spawn(options.threadName ?? "monitor", (thread) => monitor.run(thread));
  return monitor;
}
