// Hostile arguments for the library calls around the kernel model:
// Kernel.create and its options, process and file creation, and the
// MappedFile methods. Misuse gets a TypeError (wrong type) or RangeError
// (bad value) naming the argument, and no call changes any state. The
// first tests check that the state snapshot and the table runner these
// tests rely on do see a change.

import { describe, expect, it } from "vitest";
import {
  Kernel, MAP_ANONYMOUS, MAP_FIXED, MAP_PRIVATE, MAP_SHARED, O_NONBLOCK, PROT_READ, UFFD_API, UFFDIO_REGISTER_MODE_MISSING,
  checkInvariants, kernelProfile, wasmSha256, type KernelOptions, type MappedFile,
} from "../src/index.js";
import { createKernel, drain, pageOf, settledNow, watch } from "./helpers.js";
import {
  NOT_NUMBERS, NOT_NUMBERS_PRESENT, NOT_OBJECTS, NOT_U64, PAGE, numberRows, returns, row, runRows, throws, type Row,
} from "./hostile-helpers.js";
import { snapshot } from "./state-snapshot.js";

const REGION = 0x1000_0000;
const SHMEM = 0x2000_0000;
const NOT_BOOLEANS: readonly (readonly [string, unknown])[] = [["number", 1], ["string", "true"], ["null", null], ["object", {}]];

describe("state snapshot", () => {
  it("sees each kind of change", async () => {
    const kernel = await createKernel();
    const process = kernel.createProcess();
    expect(process.mmap(4 * PAGE, { flags: MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, address: REGION })).toBe(REGION);
    const file = kernel.memfdCreate("snapshot", PAGE);
    expect(process.mmap(PAGE, { file, flags: MAP_SHARED | MAP_FIXED, address: SHMEM })).toBe(SHMEM);
    await settledNow(process.write(REGION, pageOf(1)));
    const uffd = process.userfaultfd(O_NONBLOCK);

    const changes: [string, () => unknown][] = [
      ["a byte of a present page", () => process.write(REGION + 100, Uint8Array.of(9))],
      ["a new page", () => process.write(REGION + PAGE, Uint8Array.of(9))],
      ["a page-cache page", () => file.write(0, Uint8Array.of(9))],
      ["a protection", () => process.mprotect(REGION + 2 * PAGE, PAGE, PROT_READ)],
      ["UFFDIO_API", () => uffd.api({ api: UFFD_API, features: 0 })],
      ["a registration", () => uffd.register({ start: REGION + 3 * PAGE, len: PAGE, mode: UFFDIO_REGISTER_MODE_MISSING })],
      ["a queued fault", () => watch(process.read(REGION + 3 * PAGE, 1))],
      ["O_NONBLOCK of a file", () => uffd.setNonblocking(false)],
      ["a descriptor", () => uffd.dupInto(process)],
      ["a new process", () => kernel.createProcess()],
      ["a new file", () => kernel.memfdCreate("another", PAGE)],
    ];
    for (const [name, change] of changes) {
      const before = snapshot(kernel);
      change();
      await drain();
      expect(snapshot(kernel), name).not.toEqual(before);
    }
  });

  it("makes the runner fail on a change", async () => {
    const kernel = await createKernel();
    const process = kernel.createProcess();
    expect(process.mmap(PAGE, { flags: MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, address: REGION })).toBe(REGION);
    const changing = row("mprotect", "valid", () => process.mprotect(REGION, PAGE, PROT_READ), returns(0));
    await expect(runRows(kernel, [changing])).rejects.toThrow(/state after mprotect valid/);
  });
});

