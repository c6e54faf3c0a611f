// The userfaultfd kernel ABI driven through raw bytes: ioctl structs in and
// out, and uffd_msg records read into a buffer, in the layout a C monitor on
// x86-64 uses. Expected values are those of Linux on x86-64 (6.18 unless a
// test names another version), except the features mask, where the model
// reports only the features it implements.

import { describe, expect, it } from "vitest";
import {
  MAP_ANONYMOUS, MAP_FIXED, MAP_PRIVATE, SIGBUS, SignalError, UFFD_FEATURE_EVENT_FORK,
  type Kernel, type KernelVersion, type Process, type Userfaultfd,
} from "../src/index.js";
import {
  UFFD_MSG_SIZE, UFFDIO_API, UFFDIO_API_SIZE, UFFDIO_CONTINUE, UFFDIO_CONTINUE_SIZE, UFFDIO_COPY, UFFDIO_COPY_SIZE,
  UFFDIO_MOVE, UFFDIO_MOVE_SIZE, UFFDIO_POISON, UFFDIO_POISON_SIZE, UFFDIO_RANGE_SIZE, UFFDIO_REGISTER,
  UFFDIO_REGISTER_SIZE, UFFDIO_UNREGISTER, UFFDIO_WAKE, UFFDIO_WRITEPROTECT, UFFDIO_WRITEPROTECT_SIZE,
  UFFDIO_ZEROPAGE, UFFDIO_ZEROPAGE_SIZE, decodeMsg, encodeMsg, ioctl, readBytes,
} from "../src/uffd/abi.js";
import { createKernel, drain, settled, watch } from "./helpers.js";

const PAGE = 4096;
const REGION = 0x1000_0000;
const FIXED = MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED;
const at = (page: number) => REGION + page * PAGE;

const EAGAIN = 11;
const EEXIST = 17;
const EFAULT = 14;
const EINVAL = 22;
const ENOENT = 2;

/** Returns a struct of little-endian u64 fields, as a C monitor lays it out. */
function struct(...fields: Array<number | bigint>): Uint8Array {
  const bytes = new Uint8Array(fields.length * 8);
  const view = new DataView(bytes.buffer);
  fields.forEach((field, i) => view.setBigUint64(i * 8, BigInt(field), true));
  return bytes;
}

function u64At(bytes: Uint8Array, offset: number): bigint {
  return new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength).getBigUint64(offset, true);
}

function s64At(bytes: Uint8Array, offset: number): bigint {
  return new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength).getBigInt64(offset, true);
}

/** Returns bytes [offset, offset + 8) as a plain array, for byte-exact checks. */
function bytesAt(bytes: Uint8Array, offset: number): number[] {
  return [...bytes.subarray(offset, offset + 8)];
}

interface Env {
  kernel: Kernel;
  process: Process;
  uffd: Userfaultfd;
  /** A page of 'A' bytes (0x41) in the process, outside the registered region. */
  src: number;
}

/**
 * Creates one process that is both target and monitor: 4 pages at REGION,
 * a source page, and a userfaultfd after the UFFDIO_API handshake with
 * `features`, on a kernel of `kernelVersion`. Registers REGION MISSING
 * through bytes unless `register` is false.
 */
async function setup({ features = 0, register = true, kernelVersion = "6.18" as KernelVersion } = {}): Promise<Env> {
  const kernel = await createKernel({ kernel: kernelVersion });
  const process = kernel.createProcess();
  expect(process.mmap(4 * PAGE, { flags: FIXED, address: REGION })).toBe(REGION);
  const src = process.mmap(PAGE);
  await process.write(src, new Uint8Array(PAGE).fill(0x41));
  const uffd = process.userfaultfd();
  expect(ioctl(uffd, UFFDIO_API, struct(0xaa, features, 0))).toBe(0);
  if (register) expect(ioctl(uffd, UFFDIO_REGISTER, struct(REGION, 4 * PAGE, 1, 0))).toBe(0);
  return { kernel, process, uffd, src };
}

