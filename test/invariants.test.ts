// The invariant checker passes on states the model reaches: fills, fork
// with copy-on-write, mremap, madvise, shmem, exits, closes and reset. It
// reports each kind of corruption, provoked by writing into the wasm core's
// linear memory or into the model's queues.

import { describe, expect, it } from "vitest";
import {
  EAGAIN, MADV_DONTNEED, MADV_REMOVE, MAP_ANONYMOUS, MAP_FIXED, MAP_PRIVATE, MAP_SHARED, MREMAP_MAYMOVE, UFFD_API, UFFD_EVENT_FORK,
  UFFD_EVENT_UNMAP, UFFD_FEATURE_EVENT_FORK, UFFD_FEATURE_EVENT_UNMAP, UFFD_FEATURE_MINOR_SHMEM, UFFD_FEATURE_WP_UNPOPULATED,
  UFFDIO_REGISTER_MODE_MINOR, UFFDIO_REGISTER_MODE_MISSING, UFFDIO_REGISTER_MODE_WP, UFFDIO_WRITEPROTECT_MODE_WP,
  checkInvariants, InvariantViolation, KernelFailedError, type Kernel, type Process, type Userfaultfd,
} from "../src/index.js";
import { createKernel, drain, pageOf, watch } from "./helpers.js";
import { FRAME_FREE, PTE_FRAME_MASK, PTE_PRESENT, PTE_WRITE, RawPool, findingsFor, findingsOf } from "./invariant-helpers.js";
import { exemptFromInvariantCheck } from "./invariant-setup.js";

const PAGE = 4096;
const REGION = 0x1000_0000;
const FIXED = MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED;
const at = (page: number) => REGION + page * PAGE;

/** Creates a target with REGION mapped and registered on a uffd that a monitor holds, and the monitor's source pages. */
async function uffdSetup(kernel: Kernel, features = 0, mode = UFFDIO_REGISTER_MODE_MISSING) {
  const target = kernel.createProcess();
  const monitor = kernel.createProcess();
  expect(target.mmap(8 * PAGE, { flags: FIXED, address: REGION })).toBe(REGION);
  const own = target.userfaultfd();
  expect(own.api({ api: UFFD_API, features }).errno).toBe(0);
  const uffd = own.dupInto(monitor);
  own.close();
  expect(uffd.register({ start: REGION, len: 8 * PAGE, mode }).errno).toBe(0);
  const src = monitor.mmap(4 * PAGE);
  for (let i = 0; i < 4; i++) await monitor.write(src + i * PAGE, pageOf(0x41 + i));
  return { target, monitor, uffd, src };
}

/** Creates a process with three written private pages at REGION, for the corruption tests. */
async function writtenPages(kernel: Kernel): Promise<Process> {
  const process = kernel.createProcess();
  expect(process.mmap(4 * PAGE, { flags: FIXED, address: REGION })).toBe(REGION);
  for (let i = 0; i < 3; i++) await process.write(at(i), pageOf(i + 1));
  return process;
}

/** Creates a small kernel whose state the test corrupts, left out of the after-test check. */
async function corruptible(): Promise<Kernel> {
  const kernel = await createKernel({ maxMemory: 4 << 20 });
  exemptFromInvariantCheck(kernel, "the test corrupts its state on purpose");
  return kernel;
}

