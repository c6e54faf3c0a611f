// Hostile arguments for the system calls and accesses of a Process. Each
// bad value gets the errno Linux 6.18 gives, or the signal an access ends
// in. A value of the wrong type gets a TypeError or RangeError naming the
// argument. No call changes any state.

import { describe, expect, it } from "vitest";
import {
  EBADF, EFAULT, EINVAL, ENOMEM, EPERM, MADV_DONTNEED, MADV_REMOVE, MAP_ANONYMOUS, MAP_FIXED, MAP_PRIVATE, MAP_SHARED, MREMAP_DONTUNMAP,
  MREMAP_FIXED, MREMAP_MAYMOVE, O_NONBLOCK, PROT_READ, SignalError, UFFD_API, UFFD_FEATURE_EVENT_REMAP,
  UFFD_FEATURE_EVENT_REMOVE, UFFD_FEATURE_EVENT_UNMAP, UFFDIO_REGISTER_MODE_MISSING, type Kernel, type MappedFile, type Process,
} from "../src/index.js";
import { createKernel, drain, pageOf, settledNow, watch } from "./helpers.js";
import {
  NOT_NUMBERS_PRESENT, NOT_OBJECTS, NOT_U64, PAGE, TASK_SIZE, numberRows, returns, row, runRows, throws, throwsErrno, type Row,
} from "./hostile-helpers.js";

/** 4 private anonymous pages registered MISSING: pages 0 and 1 hold 0x41 and 0x42, a read of page 3 is blocked on a fault. */
const ANON = 0x1000_0000;
/** 2 pages of the memfd "hostile", MAP_SHARED. Page 0 is filled with 0x43. */
const SHMEM = 0x2000_0000;
/** Nothing is mapped from here to TASK_SIZE. */
const HOLE = 0x4000_0000;
const FIXED = MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED;
const PROT_EXEC = 4;
const MAP_POPULATE = 0x8000;

interface Env {
  kernel: Kernel;
  process: Process;
  file: MappedFile;
}

/**
 * Creates the layout above. The userfaultfd has the UNMAP, REMOVE and
 * REMAP events, so a call that went through by mistake would also queue
 * an event and block, and the runner would report it.
 */
async function setup(): Promise<Env> {
  const kernel = await createKernel();
  const process = kernel.createProcess();
  expect(process.mmap(4 * PAGE, { flags: FIXED, address: ANON })).toBe(ANON);
  await settledNow(process.write(ANON, pageOf(0x41)));
  await settledNow(process.write(ANON + PAGE, pageOf(0x42)));
  const file = kernel.memfdCreate("hostile", 2 * PAGE);
  expect(process.mmap(2 * PAGE, { file, flags: MAP_SHARED | MAP_FIXED, address: SHMEM })).toBe(SHMEM);
  await settledNow(process.write(SHMEM, pageOf(0x43)));

  const uffd = process.userfaultfd(O_NONBLOCK);
  const features = UFFD_FEATURE_EVENT_UNMAP | UFFD_FEATURE_EVENT_REMOVE | UFFD_FEATURE_EVENT_REMAP;
  expect(uffd.api({ api: UFFD_API, features }).errno).toBe(0);
  expect(uffd.register({ start: ANON, len: 4 * PAGE, mode: UFFDIO_REGISTER_MODE_MISSING }).errno).toBe(0);
  const blocked = watch(process.read(ANON + 3 * PAGE, 1));
  await drain();
  expect(blocked.state, "the read of the registered page").toBe("pending");
  return { kernel, process, file };
}

/** Rows for wrong types of an argument that may be absent: each gets a TypeError naming `name`. */
function wrongTypeRows(name: string, call: (value: unknown) => unknown): Row[] {
  return NOT_NUMBERS_PRESENT.map(([valueName, value]) => row(name, valueName, () => call(value), throws(TypeError, name)));
}

