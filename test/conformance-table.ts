// The cases of the kernel's userfaultfd selftest
// (tools/testing/selftests/mm/uffd-unit-tests.c, Linux 6.16) as a table,
// and the setup they share: the src and dst areas of each memory type and
// a monitor, driven by the test, that resolves faults and handles events the way
// the selftest's monitor thread does. The conformance-*.test.ts files
// generate one test per (case, memory type) from the table.

import { expect, it } from "vitest";
import {
  EEXIST, EINVAL, MADV_DONTNEED, MADV_REMOVE, MAP_ANONYMOUS, MAP_FIXED, MAP_PRIVATE, MAP_SHARED, UFFD_API, UFFD_EVENT_FORK, UFFD_EVENT_PAGEFAULT,
  UFFD_EVENT_REMAP, UFFD_EVENT_REMOVE, UFFD_FEATURE_EVENT_FORK, UFFD_FEATURE_EVENT_REMAP, UFFD_FEATURE_EVENT_REMOVE,
  UFFD_FEATURE_MINOR_HUGETLBFS, UFFD_FEATURE_MINOR_SHMEM, UFFD_FEATURE_MISSING_HUGETLBFS, UFFD_FEATURE_MISSING_SHMEM,
  UFFD_FEATURE_MOVE, UFFD_FEATURE_PAGEFAULT_FLAG_WP, UFFD_FEATURE_POISON, UFFD_FEATURE_SIGBUS,
  UFFD_FEATURE_WP_HUGETLBFS_SHMEM, UFFD_FEATURE_WP_UNPOPULATED, UFFD_PAGEFAULT_FLAG_MINOR, UFFD_PAGEFAULT_FLAG_WP,
  UFFD_PAGEFAULT_FLAG_WRITE, UFFDIO_CONTINUE_MODE_WP, UFFDIO_COPY_MODE_WP, UFFDIO_REGISTER_MODE_MINOR, UFFDIO_REGISTER_MODE_WP,
  SignalError, type Kernel, type MappedFile, type PagefaultMsg, type Process, type UffdMsg, type Userfaultfd,
} from "../src/index.js";
import { createKernel, drain, pageOf, settledNow, watch } from "./helpers.js";

export const PAGE = 4096;
/** Pages per area: enough for the halves and the odd/even split the cases use. */
export const PAGES = 4;
export const AREA = PAGES * PAGE;

/** Fixed addresses, a gap apart, so that no two areas merge. */
export const SRC = 0x1000_0000;
export const DST = 0x2000_0000;
export const DST_ALIAS = 0x3000_0000;

/** The byte that fills src page `i`: 'A', 'B', ... */
export const srcByte = (i: number) => 0x41 + i;

/** The uffd-wp bit of a PTE in the wasm core, what pagemap reports as PM_UFFD_WP. */
const PTE_UFFD_WP = 1 << 10;

export type MemoryType = "anon" | "shmem" | "shmem-private" | "hugetlb" | "hugetlb-private";

/** The memory types of the selftest, in its order. */
export const MEMORY_TYPES: readonly MemoryType[] = ["anon", "shmem", "shmem-private", "hugetlb", "hugetlb-private"];

/**
 * A rejection to assert on a memory type the selftest leaves out: the ioctl,
 * its errno, and for REGISTER the mode that is rejected.
 */
export interface Rejection {
  readonly ioctl: "register" | "move";
  readonly errno: number;
  readonly mode?: number;
}

export interface ConformanceCase {
  /** The selftest's name for the case. */
  readonly name: string;
  /** The features passed to UFFDIO_API: the bits the selftest requires for the case. */
  readonly features: number;
  /** Memory types the scenario runs on. */
  readonly memory: readonly MemoryType[];
  /** Memory types the selftest leaves out because the kernel rejects them. */
  readonly rejections?: Partial<Record<MemoryType, Rejection>>;
  /** Memory types left out for another reason, with the reason. */
  readonly skips?: Partial<Record<MemoryType, string>>;
}

