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
import { asU64, hasOnlyBits, requireNumber, requireObject } from "../errors.js";
import type { Mm } from "../mm/mm.js";
import { VM_UFFD_WP, type Vma } from "../mm/vma.js";
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

/** Returns whether `value` is a multiple of PAGE_SIZE (cheaper than % on large doubles). */
export function pageAligned(value: number): boolean {
  return Math.floor(value / PAGE_SIZE) * PAGE_SIZE === value;
}

/** validate_range(): EINVAL unless page aligned, non-empty, above mmap_min_addr and below TASK_SIZE. */
export function rangeValid(start: number, len: number, mmapMinAddr: number): boolean {
  return (
    start >= mmapMinAddr && start < TASK_SIZE && len > 0 && len <= TASK_SIZE - start &&
    pageAligned(start) && pageAligned(len)
  );
}

/** Checks COPY's source range: only that it stays inside user space (no alignment). */
function sourceRangeValid(src: number, len: number): boolean {
  return src < TASK_SIZE && len <= TASK_SIZE - src;
}

/**
 * Returns the end of the readable, contiguous mapping that starts at `src`
 * in `mm`, looking no further than `limit`.
 */
function readableEnd(mm: Mm, src: number, limit: number): number {
  const first = mm.vmaLookup(src);
  if (first !== undefined && first.readable && first.end >= limit) return limit;
  let at = src;
  while (at < limit) {
    const vma = mm.vmaLookup(at);
    if (vma === undefined || !vma.readable) break;
    at = vma.end;
  }
  return at;
}

// Results of the fill ioctls are plain objects, typed readonly but not
// frozen: Object.freeze costs about 50 ns a call on Node 20, a quarter of the
// time of the page copy itself.
const copyResult = (errno: number, copy: number): CopyResult => ({ errno, copy });
const zeropageResult = (errno: number, zeropage: number): ZeropageResult => ({ errno, zeropage });

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

  if (ctx.gateClosed) return copyResult(EAGAIN, gateEagain(ctx, preset));
  if (!rangeValid(dst, len, kernel.mmapMinAddr) || !sourceRangeValid(src, len)) return copyResult(EINVAL, preset);
  if (!hasOnlyBits(mode, UFFDIO_COPY_MODE_DONTWAKE | UFFDIO_COPY_MODE_WP)) return copyResult(EINVAL, preset);
  if (!ctx.mm.alive) return copyResult(ESRCH, preset);

  const result = mfillAtomicCopy(ctx, srcMm, dst, src, len, mode);
  return copyResult(finish(ctx, dst, len, result, (mode & UFFDIO_COPY_MODE_DONTWAKE) !== 0), result);
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

  if (ctx.gateClosed) return zeropageResult(EAGAIN, gateEagain(ctx, preset));
  if (!rangeValid(start, len, kernel.mmapMinAddr)) return zeropageResult(EINVAL, preset);
  if (!hasOnlyBits(mode, UFFDIO_ZEROPAGE_MODE_DONTWAKE)) return zeropageResult(EINVAL, preset);
  if (!ctx.mm.alive) return zeropageResult(ESRCH, preset);

  const result = mfillAtomicZeropage(ctx, start, len);
  return zeropageResult(finish(ctx, start, len, result, (mode & UFFDIO_ZEROPAGE_MODE_DONTWAKE) !== 0), result);
}

/** Counts an EAGAIN from the gate at entry and returns the out-field it leaves. */
export function gateEagain(ctx: UffdContext, preset: number): number {
  ctx.kernel.stats.eagain++;
  // Since Linux 6.15 the out-field is written with -EAGAIN on this path.
  return ctx.kernel.writesOutFieldOnGate ? -EAGAIN : preset;
}

/**
 * Wakes the done prefix and returns the errno for fill result `result`
 * (bytes done, or a negative errno): 0 when all of `len` is done, EAGAIN
 * for partial progress.
 */
export function finish(ctx: UffdContext, dst: number, len: number, result: number, dontWake: boolean): number {
  if (result < 0) {
    if (result === -EAGAIN) ctx.kernel.stats.eagain++;
    return -result;
  }
  if (!dontWake) ctx.wakeRange(dst, result);
  if (result === len) return 0;
  ctx.kernel.stats.eagain++;
  return EAGAIN;
}

/**
 * Takes the mmap_lock for read and checks the destination VMA and the gate
 * under it, as mfill_atomic() does on every (re)start. Returns the VMA with
 * the lock held, or a negative errno with the lock released.
 */
function lockDstVma(ctx: UffdContext, dst: number, len: number): Vma | number {
  const mm = ctx.mm;
  mm.lock.readLock();
  const vma = mm.vmaLookup(dst);
  let error = 0;
  if (vma === undefined || dst + len > vma.end || vma.uffdCtx === null) error = -ENOENT;
  else if (ctx.gateClosed) error = -EAGAIN;
  if (error === 0) return vma!;
  mm.lock.readUnlock();
  return error;
}

