// Four-level page tables of 512 eight-byte entries, for 48-bit virtual
// addresses. Linux counterpart: the x86-64 pgd/pud/pmd/pte levels.
//
// Virtual address split:
//
//   47        39 38        30 29        21 20        12 11          0
//   +-----------+-----------+-----------+-----------+--------------+
//   | PGD index | PUD index | PMD index | PTE index | page offset  |
//   +-----------+-----------+-----------+-----------+--------------+
//
// Upper-level entry: address of the next table | PRESENT; 0 means no table.
//
// Leaf entry (PTE), u64:
//
//   63          32 31                  12 11   10   9    8    7  6     5..2  1     0
//   +-------------+----------------------+-----+----+-----+----+--+-----+------+-----+-------+
//   | 0           | frame address >> 12  |POISN|UFWP|ZERO |EXCL|0 |DIRTY | 0    |WRITE|PRESENT|
//   +-------------+----------------------+-----+----+-----+----+--+-----+------+-----+-------+
//
// - An entry of 0 is none (pte_none).
// - PRESENT set: the frame address bits name the mapped frame. ZERO marks the
//   shared zero frame, WRITE makes the page writable (cleared for copy-on-
//   write sharing), DIRTY records a write or a fill, UFFD_WP is the uffd-wp bit.
//   EXCL marks an anonymous page known to be mapped only here (the kernel's
//   PageAnonExclusive): set when the page is created or a write takes it
//   over, cleared by fork even after the other side lets go of it.
// - PRESENT clear but not 0: a marker. UFFD_WP alone is a uffd-wp marker,
//   POISON alone is a poison marker (UFFDIO_POISON); neither maps a frame.
//
// Page tables are frames from the same pool. They hold refcount 1 each.

import { PAGE_SHIFT, FRAME_ROOT, FRAME_TABLE, frameAlloc, frameAllocZeroed, framePut } from "./frames";

export const PTE_PRESENT: u64 = 1 << 0;
export const PTE_WRITE: u64 = 1 << 1;
export const PTE_DIRTY: u64 = 1 << 6;
export const PTE_EXCLUSIVE: u64 = 1 << 8;
export const PTE_ZERO: u64 = 1 << 9;
export const PTE_UFFD_WP: u64 = 1 << 10;
export const PTE_POISON: u64 = 1 << 11;
export const PTE_FRAME_MASK: u64 = 0xfffff000;

/** Highest user address plus one: 2^47, as on x86-64 with 4-level tables. */
export const TASK_SIZE: u64 = <u64>1 << 47;

const LEVEL_MASK: u64 = 511;

/** Set when the last walk that allocated could not get a table frame. */
export let walkNoMemory: bool = false;

// A two-entry cache of PTE tables found by pteTableCached: a fill loop
// alternates between its destination and its source tree, and walks each
// one's upper levels once per 512 pages instead of once per page.
let cacheRoot0: usize = 0;
let cacheKey0: u64 = ~(<u64>0);
let cacheTable0: usize = 0;
let cacheRoot1: usize = 0;
let cacheKey1: u64 = ~(<u64>0);
let cacheTable1: usize = 0;

/** Forgets the cached PTE tables; called whenever a table is freed. */
export function walkCacheFlush(): void {
  cacheRoot0 = 0;
  cacheKey0 = ~(<u64>0);
  cacheTable0 = 0;
  cacheRoot1 = 0;
  cacheKey1 = ~(<u64>0);
  cacheTable1 = 0;
}

// @ts-ignore: decorator
@inline export function pteFrame(pte: u64): usize {
  return <usize>(pte & PTE_FRAME_MASK);
}

// @ts-ignore: decorator
@inline function entrySlot(table: usize, va: u64, shift: u32): usize {
  return table + (<usize>((va >> shift) & LEVEL_MASK) << 3);
}

/** Returns the next-level table at `slot`, allocating it when asked; 0 if none. */
function nextTable(slot: usize, allocate: bool): usize {
  const entry = load<u64>(slot);
  if (entry != 0) return pteFrame(entry);
  if (!allocate) return 0;
  const table = frameAllocZeroed(FRAME_TABLE);
  if (table == 0) {
    walkNoMemory = true;
    return 0;
  }
  store<u64>(slot, <u64>table | PTE_PRESENT);
  return table;
}

/**
 * Returns the PTE table covering `va` in the tree at `root`, or 0 when a
 * level is missing (and `allocate` is false) or a table could not be
 * allocated (then `walkNoMemory` is set).
 */
export function pteTable(root: usize, va: u64, allocate: bool): usize {
  walkNoMemory = false;
  const pud = nextTable(entrySlot(root, va, 39), allocate);
  if (pud == 0) return 0;
  const pmd = nextTable(entrySlot(pud, va, 30), allocate);
  if (pmd == 0) return 0;
  return nextTable(entrySlot(pmd, va, 21), allocate);
}

/**
 * Installs a new PTE table for `va` in the tree at `root` without zeroing
 * it, because the caller writes all 512 entries right away. The PMD slot
 * must be empty. Returns the table, or 0 with `walkNoMemory` set when no
 * frame is left.
 */
