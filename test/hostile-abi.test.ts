// Hostile input for the byte-level ABI: ioctl() with unknown requests and
// short, long and garbage structs, readBytes() with short buffers, and
// encodeMsg()/decodeMsg() with malformed messages. Each gets the errno
// Linux 6.18 gives (the struct left as it was), or a TypeError or
// RangeError naming the value, and no call changes any state.

import { describe, expect, it } from "vitest";
import {
  EFAULT, EINVAL, MAP_ANONYMOUS, MAP_FIXED, MAP_PRIVATE, O_NONBLOCK, UFFD_API, UFFD_EVENT_FORK, UFFD_EVENT_PAGEFAULT, UFFD_EVENT_REMAP,
  UFFD_EVENT_REMOVE, UFFD_EVENT_UNMAP, UFFD_FEATURE_MOVE, UFFD_FEATURE_POISON, UFFDIO_API, UFFDIO_CONTINUE, UFFDIO_COPY, UFFDIO_MOVE,
  UFFDIO_POISON, UFFDIO_REGISTER, UFFDIO_REGISTER_MODE_MISSING, UFFDIO_UNREGISTER, UFFDIO_WAKE, UFFDIO_WRITEPROTECT, UFFDIO_ZEROPAGE,
  decodeMsg, encodeMsg, ioctl, readBytes, seededRandom, type Kernel, type Userfaultfd,
} from "../src/index.js";
import { createKernel, drain, watch } from "./helpers.js";
import { NOT_NUMBERS, NOT_OBJECTS, NOT_U64, PAGE, numberRows, returns, row, runRows, throws, type Row } from "./hostile-helpers.js";

/** 4 anonymous pages registered MISSING; a read of page 0 is blocked on a fault. */
const REGION = 0x1000_0000;
/** The byte every struct is filled with around its fields, to show what the kernel left alone. */
const FILL = 0xee;
const TWO_64 = 1n << 64n;

interface Env {
  kernel: Kernel;
  /** With UFFDIO_API done and one fault queued. */
  uffd: Userfaultfd;
  /** Before UFFDIO_API. */
  fresh: Userfaultfd;
}

async function setup(): Promise<Env> {
  const kernel = await createKernel();
  const process = kernel.createProcess();
  expect(process.mmap(4 * PAGE, { flags: MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, address: REGION })).toBe(REGION);
  const uffd = process.userfaultfd(O_NONBLOCK);
  expect(uffd.api({ api: UFFD_API, features: UFFD_FEATURE_MOVE | UFFD_FEATURE_POISON }).errno).toBe(0);
  expect(uffd.register({ start: REGION, len: 4 * PAGE, mode: UFFDIO_REGISTER_MODE_MISSING }).errno).toBe(0);
  const blocked = watch(process.read(REGION, 1));
  await drain();
  expect(blocked.state, "the read of the registered page").toBe("pending");
  return { kernel, uffd, fresh: process.userfaultfd() };
}

interface RequestSpec {
  readonly name: string;
  readonly request: number;
  /** Bytes of the input fields the kernel reads. */
  readonly input: number;
  /** Whether stats.ioctls counts a call that reaches the method. */
  readonly counted: boolean;
}

const REQUESTS: readonly RequestSpec[] = [
  { name: "UFFDIO_API", request: UFFDIO_API, input: 24, counted: false },
  { name: "UFFDIO_REGISTER", request: UFFDIO_REGISTER, input: 24, counted: false },
  { name: "UFFDIO_UNREGISTER", request: UFFDIO_UNREGISTER, input: 16, counted: false },
  { name: "UFFDIO_WAKE", request: UFFDIO_WAKE, input: 16, counted: false },
  { name: "UFFDIO_COPY", request: UFFDIO_COPY, input: 32, counted: true },
  { name: "UFFDIO_ZEROPAGE", request: UFFDIO_ZEROPAGE, input: 24, counted: true },
  { name: "UFFDIO_MOVE", request: UFFDIO_MOVE, input: 32, counted: true },
  { name: "UFFDIO_WRITEPROTECT", request: UFFDIO_WRITEPROTECT, input: 24, counted: true },
  { name: "UFFDIO_CONTINUE", request: UFFDIO_CONTINUE, input: 24, counted: true },
  { name: "UFFDIO_POISON", request: UFFDIO_POISON, input: 24, counted: true },
];