/** Memory types the selftest has but the model lacks: every case is skipped on them. */
export const SKIPPED_MEMORY: Partial<Record<MemoryType, string>> = {
  hugetlb: "hugetlbfs is not modelled",
  "hugetlb-private": "hugetlbfs is not modelled",
};
const ALL: readonly MemoryType[] = ["anon", "shmem", "shmem-private"];
const WP_FEATURES = UFFD_FEATURE_PAGEFAULT_FLAG_WP | UFFD_FEATURE_WP_HUGETLBFS_SHMEM;
const MINOR_FEATURES = UFFD_FEATURE_MINOR_HUGETLBFS | UFFD_FEATURE_MINOR_SHMEM;
const EVENT_FEATURES = UFFD_FEATURE_EVENT_FORK | UFFD_FEATURE_EVENT_REMAP | UFFD_FEATURE_EVENT_REMOVE;
const WP_UNPOPULATED_ANON_ONLY = "the selftest runs it on anon only: shmem always gets uffd-wp markers, and nothing is rejected";
const MINOR_ON_PRIVATE =
  "the selftest runs minor on shared memory only: writes through a MAP_PRIVATE mapping never reach the page cache";

export const CASES: readonly ConformanceCase[] = [
  {
    name: "register-ioctls",
    features: UFFD_FEATURE_MISSING_HUGETLBFS | UFFD_FEATURE_MISSING_SHMEM | WP_FEATURES | MINOR_FEATURES,
    memory: ALL,
  },
  { name: "zeropage", features: 0, memory: ALL },
  // The selftest has no case of its own for UFFDIO_WAKE: its fault handler
  // wakes the faulting thread after a COPY that fails with EEXIST. This
  // case checks that path and the re-fault after a bare WAKE.
  { name: "wake", features: 0, memory: ALL },
  {
    name: "move",
    features: UFFD_FEATURE_MOVE,
    memory: ["anon"],
    rejections: { shmem: { ioctl: "move", errno: EINVAL }, "shmem-private": { ioctl: "move", errno: EINVAL } },
  },
  { name: "wp-fork", features: WP_FEATURES, memory: ALL },
  { name: "wp-fork-with-event", features: WP_FEATURES | UFFD_FEATURE_EVENT_FORK, memory: ALL },
  {
    name: "wp-unpopulated",
    features: UFFD_FEATURE_PAGEFAULT_FLAG_WP | UFFD_FEATURE_WP_UNPOPULATED,
    memory: ["anon"],
    skips: { shmem: WP_UNPOPULATED_ANON_ONLY, "shmem-private": WP_UNPOPULATED_ANON_ONLY },
  },
  {
    name: "minor",
    features: MINOR_FEATURES,
    memory: ["shmem"],
    rejections: { anon: { ioctl: "register", errno: EINVAL, mode: UFFDIO_REGISTER_MODE_MINOR } },
    skips: { "shmem-private": MINOR_ON_PRIVATE },
  },
  {
    // The selftest requires WP_UNPOPULATED here only to detect kernels whose
    // MINOR mode supports write protection.
    name: "minor-wp",
    features: MINOR_FEATURES | UFFD_FEATURE_PAGEFAULT_FLAG_WP | UFFD_FEATURE_WP_UNPOPULATED,
    memory: ["shmem"],
    rejections: { anon: { ioctl: "register", errno: EINVAL, mode: UFFDIO_REGISTER_MODE_MINOR | UFFDIO_REGISTER_MODE_WP } },
    skips: { "shmem-private": MINOR_ON_PRIVATE },
  },
  { name: "sigbus", features: UFFD_FEATURE_SIGBUS | UFFD_FEATURE_EVENT_FORK, memory: ALL },
  { name: "sigbus-wp", features: UFFD_FEATURE_SIGBUS | UFFD_FEATURE_EVENT_FORK | WP_FEATURES, memory: ALL },
  { name: "events", features: EVENT_FEATURES, memory: ALL },
  { name: "events-wp", features: EVENT_FEATURES | WP_FEATURES, memory: ALL },
  { name: "poison", features: UFFD_FEATURE_POISON, memory: ALL },
  // The selftest runs this on shmem only, because the gate does not depend
  // on the memory type. Running it on all three checks exactly that.
  {
    name: "mmap-changing",
    features: UFFD_FEATURE_EVENT_REMOVE | UFFD_FEATURE_MOVE | UFFD_FEATURE_POISON | UFFD_FEATURE_MINOR_SHMEM,
    memory: ALL,
  },
];

