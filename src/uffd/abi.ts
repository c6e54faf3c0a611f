// The userfaultfd kernel ABI as bytes: ioctl request values, struct sizes,
// the 32-byte uffd_msg, and read(2) and ioctl(2) entry points that take the
// exact little-endian structs a C monitor passes on x86-64.
// Linux counterparts: include/uapi/linux/userfaultfd.h (layouts) and the
// file operations of fs/userfaultfd.c (userfaultfd_read, userfaultfd_ioctl).

import {
  EFAULT, EINVAL, UFFD_EVENT_FORK, UFFD_EVENT_PAGEFAULT, UFFD_EVENT_REMAP, UFFD_EVENT_REMOVE, UFFD_EVENT_UNMAP,
} from "../constants.js";
import { requireNumber } from "../errors.js";
import type { UffdMsg } from "./messages.js";
import { Userfaultfd } from "./userfaultfd.js";

// Full ioctl request values on x86-64: (dir << 30) | (size << 16) | (0xAA << 8) | nr,
// where dir is 3 for _IOWR and 2 for _IOR. Other architectures place the
// direction bits differently.
export const UFFDIO_API = 0xc018aa3f;
export const UFFDIO_REGISTER = 0xc020aa00;
export const UFFDIO_UNREGISTER = 0x8010aa01;
export const UFFDIO_WAKE = 0x8010aa02;
export const UFFDIO_COPY = 0xc028aa03;
export const UFFDIO_ZEROPAGE = 0xc020aa04;
export const UFFDIO_MOVE = 0xc028aa05;
export const UFFDIO_WRITEPROTECT = 0xc018aa06;
export const UFFDIO_CONTINUE = 0xc020aa07;
export const UFFDIO_POISON = 0xc020aa08;

/** Size of struct uffd_msg in bytes. read() returns whole messages only. */
export const UFFD_MSG_SIZE = 32;

// Struct sizes in bytes. Each fill ioctl's struct ends with an s64 out-field
// that the kernel never reads.
export const UFFDIO_API_SIZE = 24;
export const UFFDIO_RANGE_SIZE = 16;
export const UFFDIO_REGISTER_SIZE = 32;
export const UFFDIO_COPY_SIZE = 40;
export const UFFDIO_ZEROPAGE_SIZE = 32;
export const UFFDIO_MOVE_SIZE = 40;
export const UFFDIO_WRITEPROTECT_SIZE = 24;
export const UFFDIO_CONTINUE_SIZE = 32;
export const UFFDIO_POISON_SIZE = 32;

// --- uffd_msg -------------------------------------------------------------

/** A page fault message as plain data; `address` is page aligned unless EXACT_ADDRESS is enabled. */
export interface DecodedPagefault {
  readonly event: typeof UFFD_EVENT_PAGEFAULT;
  readonly flags: number;
  readonly address: number;
  readonly ptid: number;
}

/** A fork message as plain data; `ufd` is the child userfaultfd's descriptor number in the reader's process. */
export interface DecodedFork {
  readonly event: typeof UFFD_EVENT_FORK;
  readonly ufd: number;
}

/** An mremap() message: the range moved from `from` to `to`. */
export interface DecodedRemap {
  readonly event: typeof UFFD_EVENT_REMAP;
  readonly from: number;
  readonly to: number;
  readonly len: number;
}

/** A madvise(MADV_DONTNEED/REMOVE) or munmap() message for [start, end). */
export interface DecodedRemove {
  readonly event: typeof UFFD_EVENT_REMOVE | typeof UFFD_EVENT_UNMAP;
  readonly start: number;
  readonly end: number;
}

export type DecodedMsg = DecodedPagefault | DecodedFork | DecodedRemap | DecodedRemove;

