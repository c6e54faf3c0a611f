// Hostile arguments for every method of a Userfaultfd. Each bad field of
// an ioctl argument gets EINVAL with the out-field left as it was, as
// Linux 6.18 does. A field of the wrong type gets a TypeError naming it.
// No call changes any state, but the fill ioctls and WRITEPROTECT still
// count as calls in stats.ioctls.

import { describe, expect, it } from "vitest";
import {
  EINVAL, MAP_ANONYMOUS, MAP_FIXED, MAP_PRIVATE, MAP_SHARED, O_NONBLOCK, UFFD_API, UFFD_FEATURE_MOVE, UFFD_FEATURE_POISON,
  UFFDIO_REGISTER_MODE_MINOR, UFFDIO_REGISTER_MODE_MISSING, UFFDIO_REGISTER_MODE_WP, UFFDIO_WRITEPROTECT_MODE_DONTWAKE,
  UFFDIO_WRITEPROTECT_MODE_WP, type Kernel, type Process, type Userfaultfd,
} from "../src/index.js";
import { createKernel, drain, pageOf, settledNow, watch } from "./helpers.js";
import {
  NOT_NUMBERS, NOT_NUMBERS_PRESENT, NOT_OBJECTS, NOT_U64, PAGE, TASK_SIZE, numberRows, returns, row, runRows, throws, type Expected, type Row,
} from "./hostile-helpers.js";

/** 4 anonymous pages registered MISSING: page 0 filled by COPY, a read of page 3 blocked on a fault. */
const REGION = 0x1000_0000;
/** 2 pages of a memfd, MAP_SHARED and registered MINOR. The page cache contains page 0. */
const SHMEM = 0x2000_0000;
/** One anonymous page registered WP, present and write-protected. */
const WP_PAGE = 0x3000_0000;
/** One anonymous page, not registered, filled with 0x53: the source of COPY and MOVE. */
const SRC = 0x5000_0000;
/** An out-field preset that no result of the kernel equals. */
const PRESET = 7;
const FIXED = MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED;
/** One ioctl call counted in stats.ioctls. */
const ONE_CALL = { ioctls: 1 };

interface Env {
  kernel: Kernel;
  process: Process;
  /** The process's own userfaultfd, with UFFDIO_API done and the ranges above registered. */
  uffd: Userfaultfd;
  /** A second userfaultfd of the process, before UFFDIO_API. */
  fresh: Userfaultfd;
}

async function setup(): Promise<Env> {
  const kernel = await createKernel();
  const process = kernel.createProcess();
  expect(process.mmap(4 * PAGE, { flags: FIXED, address: REGION })).toBe(REGION);
  expect(process.mmap(PAGE, { flags: FIXED, address: WP_PAGE })).toBe(WP_PAGE);
  expect(process.mmap(PAGE, { flags: FIXED, address: SRC })).toBe(SRC);
  const file = kernel.memfdCreate("hostile", 2 * PAGE);
  expect(process.mmap(2 * PAGE, { file, flags: MAP_SHARED | MAP_FIXED, address: SHMEM })).toBe(SHMEM);
  file.write(0, pageOf(0x46));
  await settledNow(process.write(SRC, pageOf(0x53)));
  await settledNow(process.write(WP_PAGE, pageOf(0x57)));

  const uffd = process.userfaultfd(O_NONBLOCK);
  expect(uffd.api({ api: UFFD_API, features: UFFD_FEATURE_MOVE | UFFD_FEATURE_POISON }).errno).toBe(0);
  expect(uffd.register({ start: REGION, len: 4 * PAGE, mode: UFFDIO_REGISTER_MODE_MISSING }).errno).toBe(0);
  expect(uffd.register({ start: WP_PAGE, len: PAGE, mode: UFFDIO_REGISTER_MODE_WP }).errno).toBe(0);
  expect(uffd.register({ start: SHMEM, len: 2 * PAGE, mode: UFFDIO_REGISTER_MODE_MINOR }).errno).toBe(0);
  expect(uffd.copy({ dst: REGION, src: SRC, len: PAGE, mode: 0 })).toEqual({ errno: 0, copy: PAGE });
  expect(uffd.writeprotect({ start: WP_PAGE, len: PAGE, mode: UFFDIO_WRITEPROTECT_MODE_WP }).errno).toBe(0);
  const blocked = watch(process.read(REGION + 3 * PAGE, 1));
  await drain();
  expect(blocked.state, "the read of the registered page").toBe("pending");
  const fresh = process.userfaultfd();
  return { kernel, process, uffd, fresh };
}

