// An address space: its VMAs, its page-table root and its mmap_lock.
// Linux counterpart: struct mm_struct, with mm/mmap.c find_vma() and
// get_unmapped_area() and mm/vma.c split and merge.

import { TASK_SIZE } from "../constants.js";
import { MmapLock } from "./lock.js";
import { Vma } from "./vma.js";

/** The address below which new mappings are placed top-down, as mmap_base on x86-64. */
export const MMAP_BASE = 0x7f00_0000_0000;

export class Mm {
  /** Page-table root in wasm memory; 0 once the address space is torn down. */
  pgd: number;
  readonly lock = new MmapLock();
  /** The VMAs in address order, never overlapping. Guarded by `lock`. */
  private vmas: Vma[] = [];
  /** mm_users: 1 while the owning process lives, 0 after exit. */
  users = 1;
  // The two VMAs found last: a COPY alternates between its destination and
  // its source, often in one address space.
  private lastHit: Vma | undefined;
  private previousHit: Vma | undefined;

  constructor(pgd: number) {
    this.pgd = pgd;
  }

  get alive(): boolean {
    return this.users > 0;
  }

  /** Returns a snapshot of the VMAs in address order. */
  vmaList(): readonly Vma[] {
    return this.vmas.slice();
  }

  /** Returns the index of the first VMA whose end is above `address`. */
  private indexAfter(address: number): number {
    let low = 0;
    let high = this.vmas.length;
    while (low < high) {
      const mid = (low + high) >>> 1;
      if (this.vmas[mid]!.end <= address) low = mid + 1;
      else high = mid;
    }
    return low;
  }

  /** Returns the VMA containing `address` (vma_lookup), or undefined. */
  vmaLookup(address: number): Vma | undefined {
    const last = this.lastHit;
    if (last !== undefined && address >= last.start && address < last.end) return last;
    const previous = this.previousHit;
    if (previous !== undefined && address >= previous.start && address < previous.end) {
      this.previousHit = last;
      this.lastHit = previous;
      return previous;
    }
    const vma = this.vmas[this.indexAfter(address)];
    if (vma === undefined || vma.start > address) return undefined;
    this.previousHit = last;
    this.lastHit = vma;
    return vma;
  }

  /** Returns the VMAs overlapping [start, end), in address order. */
  vmasIn(start: number, end: number): Vma[] {
    const result: Vma[] = [];
    for (let i = this.indexAfter(start); i < this.vmas.length; i++) {
      const vma = this.vmas[i]!;
      if (vma.start >= end) break;
      result.push(vma);
    }
    return result;
  }

  private forgetHits(): void {
    this.lastHit = undefined;
    this.previousHit = undefined;
  }

  /** Adds a VMA that overlaps none; the caller holds the write lock. */
  insertVma(vma: Vma): void {
    const index = this.indexAfter(vma.start);
    const next = this.vmas[index];
    if (next !== undefined && next.start < vma.end) throw new Error("insertVma: overlapping VMA");
    this.vmas.splice(index, 0, vma);
  }

  removeVma(vma: Vma): void {
    const index = this.vmas.indexOf(vma);
    if (index >= 0) this.vmas.splice(index, 1);
    this.forgetHits();
  }

  removeAllVmas(): Vma[] {
    const all = this.vmas;
    this.vmas = [];
    this.forgetHits();
    return all;
  }

  /**
   * Splits `vma` at `address` (strictly inside it) and returns the upper
   * part, now a VMA of its own (split_vma). The caller holds the write lock.
   */
  splitVma(vma: Vma, address: number): Vma {
    const upper = vma.clone();
    upper.start = address;
    upper.pgoff = vma.pgoff + (address - vma.start);
    vma.end = address;
    this.insertVma(upper);
    return upper;
  }

  /**
   * Splits `vma` so that one part is exactly its overlap with [start, end)
   * and returns that part. The caller holds the write lock.
   */
  isolateRange(vma: Vma, start: number, end: number): Vma {
    this.lock.assertWriteLocked();
    let inside = vma;
    if (inside.start < start) inside = this.splitVma(inside, start);
    if (inside.end > end) this.splitVma(inside, end);
    return inside;
  }

  /** Merges `vma` with its neighbours where they are compatible (vma_merge). */
  mergeAround(vma: Vma): Vma {
    let index = this.vmas.indexOf(vma);
    const next = this.vmas[index + 1];
    if (next !== undefined && vma.canMergeWith(next)) {
      vma.end = next.end;
      this.removeVma(next);
    }
    const prev = this.vmas[index - 1];
    if (prev !== undefined && prev.canMergeWith(vma)) {
      prev.end = vma.end;
      this.removeVma(vma);
      index--;
      return prev;
    }
    return vma;
  }

  /**
   * Finds a free range of `length` bytes, placed top-down below MMAP_BASE
   * (get_unmapped_area). Returns its start, or -1 when none fits above
   * `minAddress`.
   */
  getUnmappedArea(length: number, minAddress: number): number {
    let ceiling = MMAP_BASE;
    for (let i = this.indexAfter(MMAP_BASE) - 1; i >= -1; i--) {
      const vma = this.vmas[i];
      const floor = vma === undefined ? minAddress : Math.max(vma.end, minAddress);
      if (vma !== undefined && vma.start >= ceiling) continue;
      if (ceiling - floor >= length) return ceiling - length;
      if (vma === undefined) break;
      ceiling = Math.min(ceiling, vma.start);
    }
    return -1;
  }

  /** Returns whether [start, start + length) is free and inside user space. */
  isRangeFree(start: number, length: number): boolean {
    if (start + length > TASK_SIZE) return false;
    return this.vmasIn(start, start + length).length === 0;
  }
}