describe("mmap with hostile arguments", () => {
  it("length", async () => {
    const { kernel, process } = await setup();
    const mmap = (length: unknown) => process.mmap(length as number);
    await runRows(kernel, [
      ...numberRows("length", mmap, returns(-ENOMEM)),
      row("length", "0", () => mmap(0), returns(-EINVAL)),
      row("length", "past TASK_SIZE", () => mmap(TASK_SIZE + PAGE), returns(-ENOMEM)),
    ]);
  });

  it("prot", async () => {
    const { kernel, process } = await setup();
    const mmap = (prot: unknown) => process.mmap(PAGE, { prot: prot as number });
    await runRows(kernel, [
      ...numberRows("prot", mmap, returns(-EINVAL), { optional: true }),
      row("prot", "PROT_EXEC", () => mmap(PROT_READ | PROT_EXEC), returns(-EINVAL)),
      row("prot", "bit 31", () => mmap(0x8000_0000), returns(-EINVAL)),
      row("prot", "bit 32", () => mmap(2 ** 32 + PROT_READ), returns(-EINVAL)),
    ]);
  });

  it("flags", async () => {
    const { kernel, process, file } = await setup();
    const mmap = (flags: unknown) => process.mmap(PAGE, { flags: flags as number });
    await runRows(kernel, [
      ...numberRows("flags", mmap, returns(-EINVAL), { optional: true }),
      row("flags", "0", () => mmap(0), returns(-EINVAL)),
      row("flags", "shared and private", () => mmap(MAP_SHARED | MAP_PRIVATE | MAP_ANONYMOUS), returns(-EINVAL)),
      row("flags", "MAP_POPULATE", () => mmap(MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE), returns(-EINVAL)),
      row("flags", "bit 40", () => mmap(2 ** 40 + (MAP_PRIVATE | MAP_ANONYMOUS)), returns(-EINVAL)),
      row("flags", "no file, no MAP_ANONYMOUS", () => mmap(MAP_PRIVATE), returns(-EINVAL)),
      row("flags", "file with MAP_ANONYMOUS", () => process.mmap(PAGE, { file, flags: MAP_SHARED | MAP_ANONYMOUS }), returns(-EINVAL)),
    ]);
  });

  it("offset", async () => {
    const { kernel, process, file } = await setup();
    const mmap = (offset: unknown) => process.mmap(PAGE, { file, offset: offset as number });
    await runRows(kernel, [
      ...numberRows("offset", mmap, returns(-EINVAL), { optional: true }),
      row("offset", "unaligned", () => mmap(1), returns(-EINVAL)),
      row("offset", "unaligned, anonymous", () => process.mmap(PAGE, { offset: 100 }), returns(-EINVAL)),
    ]);
  });

  it("MAP_FIXED address", async () => {
    const { kernel, process } = await setup();
    const mmap = (address: unknown, length = PAGE) => process.mmap(length, { flags: FIXED, address: address as number });
    await runRows(kernel, [
      // __get_unmapped_area checks the end first, so a value that is no u64 is ENOMEM.
      ...numberRows("address", (address) => mmap(address), returns(-ENOMEM)),
      row("address", "unaligned", () => mmap(HOLE + 1), returns(-EINVAL)),
      row("address", "0", () => mmap(0), returns(-EPERM)),
      row("address", "below mmap_min_addr", () => mmap(0xf000), returns(-EPERM)),
      row("address", "range past TASK_SIZE", () => mmap(TASK_SIZE - PAGE, 2 * PAGE), returns(-ENOMEM)),
      row("address", "TASK_SIZE", () => mmap(TASK_SIZE), returns(-ENOMEM)),
      ...wrongTypeRows("address", (address) => process.mmap(PAGE, { address: address as number })),
    ]);
  });

  it("options and file", async () => {
    const { kernel, process } = await setup();
    const other = await createKernel();
    const foreign = other.memfdCreate("foreign", PAGE);
    // One closed file still mapped, one closed and freed: both descriptors are gone.
    const stillMapped = kernel.memfdCreate("still mapped", PAGE);
    expect(process.mmap(PAGE, { file: stillMapped, flags: MAP_SHARED })).toBeGreaterThan(0);
    stillMapped.close();
    const freed = kernel.memfdCreate("freed", PAGE);
    freed.close();
    await runRows(kernel, [
      row("file", "closed, still mapped", () => process.mmap(PAGE, { file: stillMapped, flags: MAP_SHARED }), returns(-EBADF)),
      row("file", "closed and freed", () => process.mmap(PAGE, { file: freed, flags: MAP_PRIVATE }), returns(-EBADF)),
      ...NOT_OBJECTS.map(([name, value]) => row("options", name, () => process.mmap(PAGE, value as object), throws(TypeError, "options"))),
      ...[["string", "hostile"], ["object", {}], ["number", 3], ["null", null], ["Uint8Array", new Uint8Array(PAGE)]].map(([name, value]) =>
        row("file", name as string, () => process.mmap(PAGE, { file: value as MappedFile, flags: MAP_SHARED }), throws(TypeError, "file")),
      ),
      row("file", "of another Kernel", () => process.mmap(PAGE, { file: foreign }), throws(TypeError, "another Kernel")),
    ]);
  });
});

