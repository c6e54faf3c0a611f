// mremap() with the REMAP event.
// Linux counterparts: mm/mremap.c (mremap syscall, move_vma,
// move_page_tables) and fs/userfaultfd.c mremap_userfaultfd_prep() and
// mremap_userfaultfd_complete().
//
// A move copies the VMA to its new place and moves the page tables (pages,
// markers and uffd-wp bits travel with them). A context with EVENT_REMAP
// keeps the moved range registered and has its mmap_changing raised; a
// context without it loses the moved range. Then the old range is unmapped
// (UNMAP prep for a context with EVENT_UNMAP). After the write lock is
// dropped the events go out in the kernel's order, each waiting until read:
// UNMAP of a MREMAP_FIXED target, REMAP(from, to, old length), UNMAP of the
// old range.

import {
  EFAULT, EINVAL, ENOMEM, MREMAP_DONTUNMAP, MREMAP_FIXED, MREMAP_MAYMOVE, PAGE_SIZE, TASK_SIZE,
  UFFD_EVENT_REMAP, UFFD_FEATURE_EVENT_REMAP,
} from "../constants.js";
import { asU64, hasOnlyBits, requireNumber } from "../errors.js";
import type { UffdContext } from "../uffd/context.js";
import { remapMsg } from "../uffd/messages.js";
import { pageAligned } from "../uffd/mfill.js";
import { WP_VMA_WRITE } from "../wasm/core.js";
import type { Process } from "./process.js";
import { unmapComplete, unmapRangeLocked } from "./unmap.js";
import { VM_UFFD_WP } from "./vma.js";

const roundUp = (bytes: number) => Math.ceil(bytes / PAGE_SIZE) * PAGE_SIZE;

/** The events an mremap owes once its lock is dropped, in delivery order. */
interface RemapEvents {
  targetUnmaps: UffdContext[];
  remap: UffdContext | null;
  oldUnmaps: UffdContext[];
  /** The part of the old range that was unmapped: all of it after a move, the tail after a shrink. */
  oldUnmapStart: number;
  oldUnmapEnd: number;
}

/**
 * mremap(2): resizes or moves the mapping at [oldAddress, oldAddress +
 * oldSize). Settles with the new address, or a negative errno: -EINVAL for
 * bad alignment, flags, a zero size or a new size past TASK_SIZE (as
 * check_mremap_params does since Linux 6.17), -EFAULT when the old range is
 * not inside one mapping, -ENOMEM when it cannot grow in place and may not
 * move.
 */
export async function mremap(
  process: Process, oldAddress: number, oldSize: number, newSize: number, flags: number, newAddress?: number,
): Promise<number> {
  const old = asU64(requireNumber(oldAddress, "oldAddress"));
  const oldLen = roundUp(asU64(requireNumber(oldSize, "oldSize")));
  const newLen = roundUp(asU64(requireNumber(newSize, "newSize")));
  const flagBits = asU64(requireNumber(flags, "flags"));
  const fixed = (flagBits & MREMAP_FIXED) !== 0;
  if (newAddress !== undefined) requireNumber(newAddress, "newAddress");
  // An address asU64 turned into Infinity counts as unaligned.
  if (!pageAligned(old) || old === Infinity || !hasOnlyBits(flagBits, MREMAP_MAYMOVE | MREMAP_FIXED | MREMAP_DONTUNMAP)) return -EINVAL;
  if (fixed && newAddress === undefined) throw new TypeError("newAddress must be a number with MREMAP_FIXED, got undefined");
  const target = fixed ? asU64(newAddress!) : 0;
  // NOTE: MREMAP_DONTUNMAP is not modelled; it is rejected here.
  if ((flagBits & MREMAP_DONTUNMAP) !== 0) return -EINVAL;
  if (fixed && (flagBits & MREMAP_MAYMOVE) === 0) return -EINVAL;
  if (newLen === 0 || oldLen === 0 || newLen > TASK_SIZE) return -EINVAL;
  if (fixed && (!pageAligned(target) || target + newLen > TASK_SIZE || (target < old + oldLen && old < target + newLen))) {
    return -EINVAL;
  }
  // No mapping reaches past TASK_SIZE, so the VMA lookup fails there.
  if (old + oldLen > TASK_SIZE) return -EFAULT;

  const mm = process.mm;
  const events: RemapEvents = { targetUnmaps: [], remap: null, oldUnmaps: [], oldUnmapStart: 0, oldUnmapEnd: 0 };
  mm.lock.writeLock();
  let result: number;
  try {
    result = mremapLocked(process, old, oldLen, newLen, fixed ? target : null, (flagBits & MREMAP_MAYMOVE) !== 0, events);
  } finally {
    mm.lock.writeUnlock();
  }
  if (result < 0) return result;

  // Each wait is skipped when nothing is owed, so an event is queued in the
  // same step as the change when no earlier event delays it.
  if (events.targetUnmaps.length > 0) await unmapComplete(events.targetUnmaps, target, target + newLen);
  if (events.remap !== null) {
    await events.remap.eventWaitCompletion(UFFD_EVENT_REMAP, null, remapMsg(old, result, oldLen));
    events.remap.lowerMmapChanging();
  }
  if (events.oldUnmaps.length > 0) await unmapComplete(events.oldUnmaps, events.oldUnmapStart, events.oldUnmapEnd);
  return result;
}