describe("ABI constants", () => {
  it("ioctl requests match the x86-64 encoding", () => {
    // [request, literal value, direction (3 read-write, 2 read), struct size, nr]
    const table: Array<[number, number, number, number, number]> = [
      [UFFDIO_REGISTER, 0xc020aa00, 3, 32, 0x00],
      [UFFDIO_UNREGISTER, 0x8010aa01, 2, 16, 0x01],
      [UFFDIO_WAKE, 0x8010aa02, 2, 16, 0x02],
      [UFFDIO_COPY, 0xc028aa03, 3, 40, 0x03],
      [UFFDIO_ZEROPAGE, 0xc020aa04, 3, 32, 0x04],
      [UFFDIO_MOVE, 0xc028aa05, 3, 40, 0x05],
      [UFFDIO_WRITEPROTECT, 0xc018aa06, 3, 24, 0x06],
      [UFFDIO_CONTINUE, 0xc020aa07, 3, 32, 0x07],
      [UFFDIO_POISON, 0xc020aa08, 3, 32, 0x08],
      [UFFDIO_API, 0xc018aa3f, 3, 24, 0x3f],
    ];
    for (const [request, value, direction, size, nr] of table) {
      const name = `0x${value.toString(16)}`;
      expect(request, name).toBe(value);
      expect(request >>> 30, name).toBe(direction);
      expect((request >>> 16) & 0x3fff, name).toBe(size);
      expect((request >>> 8) & 0xff, name).toBe(0xaa);
      expect(request & 0xff, name).toBe(nr);
    }
  });

  it("struct sizes match the C layouts", () => {
    expect(UFFD_MSG_SIZE).toBe(32);
    expect(UFFDIO_API_SIZE).toBe(24);
    expect(UFFDIO_RANGE_SIZE).toBe(16);
    expect(UFFDIO_REGISTER_SIZE).toBe(32);
    expect(UFFDIO_COPY_SIZE).toBe(40);
    expect(UFFDIO_ZEROPAGE_SIZE).toBe(32);
    expect(UFFDIO_MOVE_SIZE).toBe(40);
    expect(UFFDIO_WRITEPROTECT_SIZE).toBe(24);
    expect(UFFDIO_CONTINUE_SIZE).toBe(32);
    expect(UFFDIO_POISON_SIZE).toBe(32);
  });
});

describe("uffd_msg encoding", () => {
  it("lays out a page fault", () => {
    const bytes = encodeMsg({ errno: 0, event: 0x12, flags: 1, address: 0x1234_5000, ptid: 77 });
    expect([...bytes]).toEqual([
      0x12, 0, 0, 0, 0, 0, 0, 0,
      1, 0, 0, 0, 0, 0, 0, 0,
      0x00, 0x50, 0x34, 0x12, 0, 0, 0, 0,
      77, 0, 0, 0, 0, 0, 0, 0,
    ]);
    expect(decodeMsg(bytes)).toEqual({ event: 0x12, flags: 1, address: 0x1234_5000, ptid: 77 });
  });

  it("lays out REMAP, REMOVE and UNMAP", () => {
    const remap = encodeMsg({ event: 0x14, from: 0x10000, to: 0x20000, len: 0x3000 });
    expect([...remap]).toEqual([
      0x14, 0, 0, 0, 0, 0, 0, 0,
      0x00, 0x00, 0x01, 0, 0, 0, 0, 0,
      0x00, 0x00, 0x02, 0, 0, 0, 0, 0,
      0x00, 0x30, 0, 0, 0, 0, 0, 0,
    ]);
    expect(decodeMsg(remap)).toEqual({ event: 0x14, from: 0x10000, to: 0x20000, len: 0x3000 });

    for (const event of [0x15, 0x16] as const) {
      const bytes = encodeMsg({ event, start: 0x10000, end: 0x12000 });
      expect([...bytes.subarray(0, 8)]).toEqual([event, 0, 0, 0, 0, 0, 0, 0]);
      expect(u64At(bytes, 8)).toBe(0x10000n);
      expect(u64At(bytes, 16)).toBe(0x12000n);
      expect([...bytes.subarray(24)]).toEqual([0, 0, 0, 0, 0, 0, 0, 0]);
      expect(decodeMsg(bytes)).toEqual({ event, start: 0x10000, end: 0x12000 });
    }
  });

  it("rejects malformed input", () => {
    expect(() => decodeMsg(new Uint8Array(31))).toThrow(RangeError);
    expect(() => decodeMsg(new Uint8Array(32))).toThrow(RangeError);
    const huge = encodeMsg({ event: 0x14, from: 0, to: 0, len: 0 });
    huge.fill(0xff, 24, 32);
    expect(() => decodeMsg(huge)).toThrow(RangeError);
    expect(() => encodeMsg({ event: 0x12, flags: 0, address: -1, ptid: 0 })).toThrow(RangeError);
    expect(() => encodeMsg({ event: 0x13, ufd: 2 ** 32 })).toThrow(RangeError);
  });
});

