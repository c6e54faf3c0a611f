// A simulated process: one address space and one thread, with the system
// calls a userfaultfd monitor's target makes.
// Linux counterparts: mm/mmap.c (mmap, munmap), mm/madvise.c, kernel/fork.c,
// kernel/exit.c, and the access itself (the CPU plus the fault path).

import {
  EACCES, EFAULT, EINVAL, ENOMEM, EPERM, MAP_ANONYMOUS, MAP_FIXED, MAP_PRIVATE, MAP_SHARED, PAGE_SIZE, PROT_READ, PROT_WRITE,
  SIGBUS, SIGSEGV, TASK_SIZE, O_CLOEXEC, O_NONBLOCK, UFFD_USER_MODE_ONLY,
} from "../constants.js";
import { KernelError, SignalError, asU64, hasOnlyBits, requireNumber } from "../errors.js";
import { ACCESS_SHARED, ACCESS_VMA_WRITE, ACCESS_WRITE, FAULT_ACCESS, FAULT_MISSING, FAULT_POISON, FAULT_WP } from "../wasm/core.js";
import { UffdContext } from "../uffd/context.js";
import { Userfaultfd } from "../uffd/userfaultfd.js";
import { handleMissingFault, handleWpFault } from "./fault.js";
import { forkProcess } from "./fork.js";
import { mremap } from "./mremap.js";
import { MADV_DONTNEED, MADV_REMOVE, madvise, munmap, unmapComplete, unmapRangeLocked } from "./unmap.js";
import type { Kernel } from "./kernel.js";
import { Mm } from "./mm.js";
import { Vma } from "./vma.js";
import { MappedFile } from "./file.js";

export { MADV_DONTNEED, MADV_REMOVE };

export interface MmapOptions {
  /** PROT_* bits; default PROT_READ | PROT_WRITE. */
  prot?: number;
  /** MAP_* bits; default MAP_PRIVATE | MAP_ANONYMOUS. */
  flags?: number;
  /** Placement for MAP_FIXED; ignored otherwise. */
  address?: number;
  /** The file to map (without MAP_ANONYMOUS), from Kernel.memfdCreate() or Kernel.createFile(). */
  file?: MappedFile;
  /** File offset of the mapping, page aligned; default 0. */
  offset?: number;
}

const pageAligned = (value: number) => value % PAGE_SIZE === 0;

export class Process {
  readonly kernel: Kernel;
  readonly pid: number;
  /** Has CAP_SYS_PTRACE (root in the initial namespace): may create userfaultfds and use EVENT_FORK. */
  readonly privileged: boolean;
  readonly mm: Mm;
  /** The file table: open userfaultfds by descriptor number. */
  readonly files = new Map<number, Userfaultfd>();
  private exitedFlag = false;

  /** Use Kernel.createProcess() or fork(). */
  constructor(kernel: Kernel, pid: number, pgd: number, privileged = true) {
    this.privileged = privileged;
    this.kernel = kernel;
    this.pid = pid;
    this.mm = new Mm(pgd);
  }

  get exited(): boolean {
    return this.exitedFlag;
  }

  private checkAlive(call: string): void {
    if (this.exitedFlag) throw new Error(`${call}: process ${this.pid} has exited`);
  }