function mremapLocked(
  process: Process, old: number, oldLen: number, newLen: number, fixedTarget: number | null, mayMove: boolean,
  events: RemapEvents,
): number {
  const mm = process.mm;
  const vma = mm.vmaLookup(old);
  if (vma === undefined || old + oldLen > vma.end) return -EFAULT;

  if (fixedTarget === null && newLen <= oldLen) {
    // Shrink (or keep) in place: the tail goes as an munmap would.
    if (newLen < oldLen) {
      events.oldUnmaps = unmapRangeLocked(process, old + newLen, old + oldLen);
      events.oldUnmapStart = old + newLen;
      events.oldUnmapEnd = old + oldLen;
    }
    return old;
  }
  if (fixedTarget === null && vma.end === old + oldLen && mm.isRangeFree(old + oldLen, newLen - oldLen)) {
    // Grow in place: no userfaultfd involvement.
    const inside = mm.isolateRange(vma, old, old + oldLen);
    inside.end = old + newLen;
    return old;
  }
  if (!mayMove) return -ENOMEM;

  let target: number;
  if (fixedTarget !== null) {
    target = fixedTarget;
    events.targetUnmaps = unmapRangeLocked(process, target, target + newLen);
  } else {
    target = mm.getUnmappedArea(newLen, process.kernel.mmapMinAddr);
    if (target < 0) return -ENOMEM;
  }

  // move_vma: the new VMA takes the attributes and the page tables. The
  // unmap of a MREMAP_FIXED target may have split `vma`, so look it up again.
  const source = mm.isolateRange(mm.vmaLookup(old)!, old, old + oldLen);
  const moved = source.clone();
  moved.start = target;
  moved.end = target + newLen;
  const core = process.kernel.core.exports;
  const pages = Math.min(oldLen, newLen) / PAGE_SIZE;
  const status = core.move_page_tables(mm.pgd, old, target, pages);
  if (status !== 0) {
    // Put back what moved; the old tables exist, so this cannot fail.
    core.move_page_tables(mm.pgd, target, old, pages);
    return -ENOMEM;
  }
  mm.insertVma(moved);

  // mremap_userfaultfd_prep
  const ctx = moved.uffdCtx;
  if (ctx !== null) {
    if ((ctx.features & UFFD_FEATURE_EVENT_REMAP) !== 0) {
      ctx.raiseMmapChanging();
      events.remap = ctx;
    } else {
      if ((moved.uffdFlags & VM_UFFD_WP) !== 0) {
        core.mwriteprotect_range(mm.pgd, target, newLen / PAGE_SIZE, moved.writable ? WP_VMA_WRITE : 0);
      }
      moved.resetUffd();
    }
  }
  mm.mergeAround(moved);
  // The old range is unmapped like an munmap; its pages already moved.
  events.oldUnmaps = unmapRangeLocked(process, old, old + oldLen);
  events.oldUnmapStart = old;
  events.oldUnmapEnd = old + oldLen;
  return target;
}
