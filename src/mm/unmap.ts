// munmap() and madvise(MADV_DONTNEED) with their userfaultfd events.
// Linux counterparts: mm/vma.c do_vmi_munmap() with
// userfaultfd_unmap_prep()/userfaultfd_unmap_complete(), and mm/madvise.c
// madvise_dontneed_free() with userfaultfd_remove().
//
// UNMAP: the VMAs are gone and the pages freed before the event is queued;
// the caller then sleeps until the monitor reads it. One event per context,
// with the whole requested range.
// REMOVE: the event is queued, with mmap_lock dropped, before the pages are
// zapped; the zap runs only after the monitor has read it. One event per
// VMA chunk of the range.
//
// Both raise the context's mmap_changing at preparation and lower it when
// the sleeping caller resumes, so COPY gets EAGAIN in between:
//
//   target (munmap)                       monitor
//   ------------------------------------  ----------------------------------
//   take mmap_lock for write
//   unmap_prep: raise mmap_changing
//   zap pages, remove VMAs, drop lock
//                                         UFFDIO_COPY(X in the range)
//                                           gate on:  EAGAIN
//                                           gate off: ENOENT, or a page
//                                           that vanishes right after
//   queue UNMAP, sleep until read
//                                         read() -> UNMAP(start, end)
//   resume, lower mmap_changing           stop serving [start, end)

import { EACCES, EINVAL, ENOMEM, PAGE_SIZE, TASK_SIZE, UFFD_EVENT_REMOVE, UFFD_EVENT_UNMAP, UFFD_FEATURE_EVENT_REMOVE, UFFD_FEATURE_EVENT_UNMAP } from "../constants.js";
import { asU64, requireNumber } from "../errors.js";
import type { UffdContext } from "../uffd/context.js";
import { rangeMsg } from "../uffd/messages.js";
import { pageAligned } from "../uffd/mfill.js";
import type { MappedFile } from "./file.js";
import { VM_UFFD_WP, type Vma } from "./vma.js";
import type { Process } from "./process.js";

export const MADV_DONTNEED = 4;
export const MADV_REMOVE = 9;

/**
 * Punches the hole [offset, offset + length) in `file` (shmem_fallocate with
 * FALLOC_FL_PUNCH_HOLE): every mapping of it, in every process, loses those
 * pages, then the page cache drops them.
 */
function punchHole(process: Process, file: MappedFile, offset: number, length: number): void {
  const core = process.kernel.core.exports;
  for (const other of process.kernel.processes.values()) {
    for (const vma of other.mm.vmaList()) {
      if (vma.file !== file) continue;
      const from = Math.max(vma.pgoff, offset);
      const to = Math.min(vma.pgoff + vma.length, offset + length);
      if (from >= to) continue;
      core.zap_page_range(other.mm.pgd, vma.start + (from - vma.pgoff), (to - from) / PAGE_SIZE, keepsUffdWp(vma) ? 1 : 0);
    }
  }
  core.cache_punch_hole(file.cache, offset, length / PAGE_SIZE);
}

/** Returns whether a zap in `vma` leaves uffd-wp markers: file-backed and WP-registered. */
function keepsUffdWp(vma: Vma): boolean {
  return vma.file !== null && (vma.uffdFlags & VM_UFFD_WP) !== 0;
}

/** Zaps the pages of [start, end) in `process`, within one VMA `vma`, or across VMAs being removed. */
function zap(process: Process, start: number, end: number, vma: Vma | null = null): void {
  const keep = vma !== null && keepsUffdWp(vma) ? 1 : 0;
  process.kernel.core.exports.zap_page_range(process.mm.pgd, start, (end - start) / PAGE_SIZE, keep);
}

/**
 * Removes the mappings of [start, end), with the write lock held, and
 * returns the contexts owed an UNMAP event, each with mmap_changing raised.
 */
export function unmapRangeLocked(process: Process, start: number, end: number): UffdContext[] {
  const mm = process.mm;
  mm.lock.assertWriteLocked();
  const contexts: UffdContext[] = [];
  const inside = mm.vmasIn(start, end).map((vma) => mm.isolateRange(vma, start, end));
  for (const vma of inside) {
    const ctx = vma.uffdCtx;
    if (ctx === null || (ctx.features & UFFD_FEATURE_EVENT_UNMAP) === 0 || contexts.includes(ctx)) continue;
    ctx.raiseMmapChanging();
    contexts.push(ctx);
  }
  for (const vma of inside) {
    zap(process, vma.start, vma.end);
    mm.removeVma(vma);
  }
  process.kernel.core.exports.free_pgtables(mm.pgd, start, (end - start) / PAGE_SIZE);
  return contexts;
}