/**
 * Encodes a message as the 32-byte packed struct uffd_msg, zero-filled
 * around the fields of its event. Accepts the messages read() returns and,
 * for events the model does not queue yet, any object with the REMAP,
 * REMOVE or UNMAP fields (or a decodeMsg result). Throws TypeError or
 * RangeError for a field that a uffd_msg cannot hold.
 */
export function encodeMsg(msg: UffdMsg | DecodedMsg): Uint8Array {
  if (typeof msg !== "object" || msg === null) throw new TypeError("encodeMsg: the message must be an object");
  const bytes = new Uint8Array(UFFD_MSG_SIZE);
  const view = viewOf(bytes);
  const fields = msg as unknown as Record<string, unknown>;
  const event = requireNumber(fields.event, "event");
  view.setUint8(0, event);

  switch (event) {
    case UFFD_EVENT_PAGEFAULT:
      writeU64Field(view, 8, fields, "flags");
      writeU64Field(view, 16, fields, "address");
      writeU32Field(view, 24, fields, "ptid");
      break;
    case UFFD_EVENT_FORK:
      if ("uffd" in msg) {
        view.setUint32(8, checkU32(msg.uffd.fd, "uffd.fd"), true);
      } else {
        writeU32Field(view, 8, fields, "ufd");
      }
      break;
    case UFFD_EVENT_REMAP:
      writeU64Field(view, 8, fields, "from");
      writeU64Field(view, 16, fields, "to");
      writeU64Field(view, 24, fields, "len");
      break;
    case UFFD_EVENT_REMOVE:
    case UFFD_EVENT_UNMAP:
      writeU64Field(view, 8, fields, "start");
      writeU64Field(view, 16, fields, "end");
      break;
    default:
      throw new RangeError(`encodeMsg: unknown event 0x${event.toString(16)}`);
  }
  return bytes;
}

/**
 * Decodes one 32-byte uffd_msg into plain data. Throws RangeError unless
 * `bytes` is exactly 32 bytes long, for an unknown event byte, and for a
 * u64 field above 2^53 (no message the kernel writes has one).
 */
export function decodeMsg(bytes: Uint8Array): DecodedMsg {
  if (!(bytes instanceof Uint8Array)) throw new TypeError("decodeMsg: bytes must be a Uint8Array");
  if (bytes.length !== UFFD_MSG_SIZE) {
    throw new RangeError(`decodeMsg: a uffd_msg is ${UFFD_MSG_SIZE} bytes, got ${bytes.length}`);
  }
  const view = viewOf(bytes);
  const event = view.getUint8(0);
  switch (event) {
    case UFFD_EVENT_PAGEFAULT:
      return {
        event,
        flags: readExactU64(view, 8, "flags"),
        address: readExactU64(view, 16, "address"),
        ptid: view.getUint32(24, true),
      };
    case UFFD_EVENT_FORK:
      return { event, ufd: view.getUint32(8, true) };
    case UFFD_EVENT_REMAP:
      return {
        event,
        from: readExactU64(view, 8, "from"),
        to: readExactU64(view, 16, "to"),
        len: readExactU64(view, 24, "len"),
      };
    case UFFD_EVENT_REMOVE:
    case UFFD_EVENT_UNMAP:
      return { event, start: readExactU64(view, 8, "start"), end: readExactU64(view, 16, "end") };
    default:
      throw new RangeError(`decodeMsg: unknown event 0x${event.toString(16)}`);
  }
}

// --- read(2) --------------------------------------------------------------

export interface ReadBytesResult {
  /** 0 when at least one message was copied, else the errno read(2) sets. */
  readonly errno: number;
  /** Bytes written to the buffer: 32 times the number of messages. */
  readonly bytes: number;
}

/**
 * Reads messages into `buffer` with the semantics of read(2) on a
 * userfaultfd opened O_NONBLOCK. It returns EINVAL for a buffer shorter than
 * one message or before UFFDIO_API. Otherwise it copies as many whole
 * messages as fit and stops at the first error. That errno is returned only
 * when no message was copied, so an empty queue gives EAGAIN. Each read
 * message is consumed: a FORK message installs the child's userfaultfd in
 * the reader's process, so a message is only taken when it fits.
 */