describe("checkInvariants on reachable states", () => {
  it("passes on a new kernel", async () => {
    const kernel = await createKernel({ maxMemory: 4 << 20 });
    expect(kernel.framesUsed).toBe(1);
    expect(findingsOf(kernel)).toEqual([]);
  });

  it("passes after COPY, ZEROPAGE and faults", async () => {
    const kernel = await createKernel({ maxMemory: 8 << 20 });
    const { target, uffd, src } = await uffdSetup(kernel);
    expect(uffd.copy({ dst: at(0), src, len: 2 * PAGE, mode: 0 }).errno).toBe(0);
    expect(uffd.zeropage({ start: at(2), len: 2 * PAGE, mode: 0 }).errno).toBe(0);
    const reading = watch(target.read(at(4), 1));
    await drain();
    expect(findingsOf(kernel), "with a fault pending").toEqual([]);
    expect(uffd.read()).toMatchObject({ errno: 0, address: at(4) });
    expect(findingsOf(kernel), "with a fault read").toEqual([]);
    expect(uffd.copy({ dst: at(4), src: src + PAGE, len: PAGE, mode: 0 }).errno).toBe(0);
    expect(Array.from(await reading.promise)).toEqual([0x42]);
    expect(findingsOf(kernel)).toEqual([]);
  });

  it("passes after fork with copy-on-write", async () => {
    const kernel = await createKernel({ maxMemory: 8 << 20 });
    const parent = kernel.createProcess();
    expect(parent.mmap(4 * PAGE, { flags: FIXED, address: REGION })).toBe(REGION);
    for (let i = 0; i < 4; i++) await parent.write(at(i), pageOf(i + 1));
    expect(Array.from(await parent.read(at(3) + PAGE - 1, 1))).toEqual([4]);
    const child = await parent.fork();
    expect(findingsOf(kernel), "pages shared after fork").toEqual([]);
    await child.write(at(0), pageOf(9));
    await parent.write(at(1), pageOf(8));
    const grandchild = await child.fork();
    await grandchild.write(at(2), pageOf(7));
    expect(findingsOf(kernel), "after copy-on-write breaks").toEqual([]);
    expect(Array.from(await parent.read(at(0), 1))).toEqual([1]);
    expect(Array.from(await child.read(at(0), 1))).toEqual([9]);
    child.exit();
    expect(findingsOf(kernel), "after the middle process exits").toEqual([]);
  });

  it("passes after mremap, madvise and munmap", async () => {
    const kernel = await createKernel({ maxMemory: 8 << 20 });
    const process = kernel.createProcess();
    expect(process.mmap(8 * PAGE, { flags: FIXED, address: REGION })).toBe(REGION);
    for (let i = 0; i < 8; i++) await process.write(at(i), pageOf(i + 1));
    const moved = await process.mremap(at(0), 4 * PAGE, 6 * PAGE, MREMAP_MAYMOVE);
    expect(moved).toBeGreaterThan(0);
    expect(findingsOf(kernel), "after mremap").toEqual([]);
    expect(await process.madvise(at(4), 2 * PAGE, MADV_DONTNEED)).toBe(0);
    expect(await process.munmap(at(7), PAGE)).toBe(0);
    expect(await process.munmap(moved, 6 * PAGE)).toBe(0);
    expect(findingsOf(kernel)).toEqual([]);
  });

  it("passes with memfd and shared anonymous mappings", async () => {
    const kernel = await createKernel({ maxMemory: 8 << 20 });
    const file = kernel.memfdCreate("data", 4 * PAGE);
    file.write(0, pageOf(5, 2 * PAGE));
    const a = kernel.createProcess();
    const b = kernel.createProcess();
    const shared = a.mmap(4 * PAGE, { file });
    const privateMap = b.mmap(4 * PAGE, { file, flags: MAP_PRIVATE });
    await a.write(shared + 2 * PAGE, pageOf(6));
    expect(Array.from(await b.read(privateMap, 1))).toEqual([5]);
    await b.write(privateMap + PAGE, pageOf(7));
    const anonymousShared = a.mmap(2 * PAGE, { flags: MAP_SHARED | MAP_ANONYMOUS });
    await a.write(anonymousShared, pageOf(8));
    const child = await a.fork();
    expect(Array.from(await child.read(anonymousShared, 1))).toEqual([8]);
    expect(findingsOf(kernel), "with pages shared through page caches").toEqual([]);
    file.hwpoison(3 * PAGE - 1);
    expect(await a.madvise(shared, PAGE, MADV_REMOVE)).toBe(0);
    expect(findingsOf(kernel), "after a hole punch and a memory error").toEqual([]);
  });

  it("passes with MINOR faults, uffd-wp markers and poison", async () => {
    const kernel = await createKernel({ maxMemory: 8 << 20 });
    const file = kernel.memfdCreate("minor", 8 * PAGE);
    file.write(0, pageOf(3, 8 * PAGE));
    const process = kernel.createProcess();
    const area = process.mmap(8 * PAGE, { file });
    const uffd = process.userfaultfd();
    expect(uffd.api({ api: UFFD_API, features: UFFD_FEATURE_MINOR_SHMEM }).errno).toBe(0);
    expect(uffd.register({ start: area, len: 8 * PAGE, mode: UFFDIO_REGISTER_MODE_MINOR }).errno).toBe(0);
    expect(uffd.continue({ start: area, len: 4 * PAGE, mode: 0 }).errno).toBe(0);

    const { uffd: wpUffd } = await uffdSetup(kernel, UFFD_FEATURE_WP_UNPOPULATED, UFFDIO_REGISTER_MODE_MISSING | UFFDIO_REGISTER_MODE_WP);
    expect(wpUffd.writeprotect({ start: at(0), len: 4 * PAGE, mode: UFFDIO_WRITEPROTECT_MODE_WP }).errno).toBe(0);
    expect(wpUffd.poison({ start: at(4), len: 2 * PAGE, mode: 0 }).errno).toBe(0);
    expect(findingsOf(kernel)).toEqual([]);
  });

  it("passes while a FORK event is unread", async () => {
    const kernel = await createKernel({ maxMemory: 8 << 20 });
    const { target, uffd, src } = await uffdSetup(kernel, UFFD_FEATURE_EVENT_FORK);
    expect(uffd.copy({ dst: at(0), src, len: PAGE, mode: 0 }).errno).toBe(0);
    const forking = watch(target.fork());
    expect(findingsOf(kernel), "with the FORK event queued").toEqual([]);
    expect(uffd.read()).toMatchObject({ errno: 0, event: UFFD_EVENT_FORK });
    const child = await forking.promise;
    expect(findingsOf(kernel), "after fork returned").toEqual([]);
    child.exit();
    expect(findingsOf(kernel)).toEqual([]);
  });

  it("unlinks a FORK event at the parent's exit", async () => {
    const kernel = await createKernel({ maxMemory: 8 << 20 });
    const { target, monitor, uffd, src } = await uffdSetup(kernel, UFFD_FEATURE_EVENT_FORK);
    expect(uffd.copy({ dst: at(0), src, len: PAGE, mode: 0 }).errno).toBe(0);
    const forking = watch(target.fork());
    await drain();
    expect(uffd.ctx.eventQueue.length).toBe(1);
    expect(kernel.contexts.size).toBe(2);
    target.exit();
    await drain();
    expect(forking.state).toBe("rejected");
    expect(String(forking.reason)).toBe("Error: fork: process 1 exited while its FORK event was unread, so the child is gone");
    expect([...kernel.processes.values()]).toEqual([monitor]);
    expect(uffd.read()).toEqual({ errno: EAGAIN });
    expect(uffd.ctx.mmapChanging).toBe(0);
    expect([...kernel.contexts]).toEqual([uffd.ctx]);
    expect(findingsOf(kernel)).toEqual([]);
  });

  it("unlinks an UNMAP event at the producer's exit", async () => {
    const kernel = await createKernel({ maxMemory: 8 << 20 });
    const { target, uffd } = await uffdSetup(kernel, UFFD_FEATURE_EVENT_UNMAP);
    const unmapping = watch(target.munmap(at(0), PAGE));
    await drain();
    expect(uffd.ctx.eventQueue.length).toBe(1);
    target.exit();
    await drain();
    expect(unmapping.state).toBe("fulfilled");
    expect(uffd.read()).toEqual({ errno: EAGAIN });
    expect(uffd.ctx.mmapChanging).toBe(0);
    expect(findingsOf(kernel)).toEqual([]);
  });

  it("drops a failed fork's child context at release", async () => {
    // Linux 6.8 still sends FORK for a failed fork. 64 frames: the filler
    // leaves four free, one too few for the child's page tables.
    const kernel = await createKernel({ kernel: "6.8", maxMemory: 64 * PAGE });
    const { target, uffd, src } = await uffdSetup(kernel, UFFD_FEATURE_EVENT_FORK);
    expect(uffd.copy({ dst: at(0), src, len: PAGE, mode: 0 }).errno).toBe(0);
    const filler = 0x2000_0000;
    expect(target.mmap(64 * PAGE, { flags: FIXED, address: filler })).toBe(filler);
    for (let page = 0; kernel.framesCapacity - kernel.framesUsed > 4; page++) await target.write(filler + page * PAGE, pageOf(1));
    const forking = watch(target.fork());
    await drain();
    expect(uffd.ctx.eventQueue.map((event) => event.event)).toEqual([UFFD_EVENT_FORK]);
    uffd.close();
    await drain();
    expect(forking.state).toBe("rejected");
    expect(kernel.contexts.size).toBe(0);
    expect(findingsOf(kernel)).toEqual([]);
  });

  it("leaves only the zero frame once all is gone", async () => {
    const kernel = await createKernel({ maxMemory: 8 << 20 });
    const { target, monitor, uffd, src } = await uffdSetup(kernel, UFFD_FEATURE_EVENT_FORK);
    expect(uffd.copy({ dst: at(0), src, len: 4 * PAGE, mode: 0 }).errno).toBe(0);
    const file = kernel.memfdCreate("gone", 2 * PAGE);
    file.write(0, pageOf(1));
    monitor.mmap(2 * PAGE, { file });
    file.close();
    target.exit();
    uffd.close();
    monitor.exit();
    expect(kernel.processes.size).toBe(0);
    expect(kernel.files.size).toBe(0);
    expect(kernel.contexts.size).toBe(0);
    expect(kernel.framesUsed).toBe(1);
    expect(findingsOf(kernel)).toEqual([]);
  });

  it("passes after Kernel.reset", async () => {
    const kernel = await createKernel({ maxMemory: 8 << 20 });
    const { target } = await uffdSetup(kernel);
    void target.read(at(0), 1).catch(() => undefined);
    await drain();
    kernel.reset();
    expect(kernel.framesUsed).toBe(1);
    expect(findingsOf(kernel)).toEqual([]);
  });

  it("skips benchmark buffers", async () => {
    const kernel = await createKernel({ maxMemory: 4 << 20 });
    expect(kernel.core.exports.frames_alloc_contiguous(4) >>> 0).not.toBe(0);
    expect(kernel.framesUsed).toBe(5);
    expect(findingsOf(kernel)).toEqual([]);
  });
});