/** Returns `length` bytes holding `fields` as little-endian u64 values, the rest FILL. */
function struct(length: number, fields: readonly bigint[] = []): Uint8Array {
  const bytes = new Uint8Array(length).fill(FILL);
  const view = new DataView(bytes.buffer);
  fields.forEach((value, index) => {
    if (8 * index + 8 <= length) view.setBigUint64(8 * index, BigInt.asUintN(64, value), true);
  });
  return bytes;
}

/** Returns `length` bytes drawn from a generator seeded with `seed`. */
function garbage(length: number, seed: number): Uint8Array {
  const next = seededRandom(seed);
  return Uint8Array.from({ length }, () => Math.floor(next() * 256));
}

/**
 * Returns a row that runs `request` on a copy of `arg` and expects `result`,
 * with the copy still equal to `arg` because the kernel wrote nothing back.
 */
function ioctlRow(
  uffd: Userfaultfd, label: string, request: number, arg: Uint8Array, result: number, counted?: { ioctls: number },
): Row {
  const run = () => {
    const bytes = arg.slice();
    return { result: ioctl(uffd, request, bytes), arg: Array.from(bytes) };
  };
  return { label, call: run, expected: returns({ result, arg: Array.from(arg) }), ...(counted ? { counted } : {}) };
}

