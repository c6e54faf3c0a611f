// uffd-wp protection changes over a range.
// Linux counterpart: mm/userfaultfd.c mwriteprotect_range() and the
// MM_CP_UFFD_WP paths of mm/mprotect.c change_protection().

import { OK, ENOMEM } from "./status";
import { PAGE_SHIFT, frameRefcount, zeroFrame } from "./frames";
import { PTE_PRESENT, PTE_WRITE, PTE_UFFD_WP, pteTableAt, pteTableCached, pteIndexSlot, pteFrame, nextVa } from "./pgtable";
import { setPagesDone } from "./mfill";

/** mwriteprotect flag: set protection (clear it without this flag). */
export const WP_PROTECT: u32 = 1;
/** mwriteprotect flag: protect empty entries too, with uffd-wp markers (WP_UNPOPULATED). */
export const WP_MARKERS: u32 = 2;
/** mwriteprotect flag: the VMA allows writes, so un-protecting may make a page writable. */
export const WP_VMA_WRITE: u32 = 4;

/**
 * Protects or un-protects [start, end) in `root`. Protecting sets the
 * uffd-wp bit of each present entry and clears its write bit; with
 * WP_MARKERS it also puts uffd-wp markers in empty entries. Un-protecting
 * clears the bit and the markers, and gives back the write bit where the
 * VMA allows it and the frame is not shared (a shared frame stays
 * read-only, so the next write breaks copy-on-write). Leaves the number of
 * entries changed in `pagesDone`. Returns OK, or ENOMEM when a table for a
 * marker cannot be allocated.
 */
export function mwriteprotectRange(root: usize, start: u64, end: u64, flags: u32): i32 {
  const protect = (flags & WP_PROTECT) != 0;
  const markers = protect && (flags & WP_MARKERS) != 0;
  let changed: u32 = 0;
  let va = start;
  while (va < end) {
    let table = pteTableAt(root, va);
    const stop = nextVa < end ? nextVa : end;
    if (table == 0) {
      if (!markers) {
        va = stop;
        continue;
      }
      table = pteTableCached(root, va, true);
      if (table == 0) {
        setPagesDone(changed);
        return ENOMEM;
      }
    }
    for (; va < stop; va += <u64>1 << PAGE_SHIFT) {
      const slot = pteIndexSlot(table, va);
      const pte = load<u64>(slot);
      let next = pte;
      if ((pte & PTE_PRESENT) != 0) {
        if (protect) {
          next = (pte | PTE_UFFD_WP) & ~PTE_WRITE;
        } else if ((pte & PTE_UFFD_WP) != 0) {
          next = pte & ~PTE_UFFD_WP;
          const frame = pteFrame(pte);
          if ((flags & WP_VMA_WRITE) != 0 && frame != zeroFrame && frameRefcount(frame) == 1) next |= PTE_WRITE;
        }
      } else if (pte == 0) {
        if (markers) next = PTE_UFFD_WP;
      } else if (pte == PTE_UFFD_WP && !protect) {
        next = 0;
      }
      if (next != pte) {
        store<u64>(slot, next);
        changed++;
      }
    }
  }
  setPagesDone(changed);
  return OK;
}
