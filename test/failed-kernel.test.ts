// A throw out of the wasm core (a trap, or an abort of the debug build's
// assertions) marks the kernel failed. The call that hit it surfaces the
// original error. Every later call throws KernelFailedError naming it,
// instead of returning data from a state that may be half changed. The
// tests provoke real failures by corrupting page-table entries through the
// core's memory, as a bug in the core would.

import { describe, expect, it } from "vitest";
import {
  KernelFailedError, MADV_DONTNEED, MAP_ANONYMOUS, MAP_FIXED, MAP_PRIVATE, MAP_SHARED, UFFD_API, UFFD_FEATURE_EVENT_REMOVE,
  UFFDIO_REGISTER_MODE_MISSING, WasmCoreAbort, type Kernel,
} from "../src/index.js";
import { createKernel, drain, pageOf, settledNow, watch } from "./helpers.js";
import { exemptFromInvariantCheck } from "./invariant-setup.js";

const PAGE = 4096;
const ANON_FIXED = MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED;
const AREA = 0x1000_0000;
const REGISTERED = 0x2000_0000;
const SHMEM = 0x3000_0000;
/** A frame address past the end of linear memory (a few MiB in these tests). */
const OUT_OF_BOUNDS_FRAME = 0xffff_f000;

/** Returns the linear-memory address of the PTE for `va` in the tree at `root`, which must have its tables. */
function pteSlotAddress(kernel: Kernel, root: number, va: number): number {
  const memory = kernel.core.exports.memory.buffer;
  let table = root;
  for (const shift of [39, 30, 21]) {
    const slot = table + (Math.floor(va / 2 ** shift) % 512) * 8;
    table = new DataView(memory, slot, 8).getUint32(0, true) & 0xffff_f000;
    expect(table, `table at level ${shift}`).not.toBe(0);
  }
  return table + (Math.floor(va / PAGE) % 512) * 8;
}

/** Overwrites the 8-byte entry at `slot` through kernel.core.bytes(). */
function storeEntry(kernel: Kernel, slot: number, low: number): void {
  const bytes = kernel.core.bytes(slot, 8);
  const view = new DataView(bytes.buffer, bytes.byteOffset, 8);
  view.setUint32(0, low, true);
  view.setUint32(4, 0, true);
}

/** Returns what `call` threw, synchronously or as a rejection, and fails the test when it succeeds. */
async function thrownBy(call: () => unknown): Promise<unknown> {
  try {
    await call();
  } catch (error) {
    return error;
  }
  throw new Error("expected the call to throw");
}

/** Expects `error` to be KernelFailedError naming export `name` and the original error `failure`. */
function expectKernelFailed(error: unknown, name: string, failure: unknown): void {
  expect(error).toBeInstanceOf(KernelFailedError);
  const failed = error as KernelFailedError;
  expect(failed.exportName).toBe(name);
  expect(failed.cause).toBe(failure);
  expect(failed.message).toContain(name);
  expect(failed.message).toContain((failure as Error).message);
}