describe("checkInvariants on corrupted frames", () => {
  it("reports a bumped refcount", async () => {
    const kernel = await corruptible();
    const process = await writtenPages(kernel);
    const pool = new RawPool(kernel);
    const frame = (pool.entry(pool.entrySlot(process.mm.pgd, at(1), 3)) & PTE_FRAME_MASK) >>> 0;
    expect(pool.refcount(frame)).toBe(1);
    pool.setRefcount(frame, 2);
    const hex = frame.toString(16);
    expect(findingsFor(kernel, "refcount")).toEqual([
      {
        rule: "refcount",
        frame,
        message: `frame 0x${hex} (PAGE): refcount 2, but the page tables and page caches hold 1 reference; held by pid 1 PTE for 0x10001000`,
      },
    ]);
    expect(findingsFor(kernel, "exclusive")).toEqual([
      { rule: "exclusive", frame, message: `pid 1 PTE for 0x10001000: maps frame 0x${hex} (PAGE) as exclusive, but its refcount is 2` },
    ]);
  });

  it("reports a frame freed while still mapped", async () => {
    const kernel = await corruptible();
    const process = await writtenPages(kernel);
    const pool = new RawPool(kernel);
    const slot = pool.entrySlot(process.mm.pgd, at(0), 3);
    const frame = (pool.entry(slot) & PTE_FRAME_MASK) >>> 0;
    // A second mapping without a reference, as a missing get_page would leave it.
    const copySlot = pool.entrySlot(process.mm.pgd, at(3), 3);
    expect(pool.entry(copySlot)).toBe(0);
    pool.setEntry(copySlot, pool.entry(slot) & ~PTE_WRITE);
    expect(await process.munmap(at(0), PAGE)).toBe(0);
    expect(findingsFor(kernel, "free-mapped")).toEqual([
      { rule: "free-mapped", frame, message: `pid 1 PTE for 0x10003000: points at frame 0x${frame.toString(16)} (FREE), which is free` },
    ]);
  });

  it("reports a frame marked free outside the free ring", async () => {
    const kernel = await corruptible();
    const process = await writtenPages(kernel);
    const pool = new RawPool(kernel);
    const frame = (pool.entry(pool.entrySlot(process.mm.pgd, at(2), 3)) & PTE_FRAME_MASK) >>> 0;
    pool.setKind(frame, FRAME_FREE);
    const rules = findingsOf(kernel).map((finding) => finding.rule);
    expect(rules).toContain("free-mapped");
    expect(rules).toContain("free-refcount");
    expect(findingsFor(kernel, "free-ring")).toEqual([
      { rule: "free-ring", frame, message: `frame 0x${frame.toString(16)} (FREE): listed 0 times in the free ring instead of once` },
    ]);
    expect(findingsFor(kernel, "frames-used").length).toBeGreaterThan(0);
  });

  it("reports a free ring that lists a frame in use", async () => {
    const kernel = await corruptible();
    const process = await writtenPages(kernel);
    expect(await process.munmap(at(0), PAGE)).toBe(0);
    const pool = new RawPool(kernel);
    const slot = pool.freeHead;
    const freed = pool.freeRingSlot(slot);
    const inUse = (pool.entry(pool.entrySlot(process.mm.pgd, at(1), 3)) & PTE_FRAME_MASK) >>> 0;
    pool.freeRingSlot(slot, (inUse - pool.frameBase) / PAGE);
    expect(findingsFor(kernel, "free-ring")).toEqual([
      { rule: "free-ring", frame: pool.frameBase + freed * PAGE, message: `frame 0x${(pool.frameBase + freed * PAGE).toString(16)} (FREE): listed 0 times in the free ring instead of once` },
      { rule: "free-ring", frame: inUse, message: `frame 0x${inUse.toString(16)} (PAGE): in use, but listed in the free ring` },
    ]);
  });

  it("reports unknown PTE bits", async () => {
    const kernel = await corruptible();
    const process = await writtenPages(kernel);
    const pool = new RawPool(kernel);
    const slot = pool.entrySlot(process.mm.pgd, at(1), 3);
    const entry = pool.entry(slot);
    pool.setEntry(slot, entry | 0x8);
    expect(findingsOf(kernel)).toEqual([
      { rule: "entry-bits", message: `pid 1 PTE for 0x10001000: holds 0x${((entry | 0x8) >>> 0).toString(16)}, with unknown bits 0x8` },
    ]);
  });

  it("reports bits above the frame address", async () => {
    const kernel = await corruptible();
    const process = await writtenPages(kernel);
    const pool = new RawPool(kernel);
    const slot = pool.entrySlot(process.mm.pgd, at(0), 3);
    const entry = pool.entry(slot);
    pool.setEntry(slot, entry, 1);
    expect(findingsFor(kernel, "entry-bits")).toEqual([
      { rule: "entry-bits", message: `pid 1 PTE for 0x10000000: holds 0x${(2 ** 32 + entry).toString(16)}, with bits above 32 set` },
    ]);
  });

  it("reports a malformed marker", async () => {
    const kernel = await corruptible();
    const process = await writtenPages(kernel);
    const pool = new RawPool(kernel);
    pool.setEntry(pool.entrySlot(process.mm.pgd, at(3), 3), 0xc00);
    expect(findingsOf(kernel)).toEqual([
      {
        rule: "entry-bits",
        message: "pid 1 PTE for 0x10003000: holds 0xc00; a non-present PTE is none, a uffd-wp marker (0x400) or a poison marker (0x800)",
      },
    ]);
  });

  it("reports a writable zero-frame mapping", async () => {
    const kernel = await corruptible();
    const process = kernel.createProcess();
    expect(process.mmap(PAGE, { flags: FIXED, address: REGION })).toBe(REGION);
    expect(Array.from(await process.read(REGION, 1))).toEqual([0]);
    const pool = new RawPool(kernel);
    const slot = pool.entrySlot(process.mm.pgd, REGION, 3);
    const zero = kernel.core.exports.zero_frame() >>> 0;
    expect((pool.entry(slot) & PTE_FRAME_MASK) >>> 0).toBe(zero);
    pool.setEntry(slot, pool.entry(slot) | PTE_WRITE);
    expect(findingsOf(kernel)).toEqual([
      { rule: "entry-bits", frame: zero, message: `pid 1 PTE for 0x10000000: maps the zero frame writable or exclusive (entry 0x${(zero | 0x203).toString(16)})` },
    ]);
  });

  it("reports a table entry pointing at a page", async () => {
    const kernel = await corruptible();
    const process = await writtenPages(kernel);
    const pool = new RawPool(kernel);
    const page = (pool.entry(pool.entrySlot(process.mm.pgd, at(0), 3)) & PTE_FRAME_MASK) >>> 0;
    const pmdSlot = pool.entrySlot(process.mm.pgd, at(0), 2);
    const pteTable = (pool.entry(pmdSlot) & PTE_FRAME_MASK) >>> 0;
    pool.setEntry(pmdSlot, page | PTE_PRESENT);
    expect(findingsFor(kernel, "entry-target")).toEqual([
      { rule: "entry-target", frame: page, message: `pid 1 PMD entry for 0x10000000: points at frame 0x${page.toString(16)} (PAGE); expected a TABLE frame` },
    ]);
    expect(findingsFor(kernel, "table-parents")).toEqual([
      { rule: "table-parents", frame: pteTable, message: `frame 0x${pteTable.toString(16)} (TABLE): referenced by 0 parent entries instead of 1; no holder` },
    ]);
  });

  it("reports a leaked root", async () => {
    const kernel = await corruptible();
    const root = kernel.core.exports.pgd_alloc() >>> 0;
    expect(root).not.toBe(0);
    expect(findingsOf(kernel)).toEqual([
      { rule: "root-owner", frame: root, message: `frame 0x${root.toString(16)} (ROOT): owned by 0 live processes and files instead of 1; no holder` },
      { rule: "leak", message: "no process and no file is left, but 2 frames are in use instead of 1 (the zero frame plus benchmark buffers)" },
    ]);
  });

  it("reports a root shared by two processes", async () => {
    const kernel = await corruptible();
    const a = kernel.createProcess();
    const b = kernel.createProcess();
    const own = b.mm.pgd;
    b.mm.pgd = a.mm.pgd;
    const hex = (value: number) => value.toString(16);
    expect(findingsFor(kernel, "root-owner")).toEqual([
      { rule: "root-owner", frame: a.mm.pgd, message: `frame 0x${hex(a.mm.pgd)} (ROOT): owned by 2 live processes and files instead of 1; held by pid 1, pid 2` },
      { rule: "root-owner", frame: own, message: `frame 0x${hex(own)} (ROOT): owned by 0 live processes and files instead of 1; no holder` },
    ]);
  });

  it("reports a pgd that is a page", async () => {
    const kernel = await corruptible();
    const process = await writtenPages(kernel);
    const pool = new RawPool(kernel);
    const page = (pool.entry(pool.entrySlot(process.mm.pgd, at(0), 3)) & PTE_FRAME_MASK) >>> 0;
    const own = process.mm.pgd;
    process.mm.pgd = page;
    expect(findingsFor(kernel, "root-owner")).toEqual([
      { rule: "root-owner", frame: page, message: `pid 1 page-table root (pgd) 0x${page.toString(16)}: is a PAGE frame, not a ROOT frame` },
      { rule: "root-owner", frame: own, message: `frame 0x${own.toString(16)} (ROOT): owned by 0 live processes and files instead of 1; no holder` },
    ]);
  });

  it("reports a page-cache entry with PTE bits", async () => {
    const kernel = await corruptible();
    const file = kernel.memfdCreate("cache", PAGE);
    file.write(0, pageOf(1));
    const pool = new RawPool(kernel);
    const slot = pool.entrySlot(file.cache, 0, 3);
    const entry = pool.entry(slot);
    pool.setEntry(slot, entry | PTE_WRITE);
    expect(findingsOf(kernel)).toEqual([
      {
        rule: "entry-bits",
        message: `file "cache" page-cache entry for offset 0x0: holds 0x${(entry | PTE_WRITE).toString(16)}; a page-cache entry is a frame address | PRESENT, plus POISON after a memory error`,
      },
    ]);
  });
});

