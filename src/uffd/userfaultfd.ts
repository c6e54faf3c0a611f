// A userfaultfd file: one open handle on a context, living in one process's
// file table. Linux counterpart: the file operations of fs/userfaultfd.c
// (userfaultfd_ioctl, userfaultfd_read, userfaultfd_release) and the
// register/unregister helpers of mm/userfaultfd.c.

import {
  EAGAIN, EBUSY, EINVAL, ENOMEM, EPERM, EPOLLERR, EPOLLIN, O_NONBLOCK, PAGE_SIZE, UFFD_API, UFFD_API_IOCTLS, UFFD_EVENT_FORK,
  UFFD_FEATURE_EVENT_FORK, UFFD_FEATURE_WP_ASYNC, UFFD_FEATURE_WP_UNPOPULATED,
  UFFDIO_REGISTER_MODE_MINOR, UFFDIO_REGISTER_MODE_MISSING, UFFDIO_REGISTER_MODE_WP,
  _UFFDIO_CONTINUE, _UFFDIO_COPY, _UFFDIO_MOVE, _UFFDIO_POISON, _UFFDIO_WAKE, _UFFDIO_WRITEPROTECT, _UFFDIO_ZEROPAGE,
} from "../constants.js";
import type { KernelProfile } from "../mm/profile.js";
import { asU64, hasOnlyBits, requireNumber, requireObject } from "../errors.js";
import type { Process } from "../mm/process.js";
import { VM_UFFD_MISSING, VM_UFFD_WP } from "../mm/vma.js";
import { WP_VMA_WRITE } from "../wasm/core.js";
import type { UffdContext } from "./context.js";
import { forkMsg, READ_EAGAIN, type ReadResult, type UffdMsg } from "./messages.js";
import {
  uffdioContinue, uffdioMove, uffdioPoison, uffdioWriteprotect, type ContinueArgs, type ContinueResult, type MoveArgs, type MoveResult, type PoisonArgs, type PoisonResult,
  type WriteprotectArgs,
} from "./ioctls.js";
import { rangeValid, uffdioCopy, uffdioZeropage, type CopyArgs, type CopyResult, type ZeropageArgs, type ZeropageResult } from "./mfill.js";

/**
 * Returns the range ioctls mask UFFDIO_REGISTER reports for `mode`: every
 * range ioctl the kernel version has, less WRITEPROTECT without WP mode and
 * CONTINUE without MINOR mode.
 */
function rangeIoctls(profile: KernelProfile, mode: number): bigint {
  let bits = [_UFFDIO_WAKE, _UFFDIO_COPY, _UFFDIO_ZEROPAGE];
  if (profile.move) bits.push(_UFFDIO_MOVE);
  if (profile.wp && (mode & UFFDIO_REGISTER_MODE_WP) !== 0) bits.push(_UFFDIO_WRITEPROTECT);
  if (profile.minor && (mode & UFFDIO_REGISTER_MODE_MINOR) !== 0) bits.push(_UFFDIO_CONTINUE);
  if (profile.poison) bits.push(_UFFDIO_POISON);
  return bits.reduce((mask, nr) => mask | (1n << BigInt(nr)), 0n);
}

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

/** Returns the out-field preset `field` of an ioctl argument, 0 when absent. */
function presetOf(args: unknown, field: string): number {
  const value = requireObject(args, "ioctl argument")[field];
  return value === undefined ? 0 : requireNumber(value, field);
}

/** Clears uffd-wp bits and markers of a range whose WP registration ends. */
function clearUffdWp(ctx: UffdContext, start: number, length: number, writable: boolean): void {
  const core = ctx.kernel.core.exports;
  core.mwriteprotect_range(ctx.mm.pgd, start, length / PAGE_SIZE, writable ? WP_VMA_WRITE : 0);
}

export class Userfaultfd {
  readonly ctx: UffdContext;
  /** The process whose file table contains this file; COPY reads `src` in its address space. */
  readonly owner: Process;
  /** The descriptor number in the owner's file table. */
  readonly fd: number;
  /** O_NONBLOCK of this open file: set at creation from the flags, changed by setNonblocking(). */
  nonblocking: boolean;
  private closedFlag = false;

  /** Use Process.userfaultfd(). Installs the file at `fd`, by default the lowest free number. */
  constructor(ctx: UffdContext, owner: Process, fd = owner.lowestFreeFd()) {
    if (owner.files.has(fd)) throw new Error(`userfaultfd: descriptor ${fd} of process ${owner.pid} is in use`);
    this.ctx = ctx;
    this.owner = owner;
    this.fd = fd;
    this.nonblocking = (ctx.flags & O_NONBLOCK) !== 0;
    ctx.files++;
    owner.files.set(fd, this);
  }