describe("Kernel.create with hostile options", () => {
  it("each option", async () => {
    const create = (options: unknown) => Kernel.create(options as KernelOptions);
    const option = (name: string, value: unknown) => () => create({ build: "debug", [name]: value });
    const badKernels = ["5.10", "", "6.18 ", "constructor", "__proto__", "toString"];
    const rows: Row[] = [
      ...NOT_OBJECTS.map(([name, value]) => row("options", name, () => create(value), throws(TypeError, "options"))),
      ...badKernels.map((name) => row("kernel", JSON.stringify(name), option("kernel", name), throws(RangeError, "kernel must be one of"))),
      ...[["number", 6.18], ["null", null], ["object", {}], ["symbol", Symbol("6.18")], ["bigint", 6n]].map(([name, value]) =>
        row("kernel", name as string, option("kernel", value), throws(TypeError, "kernel")),
      ),
      ...NOT_BOOLEANS.map(([name, value]) => row("mmapChangingGate", name, option("mmapChangingGate", value), throws(TypeError, "mmapChangingGate"))),
      row("mmapChangingGate", "true on 4.17", () => create({ kernel: "4.17", mmapChangingGate: true }), throws(RangeError, "mmap_changing gate")),
      ...numberRows("maxMemory", (value) => option("maxMemory", value)(), throws(RangeError, "maxMemory"), { optional: true }),
      row("maxMemory", "0", option("maxMemory", 0), throws(RangeError, "maxMemory")),
      row("maxMemory", "one page", option("maxMemory", PAGE), throws(RangeError, "maxMemory")),
      row("maxMemory", "2^40", option("maxMemory", 2 ** 40), throws(RangeError, "maxMemory")),
      ...numberRows("mmapMinAddr", (value) => option("mmapMinAddr", value)(), throws(RangeError, "mmapMinAddr"), { optional: true }),
      row("mmapMinAddr", "unaligned", option("mmapMinAddr", 1), throws(RangeError, "mmapMinAddr")),
      ...NOT_BOOLEANS.map(([name, value]) => row(
        "unprivilegedUserfaultfd",
        name,
        option("unprivilegedUserfaultfd", value),
        throws(TypeError, "unprivilegedUserfaultfd"),
      )),
      ...[["unknown", "fast"], ["number", 1], ["null", null]].map(([name, value]) => row(
        "build",
        name as string,
        option("build", value),
        throws(TypeError, "build"),
      )),
      row("options", "misspelt mmapChangingGate", () => create({ mmapChangingGat: false }), throws(TypeError, "mmapChangingGat")),
      row("options", "unknown name", () => create({ build: "debug", verbose: true }), throws(TypeError, "verbose")),
    ];
    await runRows(() => null, rows);
  });

  it("internal paths and the checker", async () => {
    const kernel = await createKernel();
    await runRows(kernel, [
      ...[["string", "no"], ["number", 1], ["null", null]].map(([name, value]) =>
        row("spawnProcess privileged", name as string, () => kernel.spawnProcess(value as boolean), throws(TypeError, "privileged")),
      ),
      ...[["NaN", NaN], ["negative", -PAGE], ["zero", 0], ["unaligned", 100], ["2^60", 2 ** 60], ["string", "4096"]].map(([name, value]) =>
        row("createAnonymousShmem size", name as string, () => kernel.createAnonymousShmem(value as number), throws(RangeError, "size")),
      ),
      ...[["null", null], ["undefined", undefined], ["string", "x"]].map(([name, value]) =>
        row("waitFor executor", name as string, () => kernel.waitFor("x", value as never), throws(TypeError, "executor")),
      ),
      ...[["null", null], ["object", {}], ["number", 42]].map(([name, value]) =>
        row("checkInvariants kernel", name as string, () => checkInvariants(value as Kernel), throws(TypeError, "kernel")),
      ),
    ]);
  });

  it("kernelProfile and wasmSha256", async () => {
    await runRows(() => null, [
      ...[["unknown", "fast"], ["null", null], ["number", 1]].map(([name, value]) =>
        row("wasmSha256 build", name as string, () => wasmSha256(value as never), throws(TypeError, "build")),
      ),
      row("kernelProfile", "constructor", () => kernelProfile("constructor"), throws(RangeError, "kernel must be one of")),
      row("kernelProfile", "number", () => kernelProfile(6.18 as never), throws(TypeError, "kernel")),
    ]);
  });
});

describe("kernel calls with hostile arguments", () => {
  it("createProcess", async () => {
    const kernel = await createKernel();
    kernel.createProcess();
    await runRows(kernel, [
      ...NOT_OBJECTS.map(([name, value]) => row(
        "createProcess options",
        name,
        () => kernel.createProcess(value as object),
        throws(TypeError, "options"),
      )),
      ...NOT_BOOLEANS.map(([name, value]) => row(
        "createProcess privileged",
        name,
        () => kernel.createProcess({ privileged: value as boolean }),
        throws(TypeError, "privileged"),
      )),
    ]);
  });

  it("memfdCreate and createFile", async () => {
    const kernel = await createKernel();
    kernel.memfdCreate("existing", PAGE);
    const rows: Row[] = [];
    for (const [call, create] of [
      ["memfdCreate", (name: unknown, size: unknown, options?: unknown) => kernel.memfdCreate(name as string, size as number, options as object)],
      ["createFile", (name: unknown, size: unknown, options?: unknown) => kernel.createFile(name as string, size as number, options as object)],
    ] as const) {
      rows.push(
        ...[["number", 1], ["null", null], ["undefined", undefined], ["symbol", Symbol("name")]].map(([name, value]) =>
          row(`${call} name`, name as string, () => create(value, PAGE), throws(TypeError, "name")),
        ),
        ...numberRows("size", (size) => create("hostile", size), throws(RangeError, "size"), { call }),
        ...NOT_OBJECTS.map(([name, value]) => row(`${call} options`, name, () => create("hostile", PAGE, value), throws(TypeError, "options"))),
        ...NOT_BOOLEANS.map(([name, value]) => row(
          `${call} readOnly`,
          name,
          () => create("hostile", PAGE, { readOnly: value }),
          throws(TypeError, "readOnly"),
        )),
      );
    }
    await runRows(kernel, rows);
  });
});