describe("UFFDIO_API bytes", () => {
  it("writes api, features and ioctls", async () => {
    const kernel = await createKernel();
    const uffd = kernel.createProcess().userfaultfd();
    const arg = struct(0xaa, 0, 0);
    expect(ioctl(uffd, UFFDIO_API, arg)).toBe(0);

    expect(bytesAt(arg, 0)).toEqual([0xaa, 0, 0, 0, 0, 0, 0, 0]);
    const features = u64At(arg, 8);
    // EVENT_FORK, SIGBUS, THREAD_ID and EXACT_ADDRESS are modelled: bits 1, 7, 8 and 11.
    expect(features & 0x982n).toBe(0x982n);
    expect(features).toBe(BigInt(kernel.profile.features));
    expect(bytesAt(arg, 16)).toEqual([3, 0, 0, 0, 0, 0, 0, 0x80]);
  });

  it("zeroes the struct for api 0xAB", async () => {
    const uffd = (await createKernel()).createProcess().userfaultfd();
    const arg = struct(0xab, 2, 0xffff_ffff_ffff_ffffn);
    expect(ioctl(uffd, UFFDIO_API, arg)).toBe(-EINVAL);
    expect([...arg]).toEqual(new Array(24).fill(0));
  });

  it("zeroes the struct for unknown features", async () => {
    const uffd = (await createKernel()).createProcess().userfaultfd();
    for (const features of [1n << 17n, 1n << 63n]) {
      const arg = struct(0xaa, features, 7);
      expect(ioctl(uffd, UFFDIO_API, arg), `features ${features}`).toBe(-EINVAL);
      expect([...arg], `features ${features}`).toEqual(new Array(24).fill(0));
    }
    expect(ioctl(uffd, UFFDIO_API, struct(0xaa, 0, 0))).toBe(0);
  });

  it("zeroes the struct on a second call", async () => {
    const uffd = (await createKernel()).createProcess().userfaultfd();
    expect(ioctl(uffd, UFFDIO_API, struct(0xaa, 0, 0))).toBe(0);
    const again = struct(0xaa, 0, 5);
    expect(ioctl(uffd, UFFDIO_API, again)).toBe(-EINVAL);
    expect([...again]).toEqual(new Array(24).fill(0));
  });

  it("accepts the request as an int32", async () => {
    const uffd = (await createKernel()).createProcess().userfaultfd();
    expect(UFFDIO_API | 0).toBe(-1072125377);
    expect(ioctl(uffd, -1072125377, struct(0xaa, 0, 0))).toBe(0);
  });

  it("gates read and other ioctls until the handshake", async () => {
    const kernel = await createKernel();
    const process = kernel.createProcess();
    expect(process.mmap(PAGE, { flags: FIXED, address: REGION })).toBe(REGION);
    const uffd = process.userfaultfd();

    const register = struct(REGION, PAGE, 1, 0xabcd);
    expect(ioctl(uffd, UFFDIO_REGISTER, register)).toBe(-EINVAL);
    expect(u64At(register, 24)).toBe(0xabcdn);
    // The initialisation check comes before the struct is read, so a short arg gives EINVAL here.
    expect(ioctl(uffd, UFFDIO_COPY, new Uint8Array(0))).toBe(-EINVAL);
    expect(readBytes(uffd, new Uint8Array(32))).toEqual({ errno: EINVAL, bytes: 0 });
  });
});