  /**
   * Maps memory and returns its address, or a negative errno as the raw
   * system call does: -EINVAL for a zero length, unknown flags, not exactly
   * one of MAP_SHARED and MAP_PRIVATE, a file with MAP_ANONYMOUS or none
   * without it, or an unaligned MAP_FIXED address or offset; -EACCES for a
   * writable shared mapping of a read-only file; -ENOMEM when no range is
   * free. MAP_SHARED | MAP_ANONYMOUS maps a new shmem object.
   */
  mmap(length: number, options: MmapOptions = {}): number {
    this.checkAlive("mmap");
    requireNumber(length, "length");
    const prot = options.prot ?? PROT_READ | PROT_WRITE;
    const flags = options.flags ?? (options.file ? MAP_SHARED : MAP_PRIVATE | MAP_ANONYMOUS);
    requireNumber(prot, "prot");
    requireNumber(flags, "flags");
    const offset = asU64(requireNumber(options.offset ?? 0, "offset"));
    const fileArg = options.file;
    if (fileArg !== undefined && !(fileArg instanceof MappedFile)) throw new TypeError("file must come from Kernel.memfdCreate() or Kernel.createFile()");
    const len = asU64(length);
    if (len === 0 || !hasOnlyBits(asU64(prot), PROT_READ | PROT_WRITE)) return -EINVAL;
    if (!hasOnlyBits(asU64(flags), MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED | MAP_SHARED)) return -EINVAL;
    const shared = (flags & MAP_SHARED) !== 0;
    if (shared === ((flags & MAP_PRIVATE) !== 0)) return -EINVAL;
    const anonymous = (flags & MAP_ANONYMOUS) !== 0;
    if (anonymous === (fileArg !== undefined) || !pageAligned(offset)) return -EINVAL;
    if (len > TASK_SIZE) return -ENOMEM;
    const size = Math.ceil(len / PAGE_SIZE) * PAGE_SIZE;
    if (fileArg !== undefined && fileArg.cache === 0) return -EINVAL;
    const mayWrite = !(shared && fileArg !== undefined && fileArg.readOnly);
    if (!mayWrite && (prot & PROT_WRITE) !== 0) return -EACCES;

    let start: number;
    if ((flags & MAP_FIXED) !== 0) {
      start = asU64(requireNumber(options.address ?? NaN, "address"));
      if (!pageAligned(start) || start < this.kernel.mmapMinAddr || start + size > TASK_SIZE) return -EINVAL;
      this.mm.lock.writeLock();
      const contexts = unmapRangeLocked(this, start, start + size);
      this.mm.lock.writeUnlock();
      // NOTE: the kernel's mmap() sleeps until the monitor reads these UNMAP
      // events; this mmap() stays synchronous, so it queues them and returns.
      void unmapComplete(contexts, start, start + size);
    } else {
      start = this.mm.getUnmappedArea(size, this.kernel.mmapMinAddr);
      if (start < 0) return -ENOMEM;
    }
    let file = fileArg ?? null;
    if (file === null && shared) {
      file = this.kernel.createAnonymousShmem(size);
      if (file === null) return -ENOMEM;
    }
    this.mm.lock.writeLock();
    const vma = new Vma(start, start + size, prot, flags & (MAP_PRIVATE | MAP_SHARED | MAP_ANONYMOUS), file, offset, mayWrite);
    this.mm.insertVma(vma);
    this.mm.mergeAround(vma);
    this.mm.lock.writeUnlock();
    return start;
  }

  /**
   * Unmaps [address, address + length) (munmap(2)). Settles with 0, or
   * -EINVAL for an unaligned start, a zero length or a range past
   * TASK_SIZE. With a userfaultfd that has EVENT_UNMAP on the range, it
   * settles only after the monitor has read the UNMAP event.
   */
  munmap(address: number, length: number): Promise<number> {
    this.checkAlive("munmap");
    return munmap(this, address, length);
  }

  /**
   * Changes the protection of [address, address + length) (mprotect(2)),
   * splitting VMAs at the edges; userfaultfd registration is kept. Returns
   * 0, -EINVAL for an unaligned start or unknown bits, -EACCES for
   * PROT_WRITE on a shared mapping of a read-only file, -ENOMEM when part of
   * the range is unmapped (nothing is changed then).
   */
  mprotect(address: number, length: number, prot: number): number {
    this.checkAlive("mprotect");
    const start = asU64(requireNumber(address, "address"));
    const len = asU64(requireNumber(length, "length"));
    const bits = asU64(requireNumber(prot, "prot"));
    if (!pageAligned(start) || start + len > TASK_SIZE || !hasOnlyBits(bits, PROT_READ | PROT_WRITE)) return -EINVAL;
    if (len === 0) return 0;
    const end = start + Math.ceil(len / PAGE_SIZE) * PAGE_SIZE;
    const mm = this.mm;
    mm.lock.writeLock();
    try {
      const vmas = mm.vmasIn(start, end);
      let covered = start;
      for (const vma of vmas) {
        if (vma.start > covered) return -ENOMEM;
        if ((bits & PROT_WRITE) !== 0 && !vma.mayWrite) return -EACCES;
        covered = vma.end;
      }
      if (covered < end) return -ENOMEM;
      for (const vma of vmas) {
        const inside = mm.isolateRange(vma, start, end);
        inside.prot = bits;
        mm.mergeAround(inside);
      }
      return 0;
    } finally {
      mm.lock.writeUnlock();
    }
  }

  /**
   * Resizes or moves a mapping (mremap(2)); see mm/mremap.ts. Settles with
   * the new address or a negative errno. With a userfaultfd that has
   * EVENT_REMAP on a moved range, it settles only after the monitor has read
   * the REMAP event (and any UNMAP events it owes).
   */
  mremap(oldAddress: number, oldSize: number, newSize: number, flags: number, newAddress?: number): Promise<number> {
    this.checkAlive("mremap");
    return mremap(this, oldAddress, oldSize, newSize, flags, newAddress);
  }