export function pteTableUninitialized(root: usize, va: u64): usize {
  walkNoMemory = false;
  const pud = nextTable(entrySlot(root, va, 39), true);
  if (pud == 0) return 0;
  const pmd = nextTable(entrySlot(pud, va, 30), true);
  if (pmd == 0) return 0;
  const table = frameAlloc(FRAME_TABLE);
  if (table == 0) {
    walkNoMemory = true;
    return 0;
  }
  store<u64>(entrySlot(pmd, va, 21), <u64>table | PTE_PRESENT);
  return table;
}

// @ts-ignore: decorator
@inline export function pteIndexSlot(table: usize, va: u64): usize {
  return table + (<usize>((va >> PAGE_SHIFT) & LEVEL_MASK) << 3);
}

/** Returns the PTE table for `va` as `pteTable` does, through the two-entry cache. */
export function pteTableCached(root: usize, va: u64, allocate: bool): usize {
  const key = va >> 21;
  if (root == cacheRoot0 && key == cacheKey0) return cacheTable0;
  if (root == cacheRoot1 && key == cacheKey1) return cacheTable1;
  const table = pteTable(root, va, allocate);
  if (table == 0) return 0;
  // The older entry moves to slot 1, the new one takes slot 0.
  cacheRoot1 = cacheRoot0;
  cacheKey1 = cacheKey0;
  cacheTable1 = cacheTable0;
  cacheRoot0 = root;
  cacheKey0 = key;
  cacheTable0 = table;
  return table;
}

/** Returns the address of the PTE slot for `va`, as `pteTable` does for its table. */
export function pteSlot(root: usize, va: u64, allocate: bool): usize {
  const table = pteTableCached(root, va, allocate);
  return table == 0 ? 0 : pteIndexSlot(table, va);
}

/** Returns the PTE for `va`, or 0 when none is mapped. */
export function pteRead(root: usize, va: u64): u64 {
  const slot = pteSlot(root, va, false);
  return slot == 0 ? 0 : load<u64>(slot);
}

/** Takes a zeroed frame to serve as a new top-level table; 0 when exhausted. */
export function pgdAlloc(): usize {
  return frameAllocZeroed(FRAME_ROOT);
}

/**
 * Frees every table of the tree at `root`, the root included. Leaf entries
 * must already be zapped: this releases tables, not the pages they map.
 */
export function pgdFree(root: usize): void {
  for (let i: usize = 0; i < 512; i++) {
    const pudEntry = load<u64>(root + (i << 3));
    if (pudEntry == 0) continue;
    const pud = pteFrame(pudEntry);
    for (let j: usize = 0; j < 512; j++) {
      const pmdEntry = load<u64>(pud + (j << 3));
      if (pmdEntry == 0) continue;
      const pmd = pteFrame(pmdEntry);
      for (let k: usize = 0; k < 512; k++) {
        const pteEntry = load<u64>(pmd + (k << 3));
        if (pteEntry != 0) framePut(pteFrame(pteEntry));
      }
      framePut(pmd);
    }
    framePut(pud);
  }
  framePut(root);
  walkCacheFlush();
}

/** First address after the table or hole that `pteTableAt` last looked at. */
export let nextVa: u64 = 0;

/**
 * Returns the PTE table covering `va` without allocating, or 0 when there is
 * none; range loops use `nextVa` to skip a whole missing level in one step.
 */
export function pteTableAt(root: usize, va: u64): usize {
  const pudEntry = load<u64>(entrySlot(root, va, 39));
  if (pudEntry == 0) {
    nextVa = (va | ((<u64>1 << 39) - 1)) + 1;
    return 0;
  }
  const pmdEntry = load<u64>(entrySlot(pteFrame(pudEntry), va, 30));
  if (pmdEntry == 0) {
    nextVa = (va | ((<u64>1 << 30) - 1)) + 1;
    return 0;
  }
  const pteEntry = load<u64>(entrySlot(pteFrame(pmdEntry), va, 21));
  nextVa = (va | ((<u64>1 << 21) - 1)) + 1;
  if (pteEntry == 0) return 0;
  return pteFrame(pteEntry);
}

/**
 * Frees the PTE tables that lie wholly inside [start, end) and clears their
 * PMD entries. Their entries must already be none.
 */
export function freePteTables(root: usize, start: u64, end: u64): void {
  let va = (start + (<u64>1 << 21) - 1) & ~((<u64>1 << 21) - 1);
  while (va + (<u64>1 << 21) <= end) {
    const pudEntry = load<u64>(entrySlot(root, va, 39));
    if (pudEntry == 0) {
      va = (va | ((<u64>1 << 39) - 1)) + 1;
      continue;
    }
    const pmdTable = pteFrame(pudEntry);
    const pmdEntry = load<u64>(entrySlot(pmdTable, va, 30));
    if (pmdEntry == 0) {
      va = (va | ((<u64>1 << 30) - 1)) + 1;
      continue;
    }
    const slot = entrySlot(pteFrame(pmdEntry), va, 21);
    const table = load<u64>(slot);
    if (table != 0) {
      store<u64>(slot, 0);
      framePut(pteFrame(table));
    }
    va += <u64>1 << 21;
  }
  walkCacheFlush();
}