describe("ioctl with hostile input", () => {
  it("unknown requests", async () => {
    const { kernel, uffd } = await setup();
    const unknown: (readonly [string, number])[] = [
      ["0", 0], ["1", 1], ["USERFAULTFD_IOC_NEW", 0xaa00], ["nr 0x40", 0xc018aa40], ["COPY with size 48", 0xc030aa03],
      ["COPY as _IOW", 0x4028aa03], ["COPY with type 0xAB", 0xc028ab03], ["COPY + 0.5", UFFDIO_COPY + 0.5], ...NOT_U64,
    ];
    const arg = struct(40, [BigInt(REGION + PAGE), BigInt(REGION), BigInt(PAGE), 0n]);
    await runRows(kernel, [
      ...unknown.map(([name, request]) => ioctlRow(uffd, `request ${name}`, request, arg, -EINVAL)),
      ...NOT_NUMBERS.map(([name, request]) => row("request", name, () => ioctl(uffd, request as number, arg.slice()), throws(TypeError, "request"))),
    ]);
  });

  it("arg of the wrong type", async () => {
    const { kernel, uffd } = await setup();
    const notBytes: [string, unknown][] = [
      ["ArrayBuffer", new ArrayBuffer(40)], ["DataView", new DataView(new ArrayBuffer(40))], ["array", new Array(40).fill(0)],
      ["Int8Array", new Int8Array(40)], ["Uint16Array", new Uint16Array(20)], ["null", null], ["undefined", undefined], ["string", "x".repeat(40)],
    ];
    await runRows(kernel, notBytes.map(([name, arg]) => row(
      "arg",
      name,
      () => ioctl(uffd, UFFDIO_COPY, arg as Uint8Array),
      throws(TypeError, "arg"),
    )));
  });

  it("uffd that is not a Userfaultfd", async () => {
    const { kernel } = await setup();
    const notHandles: [string, unknown][] = [["object", {}], ["null", null], ["number", 42], ["string", "3"], ["undefined", undefined]];
    await runRows(kernel, notHandles.flatMap(([name, handle]) => [
      row("ioctl uffd", name, () => ioctl(handle as Userfaultfd, UFFDIO_API, new Uint8Array(24)), throws(TypeError, "uffd")),
      row("readBytes uffd", name, () => readBytes(handle as Userfaultfd, new Uint8Array(32)), throws(TypeError, "uffd")),
    ]));
  });

  it("short structs", async () => {
    const { kernel, uffd } = await setup();
    const rows: Row[] = [];
    for (const spec of REQUESTS) {
      for (const length of [0, 1, 8, spec.input - 1]) {
        rows.push(ioctlRow(uffd, `${spec.name} with ${length} bytes`, spec.request, struct(length), -EFAULT));
      }
    }
    await runRows(kernel, rows);
  });

  it("garbage structs", async () => {
    const { kernel, uffd } = await setup();
    const rows: Row[] = [];
    for (const spec of REQUESTS.filter((entry) => entry.request !== UFFDIO_API)) {
      const counted = spec.counted ? { ioctls: 1 } : undefined;
      const cases: [string, bigint[]][] = [
        ["start 2^64 - 4096", [TWO_64 - 4096n, BigInt(PAGE), BigInt(PAGE), 0n]],
        ["start + len wrapping to 0", [BigInt(REGION), TWO_64 - BigInt(REGION), TWO_64 - BigInt(REGION), 0n]],
        ["len 2^64 - 1", [BigInt(REGION), TWO_64 - 1n, TWO_64 - 1n, 0n]],
        ["every field 2^64 - 1", [TWO_64 - 1n, TWO_64 - 1n, TWO_64 - 1n, TWO_64 - 1n]],
      ];
      // The struct is 8 bytes longer than the input fields and the out-field together.
      const length = spec.input + 16;
      for (const [name, fields] of cases) rows.push(ioctlRow(uffd, `${spec.name} ${name}`, spec.request, struct(length, fields), -EINVAL, counted));
      for (const seed of [1, 2, 3]) {
        rows.push(ioctlRow(uffd, `${spec.name} random bytes, seed ${seed}`, spec.request, garbage(length, seed), -EINVAL, counted));
      }
    }
    await runRows(kernel, rows);
  });

  it("mode bit 63", async () => {
    const { kernel, uffd } = await setup();
    const bit63 = 1n << 63n;
    const range = [BigInt(REGION + PAGE), BigInt(PAGE)];
    await runRows(kernel, [
      ioctlRow(uffd, "UFFDIO_REGISTER mode bit 63", UFFDIO_REGISTER, struct(32, [...range, bit63]), -EINVAL),
      ioctlRow(
        uffd,
        "UFFDIO_COPY mode bit 63",
        UFFDIO_COPY,
        struct(40, [BigInt(REGION + PAGE), BigInt(REGION), BigInt(PAGE), bit63]),
        -EINVAL,
        { ioctls: 1 },
      ),
      ioctlRow(uffd, "UFFDIO_ZEROPAGE mode bit 63", UFFDIO_ZEROPAGE, struct(32, [...range, bit63]), -EINVAL, { ioctls: 1 }),
      ioctlRow(
        uffd,
        "UFFDIO_MOVE mode bit 63",
        UFFDIO_MOVE,
        struct(40, [BigInt(REGION + PAGE), BigInt(REGION), BigInt(PAGE), bit63]),
        -EINVAL,
        { ioctls: 1 },
      ),
      ioctlRow(uffd, "UFFDIO_WRITEPROTECT mode bit 63", UFFDIO_WRITEPROTECT, struct(24, [...range, bit63]), -EINVAL, { ioctls: 1 }),
      ioctlRow(uffd, "UFFDIO_CONTINUE mode bit 63", UFFDIO_CONTINUE, struct(32, [...range, bit63]), -EINVAL, { ioctls: 1 }),
      ioctlRow(uffd, "UFFDIO_POISON mode bit 63", UFFDIO_POISON, struct(32, [...range, bit63]), -EINVAL, { ioctls: 1 }),
    ]);
  });

  it("requests before UFFDIO_API", async () => {
    const { kernel, fresh } = await setup();
    const arg = struct(48, [BigInt(REGION + PAGE), BigInt(REGION), BigInt(PAGE), 0n]);
    const rows = REQUESTS.filter((spec) => spec.request !== UFFDIO_API).map((spec) => ioctlRow(
      fresh,
      `${spec.name} before UFFDIO_API`,
      spec.request,
      arg,
      -EINVAL,
    ));
    await runRows(kernel, rows);
  });

  it("UFFDIO_API with garbage", async () => {
    const { kernel, fresh } = await setup();
    // A rejected UFFDIO_API zeroes the 24 bytes it reads and writes; bytes past them stay.
    const zeroedApi = (bytes: Uint8Array) => {
      const expected = bytes.slice();
      expected.fill(0, 0, 24);
      return expected;
    };
    const apiRow = (label: string, arg: Uint8Array): Row => ({
      label,
      call: () => {
        const bytes = arg.slice();
        return { result: ioctl(fresh, UFFDIO_API, bytes), arg: Array.from(bytes) };
      },
      expected: returns({ result: -EINVAL, arg: Array.from(zeroedApi(arg)) }),
    });
    await runRows(kernel, [
      apiRow("api 0xab", struct(32, [0xabn, 0n])),
      apiRow("api 2^64 - 1", struct(32, [TWO_64 - 1n, 0n])),
      apiRow("features bit 17", struct(32, [BigInt(UFFD_API), 1n << 17n])),
      apiRow("features bit 63", struct(32, [BigInt(UFFD_API), 1n << 63n])),
      apiRow("random bytes", garbage(32, 4)),
    ]);
    expect(ioctl(fresh, UFFDIO_API, struct(24, [BigInt(UFFD_API), 0n])), "UFFDIO_API after the rejected calls").toBe(0);
  });
});