  /**
   * madvise(2); MADV_DONTNEED drops the pages of the range, so the next
   * access faults again (a registered range raises MISSING faults). With a
   * userfaultfd that has EVENT_REMOVE, the pages go only after the monitor
   * has read the REMOVE event. Settles with 0, -EINVAL (unaligned start,
   * unknown advice) or -ENOMEM (part of the range unmapped).
   */
  madvise(address: number, length: number, advice: number): Promise<number> {
    this.checkAlive("madvise");
    return madvise(this, address, length, advice);
  }

  /**
   * Reads `length` bytes at `address`, as the process's own loads would.
   * Settles when every byte is read; a fault on a MISSING-registered page
   * waits until the monitor resolves it. Rejects with SignalError on SIGSEGV
   * or SIGBUS.
   */
  read(address: number, length: number): Promise<Uint8Array> {
    return this.readAccess(address, length, false);
  }

  /** Writes `data` at `address`, as the process's own stores would; see read(). */
  async write(address: number, data: Uint8Array): Promise<void> {
    if (!(data instanceof Uint8Array)) throw new TypeError("data must be a Uint8Array");
    await this.access(requireNumber(address, "address"), data, true, false);
  }

  /**
   * Reads user memory from kernel mode, as a system call such as write(2)
   * does with copy_from_user. Settles with { errno: 0, data }, or with
   * { errno: EFAULT } where the access would end in a signal, including a
   * fault on a userfaultfd created with UFFD_USER_MODE_ONLY.
   */
  async copyFromUser(address: number, length: number): Promise<{ readonly errno: number; readonly data?: Uint8Array }> {
    try {
      return { errno: 0, data: await this.readAccess(address, length, true) };
    } catch (error) {
      if (error instanceof SignalError) return { errno: EFAULT };
      throw error;
    }
  }

  /** Writes user memory from kernel mode (copy_to_user, as read(2) does); see copyFromUser(). */
  async copyToUser(address: number, data: Uint8Array): Promise<{ readonly errno: number }> {
    if (!(data instanceof Uint8Array)) throw new TypeError("data must be a Uint8Array");
    try {
      await this.access(requireNumber(address, "address"), data, true, true);
      return { errno: 0 };
    } catch (error) {
      if (error instanceof SignalError) return { errno: EFAULT };
      throw error;
    }
  }

  private async readAccess(address: number, length: number, kernelMode: boolean): Promise<Uint8Array> {
    requireNumber(length, "length");
    if (!Number.isSafeInteger(length) || length < 0) throw new RangeError(`length must be a whole number >= 0, got ${length}`);
    const out = new Uint8Array(length);
    await this.access(requireNumber(address, "address"), out, false, kernelMode);
    return out;
  }

  private async access(address: number, buffer: Uint8Array, write: boolean, kernelMode: boolean): Promise<void> {
    const core = this.kernel.core;
    let done = 0;
    while (done < buffer.length) {
      this.checkAlive(write ? "write" : "read");
      const at = address + done;
      const mm = this.mm;
      mm.lock.readLock();
      const vma = Number.isSafeInteger(at) && at >= 0 ? mm.vmaLookup(at) : undefined;
      if (vma === undefined || !(write ? vma.writable : vma.readable)) {
        mm.lock.readUnlock();
        throw new SignalError(SIGSEGV, at, vma === undefined ? "no mapping" : `mapping does not allow ${write ? "writes" : "reads"}`);
      }
      const length = Math.min(buffer.length - done, vma.end - at, core.ioSize);
      const io = core.io();
      if (write) io.set(buffer.subarray(done, done + length));
      let flags = (write ? ACCESS_WRITE : 0) | (vma.writable ? ACCESS_VMA_WRITE : 0);
      if (vma.isShared) flags |= ACCESS_SHARED;
      const status = core.exports.access_vm(mm.pgd, at, length, flags);
      const moved = core.exports.pages_done() >>> 0;
      if (!write) buffer.set(core.io().subarray(0, moved), done);
      done += moved;
      if (status === 0) {
        mm.lock.readUnlock();
        continue;
      }
      const faultAt = address + done;
      let sleep: Promise<void> | null;
      switch (status) {
        case FAULT_MISSING:
          sleep = handleMissingFault(this, vma, faultAt, write, kernelMode);
          break;
        case FAULT_WP:
          sleep = handleWpFault(this, vma, faultAt, kernelMode);
          break;
        case FAULT_POISON:
          mm.lock.readUnlock();
          throw new SignalError(SIGBUS, faultAt, "poisoned page");
        case FAULT_ACCESS:
          mm.lock.readUnlock();
          throw new SignalError(SIGSEGV, faultAt, "write to a read-only page");
        case ENOMEM:
          mm.lock.readUnlock();
          throw new KernelError(ENOMEM, `out of memory: no frame to break copy-on-write at 0x${faultAt.toString(16)}`);
        default:
          mm.lock.readUnlock();
          throw new Error(`access_vm returned unexpected status ${status}`);
      }
      if (sleep !== null) await sleep;
    }
  }

