// A virtual memory area: one mapping of an address space.
// Linux counterpart: struct vm_area_struct (include/linux/mm_types.h).

import { MAP_SHARED, PROT_READ, PROT_WRITE } from "../constants.js";
import type { UffdContext } from "../uffd/context.js";
import type { MappedFile } from "./file.js";

// VMA userfaultfd flags; each equals the UFFDIO_REGISTER mode that sets it.
export const VM_UFFD_MISSING = 1 << 0;
export const VM_UFFD_WP = 1 << 1;
export const VM_UFFD_MINOR = 1 << 2;

export class Vma {
  /** First address; page aligned. Guarded by the mm's mmap_lock. */
  start: number;
  /** One past the last address; page aligned, greater than `start`. */
  end: number;
  /** PROT_* bits. */
  prot: number;
  /** MAP_SHARED or MAP_PRIVATE, with MAP_ANONYMOUS. */
  readonly flags: number;
  /** The owning userfaultfd context; non-null exactly when `uffdFlags` is non-zero. */
  uffdCtx: UffdContext | null = null;
  /** VM_UFFD_* bits. */
  uffdFlags = 0;
  /** The mapped file (shared anonymous memory maps a hidden shmem file), or null for private anonymous memory. */
  readonly file: MappedFile | null;
  /** File offset, in bytes, of `start`; 0 without a file. */
  pgoff: number;
  /** VM_MAYWRITE: the mapping may be made writable (false for a shared mapping of a read-only file). */
  readonly mayWrite: boolean;

  constructor(start: number, end: number, prot: number, flags: number, file: MappedFile | null = null, pgoff = 0, mayWrite = true) {
    this.start = start;
    this.end = end;
    this.prot = prot;
    this.flags = flags;
    this.file = file;
    this.pgoff = pgoff;
    this.mayWrite = mayWrite;
  }

  /** Returns the file offset of `address`, which must lie in this VMA. */
  fileOffset(address: number): number {
    return this.pgoff + (address - this.start);
  }

  /** Private anonymous memory: no file behind it. */
  get isAnonymous(): boolean {
    return this.file === null;
  }

  /** Backed by shmem: shared anonymous memory or a memfd/tmpfs file, shared or private. */
  get isShmem(): boolean {
    return this.file !== null && this.file.kind === "shmem";
  }

  get length(): number {
    return this.end - this.start;
  }

  get isShared(): boolean {
    return (this.flags & MAP_SHARED) !== 0;
  }

  get readable(): boolean {
    return (this.prot & PROT_READ) !== 0;
  }

  get writable(): boolean {
    return (this.prot & PROT_WRITE) !== 0;
  }

  contains(address: number): boolean {
    return address >= this.start && address < this.end;
  }

  /** Returns a copy with the same attributes and registration (vm_area_dup). */
  clone(): Vma {
    const copy = new Vma(this.start, this.end, this.prot, this.flags, this.file, this.pgoff, this.mayWrite);
    copy.uffdCtx = this.uffdCtx;
    copy.uffdFlags = this.uffdFlags;
    return copy;
  }

  /** Drops the userfaultfd registration (userfaultfd_reset_ctx). */
  resetUffd(): void {
    this.uffdCtx = null;
    this.uffdFlags = 0;
  }

  /** Returns whether `next`, starting at this VMA's end, could merge with it. */
  canMergeWith(next: Vma): boolean {
    return (
      this.end === next.start &&
      this.prot === next.prot &&
      this.flags === next.flags &&
      this.uffdCtx === next.uffdCtx &&
      this.uffdFlags === next.uffdFlags &&
      this.file === next.file &&
      this.mayWrite === next.mayWrite &&
      (this.file === null || this.pgoff + this.length === next.pgoff)
    );
  }
}
