// Running out of memory in the middle of an operation. Every scenario runs
// twice: once where the frame cap (maxMemory) runs out, and once where the
// cap is far away but linear memory cannot grow any more, through the core's
// test hook that makes memory.grow fail. Both must give the same results.
//
// Each scenario writes filler pages until a write fails with ENOMEM. Then
// MADV_DONTNEED on N filler pages, each with a frame of its own, frees
// exactly N frames, so the operation under test runs out at a known page.
// Each checks the errno and out-field, that the work done before the
// failure is intact, that freeing memory lets the same call succeed, and
// that every frame comes back once the processes exit and the files close.

import { describe, expect, it } from "vitest";
import {
  EAGAIN, EFAULT, ENOMEM, Kernel, KernelError, MADV_DONTNEED, MAP_ANONYMOUS, MAP_FIXED, MAP_PRIVATE, MAP_SHARED,
  MAX_FRAMES, MAX_MEMORY, MREMAP_MAYMOVE, PROT_READ,
  UFFD_API, UFFDIO_REGISTER_MODE_MINOR, UFFDIO_REGISTER_MODE_MISSING,
  type Process, type Userfaultfd,
} from "../src/index.js";
import { PTE_PRESENT, PTE_ZERO } from "../src/wasm/core.js";
import { createKernel, pageOf, settledNow } from "./helpers.js";

const PAGE = 4096;
const ANON_FIXED = MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED;
const SHARED_FIXED = MAP_SHARED | MAP_FIXED;

/** Start of a 2 MiB page-table window, where the window below ends. */
const BOUNDARY = 0x1020_0000;
/** 16 pages, 8 on each side of BOUNDARY, so a range across it needs a second PTE table. */
const REGION = BOUNDARY - 8 * PAGE;
/** Source pages for COPY and MOVE, in their own window. */
const SRC = 0x2000_0000;
/** A shared memfd mapping. */
const SHMEM = 0x3000_0000;
/** The filler that uses up memory, 1 GiB-aligned so that its tables are its own. */
const FILLER = 0x4000_0000;
const FILLER_PAGES = 4096;
/** An address in a 512 GiB slot of its own, whose first touch needs three new tables. */
const FAR = 0x1000_0000_0000;

interface LimitMode {
  readonly name: string;
  readonly maxMemory: number;
  /** Stop linear memory growing this many 64 KiB pages above its size at creation. */
  readonly growthPages: number | null;
}

const MODES: readonly LimitMode[] = [
  { name: "the frame cap", maxMemory: 512 * PAGE, growthPages: null },
  { name: "failed memory growth", maxMemory: 64 << 20, growthPages: 32 },
];

/** Creates a kernel with the limit of `mode`. */
async function limitedKernel(mode: LimitMode): Promise<Kernel> {
  const kernel = await createKernel({ maxMemory: mode.maxMemory });
  if (mode.growthPages !== null) {
    const wasmPages = kernel.core.exports.memory.buffer.byteLength / 65536;
    kernel.core.exports.limit_memory_growth_for_testing(wasmPages + mode.growthPages);
  }
  return kernel;
}

/** Uses up a kernel's memory through one process's filler mapping and hands frames back on request. */
class Pressure {
  private written = 0;
  private released = 0;

  private constructor(readonly process: Process, readonly mode: LimitMode) {}

  static map(process: Process, mode: LimitMode): Pressure {
    expect(process.mmap(FILLER_PAGES * PAGE, { flags: ANON_FIXED, address: FILLER })).toBe(FILLER);
    return new Pressure(process, mode);
  }

  /** Writes filler pages until a write fails with ENOMEM, which leaves no frame free. */
  async exhaust(): Promise<void> {
    const kernel = this.process.kernel;
    for (; this.written < FILLER_PAGES; this.written++) {
      const at = FILLER + this.written * PAGE;
      const error = await settledNow(this.process.write(at, Uint8Array.of(1))).then(() => null, (reason: unknown) => reason);
      if (error === null) continue;
      expect(error).toBeInstanceOf(KernelError);
      expect(error).toMatchObject({ errno: ENOMEM });
      // The frame cap ends it, or else linear memory that cannot grow, long before the cap.
      if (this.mode.growthPages === null) expect(kernel.framesUsed).toBe(kernel.framesCapacity);
      else expect(kernel.framesUsed).toBeLessThan(kernel.framesCapacity / 4);
      return;
    }
    throw new Error(`memory did not run out after ${FILLER_PAGES} filler pages`);
  }