describe("monitor driven through bytes", () => {
  it("registers and reports the range ioctls", async () => {
    const env = await setup({ register: false });
    const arg = struct(REGION, 4 * PAGE, 1, 0);
    expect(ioctl(env.uffd, UFFDIO_REGISTER, arg)).toBe(0);

    expect(u64At(arg, 0)).toBe(0x1000_0000n);
    expect(u64At(arg, 8)).toBe(0x4000n);
    expect(u64At(arg, 16)).toBe(1n);
    // WAKE, COPY, ZEROPAGE, MOVE and POISON: bits 2, 3, 4, 5 and 8.
    expect(bytesAt(arg, 24)).toEqual([0x3c, 0x01, 0, 0, 0, 0, 0, 0]);
  });

  it("leaves the ioctls field alone on failure", async () => {
    const env = await setup({ register: false });
    const arg = struct(REGION + 1, PAGE, 1, 0x1234);
    expect(ioctl(env.uffd, UFFDIO_REGISTER, arg)).toBe(-EINVAL);
    expect(u64At(arg, 24)).toBe(0x1234n);
  });

  it("reads a fault as 32 bytes", async () => {
    const env = await setup();
    const access = watch(env.process.read(at(0) + 100, 1));
    await drain();

    const buffer = new Uint8Array(32).fill(0xee);
    expect(readBytes(env.uffd, buffer)).toEqual({ errno: 0, bytes: 32 });
    expect([...buffer]).toEqual([
      0x12, 0, 0, 0, 0, 0, 0, 0,
      0, 0, 0, 0, 0, 0, 0, 0,
      0x00, 0x00, 0x00, 0x10, 0, 0, 0, 0,
      0, 0, 0, 0, 0, 0, 0, 0,
    ]);
    expect(readBytes(env.uffd, buffer)).toEqual({ errno: EAGAIN, bytes: 0 });

    expect(ioctl(env.uffd, UFFDIO_COPY, struct(at(0), env.src, PAGE, 0, 0))).toBe(0);
    expect(await settled(access)).toEqual(Uint8Array.of(0x41));
  });

  it("reports the thread id and exact address", async () => {
    const env = await setup({ features: (1 << 8) | (1 << 11) });
    watch(env.process.write(at(1) + 0x123, Uint8Array.of(1)));
    await drain();

    const buffer = new Uint8Array(32);
    expect(readBytes(env.uffd, buffer)).toEqual({ errno: 0, bytes: 32 });
    expect(buffer[0]).toBe(0x12);
    expect(u64At(buffer, 8)).toBe(1n);
    expect(u64At(buffer, 16)).toBe(0x1000_1123n);
    expect(new DataView(buffer.buffer).getUint32(24, true)).toBe(env.process.pid);
  });

  it("writes the COPY out-field", async () => {
    const env = await setup();
    const copy = struct(at(0), env.src, PAGE, 0, 0);
    expect(ioctl(env.uffd, UFFDIO_COPY, copy)).toBe(0);
    expect(bytesAt(copy, 32)).toEqual([0x00, 0x10, 0, 0, 0, 0, 0, 0]);
    expect(s64At(copy, 32)).toBe(4096n);

    const again = struct(at(0), env.src, PAGE, 0, 0);
    expect(ioctl(env.uffd, UFFDIO_COPY, again)).toBe(-EEXIST);
    expect(bytesAt(again, 32)).toEqual([0xef, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]);
    expect(s64At(again, 32)).toBe(-17n);
  });

  it("leaves the COPY preset on EINVAL", async () => {
    const env = await setup();
    const presets = [0x0123_4567_89ab_cdefn, 0x7fff_ffff_ffff_ffffn, 99n];
    for (const preset of presets) {
      const unaligned = struct(at(0) + 1, env.src, PAGE, 0, preset);
      expect(ioctl(env.uffd, UFFDIO_COPY, unaligned), `preset ${preset}`).toBe(-EINVAL);
      expect(u64At(unaligned, 32), `preset ${preset}`).toBe(preset);
    }
    const badMode = struct(at(0), env.src, PAGE, 4, 5);
    expect(ioctl(env.uffd, UFFDIO_COPY, badMode)).toBe(-EINVAL);
    expect(u64At(badMode, 32)).toBe(5n);
  });

  it("writes -ENOENT after UNREGISTER", async () => {
    const env = await setup();
    expect(ioctl(env.uffd, UFFDIO_UNREGISTER, struct(REGION, 4 * PAGE))).toBe(0);
    const copy = struct(at(0), env.src, PAGE, 0, 0);
    expect(ioctl(env.uffd, UFFDIO_COPY, copy)).toBe(-ENOENT);
    expect(s64At(copy, 32)).toBe(-2n);
  });

  it("writes the ZEROPAGE out-field", async () => {
    const env = await setup();
    const zeropage = struct(at(1), 2 * PAGE, 0, 0);
    expect(ioctl(env.uffd, UFFDIO_ZEROPAGE, zeropage)).toBe(0);
    expect(bytesAt(zeropage, 24)).toEqual([0x00, 0x20, 0, 0, 0, 0, 0, 0]);
    expect(await settled(watch(env.process.read(at(2), 4)))).toEqual(new Uint8Array(4));

    const again = struct(at(1), PAGE, 0, 0);
    expect(ioctl(env.uffd, UFFDIO_ZEROPAGE, again)).toBe(-EEXIST);
    expect(s64At(again, 24)).toBe(-17n);

    const unaligned = struct(at(3), 100, 0, 0x55);
    expect(ioctl(env.uffd, UFFDIO_ZEROPAGE, unaligned)).toBe(-EINVAL);
    expect(u64At(unaligned, 24)).toBe(0x55n);
  });

  it("wakes a fault after a DONTWAKE COPY", async () => {
    const env = await setup();
    const access = watch(env.process.read(at(2), 1));
    await drain();
    expect(readBytes(env.uffd, new Uint8Array(32))).toEqual({ errno: 0, bytes: 32 });

    const copy = struct(at(2), env.src, PAGE, 1, 0);
    expect(ioctl(env.uffd, UFFDIO_COPY, copy)).toBe(0);
    expect(s64At(copy, 32)).toBe(4096n);
    await drain();
    expect(access.state).toBe("pending");

    const wake = struct(at(2), PAGE);
    expect(ioctl(env.uffd, UFFDIO_WAKE, wake)).toBe(0);
    expect(await settled(access)).toEqual(Uint8Array.of(0x41));
    expect([...wake]).toEqual([...struct(at(2), PAGE)]);
  });

  it("rejects an 8-byte read buffer", async () => {
    const env = await setup();
    watch(env.process.read(at(0), 1));
    await drain();

    expect(readBytes(env.uffd, new Uint8Array(8))).toEqual({ errno: EINVAL, bytes: 0 });
    expect(readBytes(env.uffd, new Uint8Array(31))).toEqual({ errno: EINVAL, bytes: 0 });
    // The message is still queued for a buffer that fits it.
    expect(readBytes(env.uffd, new Uint8Array(32))).toEqual({ errno: 0, bytes: 32 });
  });

  it("reads two messages into 64 bytes", async () => {
    const env = await setup();
    watch(env.process.read(at(2), 1));
    watch(env.process.write(at(3) + 8, Uint8Array.of(1)));
    await drain();

    const buffer = new Uint8Array(64);
    expect(readBytes(env.uffd, buffer)).toEqual({ errno: 0, bytes: 64 });
    expect(decodeMsg(buffer.subarray(0, 32))).toEqual({ event: 0x12, flags: 0, address: 0x1000_2000, ptid: 0 });
    expect(decodeMsg(buffer.subarray(32, 64))).toEqual({ event: 0x12, flags: 1, address: 0x1000_3000, ptid: 0 });
  });

  it("stops at EAGAIN with room left", async () => {
    const env = await setup();
    watch(env.process.read(at(1), 1));
    await drain();

    const buffer = new Uint8Array(96).fill(0xee);
    expect(readBytes(env.uffd, buffer)).toEqual({ errno: 0, bytes: 32 });
    expect(buffer[0]).toBe(0x12);
    expect(u64At(buffer, 16)).toBe(0x1000_1000n);
    expect([...buffer.subarray(32)]).toEqual(new Array(64).fill(0xee));
  });

  it("rejects u64 values above 2^53", async () => {
    const env = await setup({ register: false });
    const above = 2n ** 53n + 4096n;
    const top = 2n ** 64n - 4096n;

    expect(ioctl(env.uffd, UFFDIO_REGISTER, struct(REGION, above, 1, 0))).toBe(-EINVAL);
    expect(ioctl(env.uffd, UFFDIO_REGISTER, struct(top, PAGE, 1, 0))).toBe(-EINVAL);
    expect(ioctl(env.uffd, UFFDIO_REGISTER, struct(REGION, PAGE, 1n | (1n << 60n), 0))).toBe(-EINVAL);
    expect(ioctl(env.uffd, UFFDIO_REGISTER, struct(REGION, 4 * PAGE, 1, 0))).toBe(0);

    const copyLen = struct(at(0), env.src, above, 0, 0x77);
    expect(ioctl(env.uffd, UFFDIO_COPY, copyLen)).toBe(-EINVAL);
    expect(u64At(copyLen, 32)).toBe(0x77n);
    const copySrc = struct(at(0), top, PAGE, 0, 0x77);
    expect(ioctl(env.uffd, UFFDIO_COPY, copySrc)).toBe(-EINVAL);
    expect(u64At(copySrc, 32)).toBe(0x77n);
    expect(ioctl(env.uffd, UFFDIO_ZEROPAGE, struct(top, PAGE, 0, 0))).toBe(-EINVAL);
    expect(ioctl(env.uffd, UFFDIO_ZEROPAGE, struct(at(0), PAGE, 1n << 40n, 0))).toBe(-EINVAL);
    expect(ioctl(env.uffd, UFFDIO_WAKE, struct(1n << 63n, PAGE))).toBe(-EINVAL);
    expect(ioctl(env.uffd, UFFDIO_UNREGISTER, struct(REGION, above))).toBe(-EINVAL);
  });

  it("returns -EFAULT for a short arg", async () => {
    const env = await setup();
    const cases: Array<[string, number, number]> = [
      ["API", UFFDIO_API, 23],
      ["REGISTER", UFFDIO_REGISTER, 23],
      ["UNREGISTER", UFFDIO_UNREGISTER, 15],
      ["WAKE", UFFDIO_WAKE, 15],
      ["COPY", UFFDIO_COPY, 31],
      ["ZEROPAGE", UFFDIO_ZEROPAGE, 23],
    ];
    for (const [name, request, length] of cases) {
      const arg = new Uint8Array(length).fill(0x5a);
      expect(ioctl(env.uffd, request, arg), name).toBe(-EFAULT);
      expect([...arg], name).toEqual(new Array(length).fill(0x5a));
    }
    // The short COPY and ZEROPAGE filled nothing, so full structs still succeed.
    expect(ioctl(env.uffd, UFFDIO_COPY, struct(at(0), env.src, PAGE, 0, 0))).toBe(0);
    expect(ioctl(env.uffd, UFFDIO_ZEROPAGE, struct(at(1), PAGE, 0, 0))).toBe(0);
  });

  it("keeps a short API from completing the handshake", async () => {
    const kernel = await createKernel();
    const process = kernel.createProcess();
    expect(process.mmap(PAGE, { flags: FIXED, address: REGION })).toBe(REGION);
    const uffd = process.userfaultfd();

    expect(ioctl(uffd, UFFDIO_API, struct(0xaa, 0, 0).subarray(0, 16))).toBe(-EFAULT);
    expect(ioctl(uffd, UFFDIO_REGISTER, struct(REGION, PAGE, 1, 0))).toBe(-EINVAL);
    expect(ioctl(uffd, UFFDIO_API, struct(0xaa, 0, 0))).toBe(0);
  });

  it("runs the operation when only the out-field is cut off", async () => {
    const env = await setup({ register: false });

    // REGISTER reads 24 bytes: the range is registered, then writing ioctls fails.
    const register = struct(REGION, 4 * PAGE, 1);
    expect(ioctl(env.uffd, UFFDIO_REGISTER, register)).toBe(-EFAULT);
    expect([...register]).toEqual([...struct(REGION, 4 * PAGE, 1)]);
    watch(env.process.read(at(0), 1));
    await drain();
    expect(readBytes(env.uffd, new Uint8Array(32))).toEqual({ errno: 0, bytes: 32 });

    // COPY reads 32 bytes: the page is filled, then writing the out-field fails.
    const copy = struct(at(0), env.src, PAGE, 0, 0).subarray(0, 35);
    const before = [...copy];
    expect(ioctl(env.uffd, UFFDIO_COPY, copy)).toBe(-EFAULT);
    expect([...copy]).toEqual(before);
    expect(ioctl(env.uffd, UFFDIO_COPY, struct(at(0), env.src, PAGE, 0, 0))).toBe(-EEXIST);

    // An EINVAL leaves the out-field untouched, so no write fails.
    expect(ioctl(env.uffd, UFFDIO_COPY, struct(at(0) + 1, env.src, PAGE, 0))).toBe(-EINVAL);
  });

  it("rejects unknown requests", async () => {
    const env = await setup();
    const arg = new Uint8Array(64).fill(0x5a);
    for (const request of [0xc018aa09, 0x0000aa00, 0x12345678, 0, 1.5]) {
      expect(ioctl(env.uffd, request, arg), `request ${request}`).toBe(-EINVAL);
    }
    expect([...arg]).toEqual(new Array(64).fill(0x5a));
  });

  it("throws on a closed file", async () => {
    const env = await setup();
    env.uffd.close();
    expect(() => ioctl(env.uffd, UFFDIO_WAKE, struct(REGION, PAGE))).toThrow(/closed/);
    expect(() => readBytes(env.uffd, new Uint8Array(32))).toThrow(/closed/);
  });
});