/** What a case does on one memory type. */
export type Plan =
  | { readonly kind: "run" }
  | { readonly kind: "reject"; readonly rejection: Rejection }
  | { readonly kind: "skip"; readonly reason: string };

/** Returns the plan of `entry` on `type`. Throws when the table gives none. */
export function planFor(entry: ConformanceCase, type: MemoryType): Plan {
  const unmodelled = SKIPPED_MEMORY[type];
  if (unmodelled !== undefined) return { kind: "skip", reason: unmodelled };
  if (entry.memory.includes(type)) return { kind: "run" };
  const rejection = entry.rejections?.[type];
  if (rejection !== undefined) return { kind: "reject", rejection };
  const reason = entry.skips?.[type];
  if (reason !== undefined) return { kind: "skip", reason };
  throw new Error(`conformance table: case ${entry.name} has no plan for memory type ${type}`);
}

export function caseNamed(name: string): ConformanceCase {
  const entry = CASES.find((c) => c.name === name);
  if (entry === undefined) throw new Error(`conformance table: no case named ${name}`);
  return entry;
}

/** The areas of one run, as the selftest sets them up, in one process. */
export interface Areas {
  readonly kernel: Kernel;
  readonly process: Process;
  /** The process's userfaultfd, after UFFDIO_API with the case's features. */
  readonly uffd: Userfaultfd;
  readonly type: MemoryType;
  /** PAGES pages, page i filled with srcByte(i). */
  readonly src: number;
  /** PAGES empty pages, not registered yet. */
  readonly dst: number;
  /** A second, MAP_SHARED mapping of dst's pages (shmem types), or null for anon. */
  readonly dstAlias: number | null;
  /** The memfd behind src (offset 0) and dst (offset AREA), or null for anon. */
  readonly file: MappedFile | null;
}

/** Returns whether dst is a shared mapping, whose fills go into the page cache. */
export function isShared(type: MemoryType): boolean {
  return type === "shmem" || type === "hugetlb";
}

/**
 * Creates a process with src and dst areas of `type` and a userfaultfd
 * with `features`. anon maps private anonymous memory. shmem maps one
 * memfd MAP_SHARED at src (offset 0) and dst (offset AREA), plus dst's
 * alias. shmem-private maps the memfd MAP_PRIVATE at src and dst, and the
 * alias MAP_SHARED.
 * NOTE: the selftest's shmem setup (uffd-common.c, Linux 6.16) maps
 * shmem-private areas MAP_SHARED as well, so only its zap and release steps
 * differ from shmem. Here they are MAP_PRIVATE, matching the type's name.
 */
export async function setupAreas(type: MemoryType, features: number): Promise<Areas> {
  const kernel = await createKernel();
  const process = kernel.createProcess();
  let file: MappedFile | null = null;
  let dstAlias: number | null = null;
  if (type === "anon") {
    const flags = MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED;
    expect(process.mmap(AREA, { flags, address: SRC })).toBe(SRC);
    expect(process.mmap(AREA, { flags, address: DST })).toBe(DST);
  } else if (type === "shmem" || type === "shmem-private") {
    file = kernel.memfdCreate("uffd-test", 2 * AREA);
    const flags = (type === "shmem" ? MAP_SHARED : MAP_PRIVATE) | MAP_FIXED;
    expect(process.mmap(AREA, { file, flags, address: SRC, offset: 0 })).toBe(SRC);
    expect(process.mmap(AREA, { file, flags, address: DST, offset: AREA })).toBe(DST);
    dstAlias = process.mmap(AREA, { file, flags: MAP_SHARED | MAP_FIXED, address: DST_ALIAS, offset: AREA });
    expect(dstAlias).toBe(DST_ALIAS);
  } else {
    throw new Error(`setupAreas: ${type} is not modelled`);
  }
  for (let i = 0; i < PAGES; i++) await process.write(SRC + i * PAGE, pageOf(srcByte(i)));

  const uffd = process.userfaultfd();
  expect(uffd.api({ api: UFFD_API, features }).errno).toBe(0);
  return { kernel, process, uffd, type, src: SRC, dst: DST, dstAlias, file };
}

