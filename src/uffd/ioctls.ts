// UFFDIO_WRITEPROTECT, UFFDIO_CONTINUE, UFFDIO_POISON and UFFDIO_MOVE.
// Linux counterparts: fs/userfaultfd.c userfaultfd_writeprotect(),
// userfaultfd_poison() and userfaultfd_move(); mm/userfaultfd.c
// mwriteprotect_range(), mfill_atomic_poison() and move_pages().
//
// They share the skeleton of COPY (see mfill.ts): the gate is checked before
// the arguments, invalid arguments leave the out-field untouched, and
// partial progress returns EAGAIN with the bytes done.

import {
  EAGAIN, EINVAL, ENOENT, ESRCH, PAGE_SIZE, UFFD_FEATURE_WP_UNPOPULATED, UFFDIO_CONTINUE_MODE_DONTWAKE,
  UFFDIO_CONTINUE_MODE_WP, UFFDIO_MOVE_MODE_ALLOW_SRC_HOLES,
  UFFDIO_MOVE_MODE_DONTWAKE, UFFDIO_POISON_MODE_DONTWAKE, UFFDIO_WRITEPROTECT_MODE_DONTWAKE,
  UFFDIO_WRITEPROTECT_MODE_WP,
} from "../constants.js";
import { asU64, hasOnlyBits, requireNumber, requireObject } from "../errors.js";
import type { Mm } from "../mm/mm.js";
import { VM_UFFD_WP } from "../mm/vma.js";
import { MOVE_ALLOW_SRC_HOLES, MOVE_DST_WRITE, PTE_UFFD_WP, PTE_WRITE, WP_MARKERS, WP_PROTECT, WP_VMA_WRITE } from "../wasm/core.js";
import type { UffdContext } from "./context.js";
import { finish, gateEagain, rangeValid } from "./mfill.js";

export interface WriteprotectArgs {
  start: number;
  len: number;
  mode: number;
}

export interface PoisonArgs {
  start: number;
  len: number;
  mode: number;
  /** The out-field's value before the call; returned when the kernel leaves it untouched. Default 0. */
  updated?: number;
}

export interface PoisonResult {
  readonly errno: number;
  /** Bytes poisoned, or a negative errno, or the preset when untouched. */
  readonly updated: number;
}

export interface ContinueArgs {
  start: number;
  len: number;
  mode: number;
  /** The out-field's value before the call; returned when the kernel leaves it untouched. Default 0. */
  mapped?: number;
}

export interface ContinueResult {
  readonly errno: number;
  /** Bytes mapped, or a negative errno, or the preset when untouched. */
  readonly mapped: number;
}

export interface MoveArgs {
  dst: number;
  src: number;
  len: number;
  mode: number;
  /** The out-field's value before the call; returned when the kernel leaves it untouched. Default 0. */
  move?: number;
}

export interface MoveResult {
  readonly errno: number;
  /** Bytes moved (holes included), or a negative errno, or the preset when untouched. */
  readonly move: number;
}

/**
 * UFFDIO_WRITEPROTECT: sets or clears uffd-wp protection on the range.
 * Un-protecting without DONTWAKE wakes the threads blocked on WP faults
 * there. Every VMA of the range must be WP-registered, else ENOENT (VMAs
 * before the failing one keep their change).
 */
