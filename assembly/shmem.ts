// Shared memory: a file's page cache and the fills that use it.
// Linux counterparts: mm/shmem.c (shmem_get_folio, shmem_fault,
// shmem_mfill_atomic_pte) and mm/userfaultfd.c mfill_atomic_pte_continue().
//
// A file's page cache is a tree of the same shape as a page table, indexed
// by file offset instead of virtual address: the entry for offset `off` is
// where the PTE for address `off` would be, and contains frame | PRESENT. The
// cache holds one reference on each of its frames; every mapping of a page
// holds another. Trees come from pgd_alloc and go with pgd_free.

import { OK, ENOMEM, EEXIST, EFAULT, EIO, SRC_FAULT } from "./status";
import { PAGE_SHIFT, frameAlloc, frameAllocZeroed, frameGet, framePut } from "./frames";
import { PTE_PRESENT, PTE_DIRTY, PTE_POISON, PTE_UFFD_WP, pteTableCached, pteIndexSlot, pteFrame, pteSlot } from "./pgtable";
import { copyFromSource, setPagesDone, sourcePresent } from "./mfill";

/** Returns the cache entry at file offset `off` (frame | PRESENT, maybe POISON), or 0. */
export function cacheEntry(cache: usize, off: u64): u64 {
  const table = pteTableCached(cache, off, false);
  return table == 0 ? 0 : load<u64>(pteIndexSlot(table, off));
}

/** Returns the frame cached at file offset `off`, or 0 when the cache has none. */
export function cacheLookup(cache: usize, off: u64): usize {
  const entry = cacheEntry(cache, off);
  return (entry & PTE_PRESENT) != 0 ? pteFrame(entry) : 0;
}

/** Marks the cached page at `off` as hit by a memory error; false when the cache has none. */
export function cacheHwpoison(cache: usize, off: u64): bool {
  const table = pteTableCached(cache, off, false);
  if (table == 0) return false;
  const slot = pteIndexSlot(table, off);
  const entry = load<u64>(slot);
  if ((entry & PTE_PRESENT) == 0) return false;
  store<u64>(slot, entry | PTE_POISON);
  return true;
}

/**
 * Returns the frame cached at `off`, adding a zeroed one when there is
 * none (a shmem fault on a hole). Returns 0 when no frame is left.
 */
export function cacheFindOrAddZero(cache: usize, off: u64): usize {
  const slot = pteSlot(cache, off, true);
  if (slot == 0) return 0;
  const entry = load<u64>(slot);
  if ((entry & PTE_PRESENT) != 0) return pteFrame(entry);
  const frame = frameAllocZeroed();
  if (frame == 0) return 0;
  store<u64>(slot, <u64>frame | PTE_PRESENT);
  return frame;
}

/**
 * Maps `frame` at `va` with `pteFlags`, taking a reference on it. An entry
 * already populated is left alone (the fault raced with a fill). Returns OK
 * or ENOMEM.
 */
export function mapFrame(root: usize, va: u64, frame: usize, pteFlags: u64): i32 {
  const slot = pteSlot(root, va, true);
  if (slot == 0) return ENOMEM;
  const old = load<u64>(slot);
  if (old != 0 && old != PTE_UFFD_WP) return OK;
  frameGet(frame);
  store<u64>(slot, <u64>frame | PTE_PRESENT | pteFlags | (old & PTE_UFFD_WP));
  return OK;
}

/**
 * The fill loop of UFFDIO_COPY (`zero` false) and UFFDIO_ZEROPAGE (`zero`
 * true) on a shared shmem mapping: each page gets a new frame, added to the
 * cache at `off` and mapped at `dst`. EEXIST when the PTE is populated or
 * the cache already has the page; SRC_FAULT and ENOMEM as in mfillCopy.
 */
export function mfillShmem(dstRoot: usize, dst: u64, cache: usize, off: u64, srcRoot: usize, src: u64, pages: u32, pteFlags: u64, zero: bool): i32 {
  setPagesDone(0);
  for (let i: u32 = 0; i < pages; i++) {
    const step = <u64>i << PAGE_SHIFT;
    const dstSlot = pteSlot(dstRoot, dst + step, true);
    if (dstSlot == 0) return ENOMEM;
    const old = load<u64>(dstSlot);
    if (old != 0 && (zero || old != PTE_UFFD_WP)) return EEXIST;
    const cacheSlot = pteSlot(cache, off + step, true);
    if (cacheSlot == 0) return ENOMEM;
    if (load<u64>(cacheSlot) != 0) return EEXIST;
    let frame: usize;
    if (zero) {
      frame = frameAllocZeroed();
      if (frame == 0) return ENOMEM;
    } else {
      if (!sourcePresent(srcRoot, src + step)) return SRC_FAULT;
      frame = frameAlloc();
      if (frame == 0) return ENOMEM;
      copyFromSource(frame, srcRoot, src + step);
    }
    store<u64>(cacheSlot, <u64>frame | PTE_PRESENT);
    frameGet(frame);
    store<u64>(dstSlot, <u64>frame | PTE_PRESENT | PTE_DIRTY | pteFlags);
    setPagesDone(i + 1);
  }
  return OK;
}

/**
 * The loop of UFFDIO_CONTINUE: maps the frames already in the cache at
 * `off` onto the empty entries at `dst`. EEXIST on a populated entry (a
 * uffd-wp marker counts as empty), EFAULT where the cache has no page, EIO
 * where its page has a memory error.
 */
export function mfillContinue(dstRoot: usize, dst: u64, cache: usize, off: u64, pages: u32, pteFlags: u64): i32 {
  setPagesDone(0);
  for (let i: u32 = 0; i < pages; i++) {
    const step = <u64>i << PAGE_SHIFT;
    const slot = pteSlot(dstRoot, dst + step, true);
    if (slot == 0) return ENOMEM;
    const old = load<u64>(slot);
    if (old != 0 && old != PTE_UFFD_WP) return EEXIST;
    const entry = cacheEntry(cache, off + step);
    if ((entry & PTE_PRESENT) == 0) return EFAULT;
    if ((entry & PTE_POISON) != 0) return EIO;
    const frame = pteFrame(entry);
    frameGet(frame);
    store<u64>(slot, <u64>frame | PTE_PRESENT | pteFlags);
    setPagesDone(i + 1);
  }
  return OK;
}

/** Drops the cache's pages in [off, off + pages) (a hole punch); mappings must already be zapped. */
export function cachePunchHole(cache: usize, off: u64, pages: u32): i32 {
  let dropped: u32 = 0;
  for (let i: u32 = 0; i < pages; i++) {
    const slot = pteSlot(cache, off + (<u64>i << PAGE_SHIFT), false);
    if (slot == 0) continue;
    const entry = load<u64>(slot);
    if ((entry & PTE_PRESENT) == 0) continue;
    framePut(pteFrame(entry));
    store<u64>(slot, 0);
    dropped++;
  }
  setPagesDone(dropped);
  return OK;
}
