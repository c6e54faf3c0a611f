// Messages read from a userfaultfd, as frozen values (PAGEFAULT messages
// are typed readonly but not frozen: they are made once per fault, and
// Object.freeze took about 5% of a fault round trip in a CPU profile).
// Linux counterpart: struct uffd_msg (include/uapi/linux/userfaultfd.h).

import { EAGAIN, UFFD_EVENT_FORK, UFFD_EVENT_PAGEFAULT, UFFD_EVENT_REMAP, UFFD_EVENT_REMOVE, UFFD_EVENT_UNMAP } from "../constants.js";
import type { Userfaultfd } from "./userfaultfd.js";

export interface PagefaultMsg {
  readonly errno: 0;
  readonly event: typeof UFFD_EVENT_PAGEFAULT;
  /** UFFD_PAGEFAULT_FLAG_* bits. */
  readonly flags: number;
  /** Fault address: page aligned, or exact with UFFD_FEATURE_EXACT_ADDRESS. */
  readonly address: number;
  /** Faulting thread id with UFFD_FEATURE_THREAD_ID, else 0. */
  readonly ptid: number;
}

export interface ForkMsg {
  readonly errno: 0;
  readonly event: typeof UFFD_EVENT_FORK;
  /** The child's userfaultfd, installed in the reader's process. */
  readonly uffd: Userfaultfd;
}

export interface RemapMsg {
  readonly errno: 0;
  readonly event: typeof UFFD_EVENT_REMAP;
  /** Old start of the moved range. */
  readonly from: number;
  /** New start of the moved range. */
  readonly to: number;
  /** Old length of the range. */
  readonly len: number;
}

/** UFFD_EVENT_REMOVE (madvise) or UFFD_EVENT_UNMAP (munmap): the range [start, end). */
export interface RangeMsg {
  readonly errno: 0;
  readonly event: typeof UFFD_EVENT_REMOVE | typeof UFFD_EVENT_UNMAP;
  readonly start: number;
  /** One past the last byte. */
  readonly end: number;
}

export type UffdMsg = PagefaultMsg | ForkMsg | RemapMsg | RangeMsg;

/** The result of read() when no message is returned. */
export interface ReadError {
  readonly errno: number;
}

export type ReadResult = UffdMsg | ReadError;

export function pagefaultMsg(flags: number, address: number, ptid: number): PagefaultMsg {
  return { errno: 0, event: UFFD_EVENT_PAGEFAULT, flags, address, ptid };
}

export function forkMsg(uffd: Userfaultfd): ForkMsg {
  return Object.freeze({ errno: 0, event: UFFD_EVENT_FORK, uffd });
}

export function remapMsg(from: number, to: number, len: number): RemapMsg {
  return Object.freeze({ errno: 0, event: UFFD_EVENT_REMAP, from, to, len });
}

export function rangeMsg(event: typeof UFFD_EVENT_REMOVE | typeof UFFD_EVENT_UNMAP, start: number, end: number): RangeMsg {
  return Object.freeze({ errno: 0, event, start, end });
}

export const READ_EAGAIN: ReadError = Object.freeze({ errno: EAGAIN });