export function uffdioWriteprotect(ctx: UffdContext, argsIn: WriteprotectArgs): { readonly errno: number } {
  const args = requireObject(argsIn, "UFFDIO_WRITEPROTECT argument");
  const start = asU64(requireNumber(args.start, "start"));
  const len = asU64(requireNumber(args.len, "len"));
  const mode = asU64(requireNumber(args.mode, "mode"));
  const kernel = ctx.kernel;
  kernel.stats.ioctls++;
  if (!kernel.profile.wp) return { errno: EINVAL };
  if (ctx.gateClosed) {
    kernel.stats.eagain++;
    return { errno: EAGAIN };
  }
  if (!rangeValid(start, len, kernel.mmapMinAddr)) return { errno: EINVAL };
  if (!hasOnlyBits(mode, UFFDIO_WRITEPROTECT_MODE_WP | UFFDIO_WRITEPROTECT_MODE_DONTWAKE)) return { errno: EINVAL };
  const protect = (mode & UFFDIO_WRITEPROTECT_MODE_WP) !== 0;
  if (protect && (mode & UFFDIO_WRITEPROTECT_MODE_DONTWAKE) !== 0) return { errno: EINVAL };
  const mm = ctx.mm;
  if (!mm.alive) return { errno: ESRCH };

  const end = start + len;
  mm.lock.readLock();
  let errno = 0;
  if (ctx.gateClosed) {
    errno = EAGAIN;
  } else {
    const vmas = mm.vmasIn(start, end);
    if (vmas.length === 0) errno = ENOENT;
    for (const vma of vmas) {
      if ((vma.uffdFlags & VM_UFFD_WP) === 0) {
        errno = ENOENT;
        break;
      }
      const from = Math.max(start, vma.start);
      const to = Math.min(end, vma.end);
      let flags = vma.writable ? WP_VMA_WRITE : 0;
      if (protect) flags |= WP_PROTECT;
      // Empty entries get markers on shmem always, on anonymous memory with WP_UNPOPULATED.
      if (protect && (vma.isShmem || (ctx.features & UFFD_FEATURE_WP_UNPOPULATED) !== 0)) flags |= WP_MARKERS;
      const status = kernel.core.exports.mwriteprotect_range(mm.pgd, from, (to - from) / PAGE_SIZE, flags);
      if (status !== 0) {
        errno = status;
        break;
      }
    }
  }
  mm.lock.readUnlock();
  if (errno !== 0) {
    if (errno === EAGAIN) kernel.stats.eagain++;
    return { errno };
  }
  if (mode === 0) ctx.wakeRange(start, len);
  return { errno: 0 };
}

/**
 * UFFDIO_CONTINUE: maps, at the empty entries of a MINOR-registered shmem
 * range, the pages its page cache already holds. EFAULT where the cache has
 * no page, EEXIST on a populated entry, EINVAL for MODE_WP without WP
 * registration or a VMA that is not shmem.
 */
export function uffdioContinue(ctx: UffdContext, argsIn: ContinueArgs): ContinueResult {
  const args = requireObject(argsIn, "UFFDIO_CONTINUE argument");
  const start = asU64(requireNumber(args.start, "start"));
  const len = asU64(requireNumber(args.len, "len"));
  const mode = asU64(requireNumber(args.mode, "mode"));
  const preset = args.mapped === undefined ? 0 : requireNumber(args.mapped, "mapped");
  const kernel = ctx.kernel;
  kernel.stats.ioctls++;
  if (!kernel.profile.minor) return { errno: EINVAL, mapped: preset };
  if (ctx.gateClosed) return { errno: EAGAIN, mapped: gateEagain(ctx, preset) };
  if (!rangeValid(start, len, kernel.mmapMinAddr)) return { errno: EINVAL, mapped: preset };
  if (!hasOnlyBits(mode, UFFDIO_CONTINUE_MODE_DONTWAKE | UFFDIO_CONTINUE_MODE_WP)) return { errno: EINVAL, mapped: preset };
  const mm = ctx.mm;
  if (!mm.alive) return { errno: ESRCH, mapped: preset };

  mm.lock.readLock();
  const vma = mm.vmaLookup(start);
  let result: number;
  const wp = (mode & UFFDIO_CONTINUE_MODE_WP) !== 0;
  if (vma === undefined || start + len > vma.end || vma.uffdCtx === null) {
    result = -ENOENT;
  } else if (ctx.gateClosed) {
    result = -EAGAIN;
  } else if ((wp && (vma.uffdFlags & VM_UFFD_WP) === 0) || !vma.isShmem) {
    result = -EINVAL;
  } else {
    let pteFlags = vma.isShared && vma.writable ? PTE_WRITE : 0;
    if (wp) pteFlags = PTE_UFFD_WP;
    const core = kernel.core.exports;
    const status = core.mfill_continue(mm.pgd, start, vma.file!.cache, vma.fileOffset(start), len / PAGE_SIZE, pteFlags);
    const done = (core.pages_done() >>> 0) * PAGE_SIZE;
    result = done > 0 ? done : -status;
  }
  mm.lock.readUnlock();
  const errno = finish(ctx, start, len, result, (mode & UFFDIO_CONTINUE_MODE_DONTWAKE) !== 0);
  return { errno, mapped: result };
}