  /**
   * Opens another handle on the same context in `process` (dup, or passing
   * the fd over a socket), at descriptor `fd` or the lowest free one.
   * Throws TypeError for a process of another Kernel, RangeError for an fd
   * that is not a whole number >= 0, and Error for an fd in use.
   */
  dupInto(process: Process, fd?: number): Userfaultfd {
    this.checkOpen();
    if (typeof process !== "object" || process === null || process.kernel !== this.ctx.kernel) {
      throw new TypeError("dupInto: process must be a Process of the same Kernel");
    }
    if (process.exited) throw new Error(`dupInto: process ${process.pid} has exited`);
    if (fd !== undefined && !(Number.isSafeInteger(requireNumber(fd, "fd")) && fd >= 0)) {
      throw new RangeError(`dupInto: fd must be a whole number >= 0, got ${fd}`);
    }
    return new Userfaultfd(this.ctx, process, fd);
  }

  get closed(): boolean {
    return this.closedFlag;
  }

  private checkOpen(): void {
    this.ctx.kernel.core.checkUsable();
    if (this.closedFlag) throw new Error(`userfaultfd: descriptor ${this.fd} is closed`);
  }

  /**
   * Sets or clears O_NONBLOCK on this open file (fcntl F_SETFL). The
   * context's creation flags, which a FORK child inherits, do not change.
   */
  setNonblocking(nonblocking: boolean): void {
    this.checkOpen();
    if (typeof nonblocking !== "boolean") throw new TypeError(`setNonblocking: nonblocking must be a boolean, got ${typeof nonblocking}`);
    this.nonblocking = nonblocking;
  }

  /**
   * Returns poll(2)'s revents: EPOLLERR before UFFDIO_API and on a file
   * without O_NONBLOCK, EPOLLIN while a fault or an event is unread, else 0.
   */
  poll(): number {
    this.checkOpen();
    if (!this.ctx.apiDone || !this.nonblocking) return EPOLLERR;
    return this.ctx.hasMessages ? EPOLLIN : 0;
  }