describe("munmap with hostile arguments", () => {
  it("address and length", async () => {
    const { kernel, process } = await setup();
    await runRows(kernel, [
      ...numberRows("address", (address) => process.munmap(address as number, PAGE), returns(-EINVAL)),
      row("address", "unaligned", () => process.munmap(ANON + 1, PAGE), returns(-EINVAL)),
      row("address", "TASK_SIZE", () => process.munmap(TASK_SIZE, PAGE), returns(-EINVAL)),
      ...numberRows("length", (length) => process.munmap(ANON, length as number), returns(-EINVAL)),
      row("length", "0", () => process.munmap(ANON, 0), returns(-EINVAL)),
      row("length", "past TASK_SIZE", () => process.munmap(ANON, TASK_SIZE), returns(-EINVAL)),
    ]);
  });
});

describe("mprotect with hostile arguments", () => {
  it("address, length and prot", async () => {
    const { kernel, process } = await setup();
    await runRows(kernel, [
      ...numberRows("address", (address) => process.mprotect(address as number, PAGE, PROT_READ), returns(-EINVAL)),
      row("address", "unaligned", () => process.mprotect(ANON + 1, PAGE, PROT_READ), returns(-EINVAL)),
      row("address", "unmapped", () => process.mprotect(HOLE, PAGE, PROT_READ), returns(-ENOMEM)),
      row("address", "TASK_SIZE", () => process.mprotect(TASK_SIZE, PAGE, PROT_READ), returns(-ENOMEM)),
      row("address", "2^52", () => process.mprotect(2 ** 52, PAGE, PROT_READ), returns(-ENOMEM)),
      // do_mprotect_pkey: a length that wraps leaves end <= start, which is ENOMEM.
      ...numberRows("length", (length) => process.mprotect(ANON, length as number, PROT_READ), returns(-ENOMEM)),
      row("length", "past TASK_SIZE", () => process.mprotect(ANON, TASK_SIZE, PROT_READ), returns(-ENOMEM)),
      row("length", "0 with unknown prot bits", () => process.mprotect(ANON, 0, 0x80), returns(0)),
      ...numberRows("prot", (prot) => process.mprotect(ANON, PAGE, prot as number), returns(-EINVAL)),
      row("prot", "PROT_EXEC", () => process.mprotect(ANON, PAGE, PROT_READ | PROT_EXEC), returns(-EINVAL)),
      row("prot", "8", () => process.mprotect(ANON, PAGE, 8), returns(-EINVAL)),
    ]);
  });
});

