// The per-page loops of UFFDIO_COPY and UFFDIO_ZEROPAGE over a whole range.
// Linux counterpart: mm/userfaultfd.c, mfill_atomic() and the
// mfill_atomic_pte_copy / mfill_atomic_pte_zeropage helpers it calls.
//
// The host has already checked the VMA, the registration and mmap_changing;
// these loops walk the destination tree (allocating tables), stop at the
// first page they cannot fill, and leave the number of pages filled in
// `pagesDone` with the status that stopped them.

import { OK, ENOMEM, EEXIST, ENOENT, EBUSY, EFAULT, SRC_FAULT } from "./status";
import { PAGE_SHIFT, PAGE_SIZE, frameAlloc, frameGet, frameRefcount, zeroFrame } from "./frames";
import { PTE_PRESENT, PTE_WRITE, PTE_DIRTY, PTE_EXCLUSIVE, PTE_ZERO, PTE_UFFD_WP, PTE_POISON, pteTableCached, pteIndexSlot, pteFrame } from "./pgtable";
import { copyPage } from "./copy";

/** Pages (or bytes, for byte loops) completed by the last range call. */
export let pagesDone: u32 = 0;

export function setPagesDone(count: u32): void {
  pagesDone = count;
}

/** Returns the present frame address backing `va` in `root`, or 0. */
export function sourceFrame(root: usize, va: u64): usize {
  const table = pteTableCached(root, va, false);
  if (table == 0) return 0;
  const pte = load<u64>(pteIndexSlot(table, va));
  if ((pte & PTE_PRESENT) == 0) return 0;
  return pteFrame(pte);
}

/**
 * Fills `pages` pages from `dst` with copies of the bytes at `src` in the
 * caller's tree `srcRoot`. `src` need not be page aligned. Each new entry
 * gets PRESENT | DIRTY plus `pteFlags` (WRITE and UFFD_WP as the host
 * decides). A uffd-wp marker counts as empty and is overwritten.
 * Stops with EEXIST at a populated entry, ENOMEM when frames run out, or
 * SRC_FAULT when a source page is not present, so the host can fault it in.
 */
export function mfillCopy(dstRoot: usize, dst: u64, srcRoot: usize, src: u64, pages: u32, pteFlags: u64): i32 {
  pagesDone = 0;
  let dstKey: u64 = ~(<u64>0);
  let dstTable: usize = 0;
  const srcOffset = <usize>(src & (PAGE_SIZE - 1));
  for (let i: u32 = 0; i < pages; i++) {
    const dva = dst + (<u64>i << PAGE_SHIFT);
    if ((dva >> 21) != dstKey) {
      dstTable = pteTableCached(dstRoot, dva, true);
      if (dstTable == 0) return ENOMEM;
      dstKey = dva >> 21;
    }
    const slot = pteIndexSlot(dstTable, dva);
    const old = load<u64>(slot);
    if (old != 0 && old != PTE_UFFD_WP) return EEXIST;

    const sva = src + (<u64>i << PAGE_SHIFT);
    const first = sourceFrame(srcRoot, sva);
    if (first == 0) return SRC_FAULT;
    let second: usize = 0;
    if (srcOffset != 0) {
      second = sourceFrame(srcRoot, sva + PAGE_SIZE);
      if (second == 0) return SRC_FAULT;
    }

    const frame = frameAlloc();
    if (frame == 0) return ENOMEM;
    if (srcOffset == 0) {
      copyPage(frame, first);
    } else {
      memory.copy(frame, first + srcOffset, <usize>PAGE_SIZE - srcOffset);
      memory.copy(frame + PAGE_SIZE - srcOffset, second, srcOffset);
    }
    store<u64>(slot, <u64>frame | PTE_PRESENT | PTE_DIRTY | PTE_EXCLUSIVE | pteFlags);
    pagesDone = i + 1;
  }
  return OK;
}

/**
 * Maps the shared zero frame read-only at `pages` pages from `dst`. Any
 * non-empty entry, markers included, stops the loop with EEXIST.
 */
export function mfillZeropage(dstRoot: usize, dst: u64, pages: u32): i32 {
  pagesDone = 0;
  let dstKey: u64 = ~(<u64>0);
  let dstTable: usize = 0;
  for (let i: u32 = 0; i < pages; i++) {
    const dva = dst + (<u64>i << PAGE_SHIFT);
    if ((dva >> 21) != dstKey) {
      dstTable = pteTableCached(dstRoot, dva, true);
      if (dstTable == 0) return ENOMEM;
      dstKey = dva >> 21;
    }
    const slot = pteIndexSlot(dstTable, dva);
    if (load<u64>(slot) != 0) return EEXIST;
    frameGet(zeroFrame);
    store<u64>(slot, <u64>zeroFrame | PTE_PRESENT | PTE_ZERO);
    pagesDone = i + 1;
  }
  return OK;
}