describe("WRITEPROTECT, POISON and MOVE bytes", () => {
  it("reports a WP fault and lifts protection", async () => {
    const env = await setup({ register: false });
    const register = struct(REGION, 4 * PAGE, 3, 0);
    expect(ioctl(env.uffd, UFFDIO_REGISTER, register)).toBe(0);
    // WRITEPROTECT (bit 6) joins the MISSING set when WP mode is registered.
    expect(bytesAt(register, 24)).toEqual([0x7c, 0x01, 0, 0, 0, 0, 0, 0]);
    expect(ioctl(env.uffd, UFFDIO_COPY, struct(at(0), env.src, PAGE, 0, 0))).toBe(0);

    const protect = struct(at(0), PAGE, 1);
    expect(ioctl(env.uffd, UFFDIO_WRITEPROTECT, protect)).toBe(0);
    expect([...protect]).toEqual([...struct(at(0), PAGE, 1)]);
    const access = watch(env.process.write(at(0), Uint8Array.of(0x7a)));
    await drain();
    const buffer = new Uint8Array(32);
    expect(readBytes(env.uffd, buffer)).toEqual({ errno: 0, bytes: 32 });
    expect(decodeMsg(buffer)).toEqual({ event: 0x12, flags: 3, address: 0x1000_0000, ptid: 0 });

    expect(ioctl(env.uffd, UFFDIO_WRITEPROTECT, struct(at(0), PAGE, 0))).toBe(0);
    await settled(access);
    expect(await settled(watch(env.process.read(at(0), 2)))).toEqual(Uint8Array.of(0x7a, 0x41));
  });

  it("rejects bad WRITEPROTECT structs", async () => {
    const env = await setup({ register: false });
    expect(ioctl(env.uffd, UFFDIO_REGISTER, struct(REGION, 4 * PAGE, 3, 0))).toBe(0);
    // WP together with DONTWAKE is invalid.
    expect(ioctl(env.uffd, UFFDIO_WRITEPROTECT, struct(at(0), PAGE, 3))).toBe(-EINVAL);
    expect(ioctl(env.uffd, UFFDIO_WRITEPROTECT, struct(at(0), 2n ** 60n, 1))).toBe(-EINVAL);
    expect(ioctl(env.uffd, UFFDIO_WRITEPROTECT, new Uint8Array(23))).toBe(-EFAULT);
  });

  it("writes the POISON out-field", async () => {
    const env = await setup();
    const poison = struct(at(2), PAGE, 0, 0);
    expect(ioctl(env.uffd, UFFDIO_POISON, poison)).toBe(0);
    expect(bytesAt(poison, 24)).toEqual([0x00, 0x10, 0, 0, 0, 0, 0, 0]);
    const error = await env.process.read(at(2), 1).catch((reason: unknown) => reason);
    expect(error).toBeInstanceOf(SignalError);
    expect((error as SignalError).signo).toBe(SIGBUS);

    const again = struct(at(2), PAGE, 0, 0);
    expect(ioctl(env.uffd, UFFDIO_POISON, again)).toBe(-EEXIST);
    expect(s64At(again, 24)).toBe(-17n);
    const badMode = struct(at(3), PAGE, 2, 0x66);
    expect(ioctl(env.uffd, UFFDIO_POISON, badMode)).toBe(-EINVAL);
    expect(u64At(badMode, 24)).toBe(0x66n);
  });

  it("writes the MOVE out-field", async () => {
    const env = await setup();
    const move = struct(at(0), env.src, PAGE, 0, 0);
    expect(ioctl(env.uffd, UFFDIO_MOVE, move)).toBe(0);
    expect(bytesAt(move, 32)).toEqual([0x00, 0x10, 0, 0, 0, 0, 0, 0]);
    expect(await settled(watch(env.process.read(at(0), 1)))).toEqual(Uint8Array.of(0x41));

    // The source page went with the move, so moving it again finds a hole.
    const fromHole = struct(at(1), env.src, PAGE, 0, 0);
    expect(ioctl(env.uffd, UFFDIO_MOVE, fromHole)).toBe(-ENOENT);
    expect(s64At(fromHole, 32)).toBe(-2n);
    const ontoPresent = struct(at(0), env.src, PAGE, 0, 0);
    expect(ioctl(env.uffd, UFFDIO_MOVE, ontoPresent)).toBe(-EEXIST);
    expect(s64At(ontoPresent, 32)).toBe(-17n);
    const unaligned = struct(at(1), env.src + 1, PAGE, 0, 0x99);
    expect(ioctl(env.uffd, UFFDIO_MOVE, unaligned)).toBe(-EINVAL);
    expect(u64At(unaligned, 32)).toBe(0x99n);
  });

  it("returns -EINVAL where the kernel lacks them", async () => {
    const env = await setup({ kernelVersion: "4.17", register: false });
    const register = struct(REGION, 4 * PAGE, 1, 0);
    expect(ioctl(env.uffd, UFFDIO_REGISTER, register)).toBe(0);
    // Linux 4.17 has only WAKE, COPY and ZEROPAGE among the range ioctls.
    expect(bytesAt(register, 24)).toEqual([0x1c, 0, 0, 0, 0, 0, 0, 0]);

    const cases: Array<[string, number, Uint8Array]> = [
      ["WRITEPROTECT", UFFDIO_WRITEPROTECT, struct(at(0), PAGE, 1)],
      ["POISON", UFFDIO_POISON, struct(at(0), PAGE, 0, 0x44)],
      ["MOVE", UFFDIO_MOVE, struct(at(0), env.src, PAGE, 0, 0x44)],
      ["CONTINUE", UFFDIO_CONTINUE, struct(at(0), PAGE, 0, 0x44)],
      ["short POISON", UFFDIO_POISON, new Uint8Array(0)],
    ];
    for (const [name, request, arg] of cases) {
      const before = [...arg];
      expect(ioctl(env.uffd, request, arg), name).toBe(-EINVAL);
      expect([...arg], name).toEqual(before);
    }
  });
});

