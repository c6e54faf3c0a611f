// Range operations on page tables: fork's copy, the zap of munmap and
// madvise(MADV_DONTNEED), and process teardown.
// Linux counterparts: mm/memory.c copy_page_range() and zap_page_range_single(),
// mm/mmap.c exit_mmap() with free_pgtables().

import { OK, ENOMEM } from "./status";
import { PAGE_SHIFT, frameGet, framePut } from "./frames";
import { PTE_PRESENT, PTE_WRITE, PTE_DIRTY, PTE_EXCLUSIVE, PTE_UFFD_WP, PTE_POISON, pteTable, pteTableAt, pteTableUninitialized, pteFrame, pteSlot, nextVa } from "./pgtable";
import { setPagesDone } from "./mfill";

/** copy_page_range flag: private mapping, so present pages become copy-on-write. */
export const CPR_COW: u32 = 1;
/** copy_page_range flag: the child VMA is uffd-wp registered, so uffd-wp state is kept. */
export const CPR_KEEP_UFFD_WP: u32 = 2;

/** Bytes of address space one PTE table maps: 512 pages, 2 MiB. */
const TABLE_SPAN: u64 = <u64>512 << PAGE_SHIFT;

/**
 * Copies the whole PTE table `srcTable` at `va` into the child, whose slot
 * for it is still empty. One pass takes the references and write-protects
 * the parent. One memory.copy then fills a child table that needs no
 * zeroing, and a second pass runs only where child entries must differ
 * (dropped uffd-wp state, a shared page's dirty bit).
 * Returns the present pages copied (0 without allocating for an empty
 * table), or -1 for ENOMEM after dropping the references taken here.
 */
function copyWholeTable(dstRoot: usize, srcTable: usize, va: u64, cow: bool, keepWp: bool): i32 {
  let present: i32 = 0;
  let used = false;
  let fixup = false;
  for (let slot = srcTable, last = srcTable + 4096; slot < last; slot += 8) {
    let pte = load<u64>(slot);
    if (pte == 0) continue;
    used = true;
    if ((pte & PTE_PRESENT) != 0) {
      frameGet(pteFrame(pte));
      present++;
      if (cow) {
        if ((pte & (PTE_WRITE | PTE_EXCLUSIVE)) != 0) store<u64>(slot, pte & ~(PTE_WRITE | PTE_EXCLUSIVE));
      } else if ((pte & PTE_DIRTY) != 0) {
        fixup = true;
      }
      if (!keepWp && (pte & PTE_UFFD_WP) != 0) fixup = true;
    } else if (!keepWp && (pte & PTE_POISON) == 0) {
      fixup = true;
    }
  }
  if (!used) return 0;
  const dstTable = pteTableUninitialized(dstRoot, va);
  if (dstTable == 0) {
    for (let slot = srcTable, last = srcTable + 4096; slot < last; slot += 8) {
      const pte = load<u64>(slot);
      if ((pte & PTE_PRESENT) != 0) framePut(pteFrame(pte));
    }
    return -1;
  }
  memory.copy(dstTable, srcTable, 4096);
  if (fixup) {
    for (let slot = dstTable, last = dstTable + 4096; slot < last; slot += 8) {
      let child = load<u64>(slot);
      if (child == 0) continue;
      if ((child & PTE_PRESENT) != 0) {
        if (!cow) child &= ~PTE_DIRTY;
        if (!keepWp) child &= ~PTE_UFFD_WP;
      } else if (!keepWp && (child & PTE_POISON) == 0) {
        child = 0;
      }
      store<u64>(slot, child);
    }
  }
  return present;
}

/**
 * Copies the entries of [start, end) from the parent tree `srcRoot` into the
 * empty child tree `dstRoot`, as fork does for one VMA.
 *
 * - A present page is shared: its refcount goes up. In a private mapping
 *   (CPR_COW) the write bit is cleared in parent and child, so the first
 *   write on either side breaks the sharing. In a shared mapping the child's
 *   entry is marked clean.
 * - uffd-wp bits and uffd-wp markers reach the child only with
 *   CPR_KEEP_UFFD_WP. Poison markers are always copied.
 *
 * Leaves the number of present pages copied in `pagesDone`. On ENOMEM the
 * child holds a consistent prefix that the host tears down.
 */