/** Delivers one UNMAP event per context, each waiting until read (userfaultfd_unmap_complete). */
export async function unmapComplete(contexts: readonly UffdContext[], start: number, end: number): Promise<void> {
  for (const ctx of contexts) {
    await ctx.eventWaitCompletion(UFFD_EVENT_UNMAP, null, rangeMsg(UFFD_EVENT_UNMAP, start, end));
    ctx.lowerMmapChanging();
  }
}

/** munmap(2): returns 0, or -EINVAL for an unaligned start, a zero length or a range past TASK_SIZE. */
export async function munmap(process: Process, address: number, length: number): Promise<number> {
  const start = asU64(requireNumber(address, "address"));
  const len = asU64(requireNumber(length, "length"));
  if (!pageAligned(start) || len === 0 || start + len > TASK_SIZE) return -EINVAL;
  const end = start + Math.ceil(len / PAGE_SIZE) * PAGE_SIZE;
  const mm = process.mm;
  mm.lock.writeLock();
  const contexts = unmapRangeLocked(process, start, end);
  mm.lock.writeUnlock();
  process.kernel.releaseUnusedFiles();
  if (contexts.length > 0) await unmapComplete(contexts, start, end);
  return 0;
}

/**
 * madvise(2) with MADV_DONTNEED (drop this mapping's pages, so the next
 * access faults again) or MADV_REMOVE (punch a hole in the shared file
 * behind the range). A registered VMA whose context has EVENT_REMOVE first
 * sends REMOVE and waits until it is read. Returns 0, at once for a zero
 * length. Returns -EINVAL for other advice, an unaligned start, a length
 * that wraps past 2^64 or MADV_REMOVE without a file, and -EACCES for
 * MADV_REMOVE on a mapping that is not shared and writable. Returns -ENOMEM
 * when part of the range is unmapped, after handling the mapped parts.
 * Memory at or past TASK_SIZE counts as unmapped, because Linux's madvise
 * has no TASK_SIZE check of its own.
 */
export async function madvise(process: Process, address: number, length: number, advice: number): Promise<number> {
  const start = asU64(requireNumber(address, "address"));
  const len = asU64(requireNumber(length, "length"));
  requireNumber(advice, "advice");
  if (advice !== MADV_DONTNEED && advice !== MADV_REMOVE) return -EINVAL;
  // asU64 turns every value that no u64 can be into Infinity. Such an
  // address counts as unaligned, and such a length as one that wraps past
  // 2^64.
  if (!pageAligned(start) || start === Infinity || len === Infinity) return -EINVAL;
  if (len === 0) return 0;
  const end = start + Math.ceil(len / PAGE_SIZE) * PAGE_SIZE;
  const mm = process.mm;
  let result = 0;
  let cursor = start;
  mm.lock.readLock();
  while (cursor < end) {
    const vma = mm.vmasIn(cursor, end)[0];
    if (vma === undefined) {
      result = -ENOMEM;
      break;
    }
    if (vma.start > cursor) result = -ENOMEM;
    const chunkStart = Math.max(cursor, vma.start);
    let chunkEnd = Math.min(end, vma.end);
    if (advice === MADV_REMOVE) {
      let error = 0;
      if (vma.file === null) error = -EINVAL;
      else if (!vma.isShared || !vma.writable) error = -EACCES;
      if (error !== 0) {
        mm.lock.readUnlock();
        return error;
      }
    }
    const ctx = vma.uffdCtx;
    if (ctx !== null && (ctx.features & UFFD_FEATURE_EVENT_REMOVE) !== 0 && !ctx.released) {
      // userfaultfd_remove: raise the gate, drop the lock, wait for the read.
      ctx.raiseMmapChanging();
      mm.lock.readUnlock();
      await ctx.eventWaitCompletion(UFFD_EVENT_REMOVE, null, rangeMsg(UFFD_EVENT_REMOVE, chunkStart, chunkEnd));
      ctx.lowerMmapChanging();
      // The gate is open again before the lock is retaken and the pages go:
      // a COPY that lands here is zapped right after.
      const preempted = process.kernel.preemptionPoint("madvise: retake mmap_lock after REMOVE");
      if (preempted !== null) await preempted;
      if (process.exited) return -ENOMEM;
      mm.lock.readLock();
      // The layout may have changed while the lock was dropped.
      const again = mm.vmaLookup(chunkStart);
      if (again === undefined) {
        result = -ENOMEM;
        break;
      }
      chunkEnd = Math.min(chunkEnd, again.end);
    }
    const current = mm.vmaLookup(chunkStart)!;
    if (advice === MADV_REMOVE && current.file !== null) {
      punchHole(process, current.file, current.fileOffset(chunkStart), chunkEnd - chunkStart);
    } else {
      zap(process, chunkStart, chunkEnd, current);
    }
    cursor = chunkEnd;
  }
  mm.lock.readUnlock();
  return result;
}