/**
 * Drops every page of the `length` bytes at `address`, as the selftest's
 * release step does: MADV_REMOVE punches the hole in the file of a shared
 * mapping, MADV_DONTNEED drops a private mapping's pages (its fills never
 * reached the page cache). Settles with madvise's result.
 */
export function releasePages(process: Process, type: MemoryType, address: number, length: number): Promise<number> {
  return process.madvise(address, length, isShared(type) ? MADV_REMOVE : MADV_DONTNEED);
}

/** Returns 1 when the entry at `address` in `process` has the uffd-wp bit (present page or marker), else 0. */
export function wpBit(process: Process, address: number): number {
  return (process.kernel.core.exports.pte_read(process.mm.pgd, address) & PTE_UFFD_WP) !== 0 ? 1 : 0;
}

/** Returns the message a fault at `address` with `flags` produces. */
export function faultMsg(address: number, flags = 0): PagefaultMsg {
  return { errno: 0, event: UFFD_EVENT_PAGEFAULT, flags, address, ptid: 0 };
}

/** A fault handler: resolves the fault `msg` reported, as the monitor thread would. */
export type FaultHandler = (monitor: Monitor, msg: PagefaultMsg) => void | Promise<void>;

/** Rounds of reads Monitor.serve does before it declares the access stuck. */
const MAX_ROUNDS = 64;

/**
 * The selftest's monitor thread, run by the test: it reads messages and
 * handles them until the access it serves settles. Faults go to the fault
 * handler. FORK switches to the child's userfaultfd and closes the old
 * one, REMAP moves dst to the new address, and REMOVE unregisters the range.
 */
export class Monitor {
  uffd: Userfaultfd;
  /** The monitor's view of dst's address, which REMAP changes. */
  dst: number;
  readonly areas: Areas;
  /** Faults handled, by kind. */
  readonly counts = { missing: 0, wp: 0, minor: 0 };
  /** Messages handled, in read order. */
  readonly messages: UffdMsg[] = [];
  private readonly handler: FaultHandler;
  /** Whether the default handler's COPY and CONTINUE use their WP mode. */
  readonly applyWp: boolean;

  constructor(areas: Areas, options: { applyWp?: boolean; handler?: FaultHandler } = {}) {
    this.areas = areas;
    this.uffd = areas.uffd;
    this.dst = areas.dst;
    this.applyWp = options.applyWp ?? false;
    this.handler = options.handler ?? handleFault;
  }

  /**
   * Handles messages until `access` settles, and returns its promise.
   * Throws when the access stays blocked with no message to read, or after
   * MAX_ROUNDS messages, so a lost wake fails fast.
   */
  async serve<T>(access: Promise<T>): Promise<T> {
    const watched = watch(access);
    for (let round = 0; round < MAX_ROUNDS; round++) {
      await drain();
      if (watched.state !== "pending") return watched.promise;
      const msg = this.uffd.read();
      if (!("event" in msg)) throw new Error(`access still blocked and no message to read (read errno ${msg.errno})`);
      await this.handle(msg);
    }
    throw new Error(`access still blocked after ${MAX_ROUNDS} messages`);
  }

  /** Handles one message as the selftest's monitor thread does. */
  async handle(msg: UffdMsg): Promise<void> {
    this.messages.push(msg);
    switch (msg.event) {
      case UFFD_EVENT_PAGEFAULT:
        await this.handler(this, msg);
        break;
      case UFFD_EVENT_FORK:
        this.uffd.close();
        this.uffd = msg.uffd;
        break;
      case UFFD_EVENT_REMAP:
        this.dst = msg.to;
        break;
      case UFFD_EVENT_REMOVE:
        expect(this.uffd.unregister({ start: msg.start, len: msg.end - msg.start }), "UNREGISTER of a removed range").toEqual({ errno: 0 });
        break;
      default:
        throw new Error(`unexpected message: event 0x${msg.event.toString(16)}`);
    }
  }

