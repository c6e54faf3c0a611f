// A userfaultfd file: one open handle on a context, living in one process's
// file table. Linux counterpart: the file operations of fs/userfaultfd.c
// (userfaultfd_ioctl, userfaultfd_read, userfaultfd_release) and the
// register/unregister helpers of mm/userfaultfd.c.

import {
  EAGAIN, EBUSY, EINVAL, ENOMEM, UFFD_API, UFFD_API_IOCTLS, UFFD_EVENT_FORK,
  UFFD_FEATURE_EVENT_FORK, UFFD_FEATURE_EXACT_ADDRESS, UFFD_FEATURE_SIGBUS, UFFD_FEATURE_THREAD_ID,
  UFFDIO_REGISTER_MODE_MINOR, UFFDIO_REGISTER_MODE_MISSING, UFFDIO_REGISTER_MODE_WP,
  _UFFDIO_COPY, _UFFDIO_WAKE, _UFFDIO_ZEROPAGE,
} from "../constants.js";
import { asU64, hasOnlyBits, requireNumber, requireObject } from "../errors.js";
import type { Process } from "../mm/process.js";
import { VM_UFFD_MISSING } from "../mm/vma.js";
import type { UffdContext } from "./context.js";
import { forkMsg, READ_EAGAIN, type ReadResult, type UffdMsg } from "./messages.js";
import { rangeValid, uffdioCopy, uffdioZeropage, type CopyArgs, type CopyResult, type ZeropageArgs, type ZeropageResult } from "./mfill.js";

/**
 * The features this model implements; UFFDIO_API reports these and rejects
 * any other bit with EINVAL, as a kernel built without them does.
 * NOTE: WP, MINOR, POISON, MOVE and the REMAP/REMOVE/UNMAP events are not
 * modelled yet, so a request for them fails with EINVAL.
 */
export const SUPPORTED_FEATURES =
  UFFD_FEATURE_EVENT_FORK | UFFD_FEATURE_SIGBUS | UFFD_FEATURE_THREAD_ID | UFFD_FEATURE_EXACT_ADDRESS;

/** The range ioctls a MISSING registration reports: WAKE, COPY and ZEROPAGE. */
const RANGE_IOCTLS_MISSING = (1n << BigInt(_UFFDIO_WAKE)) | (1n << BigInt(_UFFDIO_COPY)) | (1n << BigInt(_UFFDIO_ZEROPAGE));

export interface ApiArgs {
  api: number;
  features: number | bigint;
}

export interface ApiResult {
  readonly errno: number;
  readonly api: number;
  readonly features: number;
  readonly ioctls: bigint;
}

export interface RangeArgs {
  start: number;
  len: number;
}

export interface RegisterArgs extends RangeArgs {
  mode: number;
}

export interface RegisterResult {
  readonly errno: number;
  /** The range ioctls allowed on the registered range; 0n on failure. */
  readonly ioctls: bigint;
}

export interface ErrnoResult {
  readonly errno: number;
}

const errnoResult = (errno: number): ErrnoResult => Object.freeze({ errno });
const API_ZEROED = (errno: number): ApiResult => Object.freeze({ errno, api: 0, features: 0, ioctls: 0n });

export class Userfaultfd {
  readonly ctx: UffdContext;
  /** The process whose file table holds this file; COPY reads `src` in its address space. */
  readonly owner: Process;
  /** The descriptor number in the owner's file table. */
  readonly fd: number;
  private closed = false;

  /** Use Process.userfaultfd(). Installs the file at `fd`, by default the lowest free number. */
  constructor(ctx: UffdContext, owner: Process, fd = owner.lowestFreeFd()) {
    if (owner.files.has(fd)) throw new Error(`userfaultfd: descriptor ${fd} of process ${owner.pid} is in use`);
    this.ctx = ctx;
    this.owner = owner;
    this.fd = fd;
    ctx.files++;
    owner.files.set(fd, this);
  }

  /**
   * Opens another handle on the same context in `process` (dup, or passing
   * the fd over a socket), at descriptor `fd` or the lowest free one.
   */
  dupInto(process: Process, fd?: number): Userfaultfd {
    this.checkOpen();
    return new Userfaultfd(this.ctx, process, fd);
  }

