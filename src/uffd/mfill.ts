// UFFDIO_COPY and UFFDIO_ZEROPAGE: the ioctl skeleton and the range fill.
// Linux counterparts: fs/userfaultfd.c userfaultfd_copy() and
// userfaultfd_zeropage(); mm/userfaultfd.c mfill_atomic().
//
// Result rules, as the kernel writes them:
// - mmap_changing raised at entry: EAGAIN; the out-field is -EAGAIN on 6.15
//   and later, untouched before (this model writes -EAGAIN).
// - bad arguments (alignment, range, mode bits): EINVAL, out-field untouched.
// - address space gone: ESRCH, out-field untouched.
// - otherwise the out-field is the bytes done if any, else -errno; partial
//   progress returns EAGAIN, and only the done prefix is woken.

import {
  EAGAIN, EFAULT, EINVAL, ENOENT, ENOMEM, ESRCH, PAGE_SIZE, TASK_SIZE,
  UFFDIO_COPY_MODE_DONTWAKE, UFFDIO_COPY_MODE_WP, UFFDIO_ZEROPAGE_MODE_DONTWAKE,
} from "../constants.js";
import { asU64, requireNumber, requireObject } from "../errors.js";
import type { Mm } from "../mm/mm.js";
import { VM_UFFD_WP } from "../mm/vma.js";
import { PTE_UFFD_WP, PTE_WRITE, SRC_FAULT } from "../wasm/core.js";
import type { UffdContext } from "./context.js";

export interface CopyArgs {
  dst: number;
  src: number;
  len: number;
  mode: number;
  /** The out-field's value before the call; returned when the kernel leaves it untouched. Default 0. */
  copy?: number;
}

export interface CopyResult {
  readonly errno: number;
  /** Bytes copied, or a negative errno, or the preset when untouched. */
  readonly copy: number;
}

export interface ZeropageArgs {
  start: number;
  len: number;
  mode: number;
  /** The out-field's value before the call; see CopyArgs.copy. */
  zeropage?: number;
}

export interface ZeropageResult {
  readonly errno: number;
  readonly zeropage: number;
}

/** validate_range(): EINVAL unless page aligned, non-empty, above mmap_min_addr and below TASK_SIZE. */
export function rangeValid(start: number, len: number, mmapMinAddr: number): boolean {
  return (
    start % PAGE_SIZE === 0 && len % PAGE_SIZE === 0 && len > 0 &&
    start >= mmapMinAddr && start < TASK_SIZE && len <= TASK_SIZE - start
  );
}

/** The COPY source check: only that it stays inside user space (no alignment). */
function sourceRangeValid(src: number, len: number): boolean {
  return src < TASK_SIZE && len <= TASK_SIZE - src;
}

/**
 * Returns the end of the readable, contiguous mapping that starts at `src`
 * in `mm`, looking no further than `limit`.
 */
function readableEnd(mm: Mm, src: number, limit: number): number {
  let at = src;
  while (at < limit) {
    const vma = mm.vmaLookup(at);
    if (vma === undefined || !vma.readable) break;
    at = vma.end;
  }
  return at;
}

const copyResult = (errno: number, copy: number): CopyResult => Object.freeze({ errno, copy });
const zeropageResult = (errno: number, zeropage: number): ZeropageResult => Object.freeze({ errno, zeropage });

/** UFFDIO_COPY on `ctx`, with `srcMm` the address space of the calling process. */
export function uffdioCopy(ctx: UffdContext, srcMm: Mm, argsIn: CopyArgs): CopyResult {
  const args = requireObject(argsIn, "UFFDIO_COPY argument");
  const dst = asU64(requireNumber(args.dst, "dst"));
  const src = asU64(requireNumber(args.src, "src"));
  const len = asU64(requireNumber(args.len, "len"));
  const mode = asU64(requireNumber(args.mode, "mode"));
  const preset = args.copy === undefined ? 0 : requireNumber(args.copy, "copy");
  const kernel = ctx.kernel;
  kernel.stats.ioctls++;

  if (ctx.gateClosed) return gateEagain(ctx, (out) => copyResult(EAGAIN, out), preset);
  if (!rangeValid(dst, len, kernel.mmapMinAddr) || !sourceRangeValid(src, len)) return copyResult(EINVAL, preset);
  if ((mode & ~(UFFDIO_COPY_MODE_DONTWAKE | UFFDIO_COPY_MODE_WP)) !== 0) return copyResult(EINVAL, preset);
  if (!ctx.mm.alive) return copyResult(ESRCH, preset);

  const result = mfillAtomic(ctx, dst, len, (done) => copyPages(ctx, srcMm, dst + done, src + done, len - done, mode));
  return finish(ctx, dst, len, result, (mode & UFFDIO_COPY_MODE_DONTWAKE) !== 0, copyResult);
}

/** UFFDIO_ZEROPAGE on `ctx`. */
export function uffdioZeropage(ctx: UffdContext, argsIn: ZeropageArgs): ZeropageResult {
  const args = requireObject(argsIn, "UFFDIO_ZEROPAGE argument");
  const start = asU64(requireNumber(args.start, "start"));
  const len = asU64(requireNumber(args.len, "len"));
  const mode = asU64(requireNumber(args.mode, "mode"));
  const preset = args.zeropage === undefined ? 0 : requireNumber(args.zeropage, "zeropage");
  const kernel = ctx.kernel;
  kernel.stats.ioctls++;

  if (ctx.gateClosed) return gateEagain(ctx, (out) => zeropageResult(EAGAIN, out), preset);
  if (!rangeValid(start, len, kernel.mmapMinAddr)) return zeropageResult(EINVAL, preset);
  if ((mode & ~UFFDIO_ZEROPAGE_MODE_DONTWAKE) !== 0) return zeropageResult(EINVAL, preset);
  if (!ctx.mm.alive) return zeropageResult(ESRCH, preset);

  const result = mfillAtomic(ctx, start, len, (done) => zeroPages(ctx, start + done, len - done));
  return finish(ctx, start, len, result, (mode & UFFDIO_ZEROPAGE_MODE_DONTWAKE) !== 0, zeropageResult);
}