describe("readBytes with hostile buffers", () => {
  it("wrong types and short buffers", async () => {
    const { kernel, uffd, fresh } = await setup();
    const notBytes: [string, unknown][] = [
      ["ArrayBuffer", new ArrayBuffer(32)], ["array", new Array(32).fill(0)], ["Uint32Array", new Uint32Array(8)],
      ["null", null], ["undefined", undefined],
    ];
    await runRows(kernel, [
      ...notBytes.map(([name, buffer]) => row("readBytes buffer", name, () => readBytes(uffd, buffer as Uint8Array), throws(TypeError, "buffer"))),
      // The queued fault stays queued: a read too short for one message takes nothing.
      ...[0, 1, 31].map((length) => row(
        "readBytes buffer",
        `${length} bytes`,
        () => readBytes(uffd, new Uint8Array(length)),
        returns({ errno: EINVAL, bytes: 0 }),
      )),
      row("readBytes", "before UFFDIO_API", () => readBytes(fresh, new Uint8Array(32)), returns({ errno: EINVAL, bytes: 0 })),
    ]);
  });
});

describe("uffd_msg encoding with hostile messages", () => {
  it("encodeMsg", async () => {
    const { kernel } = await setup();
    const encode = (msg: unknown) => encodeMsg(msg as never);
    const unknownEvents: [string, number][] = [
      ["0", 0], ["0x11", 0x11], ["0x17", 0x17], ["0xff", 0xff], ["0x112", 0x112], ["fractional", UFFD_EVENT_PAGEFAULT + 0.5],
      ["NaN", NaN], ["-1", -1],
    ];
    const fieldRows = (event: number, eventName: string, base: Record<string, number>, u32: readonly string[]): Row[] =>
      Object.keys(base).flatMap((field) =>
        numberRows(field, (value) => encode({ event, ...base, [field]: value }), throws(RangeError, field), { call: eventName }).concat(
          u32.includes(field) ? [row(
            `${eventName} ${field}`,
            "2^32",
            () => encode({ event, ...base, [field]: 2 ** 32 }),
            throws(RangeError, field),
          )] : [],
        ),
      );
    await runRows(kernel, [
      ...NOT_OBJECTS.map(([name, value]) => row("encodeMsg message", name, () => encode(value), throws(TypeError, "message"))),
      row("encodeMsg message", "undefined", () => encode(undefined), throws(TypeError, "message")),
      ...unknownEvents.map(([name, event]) => row("encodeMsg event", name, () => encode({ event }), throws(RangeError, "unknown event"))),
      ...NOT_NUMBERS.map(([name, event]) => row("encodeMsg event", name, () => encode({ event }), throws(TypeError, "event"))),
      ...fieldRows(UFFD_EVENT_PAGEFAULT, "PAGEFAULT", { flags: 0, address: REGION, ptid: 1 }, ["ptid"]),
      ...fieldRows(UFFD_EVENT_FORK, "FORK", { ufd: 3 }, ["ufd"]),
      ...fieldRows(UFFD_EVENT_REMAP, "REMAP", { from: REGION, to: REGION + PAGE, len: PAGE }, []),
      ...fieldRows(UFFD_EVENT_REMOVE, "REMOVE", { start: REGION, end: REGION + PAGE }, []),
      ...fieldRows(UFFD_EVENT_UNMAP, "UNMAP", { start: REGION, end: REGION + PAGE }, []),
    ]);
  });

  it("decodeMsg", async () => {
    const { kernel } = await setup();
    const decode = (bytes: unknown) => decodeMsg(bytes as Uint8Array);
    const message = (event: number, fields: readonly bigint[]) => {
      const bytes = struct(32, [0n, ...fields]);
      bytes.fill(0, 0, 8);
      bytes[0] = event;
      return bytes;
    };
    const notBytes: [string, unknown][] = [
      ["ArrayBuffer", new ArrayBuffer(32)], ["array", new Array(32).fill(0)], ["Uint16Array", new Uint16Array(16)], ["null", null], ["string", "x"],
    ];
    const huge = 1n << 53n;
    await runRows(kernel, [
      ...notBytes.map(([name, bytes]) => row("decodeMsg bytes", name, () => decode(bytes), throws(TypeError, "bytes"))),
      ...[0, 31, 33, 64].map((length) => row(
        "decodeMsg bytes",
        `${length} bytes`,
        () => decode(new Uint8Array(length)),
        throws(RangeError, "32 bytes"),
      )),
      ...[0, 0x11, 0x17, 0xff].map((event) => row(
        "decodeMsg event",
        `0x${event.toString(16)}`,
        () => decode(message(event, [])),
        throws(RangeError, "unknown event"),
      )),
      row("decodeMsg PAGEFAULT flags", "2^53", () => decode(message(UFFD_EVENT_PAGEFAULT, [huge, 0n])), throws(RangeError, "flags")),
      row("decodeMsg PAGEFAULT address", "2^64 - 1", () => decode(message(UFFD_EVENT_PAGEFAULT, [0n, TWO_64 - 1n])), throws(RangeError, "address")),
      row("decodeMsg REMAP from", "2^53", () => decode(message(UFFD_EVENT_REMAP, [huge, 0n, 0n])), throws(RangeError, "from")),
      row("decodeMsg REMAP to", "2^53", () => decode(message(UFFD_EVENT_REMAP, [0n, huge, 0n])), throws(RangeError, "to")),
      row("decodeMsg REMAP len", "2^53", () => decode(message(UFFD_EVENT_REMAP, [0n, 0n, huge])), throws(RangeError, "len")),
      row("decodeMsg REMOVE start", "2^53", () => decode(message(UFFD_EVENT_REMOVE, [huge, 0n])), throws(RangeError, "start")),
      row("decodeMsg UNMAP end", "2^64 - 1", () => decode(message(UFFD_EVENT_UNMAP, [0n, TWO_64 - 1n])), throws(RangeError, "end")),
    ]);
  });
});