/** Sets up with EVENT_FORK on `kernelVersion` and starts a fork, which waits until its FORK message is read. */
async function startFork(kernelVersion: KernelVersion) {
  const env = await setup({ features: UFFD_FEATURE_EVENT_FORK, kernelVersion });
  const fork = watch(env.process.fork());
  await drain();
  expect(fork.state).toBe("pending");
  return { ...env, fork };
}

describe("FORK through bytes", () => {
  it("reports the child descriptor as ufd", async () => {
    const kernel = await createKernel({});
    const process = kernel.createProcess();
    expect(process.mmap(4 * PAGE, { flags: FIXED, address: REGION })).toBe(REGION);
    const src = process.mmap(PAGE);
    await process.write(src, new Uint8Array(PAGE).fill(0x41));
    const uffd = process.userfaultfd();
    expect(uffd.fd).toBe(3);
    expect(ioctl(uffd, UFFDIO_API, struct(0xaa, UFFD_FEATURE_EVENT_FORK, 0))).toBe(0);
    expect(ioctl(uffd, UFFDIO_REGISTER, struct(REGION, 4 * PAGE, 1, 0))).toBe(0);

    const fork = watch(process.fork());
    await drain();
    expect(fork.state).toBe("pending");
    // While FORK is unread the mmap_changing gate makes COPY fail and write -EAGAIN.
    const gated = struct(at(0), src, PAGE, 0, 0);
    expect(ioctl(uffd, UFFDIO_COPY, gated)).toBe(-EAGAIN);
    expect(bytesAt(gated, 32)).toEqual([0xf5, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]);

    const buffer = new Uint8Array(32);
    expect(readBytes(uffd, buffer)).toEqual({ errno: 0, bytes: 32 });
    // Descriptor 3 is the parent's userfaultfd, so the child's lands on 4.
    expect([...buffer]).toEqual([
      0x13, 0, 0, 0, 0, 0, 0, 0,
      4, 0, 0, 0, 0, 0, 0, 0,
      0, 0, 0, 0, 0, 0, 0, 0,
      0, 0, 0, 0, 0, 0, 0, 0,
    ]);
    expect(decodeMsg(buffer)).toEqual({ event: 0x13, ufd: 4 });
    const child = await settled(fork);
    const childUffd = process.files.get(4);
    expect(childUffd).toBeDefined();
    expect(childUffd!.ctx.mm).toBe(child.mm);
    expect(encodeMsg({ errno: 0, event: 0x13, uffd: childUffd! })).toEqual(buffer);

    // The child's faults arrive on descriptor 4 and are served through bytes.
    const access = watch(child.read(at(1), 1));
    await drain();
    const childMsg = new Uint8Array(32);
    expect(readBytes(childUffd!, childMsg)).toEqual({ errno: 0, bytes: 32 });
    expect(decodeMsg(childMsg)).toEqual({ event: 0x12, flags: 0, address: 0x1000_1000, ptid: 0 });
    expect(readBytes(uffd, new Uint8Array(32))).toEqual({ errno: EAGAIN, bytes: 0 });
    const copy = struct(at(1), src, PAGE, 0, 0);
    expect(ioctl(childUffd!, UFFDIO_COPY, copy)).toBe(0);
    expect(s64At(copy, 32)).toBe(4096n);
    expect(await settled(access)).toEqual(Uint8Array.of(0x41));
  });

  it("applies the gate before reading the struct on 6.18", async () => {
    const env = await startFork("6.18");
    // 6.18 writes -EAGAIN to the out-field first, which fails when it is cut off.
    const full = struct(at(0), env.src, PAGE, 0, 0);
    expect(ioctl(env.uffd, UFFDIO_COPY, full)).toBe(-EAGAIN);
    expect(s64At(full, 32)).toBe(-11n);
    expect(ioctl(env.uffd, UFFDIO_COPY, full.subarray(0, 32))).toBe(-EFAULT);
    expect(ioctl(env.uffd, UFFDIO_ZEROPAGE, new Uint8Array(8))).toBe(-EFAULT);
    expect(ioctl(env.uffd, UFFDIO_MOVE, new Uint8Array(0))).toBe(-EFAULT);
    // WRITEPROTECT has no out-field: the gate returns EAGAIN before the struct is read.
    expect(ioctl(env.uffd, UFFDIO_WRITEPROTECT, new Uint8Array(0))).toBe(-EAGAIN);
    expect(ioctl(env.uffd, UFFDIO_WAKE, struct(at(0), PAGE))).toBe(0);
    expect(ioctl(env.uffd, UFFDIO_WAKE, new Uint8Array(8))).toBe(-EFAULT);

    expect(readBytes(env.uffd, new Uint8Array(32))).toEqual({ errno: 0, bytes: 32 });
    await settled(env.fork);
    expect(ioctl(env.uffd, UFFDIO_COPY, struct(at(0), env.src, PAGE, 0, 0))).toBe(0);
  });

  it("leaves the out-field untouched at the gate on 5.15", async () => {
    const env = await startFork("5.15");
    const full = struct(at(0), env.src, PAGE, 0, 0x3333);
    expect(ioctl(env.uffd, UFFDIO_COPY, full)).toBe(-EAGAIN);
    expect(u64At(full, 32)).toBe(0x3333n);
    // Before 6.15 the gate returns EAGAIN without touching the struct at all.
    expect(ioctl(env.uffd, UFFDIO_COPY, new Uint8Array(8))).toBe(-EAGAIN);
    expect(ioctl(env.uffd, UFFDIO_ZEROPAGE, new Uint8Array(0))).toBe(-EAGAIN);

    expect(readBytes(env.uffd, new Uint8Array(32))).toEqual({ errno: 0, bytes: 32 });
    await settled(env.fork);
    expect(ioctl(env.uffd, UFFDIO_COPY, new Uint8Array(8))).toBe(-EFAULT);
  });
});