describe("madvise with hostile arguments", () => {
  it("address, length and advice", async () => {
    const { kernel, process } = await setup();
    await runRows(kernel, [
      ...numberRows("address", (address) => process.madvise(address as number, PAGE, MADV_DONTNEED), returns(-EINVAL)),
      row("address", "unaligned", () => process.madvise(ANON + 1, PAGE, MADV_DONTNEED), returns(-EINVAL)),
      // madvise has no TASK_SIZE check: memory there is simply unmapped.
      row("address", "TASK_SIZE", () => process.madvise(TASK_SIZE, PAGE, MADV_DONTNEED), returns(-ENOMEM)),
      row("address", "2^52", () => process.madvise(2 ** 52, PAGE, MADV_DONTNEED), returns(-ENOMEM)),
      ...numberRows("length", (length) => process.madvise(HOLE, length as number, MADV_DONTNEED), returns(-EINVAL)),
      row("length", "0", () => process.madvise(ANON, 0, MADV_DONTNEED), returns(0)),
      row("length", "up to TASK_SIZE", () => process.madvise(HOLE, TASK_SIZE - HOLE, MADV_DONTNEED), returns(-ENOMEM)),
      row("length", "2^52", () => process.madvise(HOLE, 2 ** 52, MADV_DONTNEED), returns(-ENOMEM)),
      ...numberRows("advice", (advice) => process.madvise(ANON, PAGE, advice as number), returns(-EINVAL)),
      row("advice", "12345", () => process.madvise(ANON, PAGE, 12345), returns(-EINVAL)),
      row("advice", "MADV_REMOVE on private memory", () => process.madvise(ANON, PAGE, MADV_REMOVE), returns(-EINVAL)),
    ]);
  });
});

describe("mremap with hostile arguments", () => {
  it("old address and sizes", async () => {
    const { kernel, process } = await setup();
    const mremap = (old: unknown, oldSize: unknown, newSize: unknown) =>
      process.mremap(old as number, oldSize as number, newSize as number, MREMAP_MAYMOVE);
    await runRows(kernel, [
      ...numberRows("oldAddress", (old) => mremap(old, PAGE, 2 * PAGE), returns(-EINVAL)),
      row("oldAddress", "unaligned", () => mremap(ANON + 1, PAGE, 2 * PAGE), returns(-EINVAL)),
      row("oldAddress", "unmapped", () => mremap(HOLE, PAGE, 2 * PAGE), returns(-EFAULT)),
      row("oldAddress", "TASK_SIZE", () => mremap(TASK_SIZE, PAGE, 2 * PAGE), returns(-EFAULT)),
      ...numberRows("oldSize", (oldSize) => mremap(ANON, oldSize, 2 * PAGE), returns(-EFAULT)),
      row("oldSize", "0", () => mremap(ANON, 0, 2 * PAGE), returns(-EINVAL)),
      row("oldSize", "past the mapping", () => mremap(ANON, 5 * PAGE, 8 * PAGE), returns(-EFAULT)),
      row("oldSize", "past TASK_SIZE", () => mremap(ANON, TASK_SIZE, 2 * PAGE), returns(-EFAULT)),
      ...numberRows("newSize", (newSize) => mremap(ANON, PAGE, newSize), returns(-EINVAL)),
      row("newSize", "0", () => mremap(ANON, PAGE, 0), returns(-EINVAL)),
      row("newSize", "past TASK_SIZE", () => mremap(ANON, PAGE, TASK_SIZE + PAGE), returns(-EINVAL)),
      row("newSize", "2^52", () => mremap(ANON, PAGE, 2 ** 52), returns(-EINVAL)),
    ]);
  });

  it("flags and new address", async () => {
    const { kernel, process } = await setup();
    const moveTo = (address: unknown, newSize = PAGE) => process.mremap(ANON, PAGE, newSize, MREMAP_MAYMOVE | MREMAP_FIXED, address as number);
    await runRows(kernel, [
      ...numberRows("flags", (flags) => process.mremap(ANON, PAGE, 2 * PAGE, flags as number), returns(-EINVAL)),
      row("flags", "8", () => process.mremap(ANON, PAGE, 2 * PAGE, 8), returns(-EINVAL)),
      row("flags", "MREMAP_FIXED without MREMAP_MAYMOVE", () => process.mremap(ANON, PAGE, PAGE, MREMAP_FIXED, HOLE), returns(-EINVAL)),
      row(
        "flags",
        "MREMAP_DONTUNMAP with a new size",
        () => process.mremap(ANON, PAGE, 2 * PAGE, MREMAP_MAYMOVE | MREMAP_DONTUNMAP),
        returns(-EINVAL),
      ),
      ...numberRows("newAddress", (address) => moveTo(address), returns(-EINVAL)),
      row("newAddress", "unaligned", () => moveTo(HOLE + 1), returns(-EINVAL)),
      row("newAddress", "overlapping the old range", () => moveTo(ANON), returns(-EINVAL)),
      row("newAddress", "range past TASK_SIZE", () => moveTo(TASK_SIZE - PAGE, 2 * PAGE), returns(-EINVAL)),
      ...wrongTypeRows("newAddress", (address) => process.mremap(ANON, PAGE, 2 * PAGE, MREMAP_MAYMOVE, address as number)),
    ]);
  });
});