export function copyPageRange(dstRoot: usize, srcRoot: usize, start: u64, end: u64, flags: u32): i32 {
  const cow = (flags & CPR_COW) != 0;
  const keepWp = (flags & CPR_KEEP_UFFD_WP) != 0;
  let copied: u32 = 0;
  let va = start;
  while (va < end) {
    const srcTable = pteTableAt(srcRoot, va);
    let stop = nextVa < end ? nextVa : end;
    if (srcTable == 0) {
      va = stop;
      continue;
    }
    if (stop - va == TABLE_SPAN && pteTableAt(dstRoot, va) == 0) {
      const status = copyWholeTable(dstRoot, srcTable, va, cow, keepWp);
      if (status < 0) {
        setPagesDone(copied);
        return ENOMEM;
      }
      copied += <u32>status;
      va = stop;
      continue;
    }
    let dstTable: usize = 0;
    for (; va < stop; va += <u64>1 << PAGE_SHIFT) {
      const index = <usize>((va >> PAGE_SHIFT) & 511) << 3;
      const srcSlot = srcTable + index;
      let pte = load<u64>(srcSlot);
      if (pte == 0) continue;
      let child = pte;
      if ((pte & PTE_PRESENT) != 0) {
        frameGet(pteFrame(pte));
        if (cow) {
          // Both sides lose write access and exclusivity.
          if ((pte & (PTE_WRITE | PTE_EXCLUSIVE)) != 0) {
            pte &= ~(PTE_WRITE | PTE_EXCLUSIVE);
            store<u64>(srcSlot, pte);
          }
          child = pte;
        } else {
          child = pte & ~PTE_DIRTY;
        }
        if (!keepWp) child &= ~PTE_UFFD_WP;
        copied++;
      } else if ((pte & PTE_POISON) == 0) {
        // A uffd-wp marker: meaningful only to a WP-registered child.
        if (!keepWp) continue;
      }
      if (dstTable == 0) {
        dstTable = pteTable(dstRoot, va, true);
        if (dstTable == 0) {
          // Undo the reference taken for this entry: the child never got it.
          if ((pte & PTE_PRESENT) != 0) {
            framePut(pteFrame(pte));
            copied--;
          }
          setPagesDone(copied);
          return ENOMEM;
        }
      }
      store<u64>(dstTable + index, child);
    }
  }
  setPagesDone(copied);
  return OK;
}

/**
 * Clears every entry of [start, end): present pages lose a reference and
 * markers are dropped. With `keepUffdWp` (a file-backed VMA registered for
 * uffd-wp, as zap_install_uffd_wp_if_needed does since Linux 5.19), a
 * protected page leaves a uffd-wp marker behind and existing uffd-wp
 * markers stay, so the protection outlives the page. Leaves the number of
 * present pages unmapped in `pagesDone`. The tables stay; `freePteTables`
 * releases them.
 */
export function zapPageRange(root: usize, start: u64, end: u64, keepUffdWp: bool = false): i32 {
  let zapped: u32 = 0;
  let va = start;
  while (va < end) {
    const table = pteTableAt(root, va);
    const stop = nextVa < end ? nextVa : end;
    if (table == 0) {
      va = stop;
      continue;
    }
    for (; va < stop; va += <u64>1 << PAGE_SHIFT) {
      const slot = table + (<usize>((va >> PAGE_SHIFT) & 511) << 3);
      const pte = load<u64>(slot);
      if (pte == 0) continue;
      if ((pte & PTE_PRESENT) != 0) {
        framePut(pteFrame(pte));
        zapped++;
      }
      store<u64>(slot, keepUffdWp && (pte & PTE_UFFD_WP) != 0 ? PTE_UFFD_WP : 0);
    }
  }
  setPagesDone(zapped);
  return OK;
}

/** Counts the present entries of [start, end) without changing them. */
export function countPresent(root: usize, start: u64, end: u64): u32 {
  let count: u32 = 0;
  let va = start;
  while (va < end) {
    const table = pteTableAt(root, va);
    const stop = nextVa < end ? nextVa : end;
    if (table == 0) {
      va = stop;
      continue;
    }
    for (; va < stop; va += <u64>1 << PAGE_SHIFT) {
      const pte = load<u64>(table + (<usize>((va >> PAGE_SHIFT) & 511) << 3));
      if ((pte & PTE_PRESENT) != 0) count++;
    }
  }
  return count;
}

/**
 * Moves every entry of [from, from + pages) to the same offset at `to`, as
 * mremap() moves page tables: present pages, markers and uffd-wp bits go
 * along unchanged and the old entries become none. Frames keep their
 * refcounts. Leaves the entries moved in `pagesDone`. On ENOMEM (no frame
 * for a destination table) the entries before the failing one have moved.
 */
export function movePageTables(root: usize, from: u64, to: u64, pages: u32): i32 {
  let moved: u32 = 0;
  for (let i: u32 = 0; i < pages; i++) {
    const offset = <u64>i << PAGE_SHIFT;
    const srcSlot = pteSlot(root, from + offset, false);
    if (srcSlot == 0) continue;
    const pte = load<u64>(srcSlot);
    if (pte == 0) continue;
    const dstSlot = pteSlot(root, to + offset, true);
    if (dstSlot == 0) {
      setPagesDone(moved);
      return ENOMEM;
    }
    store<u64>(dstSlot, pte);
    store<u64>(srcSlot, 0);
    moved++;
  }
  setPagesDone(moved);
  return OK;
}