function gateEagain<R>(ctx: UffdContext, make: (out: number) => R, preset: number): R {
  ctx.kernel.stats.eagain++;
  // Since Linux 6.15 the out-field is written with -EAGAIN on this path.
  return make(ctx.kernel.writesOutFieldOnGate ? -EAGAIN : preset);
}

/** Writes the out-field, wakes the done prefix and picks the errno (steps 7 to 10). */
function finish<R>(ctx: UffdContext, dst: number, len: number, result: number, dontWake: boolean, make: (errno: number, out: number) => R): R {
  if (result < 0) {
    if (result === -EAGAIN) ctx.kernel.stats.eagain++;
    return make(-result, result);
  }
  if (!dontWake) ctx.wakeRange(dst, result);
  if (result === len) return make(0, result);
  ctx.kernel.stats.eagain++;
  return make(EAGAIN, result);
}

/**
 * One step of a fill: fills from `dst + done` and returns the bytes it
 * added, or a negative errno when it filled nothing. A positive result
 * below the remaining length with `retry` set asks for another pass
 * (the kernel's drop-locks-and-restart after a source fault).
 */
type FillStep = (done: number) => { filled: number; error: number; retry: boolean };

/**
 * The VMA checks and retry loop of mfill_atomic(): returns bytes done if
 * any, else a negative errno.
 */
function mfillAtomic(ctx: UffdContext, dst: number, len: number, step: FillStep): number {
  const mm = ctx.mm;
  let done = 0;
  for (;;) {
    mm.lock.readLock();
    const vma = mm.vmaLookup(dst);
    let error = 0;
    if (vma === undefined || dst + len > vma.end || vma.uffdCtx === null) error = -ENOENT;
    else if (ctx.gateClosed) error = -EAGAIN;
    if (error !== 0) {
      mm.lock.readUnlock();
      return done > 0 ? done : error;
    }
    const result = step(done);
    mm.lock.readUnlock();
    done += result.filled;
    if (result.error !== 0) return done > 0 ? done : result.error;
    if (!result.retry) return done;
  }
}

function copyPages(ctx: UffdContext, srcMm: Mm, dst: number, src: number, len: number, mode: number) {
  const kernel = ctx.kernel;
  const core = kernel.core.exports;
  const vma = ctx.mm.vmaLookup(dst)!;
  if ((mode & UFFDIO_COPY_MODE_WP) !== 0 && (vma.uffdFlags & VM_UFFD_WP) === 0) {
    return { filled: 0, error: -EINVAL, retry: false };
  }
  // Pages whose whole source lies in readable mappings of the caller.
  const srcEnd = readableEnd(srcMm, src, src + len);
  const readablePages = Math.floor((srcEnd - src) / PAGE_SIZE);
  const pages = Math.min(len / PAGE_SIZE, readablePages);
  let pteFlags = (mode & UFFDIO_COPY_MODE_WP) !== 0 ? PTE_UFFD_WP : 0;
  if (vma.writable && pteFlags === 0) pteFlags |= PTE_WRITE;

  const status = pages > 0 ? core.mfill_copy(ctx.mm.pgd, dst, srcMm.pgd, src, pages, pteFlags) : 0;
  const filledPages = pages > 0 ? core.pages_done() >>> 0 : 0;
  kernel.stats.pagesCopied += filledPages;
  const filled = filledPages * PAGE_SIZE;
  if (status === 0) {
    if (pages * PAGE_SIZE === len) return { filled, error: 0, retry: false };
    return { filled, error: -EFAULT, retry: false };
  }
  if (status === SRC_FAULT) {
    // copy_from_user faulted: fault the source in, as the kernel's retry
    // with page faults enabled does, and restart at the VMA lookup.
    const error = faultInSource(ctx, srcMm, src + filled);
    return { filled, error, retry: error === 0 };
  }
  return { filled, error: -status, retry: false };
}

/**
 * Faults in the source pages of the page copy at `src` in the caller's
 * address space: a read fault maps the zero page where nothing is mapped.
 * Returns 0 or -EFAULT.
 */
function faultInSource(ctx: UffdContext, srcMm: Mm, src: number): number {
  const core = ctx.kernel.core.exports;
  const first = src - (src % PAGE_SIZE);
  const last = src + PAGE_SIZE - 1 - ((src + PAGE_SIZE - 1) % PAGE_SIZE);
  for (let page = first; page <= last; page += PAGE_SIZE) {
    const vma = srcMm.vmaLookup(page);
    if (vma === undefined || !vma.readable) return -EFAULT;
    // NOTE: a source page in a userfaultfd-registered range of the caller
    // would block the copy on that userfaultfd in the kernel; the model
    // maps the zero page instead.
    if (core.do_anonymous_page(srcMm.pgd, page, 0) !== 0) return -ENOMEM;
  }
  return 0;
}

function zeroPages(ctx: UffdContext, dst: number, len: number) {
  const kernel = ctx.kernel;
  const core = kernel.core.exports;
  const status = core.mfill_zeropage(ctx.mm.pgd, dst, len / PAGE_SIZE);
  const filledPages = core.pages_done() >>> 0;
  kernel.stats.pagesZeroed += filledPages;
  return { filled: filledPages * PAGE_SIZE, error: status === 0 ? 0 : -status, retry: false };
}