describe("userfaultfd creation with hostile flags", () => {
  it("userfaultfd and userfaultfdFromDevice", async () => {
    const { kernel, process } = await setup();
    const rows: Row[] = [];
    for (const [name, create] of [
      ["userfaultfd", (flags: unknown) => process.userfaultfd(flags as number)],
      ["userfaultfdFromDevice", (flags: unknown) => process.userfaultfdFromDevice(flags as number)],
    ] as const) {
      rows.push(
        ...numberRows("flags", create, throwsErrno(EINVAL, "invalid flags"), { optional: true, call: name }),
        row(`${name} flags`, "O_RDWR", () => create(2), throwsErrno(EINVAL, "invalid flags")),
        row(`${name} flags`, "bit 31", () => create(0x8000_0000), throwsErrno(EINVAL, "invalid flags")),
      );
    }
    await runRows(kernel, rows);
  });
});

describe("process accesses with hostile arguments", () => {
  it("read and write", async () => {
    const { kernel, process } = await setup();
    const notBytes: [string, unknown][] = [
      ["array", [1, 2]], ["string", "ab"], ["ArrayBuffer", new ArrayBuffer(2)], ["DataView", new DataView(new ArrayBuffer(2))],
      ["Uint16Array", new Uint16Array(2)], ["null", null], ["undefined", undefined],
    ];
    await runRows(kernel, [
      ...numberRows("address", (address) => process.read(address as number, 1), throws(SignalError, "SIGSEGV"), { call: "read" }),
      row("read address", "unmapped", () => process.read(HOLE, 1), throws(SignalError, "SIGSEGV")),
      row("read address", "TASK_SIZE", () => process.read(TASK_SIZE, 1), throws(SignalError, "SIGSEGV")),
      ...numberRows("length", (length) => process.read(ANON, length as number), throws(RangeError, "length"), { call: "read" }),
      row("length", "2^40", () => process.read(ANON, 2 ** 40), throws(RangeError, "length")),
      row("length", "0", () => process.read(HOLE, 0), returns(new Uint8Array(0))),
      ...numberRows("address", (address) => process.write(address as number, Uint8Array.of(1)), throws(SignalError, "SIGSEGV"), { call: "write" }),
      row("write address", "unmapped", () => process.write(HOLE, Uint8Array.of(1)), throws(SignalError, "SIGSEGV")),
      ...notBytes.map(([name, data]) => row("write data", name, () => process.write(ANON, data as Uint8Array), throws(TypeError, "data"))),
      row("write data", "empty", () => process.write(HOLE, new Uint8Array(0)), returns(undefined)),
    ]);
  });

  it("copyFromUser and copyToUser", async () => {
    const { kernel, process } = await setup();
    await runRows(kernel, [
      ...numberRows("address", (address) => process.copyFromUser(address as number, 1), returns({ errno: EFAULT }), { call: "copyFromUser" }),
      ...numberRows("length", (length) => process.copyFromUser(ANON, length as number), throws(RangeError, "length"), { call: "copyFromUser" }),
      ...numberRows(
        "address",
        (address) => process.copyToUser(address as number, Uint8Array.of(1)),
        returns({ errno: EFAULT }),
        { call: "copyToUser" },
      ),
      row("copyToUser data", "array", () => process.copyToUser(ANON, [1] as never), throws(TypeError, "data")),
      row("copyToUser data", "null", () => process.copyToUser(ANON, null as never), throws(TypeError, "data")),
    ]);
  });
});