export function readBytes(uffd: Userfaultfd, buffer: Uint8Array): ReadBytesResult {
  if (!(buffer instanceof Uint8Array)) throw new TypeError("readBytes: buffer must be a Uint8Array");
  checkOpen(uffd, "read");
  if (buffer.length < UFFD_MSG_SIZE) return { errno: EINVAL, bytes: 0 };

  let bytes = 0;
  while (buffer.length - bytes >= UFFD_MSG_SIZE) {
    const result = uffd.read();
    if (!("event" in result)) {
      return bytes > 0 ? { errno: 0, bytes } : { errno: result.errno, bytes: 0 };
    }
    buffer.set(encodeMsg(result), bytes);
    bytes += UFFD_MSG_SIZE;
  }
  return { errno: 0, bytes };
}

// --- ioctl(2) -------------------------------------------------------------

/**
 * The preset passed as a fill ioctl's out-field. The methods return the
 * preset when the kernel leaves the field untouched, and every value the
 * kernel writes is an integer, so a NaN result means the bytes stay as
 * they were. Reading the preset from the struct instead would lose bits of
 * an s64 above 2^53 and could not tell an untouched field from a written
 * value that happens to equal it.
 */
const OUT_FIELD_UNTOUCHED = Number.NaN;

/** Reads the u64 field at index `index` (byte offset 8 * index) of the struct in `arg`. */
type FieldReader = (index: number) => number;

/** A fill ioctl's call: returns its errno and its out-field value, or OUT_FIELD_UNTOUCHED. */
type FillCall = (field: FieldReader, preset: number) => { errno: number; out: number };

/**
 * Runs a userfaultfd ioctl on the little-endian struct in `arg` and returns
 * 0 or -errno, as the raw system call does. The struct's out-fields are
 * written back into `arg` as the kernel writes them.
 *
 * `request` is truncated to its low 32 bits, as the kernel takes the
 * command as an unsigned int, so the int32 form of a request value works
 * too. These return -EINVAL without reading `arg`: an unknown request, a
 * request the kernel version lacks (WRITEPROTECT before 5.7, POISON before
 * 6.6, MOVE before 6.8, CONTINUE before 5.13), and
 * any request but UFFDIO_API before a successful UFFDIO_API.
 *
 * An `arg` shorter than the fields the kernel reads returns -EFAULT and
 * changes nothing, except that an ioctl which checks mmap_changing first
 * returns its EAGAIN while the gate is closed. When `arg` contains the input
 * fields but ends before the out-field, the operation runs, and -EFAULT is
 * returned if the kernel would write that field. This is what the kernel
 * does with a struct whose last bytes are unmapped.
 */