  /** Copies src page `page` to dst page `page`, or wakes the page when COPY fails with EEXIST. Returns whether COPY filled it. */
  copyPage(page: number): boolean {
    const dst = this.dst + page * PAGE;
    const mode = this.applyWp ? UFFDIO_COPY_MODE_WP : 0;
    const result = this.uffd.copy({ dst, src: this.areas.src + page * PAGE, len: PAGE, mode });
    if (result.errno === 0) {
      expect(result.copy, "COPY result").toBe(PAGE);
      return true;
    }
    expect(result, "COPY that failed").toEqual({ errno: EEXIST, copy: -EEXIST });
    expect(this.uffd.wake({ start: dst, len: PAGE }), "WAKE after EEXIST").toEqual({ errno: 0 });
    return false;
  }
}

/**
 * The selftest's fault handler. A WP fault un-protects the page, which
 * wakes it. A MINOR fault flips every byte of the page through dst (the
 * mapping that is not registered), maps it with CONTINUE, and checks that a
 * second CONTINUE fails with EEXIST. A MISSING fault must come from a read
 * (the selftest's first touch of a page is a load) and is resolved with
 * COPY from src.
 */
export async function handleFault(monitor: Monitor, msg: PagefaultMsg): Promise<void> {
  const page = msg.address - (msg.address % PAGE);
  const uffd = monitor.uffd;
  if ((msg.flags & UFFD_PAGEFAULT_FLAG_WP) !== 0) {
    expect(uffd.writeprotect({ start: page, len: PAGE, mode: 0 }), "WRITEPROTECT un-protect").toEqual({ errno: 0 });
    monitor.counts.wp++;
    return;
  }
  if ((msg.flags & UFFD_PAGEFAULT_FLAG_MINOR) !== 0) {
    const { process, dstAlias, dst } = monitor.areas;
    const backing = dst + (page - dstAlias!);
    const bytes = await process.read(backing, PAGE);
    await process.write(backing, bytes.map((byte) => ~byte & 0xff));
    const mode = monitor.applyWp ? UFFDIO_CONTINUE_MODE_WP : 0;
    expect(uffd.continue({ start: page, len: PAGE, mode }), "CONTINUE").toEqual({ errno: 0, mapped: PAGE });
    expect(uffd.continue({ start: page, len: PAGE, mode, mapped: 0 }), "second CONTINUE").toEqual({ errno: EEXIST, mapped: -EEXIST });
    monitor.counts.minor++;
    return;
  }
  expect(msg.flags & UFFD_PAGEFAULT_FLAG_WRITE, `WRITE flag of the MISSING fault at 0x${page.toString(16)}`).toBe(0);
  if (monitor.copyPage((page - monitor.dst) / PAGE)) monitor.counts.missing++;
}

/** Returns what `promise` rejects with, or fails the test when it fulfils. */
export async function rejection(promise: Promise<unknown>): Promise<unknown> {
  try {
    await settledNow(promise);
  } catch (reason: unknown) {
    return reason;
  }
  throw new Error("expected the access to end in a signal, but it completed");
}

/** Returns the signal number of a SignalError. Rethrows any other reason. */
export function signalOf(reason: unknown): number {
  if (reason instanceof SignalError) return reason.signo;
  throw reason;
}

/** Scenario of a case on one memory type. */
export type Scenario = (entry: ConformanceCase, type: MemoryType) => Promise<void>;

/** Check of the kernel's rejection of a case on a memory type the selftest leaves out. */
export type RejectionCheck = (entry: ConformanceCase, type: MemoryType, rejection: Rejection) => Promise<void>;

/**
 * Generates one test per memory type for each case in `scenarios`, named
 * "case / type": the scenario where the case runs, `expectRejection` where the
 * kernel rejects the memory type, and a skipped test, with its reason,
 * elsewhere.
 */
export function generateTests(scenarios: Record<string, Scenario>, expectRejection: RejectionCheck): void {
  const missing = CASES.filter((entry) => !(entry.name in scenarios)).map((entry) => entry.name);
  if (missing.length > 0) throw new Error(`conformance table: no scenario for ${missing.join(", ")}`);
  for (const [name, scenario] of Object.entries(scenarios)) {
    const entry = caseNamed(name);
    for (const type of MEMORY_TYPES) {
      const plan = planFor(entry, type);
      const title = `${name} / ${type}`;
      if (plan.kind === "skip") it.skip(`${title} (${plan.reason})`, () => {});
      else if (plan.kind === "reject") it(title, () => expectRejection(entry, type, plan.rejection));
      else it(title, () => scenario(entry, type));
    }
  }
}