  /** Frees exactly `frames` frames: the private pages of that many filler pages. */
  async release(frames: number): Promise<void> {
    if (this.released + frames > this.written) throw new Error(`only ${this.written - this.released} filler pages are left to free`);
    const start = FILLER + this.released * PAGE;
    const used = this.process.kernel.framesUsed;
    expect(await settledNow(this.process.madvise(start, frames * PAGE, MADV_DONTNEED))).toBe(0);
    expect(this.process.kernel.framesUsed).toBe(used - frames);
    this.released += frames;
  }
}

/** Returns the rejection of `promise` once it settles, and fails the test when it fulfils. */
async function rejection(promise: Promise<unknown>): Promise<unknown> {
  return settledNow(promise).then(
    () => {
      throw new Error("expected the call to fail");
    },
    (reason: unknown) => reason,
  );
}

/** Expects `promise` to reject with KernelError(ENOMEM). */
async function expectOutOfMemory(promise: Promise<unknown>): Promise<void> {
  const error = await rejection(promise);
  expect(error).toBeInstanceOf(KernelError);
  expect(error).toMatchObject({ errno: ENOMEM });
}

/** Returns the page-table entry for `va` in `process`. */
function pteOf(process: Process, va: number): number {
  return process.kernel.core.exports.pte_read(process.mm.pgd, va) >>> 0;
}

/** Reads one page at `va`, which must be present (a missing page would block on the userfaultfd). */
async function pageAt(process: Process, va: number): Promise<Uint8Array> {
  return settledNow(process.read(va, PAGE));
}

/** Creates a process and a userfaultfd of its own, past UFFDIO_API. */
function monitored(kernel: Kernel): { process: Process; uffd: Userfaultfd } {
  const process = kernel.createProcess();
  const uffd = process.userfaultfd();
  expect(uffd.api({ api: UFFD_API, features: 0 }).errno).toBe(0);
  return { process, uffd };
}

function register(uffd: Userfaultfd, start: number, len: number, mode = UFFDIO_REGISTER_MODE_MISSING): void {
  expect(uffd.register({ start, len, mode }).errno).toBe(0);
}

/** Ends every process and closes every file, then expects only the zero frame in use. */
function expectAllFreed(kernel: Kernel, closing: Array<{ close(): void }> = []): void {
  for (const handle of closing) handle.close();
  for (const process of [...kernel.processes.values()]) process.exit();
  expect(kernel.files.size).toBe(0);
  expect(kernel.framesUsed).toBe(1);
}