/** An ioctl method taking one argument object, called with `args`. */
type Ioctl = (args: Record<string, unknown>) => unknown;

interface IoctlSpec {
  /** The method's name, for labels. */
  readonly name: string;
  readonly call: Ioctl;
  /** Valid arguments; each row replaces one field. */
  readonly base: Record<string, number>;
  /** The address fields, checked by validate_range (the first is also the range start). */
  readonly addresses: readonly string[];
  /** The result of a call rejected with EINVAL. */
  readonly einval: unknown;
  /** The name of the out-field, or null for an ioctl without one. */
  readonly outField: string | null;
  /** Mode values with a bit the ioctl does not know, or a forbidden combination. */
  readonly badModes: readonly (readonly [string, number])[];
  /** Whether stats.ioctls counts the call. */
  readonly counted: boolean;
}

/** Builds the rows of one ioctl: every numeric field with every hostile value, then bad ranges and modes. */
function ioctlRows(spec: IoctlSpec): Row[] {
  const counted = spec.counted ? ONE_CALL : {};
  const einval: Expected = returns(spec.einval);
  const callWith = (field: string, value: unknown) => () => spec.call({ ...spec.base, [field]: value });
  const rows: Row[] = [];
  for (const field of Object.keys(spec.base)) {
    if (field === spec.outField) continue;
    rows.push(...numberRows(field, (value) => callWith(field, value)(), einval, { counted, call: spec.name }));
  }
  const start = spec.addresses[0]!;
  const label = (field: string) => `${spec.name} ${field}`;
  for (const address of spec.addresses) {
    rows.push(row(label(address), "unaligned", callWith(address, spec.base[address]! + 1), einval, counted));
    rows.push(row(label(address), "TASK_SIZE", callWith(address, TASK_SIZE), einval, counted));
  }
  rows.push(
    row(label(start), "0", callWith(start, 0), einval, counted),
    row(label(start), "below mmap_min_addr", callWith(start, PAGE), einval, counted),
    row(label("len"), "0", callWith("len", 0), einval, counted),
    row(label("len"), "unaligned", callWith("len", 100), einval, counted),
    row(label("len"), "past TASK_SIZE", callWith("len", TASK_SIZE - spec.base[start]! + PAGE), einval, counted),
    row(label("len"), "TASK_SIZE", callWith("len", TASK_SIZE), einval, counted),
    ...spec.badModes.map(([name, mode]) => row(label("mode"), name, callWith("mode", mode), einval, counted)),
    ...NOT_OBJECTS.map(([name, value]) => row(label("argument"), name, () => spec.call(value as never), throws(TypeError, "argument"))),
    row(label("argument"), "undefined", () => spec.call(undefined as never), throws(TypeError, "argument")),
  );
  if (spec.outField !== null) {
    const outField = spec.outField;
    rows.push(...NOT_NUMBERS_PRESENT.map(([name, value]) => row(label(outField), name, callWith(outField, value), throws(TypeError, outField))));
  }
  return rows;
}

const UNKNOWN_MODE_BITS: readonly (readonly [string, number])[] = [["bit 31", 0x8000_0000], ["bit 40", 2 ** 40]];