export function ioctl(uffd: Userfaultfd, request: number, arg: Uint8Array): number {
  requireNumber(request, "request");
  if (!(arg instanceof Uint8Array)) throw new TypeError("ioctl: arg must be a Uint8Array");
  checkOpen(uffd, "ioctl");
  if (!Number.isSafeInteger(request)) return -EINVAL;
  const command = request >>> 0;
  if (command !== UFFDIO_API && !uffd.ctx.apiDone) return -EINVAL;
  const profile = uffd.ctx.kernel.profile;

  switch (command) {
    case UFFDIO_API:
      return apiIoctl(uffd, arg);
    case UFFDIO_REGISTER:
      return registerIoctl(uffd, arg);
    case UFFDIO_UNREGISTER:
      return inputOnlyIoctl(uffd, arg, 2, false, (field) => uffd.unregister({ start: field(0), len: field(1) }).errno);
    case UFFDIO_WAKE:
      return inputOnlyIoctl(uffd, arg, 2, false, (field) => uffd.wake({ start: field(0), len: field(1) }).errno);
    case UFFDIO_COPY:
      return fillIoctl(uffd, arg, 4, (field, preset) => {
        const result = uffd.copy({ dst: field(0), src: field(1), len: field(2), mode: field(3), copy: preset });
        return { errno: result.errno, out: result.copy };
      });
    case UFFDIO_ZEROPAGE:
      return fillIoctl(uffd, arg, 3, (field, preset) => {
        const result = uffd.zeropage({ start: field(0), len: field(1), mode: field(2), zeropage: preset });
        return { errno: result.errno, out: result.zeropage };
      });
    case UFFDIO_WRITEPROTECT:
      if (!profile.wp) return -EINVAL;
      return inputOnlyIoctl(uffd, arg, 3, true, (field) => {
        return uffd.writeprotect({ start: field(0), len: field(1), mode: field(2) }).errno;
      });
    case UFFDIO_POISON:
      if (!profile.poison) return -EINVAL;
      return fillIoctl(uffd, arg, 3, (field, preset) => {
        const result = uffd.poison({ start: field(0), len: field(1), mode: field(2), updated: preset });
        return { errno: result.errno, out: result.updated };
      });
    case UFFDIO_MOVE:
      if (!profile.move) return -EINVAL;
      return fillIoctl(uffd, arg, 4, (field, preset) => {
        const result = uffd.move({ dst: field(0), src: field(1), len: field(2), mode: field(3), move: preset });
        return { errno: result.errno, out: result.move };
      });
    case UFFDIO_CONTINUE:
      if (!profile.minor) return -EINVAL;
      return fillIoctl(uffd, arg, 3, (field, preset) => {
        const result = uffd.continue({ start: field(0), len: field(1), mode: field(2), mapped: preset });
        return { errno: result.errno, out: result.mapped };
      });
    default:
      return -EINVAL;
  }
}

/**
 * Runs UFFDIO_API, whose whole 24-byte struct the kernel reads and writes.
 * On success it writes api, the supported features and the ioctls mask. On
 * failure it zeroes the struct, which the result's zero fields reproduce.
 */
function apiIoctl(uffd: Userfaultfd, arg: Uint8Array): number {
  if (arg.length < UFFDIO_API_SIZE) return -EFAULT;
  const view = viewOf(arg);
  const result = uffd.api({ api: readU64(view, 0), features: view.getBigUint64(8, true) });
  view.setBigUint64(0, BigInt(result.api), true);
  view.setBigUint64(8, BigInt(result.features), true);
  view.setBigUint64(16, result.ioctls, true);
  return negated(result.errno);
}

/**
 * Runs UFFDIO_REGISTER. The kernel reads start, len and mode (24 bytes) and
 * writes the ioctls mask at offset 24 only on success. A registration whose
 * ioctls field cannot be written stays in place and returns -EFAULT.
 */
function registerIoctl(uffd: Userfaultfd, arg: Uint8Array): number {
  const ioctlsOffset = UFFDIO_REGISTER_SIZE - 8;
  const field = inputFields(uffd, arg, 3, false);
  if (field === null) return -EFAULT;
  const result = uffd.register({ start: field(0), len: field(1), mode: field(2) });
  if (result.errno !== 0) return -result.errno;
  if (arg.length < UFFDIO_REGISTER_SIZE) return -EFAULT;
  viewOf(arg).setBigUint64(ioctlsOffset, result.ioctls, true);
  return 0;
}

/** Runs an ioctl whose struct is `fieldCount` u64 inputs with no out-field. */
function inputOnlyIoctl(
  uffd: Userfaultfd, arg: Uint8Array, fieldCount: number, gateFirst: boolean, call: (field: FieldReader) => number,
): number {
  const field = inputFields(uffd, arg, fieldCount, gateFirst);
  if (field === null) return -EFAULT;
  return negated(call(field));
}

/**
 * Runs a fill ioctl, whose struct is `fieldCount` u64 inputs followed by
 * the s64 out-field. The field is written only when the call returns a
 * value for it, and a negative value is stored as two's complement.
 */