describe.each(MODES)("out of memory through $name", (mode) => {
  it("UFFDIO_COPY stops at the page without a frame", async () => {
    const kernel = await limitedKernel(mode);
    const { process, uffd } = monitored(kernel);
    expect(process.mmap(16 * PAGE, { flags: ANON_FIXED, address: REGION })).toBe(REGION);
    expect(process.mmap(8 * PAGE, { flags: ANON_FIXED, address: SRC })).toBe(SRC);
    for (let page = 0; page < 8; page++) await settledNow(process.write(SRC + page * PAGE, pageOf(0x10 + page)));
    register(uffd, REGION, 16 * PAGE);
    // The last page of the lower window brings in its PTE table.
    expect(uffd.copy({ dst: BOUNDARY - PAGE, src: SRC, len: PAGE, mode: 0 })).toEqual({ errno: 0, copy: PAGE });
    const pressure = Pressure.map(process, mode);
    await pressure.exhaust();

    await pressure.release(3);
    expect(uffd.copy({ dst: REGION, src: SRC, len: 6 * PAGE, mode: 0 })).toEqual({ errno: EAGAIN, copy: 3 * PAGE });
    for (let page = 0; page < 3; page++) expect(await pageAt(process, REGION + page * PAGE)).toEqual(pageOf(0x10 + page));
    expect(pteOf(process, REGION + 3 * PAGE)).toBe(0);
    expect(kernel.stats.pagesCopied).toBe(1 + 3);

    const retry = { dst: REGION + 3 * PAGE, src: SRC + 3 * PAGE, len: 3 * PAGE, mode: 0 };
    expect(uffd.copy(retry)).toEqual({ errno: ENOMEM, copy: -ENOMEM });
    expect(pteOf(process, REGION + 3 * PAGE)).toBe(0);

    await pressure.release(3);
    expect(uffd.copy(retry)).toEqual({ errno: 0, copy: 3 * PAGE });
    for (let page = 0; page < 6; page++) expect(await pageAt(process, REGION + page * PAGE)).toEqual(pageOf(0x10 + page));
    expectAllFreed(kernel, [uffd]);
  });

  it("ZEROPAGE and POISON stop at the missing page table", async () => {
    const kernel = await limitedKernel(mode);
    const { process, uffd } = monitored(kernel);
    expect(process.mmap(16 * PAGE, { flags: ANON_FIXED, address: REGION })).toBe(REGION);
    register(uffd, REGION, 16 * PAGE);
    expect(uffd.zeropage({ start: REGION, len: PAGE, mode: 0 })).toEqual({ errno: 0, zeropage: PAGE });
    const pressure = Pressure.map(process, mode);
    await pressure.exhaust();

    // Two pages below BOUNDARY need no frame; the window above needs a PTE table.
    const across = { start: BOUNDARY - 2 * PAGE, len: 4 * PAGE, mode: 0 };
    expect(uffd.zeropage(across)).toEqual({ errno: EAGAIN, zeropage: 2 * PAGE });
    expect(pteOf(process, BOUNDARY - PAGE) & (PTE_PRESENT | PTE_ZERO)).toBe(PTE_PRESENT | PTE_ZERO);
    expect(await pageAt(process, BOUNDARY - PAGE)).toEqual(pageOf(0));
    const above = { start: BOUNDARY, len: 2 * PAGE, mode: 0 };
    expect(uffd.zeropage(above)).toEqual({ errno: ENOMEM, zeropage: -ENOMEM });
    expect(uffd.poison({ start: BOUNDARY - 4 * PAGE, len: 4 * PAGE, mode: 0 })).toEqual({ errno: EAGAIN, updated: 2 * PAGE });
    expect(uffd.poison({ start: BOUNDARY + 2 * PAGE, len: PAGE, mode: 0 })).toEqual({ errno: ENOMEM, updated: -ENOMEM });

    await pressure.release(1);
    expect(uffd.zeropage(above)).toEqual({ errno: 0, zeropage: 2 * PAGE });
    expect(await pageAt(process, BOUNDARY + PAGE)).toEqual(pageOf(0));
    expectAllFreed(kernel, [uffd]);
  });

  it("UFFDIO_MOVE stops at the missing page table", async () => {
    const kernel = await limitedKernel(mode);
    const { process, uffd } = monitored(kernel);
    expect(process.mmap(16 * PAGE, { flags: ANON_FIXED, address: REGION })).toBe(REGION);
    expect(process.mmap(4 * PAGE, { flags: ANON_FIXED, address: SRC })).toBe(SRC);
    for (let page = 0; page < 4; page++) await settledNow(process.write(SRC + page * PAGE, pageOf(0x20 + page)));
    register(uffd, REGION, 16 * PAGE);
    expect(uffd.zeropage({ start: REGION, len: PAGE, mode: 0 }).errno).toBe(0);
    const pressure = Pressure.map(process, mode);
    await pressure.exhaust();

    const across = { dst: BOUNDARY - 2 * PAGE, src: SRC, len: 4 * PAGE, mode: 0 };
    expect(uffd.move(across)).toEqual({ errno: EAGAIN, move: 2 * PAGE });
    expect(await pageAt(process, BOUNDARY - 2 * PAGE)).toEqual(pageOf(0x20));
    expect(await pageAt(process, BOUNDARY - PAGE)).toEqual(pageOf(0x21));
    expect(pteOf(process, SRC)).toBe(0);
    expect(pteOf(process, SRC + 2 * PAGE) & PTE_PRESENT).toBe(PTE_PRESENT);
    const rest = { dst: BOUNDARY, src: SRC + 2 * PAGE, len: 2 * PAGE, mode: 0 };
    expect(uffd.move(rest)).toEqual({ errno: ENOMEM, move: -ENOMEM });
    expect(await pageAt(process, SRC + 2 * PAGE)).toEqual(pageOf(0x22));

    await pressure.release(1);
    expect(uffd.move(rest)).toEqual({ errno: 0, move: 2 * PAGE });
    expect(await pageAt(process, BOUNDARY + PAGE)).toEqual(pageOf(0x23));
    expectAllFreed(kernel, [uffd]);
  });

  it("UFFDIO_CONTINUE stops at the missing page table", async () => {
    const kernel = await limitedKernel(mode);
    const { process, uffd } = monitored(kernel);
    const file = kernel.memfdCreate("continue", 16 * PAGE);
    for (let page = 0; page < 16; page++) expect(file.write(page * PAGE, pageOf(0x30 + page))).toBe(PAGE);
    expect(process.mmap(16 * PAGE, { file, flags: SHARED_FIXED, address: REGION })).toBe(REGION);
    register(uffd, REGION, 16 * PAGE, UFFDIO_REGISTER_MODE_MINOR);
    expect(uffd.continue({ start: REGION, len: PAGE, mode: 0 })).toEqual({ errno: 0, mapped: PAGE });
    const pressure = Pressure.map(process, mode);
    await pressure.exhaust();

    expect(uffd.continue({ start: BOUNDARY - 2 * PAGE, len: 4 * PAGE, mode: 0 })).toEqual({ errno: EAGAIN, mapped: 2 * PAGE });
    expect(await pageAt(process, BOUNDARY - PAGE)).toEqual(pageOf(0x30 + 7));
    const above = { start: BOUNDARY, len: 2 * PAGE, mode: 0 };
    expect(uffd.continue(above)).toEqual({ errno: ENOMEM, mapped: -ENOMEM });

    await pressure.release(1);
    expect(uffd.continue(above)).toEqual({ errno: 0, mapped: 2 * PAGE });
    expect(await pageAt(process, BOUNDARY + PAGE)).toEqual(pageOf(0x30 + 9));
    file.close();
    expectAllFreed(kernel, [uffd]);
  });

  it("shmem COPY and ZEROPAGE stop at the page cache page", async () => {
    const kernel = await limitedKernel(mode);
    const { process, uffd } = monitored(kernel);
    const file = kernel.memfdCreate("fill", 8 * PAGE);
    expect(process.mmap(8 * PAGE, { file, flags: SHARED_FIXED, address: SHMEM })).toBe(SHMEM);
    expect(process.mmap(4 * PAGE, { flags: ANON_FIXED, address: SRC })).toBe(SRC);
    for (let page = 0; page < 4; page++) await settledNow(process.write(SRC + page * PAGE, pageOf(0x40 + page)));
    register(uffd, SHMEM, 8 * PAGE);
    // Page 0 brings in the mapping's PTE table and the page cache's tables.
    expect(uffd.copy({ dst: SHMEM, src: SRC, len: PAGE, mode: 0 })).toEqual({ errno: 0, copy: PAGE });
    const pressure = Pressure.map(process, mode);
    await pressure.exhaust();

    await pressure.release(2);
    const copy = { dst: SHMEM + PAGE, src: SRC + PAGE, len: 3 * PAGE, mode: 0 };
    expect(uffd.copy(copy)).toEqual({ errno: EAGAIN, copy: 2 * PAGE });
    expect(file.read(PAGE, 3 * PAGE)).toEqual(new Uint8Array([...pageOf(0x41), ...pageOf(0x42), ...pageOf(0)]));
    expect(file.hasPage(3 * PAGE)).toBe(false);
    expect(await pageAt(process, SHMEM + 2 * PAGE)).toEqual(pageOf(0x42));
    const rest = { dst: SHMEM + 3 * PAGE, src: SRC + 3 * PAGE, len: PAGE, mode: 0 };
    expect(uffd.copy(rest)).toEqual({ errno: ENOMEM, copy: -ENOMEM });
    expect(uffd.zeropage({ start: SHMEM + 4 * PAGE, len: 2 * PAGE, mode: 0 })).toEqual({ errno: ENOMEM, zeropage: -ENOMEM });

    await pressure.release(2);
    expect(uffd.zeropage({ start: SHMEM + 4 * PAGE, len: 4 * PAGE, mode: 0 })).toEqual({ errno: EAGAIN, zeropage: 2 * PAGE });
    expect(file.hasPage(5 * PAGE)).toBe(true);
    expect(file.hasPage(6 * PAGE)).toBe(false);

    await pressure.release(3);
    expect(uffd.copy(rest)).toEqual({ errno: 0, copy: PAGE });
    expect(uffd.zeropage({ start: SHMEM + 6 * PAGE, len: 2 * PAGE, mode: 0 })).toEqual({ errno: 0, zeropage: 2 * PAGE });
    expect(file.read(3 * PAGE, PAGE)).toEqual(pageOf(0x43));
    file.close();
    expectAllFreed(kernel, [uffd]);
  });

  it("fork fails cleanly in copy_page_range", async () => {
    const kernel = await limitedKernel(mode);
    const parent = kernel.createProcess();
    // Three 2 MiB windows: the child needs a PTE table for each.
    const windows = [0x1000_0000, 0x1020_0000, 0x1040_0000];
    for (const [i, address] of windows.entries()) {
      expect(parent.mmap(PAGE, { flags: ANON_FIXED, address })).toBe(address);
      await settledNow(parent.write(address, pageOf(0xa0 + i)));
    }
    const pressure = Pressure.map(parent, mode);
    await pressure.exhaust();

    // The child's root plus the PUD, PMD and PTE tables of the first window;
    // the second window's PTE table is one frame too many.
    await pressure.release(4);
    const used = kernel.framesUsed;
    await expectOutOfMemory(parent.fork());
    expect(kernel.framesUsed).toBe(used);
    expect(kernel.processes.size).toBe(1);
    for (const [i, address] of windows.entries()) expect(await pageAt(parent, address)).toEqual(pageOf(0xa0 + i));
    // The failed copy write-protected the parent's pages; a write takes each back without a frame.
    await settledNow(parent.write(windows[0]!, pageOf(0xa9)));
    expect(kernel.framesUsed).toBe(used);

    await pressure.release(60);
    const child = await settledNow(parent.fork());
    expect(await pageAt(child, windows[0]!)).toEqual(pageOf(0xa9));
    expect(await pageAt(child, windows[2]!)).toEqual(pageOf(0xa2));
    expectAllFreed(kernel);
  });

  it("copy-on-write break without a frame fails the access", async () => {
    const kernel = await limitedKernel(mode);
    const parent = kernel.createProcess();
    const shared = 0x1000_0000;
    const own = shared - PAGE;
    expect(parent.mmap(2 * PAGE, { flags: ANON_FIXED, address: own })).toBe(own);
    await settledNow(parent.write(own, pageOf(0x22)));
    await settledNow(parent.write(shared, pageOf(0x11)));
    const child = await settledNow(parent.fork());
    // The child's copy of `own` is its own from here on; `shared` stays shared.
    await settledNow(child.write(own, pageOf(0x33)));
    const pressure = Pressure.map(parent, mode);
    await pressure.exhaust();

    // The store runs across the end of `own` into `shared`, whose copy needs a frame.
    await expectOutOfMemory(child.write(shared - 4, pageOf(0x44, 8)));
    expect(await pageAt(child, own)).toEqual(new Uint8Array([...pageOf(0x33, PAGE - 4), ...pageOf(0x44, 4)]));
    expect(await pageAt(child, shared)).toEqual(pageOf(0x11));
    expect(await pageAt(parent, shared)).toEqual(pageOf(0x11));
    expect(await pageAt(parent, own)).toEqual(pageOf(0x22));
    // From kernel mode the same fault is an EFAULT for the system call.
    expect(await settledNow(child.copyToUser(shared, Uint8Array.of(0x55)))).toEqual({ errno: EFAULT });
    expect(await pageAt(child, shared)).toEqual(pageOf(0x11));

    await pressure.release(1);
    await settledNow(child.write(shared, pageOf(0x66)));
    expect(await pageAt(child, shared)).toEqual(pageOf(0x66));
    expect(await pageAt(parent, shared)).toEqual(pageOf(0x11));
    // The parent is now the frame's only user, so its write needs no frame.
    await settledNow(parent.write(shared, pageOf(0x77)));
    expect(await pageAt(parent, shared)).toEqual(pageOf(0x77));
    expectAllFreed(kernel);
  });

  it("first touch fails without page tables", async () => {
    const kernel = await limitedKernel(mode);
    const process = kernel.createProcess();
    expect(process.mmap(2 * PAGE, { flags: ANON_FIXED, address: FAR })).toBe(FAR);
    expect(process.mmap(PAGE, { flags: ANON_FIXED, address: SRC })).toBe(SRC);
    await settledNow(process.write(SRC, pageOf(0x5a)));
    // A read-only neighbour, so that growing SRC has to move it.
    expect(process.mmap(PAGE, { flags: ANON_FIXED, address: SRC + PAGE, prot: PROT_READ })).toBe(SRC + PAGE);
    const pressure = Pressure.map(process, mode);
    await pressure.exhaust();

    // FAR needs a PUD, a PMD and a PTE table before even the zero page can be mapped.
    await expectOutOfMemory(process.read(FAR, 1));
    expect(await settledNow(process.copyFromUser(FAR, 1))).toEqual({ errno: EFAULT });
    await pressure.release(2);
    await expectOutOfMemory(process.read(FAR, 1));
    await pressure.release(1);
    expect(await settledNow(process.read(FAR, 8))).toEqual(pageOf(0, 8));
    // A store to the zero page needs a frame of its own.
    await expectOutOfMemory(process.write(FAR, Uint8Array.of(1)));

    await pressure.release(1);
    await settledNow(process.write(FAR, pageOf(0x61)));
    await expectOutOfMemory(process.write(FAR + PAGE - 4, pageOf(0x62, 8)));
    expect(await settledNow(process.read(FAR + PAGE - 8, 8))).toEqual(new Uint8Array([...pageOf(0x61, 4), ...pageOf(0x62, 4)]));
    expect(pteOf(process, FAR + PAGE)).toBe(0);

    // mremap to a range no table covers needs new tables: the mapping stays where it was.
    expect(await settledNow(process.mremap(SRC, PAGE, 2 * PAGE, MREMAP_MAYMOVE))).toBe(-ENOMEM);
    expect(await pageAt(process, SRC)).toEqual(pageOf(0x5a));

    await pressure.release(8);
    await settledNow(process.write(FAR + PAGE - 4, pageOf(0x62, 8)));
    expect(await settledNow(process.read(FAR + PAGE, 4))).toEqual(pageOf(0x62, 4));
    const moved = await settledNow(process.mremap(SRC, PAGE, 2 * PAGE, MREMAP_MAYMOVE));
    expect(moved).toBeGreaterThan(FAR);
    expect(await pageAt(process, moved)).toEqual(pageOf(0x5a));
    expectAllFreed(kernel);
  });

  it("memfd page cache stops growing", async () => {
    const kernel = await limitedKernel(mode);
    const process = kernel.createProcess();
    const file = kernel.memfdCreate("cache", 8 * PAGE);
    expect(file.write(0, pageOf(0x01))).toBe(PAGE);
    expect(process.mmap(8 * PAGE, { file, flags: SHARED_FIXED, address: SHMEM })).toBe(SHMEM);
    expect(await pageAt(process, SHMEM)).toEqual(pageOf(0x01));
    const pressure = Pressure.map(process, mode);
    await pressure.exhaust();

    // pwrite stops short at the first page the cache cannot add.
    await pressure.release(2);
    const data = new Uint8Array(4 * PAGE).fill(0x70);
    expect(file.write(PAGE, data)).toBe(2 * PAGE);
    expect(file.read(PAGE, 4 * PAGE)).toEqual(new Uint8Array([...pageOf(0x70, 2 * PAGE), ...pageOf(0, 2 * PAGE)]));
    expect(file.hasPage(3 * PAGE)).toBe(false);
    expect(() => file.write(3 * PAGE, data.subarray(0, PAGE))).toThrow(KernelError);
    // A store to a hole of the shared mapping needs a new page cache page.
    await expectOutOfMemory(process.write(SHMEM + 5 * PAGE, Uint8Array.of(0x75)));
    expect(file.hasPage(5 * PAGE)).toBe(false);
    expect(await pageAt(process, SHMEM + 2 * PAGE)).toEqual(pageOf(0x70));

    await pressure.release(2);
    expect(file.write(3 * PAGE, data.subarray(0, PAGE))).toBe(PAGE);
    await settledNow(process.write(SHMEM + 5 * PAGE, Uint8Array.of(0x75)));
    expect(file.read(5 * PAGE, 1)).toEqual(Uint8Array.of(0x75));
    expect(await settledNow(process.munmap(SHMEM, 8 * PAGE))).toBe(0);
    file.close();
    expectAllFreed(kernel);
  });

  it("new processes and files need a root frame", async () => {
    const kernel = await limitedKernel(mode);
    const process = kernel.createProcess();
    const pressure = Pressure.map(process, mode);
    await pressure.exhaust();
    const processes = kernel.processes.size;
    const files = kernel.files.size;

    const calls: Array<[string, () => unknown]> = [
      ["createProcess", () => kernel.createProcess()],
      ["memfdCreate", () => kernel.memfdCreate("late", PAGE)],
      ["createFile", () => kernel.createFile("late", PAGE)],
    ];
    for (const [name, call] of calls) {
      let error: unknown = null;
      try {
        call();
      } catch (reason) {
        error = reason;
      }
      expect(error, name).toBeInstanceOf(KernelError);
      expect(error, name).toMatchObject({ errno: ENOMEM });
    }
    expect(kernel.processes.size).toBe(processes);
    expect(kernel.files.size).toBe(files);

    // One frame back is enough for a root table.
    await pressure.release(1);
    kernel.createProcess().exit();
    process.exit();
    expectAllFreed(kernel);
  });
});