function specs(uffd: Userfaultfd): IoctlSpec[] {
  const fill = (field: string) => ({ errno: EINVAL, [field]: PRESET });
  return [
    {
      name: "register", call: (args) => uffd.register(args as never), base: { start: SRC, len: PAGE, mode: UFFDIO_REGISTER_MODE_MISSING },
      addresses: ["start"], einval: { errno: EINVAL, ioctls: 0n }, outField: null, counted: false,
      badModes: [["0", 0], ["8", 8], ...UNKNOWN_MODE_BITS],
    },
    {
      name: "unregister", call: (args) => uffd.unregister(args as never), base: { start: REGION, len: PAGE },
      addresses: ["start"], einval: { errno: EINVAL }, outField: null, counted: false, badModes: [],
    },
    {
      name: "wake", call: (args) => uffd.wake(args as never), base: { start: REGION + 3 * PAGE, len: PAGE },
      addresses: ["start"], einval: { errno: EINVAL }, outField: null, counted: false, badModes: [],
    },
    {
      name: "copy", call: (args) => uffd.copy(args as never), base: { dst: REGION + PAGE, src: SRC, len: PAGE, mode: 0, copy: PRESET },
      addresses: ["dst"], einval: fill("copy"), outField: "copy", counted: true, badModes: [["4", 4], ...UNKNOWN_MODE_BITS],
    },
    {
      name: "zeropage", call: (args) => uffd.zeropage(args as never), base: { start: REGION + PAGE, len: PAGE, mode: 0, zeropage: PRESET },
      addresses: ["start"], einval: fill("zeropage"), outField: "zeropage", counted: true, badModes: [["2", 2], ...UNKNOWN_MODE_BITS],
    },
    {
      name: "writeprotect", call: (args) => uffd.writeprotect(args as never), base: { start: WP_PAGE, len: PAGE, mode: 0 },
      addresses: ["start"], einval: { errno: EINVAL }, outField: null, counted: true,
      badModes: [["WP and DONTWAKE", UFFDIO_WRITEPROTECT_MODE_WP | UFFDIO_WRITEPROTECT_MODE_DONTWAKE], ["4", 4], ...UNKNOWN_MODE_BITS],
    },
    {
      name: "continue", call: (args) => uffd.continue(args as never), base: { start: SHMEM, len: PAGE, mode: 0, mapped: PRESET },
      addresses: ["start"], einval: fill("mapped"), outField: "mapped", counted: true, badModes: [["4", 4], ...UNKNOWN_MODE_BITS],
    },
    {
      name: "poison", call: (args) => uffd.poison(args as never), base: { start: REGION + PAGE, len: PAGE, mode: 0, updated: PRESET },
      addresses: ["start"], einval: fill("updated"), outField: "updated", counted: true, badModes: [["2", 2], ...UNKNOWN_MODE_BITS],
    },
    {
      name: "move", call: (args) => uffd.move(args as never), base: { dst: REGION + PAGE, src: SRC, len: PAGE, mode: 0, move: PRESET },
      addresses: ["dst", "src"], einval: fill("move"), outField: "move", counted: true, badModes: [["4", 4], ...UNKNOWN_MODE_BITS],
    },
  ];
}

describe("userfaultfd ioctls with hostile arguments", () => {
  for (const name of ["register", "unregister", "wake", "copy", "zeropage", "writeprotect", "continue", "poison", "move"]) {
    it(name, async () => {
      const { kernel, uffd } = await setup();
      const spec = specs(uffd).find((entry) => entry.name === name)!;
      await runRows(kernel, ioctlRows(spec));
    });
  }

  it("copy source past TASK_SIZE", async () => {
    const { kernel, uffd } = await setup();
    // COPY's source need not be aligned, but must lie below TASK_SIZE.
    const copy = (src: number) => uffd.copy({ dst: REGION + PAGE, src, len: PAGE, mode: 0, copy: PRESET });
    await runRows(kernel, [
      row("copy src", "ending past TASK_SIZE", () => copy(TASK_SIZE - PAGE + 1), returns({ errno: EINVAL, copy: PRESET }), ONE_CALL),
      row("copy src", "TASK_SIZE - 1", () => copy(TASK_SIZE - 1), returns({ errno: EINVAL, copy: PRESET }), ONE_CALL),
    ]);
  });
});