describe("MappedFile methods with hostile arguments", () => {
  async function setup(): Promise<{ kernel: Kernel; file: MappedFile; freed: MappedFile }> {
    const kernel = await createKernel();
    const file = kernel.memfdCreate("hostile", 2 * PAGE);
    file.write(0, pageOf(0x46));
    const freed = kernel.memfdCreate("freed", PAGE);
    freed.close();
    expect(freed.cache, "the closed, unmapped file's page cache").toBe(0);
    return { kernel, file, freed };
  }

  it("write and read", async () => {
    const { kernel, file, freed } = await setup();
    const notBytes: [string, unknown][] = [
      ["array", [1]], ["string", "a"], ["ArrayBuffer", new ArrayBuffer(1)], ["null", null], ["undefined", undefined],
    ];
    await runRows(kernel, [
      ...numberRows("offset", (offset) => file.write(offset as number, Uint8Array.of(1)), throws(RangeError, "offset"), { call: "write" }),
      row("write offset", "at the end", () => file.write(2 * PAGE, Uint8Array.of(1)), throws(RangeError, "outside")),
      row("write offset", "2^53 - 1", () => file.write(Number.MAX_SAFE_INTEGER, Uint8Array.of(1)), throws(RangeError, "outside")),
      row("write", "across the end", () => file.write(2 * PAGE - 1, Uint8Array.of(1, 2)), throws(RangeError, "outside")),
      ...notBytes.map(([name, data]) => row("write data", name, () => file.write(0, data as Uint8Array), throws(TypeError, "data"))),
      row("write", "to a freed file", () => freed.write(0, Uint8Array.of(1)), throws(Error, "already freed")),
      ...numberRows("offset", (offset) => file.read(offset as number, 1), throws(RangeError, "offset"), { call: "read" }),
      ...numberRows("length", (length) => file.read(0, length as number), throws(RangeError, "length"), { call: "read" }),
      row("read length", "past the end", () => file.read(PAGE, 2 * PAGE), throws(RangeError, "outside")),
      row("read", "from a freed file", () => freed.read(0, 1), throws(Error, "already freed")),
    ]);
  });

  it("hasPage, hwpoison and isHwpoisoned", async () => {
    const { kernel, file, freed } = await setup();
    await runRows(kernel, [
      ...numberRows("offset", (offset) => file.hasPage(offset as number), returns(false), { call: "hasPage" }),
      row("hasPage offset", "2^52", () => file.hasPage(2 ** 52), returns(false)),
      row("hasPage", "of a freed file", () => freed.hasPage(0), returns(false)),
      ...numberRows("offset", (offset) => file.isHwpoisoned(offset as number), returns(false), { call: "isHwpoisoned" }),
      row("isHwpoisoned", "of a freed file", () => freed.isHwpoisoned(0), returns(false)),
      ...numberRows("offset", (offset) => file.hwpoison(offset as number), throws(RangeError, "offset"), { call: "hwpoison" }),
      row("hwpoison offset", "with no cached page", () => file.hwpoison(PAGE), throws(RangeError, "no cached page")),
      row("hwpoison offset", "at the end", () => file.hwpoison(2 * PAGE), throws(RangeError, "outside")),
      row("hwpoison", "of a freed file", () => freed.hwpoison(0), throws(Error, "already freed")),
    ]);
  });
});

describe("value tables", () => {
  it("cover each class of hostile number", () => {
    const names = NOT_U64.map(([name]) => name);
    expect(names).toEqual(["negative", "-1", "fractional", "NaN", "Infinity", "-Infinity", "2^53", "2^64 - 4096", "2^64"]);
    expect(NOT_U64.every(([, value]) => !Number.isSafeInteger(value) || value < 0)).toBe(true);
    expect(NOT_NUMBERS.every(([, value]) => typeof value !== "number")).toBe(true);
    expect(NOT_NUMBERS_PRESENT.map(([name]) => name)).not.toContain("undefined");
  });
});