describe("memory size limits", () => {
  it("creates a kernel at MAX_MEMORY", async () => {
    const kernel = await createKernel({ maxMemory: MAX_MEMORY });
    expect(kernel.framesCapacity).toBe(MAX_FRAMES);
    expect(kernel.framesUsed).toBe(1);
  });

  it("rejects maxMemory above MAX_MEMORY", async () => {
    const creation = Kernel.create({ maxMemory: MAX_MEMORY + PAGE });
    await expect(creation).rejects.toBeInstanceOf(RangeError);
    await expect(Kernel.create({ maxMemory: MAX_MEMORY + PAGE })).rejects.toThrow(
      `maxMemory ${MAX_MEMORY + PAGE} is above the maximum MAX_MEMORY = 4278190080 bytes (1044480 frames of 4 KiB)`,
    );
  });

  it("growth limit hook reports and resets", async () => {
    const kernel = await createKernel({ maxMemory: 16 << 20 });
    const core = kernel.core.exports;
    const wasmPages = core.memory.buffer.byteLength / 65536;
    expect(core.limit_memory_growth_for_testing(wasmPages)).toBe(65536);
    expect(core.limit_memory_growth_for_testing(wasmPages)).toBe(wasmPages);
    const process = kernel.createProcess();
    const area = process.mmap(64 * PAGE);
    const error = await rejection(process.write(area, new Uint8Array(64 * PAGE)));
    expect(error).toMatchObject({ errno: ENOMEM });
    expect(core.memory.buffer.byteLength / 65536).toBe(wasmPages);

    // A reset lifts the limit, so the same write grows memory now.
    kernel.reset();
    expect(core.limit_memory_growth_for_testing(0)).toBe(65536);
    const again = kernel.createProcess();
    const fresh = again.mmap(64 * PAGE);
    await settledNow(again.write(fresh, new Uint8Array(64 * PAGE).fill(1)));
    expect(core.memory.buffer.byteLength / 65536).toBeGreaterThan(wasmPages);
  });
});