  private checkOpen(): void {
    if (this.closed) throw new Error("userfaultfd: the file is closed");
  }

  /** UFFDIO_API: the feature handshake, allowed once per context. */
  api(argsIn: ApiArgs): ApiResult {
    this.checkOpen();
    const args = requireObject(argsIn, "UFFDIO_API argument");
    const api = requireNumber(args.api, "api");
    const raw = args.features;
    if (typeof raw !== "number" && typeof raw !== "bigint") throw new TypeError("features must be a number or a bigint");
    if (api !== UFFD_API) return API_ZEROED(EINVAL);
    const features = typeof raw === "bigint" ? raw : BigInt(asU64(raw) === Infinity ? -1 : raw);
    if (features < 0n || (features & ~BigInt(SUPPORTED_FEATURES)) !== 0n) return API_ZEROED(EINVAL);
    if (this.ctx.apiDone) return API_ZEROED(EINVAL);
    this.ctx.apiDone = true;
    this.ctx.features = Number(features);
    return Object.freeze({ errno: 0, api: UFFD_API, features: SUPPORTED_FEATURES, ioctls: UFFD_API_IOCTLS });
  }

  /** UFFDIO_REGISTER: attaches [start, start + len) to this context. */
  register(argsIn: RegisterArgs): RegisterResult {
    this.checkOpen();
    const args = requireObject(argsIn, "UFFDIO_REGISTER argument");
    const start = asU64(requireNumber(args.start, "start"));
    const len = asU64(requireNumber(args.len, "len"));
    const mode = asU64(requireNumber(args.mode, "mode"));
    const ctx = this.ctx;
    const fail = (errno: number): RegisterResult => Object.freeze({ errno, ioctls: 0n });
    if (!ctx.apiDone) return fail(EINVAL);
    const modes = UFFDIO_REGISTER_MODE_MISSING | UFFDIO_REGISTER_MODE_WP | UFFDIO_REGISTER_MODE_MINOR;
    if (mode === 0 || !hasOnlyBits(mode, modes)) return fail(EINVAL);
    // NOTE: WP and MINOR registration are not modelled yet; they fail as on
    // a kernel without support for them.
    if (mode !== UFFDIO_REGISTER_MODE_MISSING) return fail(EINVAL);
    if (!rangeValid(start, len, ctx.kernel.mmapMinAddr)) return fail(EINVAL);
    const mm = ctx.mm;
    if (!mm.alive) return fail(ENOMEM);

    const end = start + len;
    mm.lock.writeLock();
    try {
      const vmas = mm.vmasIn(start, end);
      if (vmas.length === 0) return fail(EINVAL);
      for (const vma of vmas) {
        if (vma.uffdCtx !== null && vma.uffdCtx !== ctx) return fail(EBUSY);
      }
      for (const vma of vmas) {
        if (vma.uffdCtx === ctx && (vma.uffdFlags & mode) === mode) continue;
        const inside = mm.isolateRange(vma, start, end);
        inside.uffdCtx = ctx;
        inside.uffdFlags = mode;
        mm.mergeAround(inside);
      }
    } finally {
      mm.lock.writeUnlock();
    }
    return Object.freeze({ errno: 0, ioctls: RANGE_IOCTLS_MISSING });
  }

  /** UFFDIO_UNREGISTER: detaches the range and wakes its MISSING faults. */
  unregister(argsIn: RangeArgs): ErrnoResult {
    this.checkOpen();
    const args = requireObject(argsIn, "UFFDIO_UNREGISTER argument");
    const start = asU64(requireNumber(args.start, "start"));
    const len = asU64(requireNumber(args.len, "len"));
    const ctx = this.ctx;
    if (!ctx.apiDone || !rangeValid(start, len, ctx.kernel.mmapMinAddr)) return errnoResult(EINVAL);
    const mm = ctx.mm;
    if (!mm.alive) return errnoResult(ENOMEM);

    const end = start + len;
    mm.lock.writeLock();
    try {
      const vmas = mm.vmasIn(start, end);
      if (vmas.length === 0) return errnoResult(EINVAL);
      // Since Linux 6.17 a range registered to another context is refused.
      for (const vma of vmas) if (vma.uffdCtx !== null && vma.uffdCtx !== ctx) return errnoResult(EINVAL);
      for (const vma of vmas) {
        if (vma.uffdCtx === null) continue;
        const inside = mm.isolateRange(vma, start, end);
        if ((inside.uffdFlags & VM_UFFD_MISSING) !== 0) ctx.wakeRange(inside.start, inside.length);
        inside.resetUffd();
        mm.mergeAround(inside);
      }
    } finally {
      mm.lock.writeUnlock();
    }
    return errnoResult(0);
  }