/**
 * Puts poison markers at `pages` pages from `dst` (UFFDIO_POISON); a later
 * access to them gets SIGBUS. Any non-empty entry stops the loop with EEXIST.
 */
export function mfillPoison(dstRoot: usize, dst: u64, pages: u32): i32 {
  pagesDone = 0;
  for (let i: u32 = 0; i < pages; i++) {
    const dva = dst + (<u64>i << PAGE_SHIFT);
    const table = pteTableCached(dstRoot, dva, true);
    if (table == 0) return ENOMEM;
    const slot = pteIndexSlot(table, dva);
    if (load<u64>(slot) != 0) return EEXIST;
    store<u64>(slot, PTE_POISON);
    pagesDone = i + 1;
  }
  return OK;
}

/** move_pages flag: count a missing source page as moved instead of failing with ENOENT. */
export const MOVE_ALLOW_SRC_HOLES: u32 = 2;
/** move_pages flag: the destination VMA allows writes. */
export const MOVE_DST_WRITE: u32 = 4;

/**
 * Moves `pages` pages from `src` to `dst` within one address space
 * (UFFDIO_MOVE): each source frame is re-homed at the destination and the
 * source entry cleared, with no copy. Stops with EEXIST at a populated
 * destination, ENOENT at a missing source (unless MOVE_ALLOW_SRC_HOLES),
 * EBUSY at a source frame shared with another mapping (copy-on-write after
 * fork), EFAULT at a source marker, or ENOMEM.
 */
export function movePages(root: usize, dst: u64, src: u64, pages: u32, flags: u32): i32 {
  pagesDone = 0;
  for (let i: u32 = 0; i < pages; i++) {
    const dva = dst + (<u64>i << PAGE_SHIFT);
    const sva = src + (<u64>i << PAGE_SHIFT);
    const dstTable = pteTableCached(root, dva, true);
    if (dstTable == 0) return ENOMEM;
    const dstSlot = pteIndexSlot(dstTable, dva);
    if (load<u64>(dstSlot) != 0) return EEXIST;
    const srcTable = pteTableCached(root, sva, false);
    const srcSlot: usize = srcTable == 0 ? <usize>0 : pteIndexSlot(srcTable, sva);
    const pte: u64 = srcSlot == 0 ? 0 : load<u64>(srcSlot);
    if (pte == 0) {
      if ((flags & MOVE_ALLOW_SRC_HOLES) == 0) return ENOENT;
      pagesDone = i + 1;
      continue;
    }
    if ((pte & PTE_PRESENT) == 0) return EFAULT;
    const frame = pteFrame(pte);
    if (frame == zeroFrame) {
      store<u64>(dstSlot, <u64>zeroFrame | PTE_PRESENT | PTE_ZERO);
    } else {
      // A page shared by fork stays non-exclusive even after the child
      // lets go of it, until a write takes it over.
      if ((pte & PTE_EXCLUSIVE) == 0 || frameRefcount(frame) != 1) return EBUSY;
      const write = (flags & MOVE_DST_WRITE) != 0 ? PTE_WRITE : 0;
      store<u64>(dstSlot, <u64>frame | PTE_PRESENT | PTE_DIRTY | PTE_EXCLUSIVE | write);
    }
    store<u64>(srcSlot, 0);
    pagesDone = i + 1;
  }
  return OK;
}

/**
 * Copies the 4 KiB at `src` (any alignment) in tree `srcRoot` into `frame`.
 * Returns false, copying nothing, when a source page is not present.
 */
export function copyFromSource(frame: usize, srcRoot: usize, src: u64): bool {
  const offset = <usize>(src & (PAGE_SIZE - 1));
  const first = sourceFrame(srcRoot, src);
  if (first == 0) return false;
  if (offset == 0) {
    copyPage(frame, first);
    return true;
  }
  const second = sourceFrame(srcRoot, src + PAGE_SIZE);
  if (second == 0) return false;
  memory.copy(frame, first + offset, <usize>PAGE_SIZE - offset);
  memory.copy(frame + PAGE_SIZE - offset, second, offset);
  return true;
}

/** Returns whether every source page of the 4 KiB at `src` is present. */
export function sourcePresent(srcRoot: usize, src: u64): bool {
  if (sourceFrame(srcRoot, src) == 0) return false;
  return (src & (PAGE_SIZE - 1)) == 0 || sourceFrame(srcRoot, src + PAGE_SIZE) != 0;
}