/** mfill_atomic() for COPY: returns bytes done if any, else a negative errno. */
function mfillAtomicCopy(ctx: UffdContext, srcMm: Mm, dst: number, src: number, len: number, mode: number): number {
  const kernel = ctx.kernel;
  const core = kernel.core.exports;
  const mm = ctx.mm;
  let done = 0;
  for (;;) {
    const vma = lockDstVma(ctx, dst, len);
    if (typeof vma === "number") return done > 0 ? done : vma;
    if ((mode & UFFDIO_COPY_MODE_WP) !== 0 && (vma.uffdFlags & VM_UFFD_WP) === 0) {
      mm.lock.readUnlock();
      return done > 0 ? done : -EINVAL;
    }
    const remaining = len - done;
    const from = src + done;
    // Only pages whose whole source lies in readable mappings of the caller.
    const sourceEnd = readableEnd(srcMm, from, from + remaining);
    const pages = sourceEnd === from + remaining ? remaining / PAGE_SIZE : Math.floor((sourceEnd - from) / PAGE_SIZE);
    let pteFlags = vma.writable ? PTE_WRITE : 0;
    if ((mode & UFFDIO_COPY_MODE_WP) !== 0) pteFlags = PTE_UFFD_WP;
    let status = 0;
    let filled = 0;
    if (vma.file !== null && !vma.isShmem) {
      status = EINVAL;
    } else if (pages > 0 && vma.isShmem && vma.isShared) {
      // Shared shmem: the new page goes into the page cache and is mapped;
      // a page past the end of the file is EFAULT.
      const offset = vma.fileOffset(dst + done);
      const inFile = Math.min(pages, pagesBeforeEof(vma, offset));
      status = inFile > 0 ? core.mfill_shmem(mm.pgd, dst + done, vma.file!.cache, offset, srcMm.pgd, from, inFile, pteFlags, 0) : EFAULT;
      filled = inFile > 0 ? core.pages_done() >>> 0 : 0;
      if (status === 0 && inFile < pages) status = EFAULT;
    } else if (pages > 0) {
      // mfill_copy returns pages filled * 4096 + status in one f64.
      const packed = core.mfill_copy(mm.pgd, dst + done, srcMm.pgd, from, pages, pteFlags);
      status = packed % PAGE_SIZE;
      filled = (packed - status) / PAGE_SIZE;
    }
    mm.lock.readUnlock();
    kernel.stats.pagesCopied += filled;
    done += filled * PAGE_SIZE;

    let error = 0;
    if (status === 0) {
      if (done === len) return done;
      error = -EFAULT; // the next source page is not readable
    } else if (status === SRC_FAULT) {
      // copy_from_user faulted: fault the source in, as the kernel's retry
      // with page faults enabled does, and restart at the VMA lookup.
      error = faultInSource(ctx, srcMm, src + done);
      if (error === 0) continue;
    } else {
      error = -status;
    }
    return done > 0 ? done : error;
  }
}

/** Returns how many pages from file offset `offset` lie before the end of `vma`'s file (page granular). */
function pagesBeforeEof(vma: Vma, offset: number): number {
  const filePages = Math.ceil(vma.file!.size / PAGE_SIZE);
  return Math.max(0, filePages - offset / PAGE_SIZE);
}

/**
 * Faults in the source pages of the page copy at `src` in the caller's
 * address space: a read fault maps the zero page where nothing is mapped.
 * Returns 0, -EFAULT or -ENOMEM.
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

/** mfill_atomic() for ZEROPAGE: returns bytes done if any, else a negative errno. */
function mfillAtomicZeropage(ctx: UffdContext, dst: number, len: number): number {
  const kernel = ctx.kernel;
  const core = kernel.core.exports;
  const locked = lockDstVma(ctx, dst, len);
  if (typeof locked === "number") return locked;
  const vma = locked;
  let status = EINVAL;
  let filled = 0;
  if (vma.isShmem && vma.isShared) {
    // Shared shmem: a zeroed page is added to the page cache and mapped;
    // a page past the end of the file is EFAULT.
    const pteFlags = vma.writable ? PTE_WRITE : 0;
    const pages = len / PAGE_SIZE;
    const inFile = Math.min(pages, pagesBeforeEof(vma, vma.fileOffset(dst)));
    status = inFile > 0 ? core.mfill_shmem(ctx.mm.pgd, dst, vma.file!.cache, vma.fileOffset(dst), ctx.mm.pgd, 0, inFile, pteFlags, 1) : EFAULT;
    filled = inFile > 0 ? core.pages_done() >>> 0 : 0;
    if (status === 0 && inFile < pages) status = EFAULT;
  } else if (vma.file === null || vma.isShmem) {
    status = core.mfill_zeropage(ctx.mm.pgd, dst, len / PAGE_SIZE);
    filled = core.pages_done() >>> 0;
  }
  ctx.mm.lock.readUnlock();
  kernel.stats.pagesZeroed += filled;
  return filled > 0 ? filled * PAGE_SIZE : -status;
}