  /**
   * Returns the lowest free descriptor number, as the kernel's fd allocation
   * does; 0, 1 and 2 count as taken by standard input, output and error.
   */
  lowestFreeFd(): number {
    let fd = 3;
    while (this.files.has(fd)) fd++;
    return fd;
  }

  /**
   * Creates a userfaultfd for this process's address space (userfaultfd(2)).
   * Throws KernelError with EINVAL for flags other than O_CLOEXEC,
   * O_NONBLOCK and UFFD_USER_MODE_ONLY.
   */
  userfaultfd(flags = 0): Userfaultfd {
    this.checkAlive("userfaultfd");
    requireNumber(flags, "flags");
    // Without privilege only UFFD_USER_MODE_ONLY contexts are allowed, unless
    // vm.unprivileged_userfaultfd is 1.
    const userModeOnly = Number.isSafeInteger(flags) && (flags & UFFD_USER_MODE_ONLY) !== 0;
    if (!this.privileged && !userModeOnly && !this.kernel.unprivilegedUserfaultfd) {
      throw new KernelError(EPERM, "userfaultfd: not permitted without CAP_SYS_PTRACE; pass UFFD_USER_MODE_ONLY or set unprivilegedUserfaultfd");
    }
    return this.createUserfaultfd(flags);
  }

  /**
   * Creates a userfaultfd through /dev/userfaultfd (USERFAULTFD_IOC_NEW):
   * the same object, allowed by the device file's permissions rather than
   * by privilege. Throws KernelError(EINVAL) for unknown flags.
   */
  userfaultfdFromDevice(flags = 0): Userfaultfd {
    this.checkAlive("userfaultfdFromDevice");
    requireNumber(flags, "flags");
    return this.createUserfaultfd(flags);
  }

  private createUserfaultfd(flags: number): Userfaultfd {
    if (!hasOnlyBits(asU64(flags), O_CLOEXEC | O_NONBLOCK | UFFD_USER_MODE_ONLY)) {
      throw new KernelError(EINVAL, `userfaultfd: invalid flags 0x${flags.toString(16)}`);
    }
    const ctx = new UffdContext(this.kernel, this.mm, flags);
    this.kernel.contexts.add(ctx);
    return new Userfaultfd(ctx, this);
  }

  /**
   * Forks the process (fork(2)). The page tables are copied at once
   * (dup_mmap). For each userfaultfd with UFFD_FEATURE_EVENT_FORK a FORK
   * message is then queued, and the promise settles with the child only
   * after the monitor has read it, as the real fork() blocks. Rejects with
   * KernelError(ENOMEM) when frames run out; nothing is left behind then.
   */
  fork(): Promise<Process> {
    this.checkAlive("fork");
    return forkProcess(this);
  }

  /** Marks the process exited without freeing anything (its memory goes with a Kernel.reset). */
  markExited(): void {
    this.exitedFlag = true;
    this.mm.users = 0;
    this.mm.pgd = 0;
  }

  /**
   * Ends the process: its pages and tables are freed, its blocked accesses
   * reject, its file table is closed, and its address space is dead, so
   * userfaultfd ioctls on it return ESRCH.
   */
  exit(): void {
    if (this.exitedFlag) return;
    this.exitedFlag = true;
    for (const ctx of this.kernel.contexts) ctx.wakeAll((waiter) => waiter.mm === this.mm, true);
    for (const file of [...this.files.values()]) file.close();
    const mm = this.mm;
    mm.lock.writeLock();
    mm.removeAllVmas();
    mm.users = 0;
    this.kernel.core.exports.pgd_free(mm.pgd);
    mm.pgd = 0;
    mm.lock.writeUnlock();
    this.kernel.processes.delete(this.pid);
    this.kernel.releaseUnusedFiles();
  }
}
