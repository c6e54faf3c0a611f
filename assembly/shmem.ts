// Shared memory: a file's page cache and the fills that use it.
// Linux counterparts: mm/shmem.c (shmem_get_folio, shmem_fault,
// shmem_mfill_atomic_pte) and mm/userfaultfd.c mfill_atomic_pte_continue().
//
// A file's page cache is a tree of the same shape as a page table, indexed
// by file offset instead of virtual address: the entry for offset `off` is
// where the PTE for address `off` would be, and holds frame | PRESENT. The
// cache holds one reference on each of its frames; every mapping of a page
// holds another. Trees come from pgd_alloc and go with pgd_free.

import { OK, ENOMEM, EEXIST, EFAULT, SRC_FAULT } from "./status";
import { PAGE_SHIFT, frameAlloc, frameAllocZeroed, frameGet, framePut } from "./frames";
import { PTE_PRESENT, PTE_DIRTY, PTE_UFFD_WP, pteTableCached, pteIndexSlot, pteFrame, pteSlot } from "./pgtable";
import { copyFromSource, setPagesDone, sourcePresent } from "./mfill";

/** Returns the frame cached at file offset `off`, or 0 when the cache has none. */
export function cacheLookup(cache: usize, off: u64): usize {
  const table = pteTableCached(cache, off, false);
  if (table == 0) return 0;
  const entry = load<u64>(pteIndexSlot(table, off));
  return (entry & PTE_PRESENT) != 0 ? pteFrame(entry) : 0;
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
 * The loop of UFFDIO_CONTINUE: maps the frames the cache already holds at
 * `off` onto the empty entries at `dst`. EEXIST on a populated entry (a
 * uffd-wp marker counts as empty), EFAULT where the cache has no page.
 */
export function mfillContinue(dstRoot: usize, dst: u64, cache: usize, off: u64, pages: u32, pteFlags: u64): i32 {
  setPagesDone(0);
  for (let i: u32 = 0; i < pages; i++) {
    const step = <u64>i << PAGE_SHIFT;
    const slot = pteSlot(dstRoot, dst + step, true);
    if (slot == 0) return ENOMEM;
    const old = load<u64>(slot);
    if (old != 0 && old != PTE_UFFD_WP) return EEXIST;
    const frame = cacheLookup(cache, off + step);
    if (frame == 0) return EFAULT;
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