/** UFFDIO_POISON: puts poison markers on the missing pages of the range. */
export function uffdioPoison(ctx: UffdContext, argsIn: PoisonArgs): PoisonResult {
  const args = requireObject(argsIn, "UFFDIO_POISON argument");
  const start = asU64(requireNumber(args.start, "start"));
  const len = asU64(requireNumber(args.len, "len"));
  const mode = asU64(requireNumber(args.mode, "mode"));
  const preset = args.updated === undefined ? 0 : requireNumber(args.updated, "updated");
  const kernel = ctx.kernel;
  kernel.stats.ioctls++;
  if (!kernel.profile.poison) return { errno: EINVAL, updated: preset };
  if (ctx.gateClosed) return { errno: EAGAIN, updated: gateEagain(ctx, preset) };
  if (!rangeValid(start, len, kernel.mmapMinAddr)) return { errno: EINVAL, updated: preset };
  if (!hasOnlyBits(mode, UFFDIO_POISON_MODE_DONTWAKE)) return { errno: EINVAL, updated: preset };
  const mm = ctx.mm;
  if (!mm.alive) return { errno: ESRCH, updated: preset };

  mm.lock.readLock();
  const vma = mm.vmaLookup(start);
  let result: number;
  if (vma === undefined || start + len > vma.end || vma.uffdCtx === null) {
    result = -ENOENT;
  } else if (ctx.gateClosed) {
    result = -EAGAIN;
  } else {
    const status = kernel.core.exports.mfill_poison(mm.pgd, start, len / PAGE_SIZE);
    const done = (kernel.core.exports.pages_done() >>> 0) * PAGE_SIZE;
    result = done > 0 ? done : -status;
  }
  mm.lock.readUnlock();
  const errno = finish(ctx, start, len, result, (mode & UFFDIO_POISON_MODE_DONTWAKE) !== 0);
  return { errno, updated: result };
}

/**
 * UFFDIO_MOVE: moves pages from `src` to `dst` within the context's address
 * space, without copying. `callerMm` is the address space of the calling
 * process: a move across address spaces is EINVAL.
 */
export function uffdioMove(ctx: UffdContext, callerMm: Mm, argsIn: MoveArgs): MoveResult {
  const args = requireObject(argsIn, "UFFDIO_MOVE argument");
  const dst = asU64(requireNumber(args.dst, "dst"));
  const src = asU64(requireNumber(args.src, "src"));
  const len = asU64(requireNumber(args.len, "len"));
  const mode = asU64(requireNumber(args.mode, "mode"));
  const preset = args.move === undefined ? 0 : requireNumber(args.move, "move");
  const kernel = ctx.kernel;
  kernel.stats.ioctls++;
  if (!kernel.profile.move) return { errno: EINVAL, move: preset };
  if (ctx.gateClosed) return { errno: EAGAIN, move: gateEagain(ctx, preset) };
  const minAddr = kernel.mmapMinAddr;
  if (!rangeValid(dst, len, minAddr) || !rangeValid(src, len, minAddr)) return { errno: EINVAL, move: preset };
  if (!hasOnlyBits(mode, UFFDIO_MOVE_MODE_DONTWAKE | UFFDIO_MOVE_MODE_ALLOW_SRC_HOLES)) return { errno: EINVAL, move: preset };
  if (callerMm !== ctx.mm) return { errno: EINVAL, move: preset };
  const mm = ctx.mm;
  if (!mm.alive) return { errno: ESRCH, move: preset };

  mm.lock.readLock();
  const result = movePagesLocked(ctx, dst, src, len, mode);
  mm.lock.readUnlock();
  const errno = finish(ctx, dst, len, result, (mode & UFFDIO_MOVE_MODE_DONTWAKE) !== 0);
  return { errno, move: result };
}

/** The VMA checks and page loop of move_pages(), with the mmap_lock held for read. */
function movePagesLocked(ctx: UffdContext, dst: number, src: number, len: number, mode: number): number {
  const mm = ctx.mm;
  const kernel = ctx.kernel;
  const dstVma = mm.vmaLookup(dst);
  const srcVma = mm.vmaLookup(src);
  if (dstVma === undefined || srcVma === undefined) return -ENOENT;
  if (ctx.gateClosed) return -EAGAIN;
  const invalid =
    !dstVma.isAnonymous || !srcVma.isAnonymous || dstVma.isShared || srcVma.isShared ||
    dst + len > dstVma.end || src + len > srcVma.end ||
    dstVma.prot !== srcVma.prot || !srcVma.writable ||
    dstVma.uffdCtx !== ctx;
  if (invalid) return -EINVAL;
  let flags = dstVma.writable ? MOVE_DST_WRITE : 0;
  if ((mode & UFFDIO_MOVE_MODE_ALLOW_SRC_HOLES) !== 0) flags |= MOVE_ALLOW_SRC_HOLES;
  const status = kernel.core.exports.move_pages(mm.pgd, dst, src, len / PAGE_SIZE, flags);
  const done = (kernel.core.exports.pages_done() >>> 0) * PAGE_SIZE;
  return done > 0 ? done : -status;
}