  /** UFFDIO_API: the feature handshake, allowed once per context. */
  api(argsIn: ApiArgs): ApiResult {
    this.checkOpen();
    const args = requireObject(argsIn, "UFFDIO_API argument");
    const api = requireNumber(args.api, "api");
    const raw = args.features;
    if (typeof raw !== "number" && typeof raw !== "bigint") throw new TypeError("features must be a number or a bigint");
    if (api !== UFFD_API) return API_ZEROED(EINVAL);
    const asked = typeof raw === "bigint" ? raw : BigInt(Number.isSafeInteger(raw) && raw >= 0 ? raw : 0);
    if ((asked & BigInt(UFFD_FEATURE_EVENT_FORK)) !== 0n && !this.owner.privileged) return API_ZEROED(EPERM);
    const supported = this.ctx.kernel.profile.features;
    const features = typeof raw === "bigint" ? raw : BigInt(asU64(raw) === Infinity ? -1 : raw);
    if (features < 0n || (features & ~BigInt(supported)) !== 0n) return API_ZEROED(EINVAL);
    if (this.ctx.apiDone) return API_ZEROED(EINVAL);
    let enabled = Number(features);
    // WP_ASYNC needs empty entries protected too, so it implies WP_UNPOPULATED.
    if ((enabled & UFFD_FEATURE_WP_ASYNC) !== 0) enabled |= UFFD_FEATURE_WP_UNPOPULATED;
    this.ctx.apiDone = true;
    this.ctx.features = enabled;
    return Object.freeze({ errno: 0, api: UFFD_API, features: supported, ioctls: UFFD_API_IOCTLS });
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
    const profile = ctx.kernel.profile;
    const modes = UFFDIO_REGISTER_MODE_MISSING | UFFDIO_REGISTER_MODE_WP | UFFDIO_REGISTER_MODE_MINOR;
    if (mode === 0 || !hasOnlyBits(mode, modes)) return fail(EINVAL);
    if ((mode & UFFDIO_REGISTER_MODE_WP) !== 0 && !profile.wp) return fail(EINVAL);
    if ((mode & UFFDIO_REGISTER_MODE_MINOR) !== 0 && !profile.minor) return fail(EINVAL);
    if (!rangeValid(start, len, ctx.kernel.mmapMinAddr)) return fail(EINVAL);
    const mm = ctx.mm;
    if (!mm.alive) return fail(ENOMEM);

    const end = start + len;
    mm.lock.writeLock();
    try {
      const vmas = mm.vmasIn(start, end);
      if (vmas.length === 0) return fail(EINVAL);
      for (const vma of vmas) {
        // vma_can_userfault: private anonymous memory or shmem; MINOR needs
        // a page cache, so shmem only.
        if (vma.file !== null && !vma.isShmem) return fail(EINVAL);
        if ((mode & UFFDIO_REGISTER_MODE_MINOR) !== 0 && !vma.isShmem) return fail(EINVAL);
        if (!vma.mayWrite) return fail(EPERM);
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
    return Object.freeze({ errno: 0, ioctls: rangeIoctls(profile, mode) });
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
      // Since Linux 6.17 a range registered to another context is refused;
      // before, the call silently unregistered the other context's range.
      if (ctx.kernel.profile.unregisterForeignEinval) {
        for (const vma of vmas) if (vma.uffdCtx !== null && vma.uffdCtx !== ctx) return errnoResult(EINVAL);
      }
      for (const vma of vmas) {
        const owner = vma.uffdCtx;
        if (owner === null) continue;
        const inside = mm.isolateRange(vma, start, end);
        if ((inside.uffdFlags & VM_UFFD_MISSING) !== 0) owner.wakeRange(inside.start, inside.length);
        if ((inside.uffdFlags & VM_UFFD_WP) !== 0) clearUffdWp(ctx, inside.start, inside.length, inside.writable);
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
    if (!this.ctx.apiDone) return { errno: EINVAL, copy: presetOf(args, "copy") };
    return uffdioCopy(this.ctx, this.owner.mm, args);
  }

  /** UFFDIO_ZEROPAGE: maps the zero page on missing pages. */
  zeropage(args: ZeropageArgs): ZeropageResult {
    this.checkOpen();
    if (!this.ctx.apiDone) return { errno: EINVAL, zeropage: presetOf(args, "zeropage") };
    return uffdioZeropage(this.ctx, args);
  }

  /** UFFDIO_WRITEPROTECT: sets (mode WP) or clears uffd-wp protection on a WP-registered range. */
  writeprotect(args: WriteprotectArgs): ErrnoResult {
    this.checkOpen();
    if (!this.ctx.apiDone) return errnoResult(EINVAL);
    return uffdioWriteprotect(this.ctx, args);
  }

  /** UFFDIO_POISON: marks missing pages so that an access to them raises SIGBUS. */
  poison(args: PoisonArgs): PoisonResult {
    this.checkOpen();
    if (!this.ctx.apiDone) return { errno: EINVAL, updated: presetOf(args, "updated") };
    return uffdioPoison(this.ctx, args);
  }

  /** UFFDIO_MOVE: moves pages of the owner's address space from `src` to `dst`. */
  move(args: MoveArgs): MoveResult {
    this.checkOpen();
    if (!this.ctx.apiDone) return { errno: EINVAL, move: presetOf(args, "move") };
    return uffdioMove(this.ctx, this.owner.mm, args);
  }

  /** UFFDIO_CONTINUE: maps pages already in the page cache (resolves MINOR faults). */
  continue(args: ContinueArgs): ContinueResult {
    this.checkOpen();
    if (!this.ctx.apiDone) return { errno: EINVAL, mapped: presetOf(args, "mapped") };
    return uffdioContinue(this.ctx, args);
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
    if (event.msg !== null) {
      event.complete(true);
      return event.msg;
    }
    if (event.event !== UFFD_EVENT_FORK || event.child === null) {
      throw new Error(`read: event 0x${event.event.toString(16)} has no message`);
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
  readWait(): Promise<UffdMsg | { readonly errno: number }> {
    try {
      const result = this.read();
      return result.errno !== EAGAIN ? Promise.resolve(result) : this.readWaitSlow();
    } catch (error) {
      return Promise.reject(error);
    }
  }

  /** readWait() once the queue was found empty: sleeps until a message arrives or the context is released. */
  private async readWaitSlow(): Promise<UffdMsg | { readonly errno: number }> {
    for (;;) {
      await this.ctx.kernel.waitFor<void>("a userfaultfd message", (resolve) => this.ctx.onReadable(resolve));
      this.checkOpen();
      const result = this.read();
      if (result.errno !== EAGAIN) return result;
    }
  }

  /** Returns whether read() would return a message now (poll's EPOLLIN). */
  get readable(): boolean {
    this.ctx.kernel.core.checkUsable();
    return this.ctx.hasMessages;
  }

  /**
   * Closes this handle. The last close of a context releases it: its ranges
   * are unregistered, every blocked fault is woken to retry as an ordinary
   * fault, and producers waiting on unread events resume.
   */
  close(): void {
    this.ctx.kernel.core.checkUsable();
    if (this.closedFlag) return;
    this.closedFlag = true;
    this.owner.files.delete(this.fd);
    const ctx = this.ctx;
    if (--ctx.files > 0) return;
    const mm = ctx.mm;
    if (mm.alive) {
      mm.lock.writeLock();
      for (const vma of mm.vmaList()) {
        if (vma.uffdCtx !== ctx) continue;
        if ((vma.uffdFlags & VM_UFFD_WP) !== 0) clearUffdWp(ctx, vma.start, vma.length, vma.writable);
        vma.resetUffd();
        mm.mergeAround(vma);
      }
      mm.lock.writeUnlock();
    }
    ctx.release();
    ctx.kernel.contexts.delete(ctx);
  }
}