describe("checkInvariants on corrupted queues", () => {
  /** Returns a target blocked on a MISSING fault at at(0), with the monitor's uffd. */
  async function blockedFault(kernel: Kernel): Promise<{ target: Process; uffd: Userfaultfd }> {
    const { target, uffd } = await uffdSetup(kernel);
    void target.read(at(0), 1).catch(() => undefined);
    await drain();
    expect(uffd.ctx.faultPending.length).toBe(1);
    return { target, uffd };
  }

  it("reports a woken waiter still queued", async () => {
    const kernel = await corruptible();
    const { uffd } = await blockedFault(kernel);
    const waiter = uffd.ctx.faultPending[0]!;
    waiter.woken = true;
    expect(findingsOf(kernel)).toEqual([
      {
        rule: "fault-queue",
        message: "fault at 0x10000000 in the pending queue of the userfaultfd context of pid 1 (open as pid 2 fd 3): already woken, but still queued",
      },
    ]);
  });

  it("reports a waiter of an exited process", async () => {
    const kernel = await corruptible();
    const { target, uffd } = await blockedFault(kernel);
    // Unlisted, the context is out of exit's reach, so the waiter outlives its process.
    kernel.contexts.delete(uffd.ctx);
    target.exit();
    const name = "userfaultfd context of an exited address space (open as pid 2 fd 3)";
    expect(findingsOf(kernel)).toEqual([
      { rule: "context", message: `${name}: used by pid 2 fd 3, but missing from kernel.contexts, so exit cannot wake its faults` },
      { rule: "fault-queue", message: `fault at 0x10000000 in the pending queue of the ${name}: its process has exited, and exit wakes its faults` },
    ]);
  });

  it("reports an event whose producer exited", async () => {
    const kernel = await corruptible();
    const { target, uffd } = await uffdSetup(kernel, UFFD_FEATURE_EVENT_UNMAP);
    const unmapping = watch(target.munmap(at(0), PAGE));
    await drain();
    expect(uffd.ctx.eventQueue.map((event) => event.event)).toEqual([UFFD_EVENT_UNMAP]);
    kernel.contexts.delete(uffd.ctx);
    target.exit();
    expect(unmapping.state).toBe("pending");
    const name = "userfaultfd context of an exited address space (open as pid 2 fd 3)";
    expect(findingsFor(kernel, "event-queue")).toEqual([
      { rule: "event-queue", message: `UNMAP event queued on the ${name}: its producer has exited, and an exiting producer unlinks its event` },
    ]);
  });

  it("reports a wrong descriptor count", async () => {
    const kernel = await corruptible();
    const { uffd } = await uffdSetup(kernel);
    uffd.ctx.files++;
    expect(findingsOf(kernel)).toEqual([
      { rule: "context", message: "userfaultfd context of pid 1 (open as pid 2 fd 3): counts 2 open descriptors, but live processes hold 1" },
    ]);
  });

  it("reports a leaked context", async () => {
    const kernel = await corruptible();
    const { uffd } = await uffdSetup(kernel);
    const ctx = uffd.ctx;
    uffd.close();
    kernel.contexts.add(ctx);
    expect(findingsOf(kernel)).toEqual([
      { rule: "context", message: "userfaultfd context of pid 1 (no open descriptor): released, yet still listed, registered or open" },
      { rule: "context", message: "userfaultfd context of pid 1 (no open descriptor): listed, but no descriptor, VMA or queued FORK event reaches it: a leaked context" },
    ]);
  });
});

describe("checkInvariants on a failed kernel", () => {
  it("throws KernelFailedError", async () => {
    const kernel = await corruptible();
    const process = await writtenPages(kernel);
    const pool = new RawPool(kernel);
    // A PTE naming a frame past the end of linear memory makes the next access trap.
    pool.setEntry(pool.entrySlot(process.mm.pgd, at(0), 3), 0xffff_f000 | PTE_PRESENT);
    await expect(process.read(at(0), 1)).rejects.toThrow();
    expect(kernel.core.failure).not.toBeNull();
    expect(() => checkInvariants(kernel)).toThrow(KernelFailedError);
  });
});

describe("InvariantViolation", () => {
  it("lists every finding in its message", () => {
    const violation = new InvariantViolation([
      { rule: "leak", message: "first" },
      { rule: "refcount", message: "second", frame: 0x1000 },
    ]);
    expect(violation.name).toBe("InvariantViolation");
    expect(violation.message).toBe("2 invariant violations in the kernel model:\n- [leak] first\n- [refcount] second");
    expect(violation.findings.length).toBe(2);
  });
});