function fillIoctl(uffd: Userfaultfd, arg: Uint8Array, fieldCount: number, call: FillCall): number {
  const outOffset = fieldCount * 8;
  const field = inputFields(uffd, arg, fieldCount, true);
  if (field === null) return -EFAULT;
  const { errno, out } = call(field, OUT_FIELD_UNTOUCHED);
  if (Number.isNaN(out)) return negated(errno);
  if (!Number.isSafeInteger(out)) throw new Error(`ioctl: out-field value ${out} is not an integer`);
  if (arg.length < outOffset + 8) return -EFAULT;
  viewOf(arg).setBigInt64(outOffset, BigInt(out), true);
  return negated(errno);
}

/**
 * Returns a reader of the first `fieldCount` u64 fields of `arg`, or null
 * when `arg` is too short, where the kernel's copy_from_user fails with
 * EFAULT. An ioctl that checks mmap_changing first (`gateFirst`) fails with
 * EAGAIN before it reads the struct while the gate is closed. For that case
 * a short `arg` gets zero fields, which the method never looks at.
 */
function inputFields(uffd: Userfaultfd, arg: Uint8Array, fieldCount: number, gateFirst: boolean): FieldReader | null {
  if (arg.length >= fieldCount * 8) {
    const view = viewOf(arg);
    return (index) => readU64(view, index * 8);
  }
  if (gateFirst && uffd.ctx.gateClosed) return () => 0;
  return null;
}

// --- helpers --------------------------------------------------------------

/** Throws the error a closed Userfaultfd's own methods throw, for calls that would not reach them. */
function checkOpen(uffd: Userfaultfd, call: string): void {
  if (!(uffd instanceof Userfaultfd)) throw new TypeError(`${call}: uffd must be a Userfaultfd, got ${uffd === null ? "null" : typeof uffd}`);
  // close() removes the handle from its owner's file table.
  if (uffd.owner.files.get(uffd.fd) !== uffd) throw new Error(`${call}: the userfaultfd is closed`);
}

function negated(errno: number): number {
  return errno === 0 ? 0 : -errno;
}

function viewOf(bytes: Uint8Array): DataView {
  return new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/**
 * Reads a u64 for the model's methods: exact up to 2^53 - 1, and Infinity
 * above. The methods' range and mode checks (asU64, hasOnlyBits) reject
 * Infinity, as the kernel rejects a u64 that large.
 */
function readU64(view: DataView, offset: number): number {
  const value = view.getBigUint64(offset, true);
  return value <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(value) : Infinity;
}

/** Reads a u64 message field, throwing RangeError when a number cannot hold it exactly. */
function readExactU64(view: DataView, offset: number, name: string): number {
  const value = view.getBigUint64(offset, true);
  if (value > BigInt(Number.MAX_SAFE_INTEGER)) throw new RangeError(`decodeMsg: ${name} 0x${value.toString(16)} is above 2^53`);
  return Number(value);
}

function writeU64Field(view: DataView, offset: number, fields: Record<string, unknown>, name: string): void {
  const value = requireNumber(fields[name], name);
  if (!Number.isSafeInteger(value) || value < 0) {
    throw new RangeError(`encodeMsg: ${name} must be a whole number from 0 to 2^53 - 1, got ${value}`);
  }
  view.setBigUint64(offset, BigInt(value), true);
}

function writeU32Field(view: DataView, offset: number, fields: Record<string, unknown>, name: string): void {
  view.setUint32(offset, checkU32(requireNumber(fields[name], name), name), true);
}

function checkU32(value: number, name: string): number {
  if (!Number.isInteger(value) || value < 0 || value > 0xffffffff) {
    throw new RangeError(`encodeMsg: ${name} must be a whole number from 0 to 2^32 - 1, got ${value}`);
  }
  return value;
}