describe("UFFDIO_API with hostile arguments", () => {
  it("api and features", async () => {
    const { kernel, fresh } = await setup();
    const zeroed = returns({ errno: EINVAL, api: 0, features: 0, ioctls: 0n });
    const api = (args: unknown) => fresh.api(args as never);
    const notFeatures = NOT_NUMBERS.filter(([name]) => name !== "bigint");
    await runRows(kernel, [
      ...numberRows("api", (value) => api({ api: value, features: 0 }), zeroed, { call: "UFFDIO_API" }),
      row("UFFDIO_API api", "0xab", () => api({ api: 0xab, features: 0 }), zeroed),
      ...NOT_U64.map(([name, value]) => row("UFFDIO_API features", name, () => api({ api: UFFD_API, features: value }), zeroed)),
      ...notFeatures.map(([name, value]) => row(
        "UFFDIO_API features",
        name,
        () => api({ api: UFFD_API, features: value }),
        throws(TypeError, "features"),
      )),
      row("UFFDIO_API features", "bit 17", () => api({ api: UFFD_API, features: 1 << 17 }), zeroed),
      row("UFFDIO_API features", "bit 31", () => api({ api: UFFD_API, features: 2 ** 31 }), zeroed),
      row("UFFDIO_API features", "bit 40", () => api({ api: UFFD_API, features: 2 ** 40 }), zeroed),
      row("UFFDIO_API features", "bit 17 as a bigint", () => api({ api: UFFD_API, features: 1n << 17n }), zeroed),
      row("UFFDIO_API features", "bit 63 as a bigint", () => api({ api: UFFD_API, features: 1n << 63n }), zeroed),
      row("UFFDIO_API features", "bit 64 as a bigint", () => api({ api: UFFD_API, features: 1n << 64n }), zeroed),
      row("UFFDIO_API features", "-1 as a bigint", () => api({ api: UFFD_API, features: -1n }), zeroed),
      ...NOT_OBJECTS.map(([name, value]) => row("UFFDIO_API argument", name, () => api(value), throws(TypeError, "argument"))),
    ]);

    expect(fresh.api({ api: UFFD_API, features: 0 }).errno, "UFFDIO_API after the rejected calls").toBe(0);
  });
});

describe("userfaultfd file calls with hostile arguments", () => {
  it("setNonblocking", async () => {
    const { kernel, uffd } = await setup();
    const notBooleans: [string, unknown][] = [["1", 1], ["string", "true"], ["null", null], ["undefined", undefined], ["object", {}]];
    await runRows(kernel, notBooleans.map(([name, value]) => row(
      "setNonblocking",
      name,
      () => uffd.setNonblocking(value as boolean),
      throws(TypeError, "nonblocking"),
    )));
  });

  it("dupInto", async () => {
    const { kernel, process, uffd } = await setup();
    const other = await createKernel();
    const foreign = other.createProcess();
    const exited = kernel.createProcess();
    exited.exit();
    const notProcesses: [string, unknown][] = [["null", null], ["undefined", undefined], ["object", {}], ["number", 1], ["string", "process"]];
    await runRows(kernel, [
      ...notProcesses.map(([name, value]) => row("dupInto process", name, () => uffd.dupInto(value as Process), throws(TypeError, "process"))),
      row("dupInto process", "of another Kernel", () => uffd.dupInto(foreign), throws(TypeError, "same Kernel")),
      row("dupInto process", "exited", () => uffd.dupInto(exited), throws(Error, "has exited")),
      ...numberRows("fd", (fd) => uffd.dupInto(process, fd as number), throws(RangeError, "fd"), { optional: true, call: "dupInto" }),
      row("dupInto fd", "in use", () => uffd.dupInto(process, uffd.fd), throws(Error, "in use")),
    ]);
  });
});