  /** UFFDIO_COPY: fills missing pages with copies of `src` in the owner's memory. */
  copy(args: CopyArgs): CopyResult {
    this.checkOpen();
    if (!this.ctx.apiDone) {
      requireObject(args, "UFFDIO_COPY argument");
      return Object.freeze({ errno: EINVAL, copy: typeof args.copy === "number" ? args.copy : 0 });
    }
    return uffdioCopy(this.ctx, this.owner.mm, args);
  }

  /** UFFDIO_ZEROPAGE: maps the zero page on missing pages. */
  zeropage(args: ZeropageArgs): ZeropageResult {
    this.checkOpen();
    if (!this.ctx.apiDone) {
      requireObject(args, "UFFDIO_ZEROPAGE argument");
      return Object.freeze({ errno: EINVAL, zeropage: typeof args.zeropage === "number" ? args.zeropage : 0 });
    }
    return uffdioZeropage(this.ctx, args);
  }

  /** UFFDIO_WAKE: wakes the faults in the range without filling anything. */
  wake(argsIn: RangeArgs): ErrnoResult {
    this.checkOpen();
    const args = requireObject(argsIn, "UFFDIO_WAKE argument");
    const start = asU64(requireNumber(args.start, "start"));
    const len = asU64(requireNumber(args.len, "len"));
    if (!this.ctx.apiDone || !rangeValid(start, len, this.ctx.kernel.mmapMinAddr)) return errnoResult(EINVAL);
    this.ctx.wakeRange(start, len);
    return errnoResult(0);
  }

  /**
   * Reads the next message without blocking: the oldest unread fault, else
   * the oldest event. Returns { errno: EAGAIN } when none is queued and
   * { errno: EINVAL } before UFFDIO_API. Reading an event lets its producer
   * resume; its mmap_changing drops when the producer next runs.
   */
  read(): ReadResult {
    this.checkOpen();
    const ctx = this.ctx;
    if (!ctx.apiDone) return errnoResult(EINVAL);
    const fault = ctx.takeFault();
    if (fault !== undefined) return fault.msg;
    const event = ctx.eventQueue.shift();
    if (event === undefined) return READ_EAGAIN;
    if (event.event !== UFFD_EVENT_FORK || event.child === null) {
      throw new Error(`read: event 0x${event.event.toString(16)} is not modelled`);
    }
    // resolve_userfault_fork: install the child context in the reader's file table.
    const msg = forkMsg(new Userfaultfd(event.child, this.owner));
    event.complete(true);
    return msg;
  }

  /**
   * Waits for the next message (a blocking read). Settles with the message,
   * or with { errno: EINVAL } before UFFDIO_API.
   */
  async readWait(): Promise<UffdMsg | { readonly errno: number }> {
    for (;;) {
      const result = this.read();
      if (result.errno !== EAGAIN) return result;
      await new Promise<void>((resolve) => this.ctx.onReadable(resolve));
      this.checkOpen();
    }
  }

  /** Returns whether read() would return a message now (poll's EPOLLIN). */
  get readable(): boolean {
    return this.ctx.hasMessages;
  }

  /**
   * Closes this handle. The last close of a context releases it: its ranges
   * are unregistered, every blocked fault is woken to retry as an ordinary
   * fault, and producers waiting on unread events resume.
   */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.owner.files.delete(this.fd);
    const ctx = this.ctx;
    if (--ctx.files > 0) return;
    const mm = ctx.mm;
    if (mm.alive) {
      mm.lock.writeLock();
      for (const vma of mm.vmaList()) {
        if (vma.uffdCtx !== ctx) continue;
        vma.resetUffd();
        mm.mergeAround(vma);
      }
      mm.lock.writeUnlock();
    }
    ctx.release();
    ctx.kernel.contexts.delete(ctx);
  }
}