describe("failed kernel", () => {
  it("surfaces a trap once, then rejects every call", async () => {
    const kernel = await createKernel();
    exemptFromInvariantCheck(kernel, "the test corrupts a page-table entry, so the checker cannot run on it");
    const process = kernel.createProcess();
    expect(process.mmap(2 * PAGE, { flags: ANON_FIXED, address: AREA })).toBe(AREA);
    await settledNow(process.write(AREA, pageOf(7)));
    await settledNow(process.write(AREA + PAGE, pageOf(8)));
    const file = kernel.memfdCreate("data", PAGE);
    file.write(0, pageOf(9));
    expect(process.mmap(PAGE, { file, flags: MAP_SHARED | MAP_FIXED, address: SHMEM })).toBe(SHMEM);

    // A second process blocks on a fault, so its userfaultfd has a message queued.
    const target = kernel.createProcess();
    expect(target.mmap(PAGE, { flags: ANON_FIXED, address: REGISTERED })).toBe(REGISTERED);
    const uffd = target.userfaultfd();
    expect(uffd.api({ api: UFFD_API, features: 0 }).errno).toBe(0);
    expect(uffd.register({ start: REGISTERED, len: PAGE, mode: UFFDIO_REGISTER_MODE_MISSING }).errno).toBe(0);
    const blocked = watch(target.read(REGISTERED, 1));
    await drain();
    expect(blocked.state).toBe("pending");
    expect(uffd.readable).toBe(true);

    storeEntry(kernel, pteSlotAddress(kernel, process.mm.pgd, AREA), OUT_OF_BOUNDS_FRAME | 1);
    const trap = await thrownBy(() => process.read(AREA, 16));
    expect(trap).toBeInstanceOf(WebAssembly.RuntimeError);
    expect((trap as Error).message).toMatch(/out of bounds/);
    expect(kernel.failure).toBe(trap);

    // The page next to the corrupted one is intact, yet no call may read it any more.
    expectKernelFailed(await thrownBy(() => process.read(AREA + PAGE, 1)), "access_vm", trap);
    const laterCalls: Array<[string, () => unknown]> = [
      ["process.write", () => process.write(AREA + PAGE, Uint8Array.of(1))],
      ["process.read of length 0", () => process.read(AREA, 0)],
      ["process.mmap", () => process.mmap(PAGE)],
      ["process.munmap", () => process.munmap(AREA, PAGE)],
      ["process.fork", () => process.fork()],
      ["process.exit", () => process.exit()],
      ["uffd.read of a queued fault", () => uffd.read()],
      ["uffd.readable", () => uffd.readable],
      ["uffd.copy", () => uffd.copy({ dst: REGISTERED, src: AREA + PAGE, len: PAGE, mode: 0 })],
      ["uffd.wake", () => uffd.wake({ start: REGISTERED, len: PAGE })],
      ["uffd.close", () => uffd.close()],
      ["file.read", () => file.read(0, 4)],
      ["file.hasPage", () => file.hasPage(0)],
      ["kernel.createProcess", () => kernel.createProcess()],
      ["kernel.memfdCreate", () => kernel.memfdCreate("later", PAGE)],
      ["kernel.framesUsed", () => kernel.framesUsed],
      ["kernel.reset", () => kernel.reset()],
      ["core export", () => kernel.core.exports.frames_used()],
      ["core.bytes", () => kernel.core.bytes(0, 1)],
    ];
    for (const [name, call] of laterCalls) {
      const error = await thrownBy(call);
      expect(error, name).toBeInstanceOf(KernelFailedError);
      expectKernelFailed(error, "access_vm", trap);
    }
    // The first failure stays the one named.
    expect(kernel.failure).toBe(trap);
    // The failure woke the read blocked on a fault; its retry met the failure.
    await drain();
    expect(blocked.state).toBe("rejected");
    expectKernelFailed(blocked.reason, "access_vm", trap);
  });

  it("wakes sleepers so they reject", async () => {
    const kernel = await createKernel();
    exemptFromInvariantCheck(kernel, "the test corrupts a page-table entry, so the checker cannot run on it");
    const process = kernel.createProcess();
    expect(process.mmap(PAGE, { flags: ANON_FIXED, address: AREA })).toBe(AREA);
    await settledNow(process.write(AREA, pageOf(7)));
    expect(process.mmap(PAGE, { flags: ANON_FIXED, address: REGISTERED })).toBe(REGISTERED);
    const uffd = process.userfaultfd();
    expect(uffd.api({ api: UFFD_API, features: UFFD_FEATURE_EVENT_REMOVE }).errno).toBe(0);
    expect(uffd.register({ start: REGISTERED, len: PAGE, mode: UFFDIO_REGISTER_MODE_MISSING }).errno).toBe(0);
    // A read waits with nothing queued.
    const waitingRead = watch(uffd.readWait());
    // Another process's madvise sleeps until its REMOVE event is read.
    const other = kernel.createProcess();
    expect(other.mmap(PAGE, { flags: ANON_FIXED, address: REGISTERED })).toBe(REGISTERED);
    const otherUffd = other.userfaultfd();
    expect(otherUffd.api({ api: UFFD_API, features: UFFD_FEATURE_EVENT_REMOVE }).errno).toBe(0);
    expect(otherUffd.register({ start: REGISTERED, len: PAGE, mode: UFFDIO_REGISTER_MODE_MISSING }).errno).toBe(0);
    const producer = watch(other.madvise(REGISTERED, PAGE, MADV_DONTNEED));
    await drain();
    expect(waitingRead.state).toBe("pending");
    expect(producer.state).toBe("pending");

    storeEntry(kernel, pteSlotAddress(kernel, process.mm.pgd, AREA), OUT_OF_BOUNDS_FRAME | 1);
    const trap = await thrownBy(() => process.read(AREA, 1));
    expect(trap).toBeInstanceOf(WebAssembly.RuntimeError);
    await drain();
    expect(waitingRead.state).toBe("rejected");
    expectKernelFailed(waitingRead.reason, "access_vm", trap);
    expect(producer.state).toBe("rejected");
    expectKernelFailed(producer.reason, "access_vm", trap);
  });

  it("surfaces a trap in UFFDIO_COPY", async () => {
    const kernel = await createKernel({ build: "release" });
    exemptFromInvariantCheck(kernel, "the test corrupts a page-table entry, so the checker cannot run on it");
    const process = kernel.createProcess();
    expect(process.mmap(PAGE, { flags: ANON_FIXED, address: AREA })).toBe(AREA);
    await settledNow(process.write(AREA, pageOf(7)));
    expect(process.mmap(2 * PAGE, { flags: ANON_FIXED, address: REGISTERED })).toBe(REGISTERED);
    const uffd = process.userfaultfd();
    expect(uffd.api({ api: UFFD_API, features: 0 }).errno).toBe(0);
    expect(uffd.register({ start: REGISTERED, len: 2 * PAGE, mode: UFFDIO_REGISTER_MODE_MISSING }).errno).toBe(0);
    expect(uffd.copy({ dst: REGISTERED, src: AREA, len: PAGE, mode: 0 })).toEqual({ errno: 0, copy: PAGE });

    // The source page's entry now names a frame outside linear memory.
    storeEntry(kernel, pteSlotAddress(kernel, process.mm.pgd, AREA), OUT_OF_BOUNDS_FRAME | 1);
    const trap = await thrownBy(() => uffd.copy({ dst: REGISTERED + PAGE, src: AREA, len: PAGE, mode: 0 }));
    expect(trap).toBeInstanceOf(WebAssembly.RuntimeError);
    expectKernelFailed(await thrownBy(() => uffd.copy({ dst: REGISTERED + PAGE, src: AREA, len: PAGE, mode: 0 })), "mfill_copy", trap);
    // Even the page that COPY filled before the trap is out of reach.
    expectKernelFailed(await thrownBy(() => process.read(REGISTERED, 1)), "mfill_copy", trap);
  });

  it("surfaces an abort of the debug build", async () => {
    const kernel = await createKernel();
    exemptFromInvariantCheck(kernel, "the test maps one frame twice, so its refcount is wrong on purpose");
    const process = kernel.createProcess();
    expect(process.mmap(2 * PAGE, { flags: ANON_FIXED, address: AREA })).toBe(AREA);
    await settledNow(process.write(AREA, pageOf(1)));
    await settledNow(process.write(AREA + PAGE, pageOf(2)));
    // Map page 0's frame at page 1 too, without taking a reference: the
    // munmap drops that frame twice, and the second drop finds it free.
    const first = pteSlotAddress(kernel, process.mm.pgd, AREA);
    const entry = new DataView(kernel.core.bytes(first, 8).slice().buffer).getUint32(0, true);
    storeEntry(kernel, pteSlotAddress(kernel, process.mm.pgd, AREA + PAGE), entry);

    const abort = await thrownBy(() => process.munmap(AREA, 2 * PAGE));
    expect(abort).toBeInstanceOf(WasmCoreAbort);
    expect((abort as Error).message).toContain("framePut on a free frame");
    expect(kernel.failure).toBe(abort);
    expectKernelFailed(await thrownBy(() => process.read(AREA, 1)), "zap_page_range", abort);
    expectKernelFailed(await thrownBy(() => kernel.reset()), "zap_page_range", abort);
  });

  it("leaves other kernels usable", async () => {
    const failed = await createKernel();
    exemptFromInvariantCheck(failed, "the test corrupts a page-table entry, so the checker cannot run on it");
    const healthy = await createKernel();
    const broken = failed.createProcess();
    expect(broken.mmap(PAGE, { flags: ANON_FIXED, address: AREA })).toBe(AREA);
    await settledNow(broken.write(AREA, pageOf(3)));
    storeEntry(failed, pteSlotAddress(failed, broken.mm.pgd, AREA), OUT_OF_BOUNDS_FRAME | 1);
    expect(await thrownBy(() => broken.read(AREA, 1))).toBeInstanceOf(WebAssembly.RuntimeError);

    const process = healthy.createProcess();
    expect(process.mmap(PAGE, { flags: ANON_FIXED, address: AREA })).toBe(AREA);
    await settledNow(process.write(AREA, pageOf(4)));
    expect(await settledNow(process.read(AREA, 2))).toEqual(pageOf(4, 2));
    expect(healthy.failure).toBe(null);
    process.exit();
    expect(healthy.framesUsed).toBe(1);
  });

  it("names the export and the cause in its message", () => {
    const cause = new WebAssembly.RuntimeError("unreachable");
    const error = new KernelFailedError("mfill_copy", cause);
    expect(error.name).toBe("KernelFailedError");
    expect(error.message).toBe(
      "kernel unusable: its wasm core failed in mfill_copy (RuntimeError: unreachable); create a new kernel with Kernel.create()",
    );
    expect(error.cause).toBe(cause);
  });
});
