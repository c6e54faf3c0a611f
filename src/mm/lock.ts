// mmap_lock: the per-address-space read/write semaphore.
// Linux counterpart: include/linux/mmap_lock.h.
//
// Lock order: a task holds at most one mmap_lock, except fork, which takes
// the parent's for write and then the child's for write (dup_mmap). Faults
// hold the lock for read and drop it before sleeping on a userfaultfd; event
// producers drop theirs before waiting for the monitor to read the event.
//
// Every operation of the model runs synchronously between the points where
// the kernel would sleep, and no lock is held across such a point, so the
// lock is never found held by another task. Taking a held lock is therefore
// a bug in the model and throws, instead of silently serialising.

export class MmapLock {
  /** Number of read holders. */
  private readers = 0;
  private writer = false;

  readLock(): void {
    if (this.writer) throw new Error("mmap_lock: read lock taken while write-locked");
    this.readers++;
  }

  readUnlock(): void {
    if (this.readers === 0) throw new Error("mmap_lock: read unlock without a reader");
    this.readers--;
  }

  writeLock(): void {
    if (this.writer || this.readers > 0) throw new Error("mmap_lock: write lock taken while held");
    this.writer = true;
  }

  writeUnlock(): void {
    if (!this.writer) throw new Error("mmap_lock: write unlock without the writer");
    this.writer = false;
  }

  get isWriteLocked(): boolean {
    return this.writer;
  }

  get isLocked(): boolean {
    return this.writer || this.readers > 0;
  }

  /** Throws unless the lock is held for write (mmap_assert_write_locked). */
  assertWriteLocked(): void {
    if (!this.writer) throw new Error("mmap_lock: write lock required");
  }

  /** Throws unless the lock is held at all (mmap_assert_locked). */
  assertLocked(): void {
    if (!this.isLocked) throw new Error("mmap_lock: lock required");
  }
}
