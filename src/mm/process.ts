// A simulated process: one address space and one thread, with the system
// calls a userfaultfd monitor's target makes.
// Linux counterparts: mm/mmap.c (mmap, munmap), mm/madvise.c, kernel/fork.c,
// kernel/exit.c, and the access itself (the CPU plus the fault path).

import {
  EACCES, EBADF, EFAULT, EINVAL, ENOMEM, EPERM, MAP_ANONYMOUS, MAP_FIXED, MAP_PRIVATE, MAP_SHARED, PAGE_SIZE, PROT_READ, PROT_WRITE,
  SIGBUS, SIGSEGV, TASK_SIZE, O_CLOEXEC, O_NONBLOCK, UFFD_USER_MODE_ONLY,
} from "../constants.js";
import { KernelError, SignalError, asU64, hasOnlyBits, requireNumber, requireObject } from "../errors.js";
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
    this.kernel.core.checkUsable();
    if (this.exitedFlag) throw new Error(`${call}: process ${this.pid} has exited`);
  }

  /**
   * Maps memory and returns its address, or a negative errno as the raw
   * system call does. MAP_SHARED | MAP_ANONYMOUS maps a new shmem object.
   * - -EINVAL: a zero length, unknown flags, not exactly one of MAP_SHARED
   *   and MAP_PRIVATE, a file with MAP_ANONYMOUS or none without it, or an
   *   unaligned MAP_FIXED address or offset.
   * - -EACCES: a writable shared mapping of a read-only file.
   * - -EBADF: a file already closed, because its descriptor is gone.
   * - -ENOMEM: a length or a MAP_FIXED range past TASK_SIZE, or no free range.
   * - -EPERM: a MAP_FIXED address below mmapMinAddr.
   * Throws TypeError for arguments of the wrong type, MAP_FIXED without an
   * address, and a file of another Kernel.
   *
   * NOTE: Linux ignores prot and flag bits it does not know, and accepts
   * PROT_EXEC; this model rejects every bit it does not model with -EINVAL.
   */
  mmap(length: number, options: MmapOptions = {}): number {
    this.checkAlive("mmap");
    requireNumber(length, "length");
    requireObject(options, "options");
    // Only an absent field takes its default; null is a wrong type.
    const prot = options.prot === undefined ? PROT_READ | PROT_WRITE : requireNumber(options.prot, "prot");
    const defaultFlags = options.file ? MAP_SHARED : MAP_PRIVATE | MAP_ANONYMOUS;
    const flags = options.flags === undefined ? defaultFlags : requireNumber(options.flags, "flags");
    const offset = asU64(options.offset === undefined ? 0 : requireNumber(options.offset, "offset"));
    const fileArg = options.file;
    if (fileArg !== undefined && !(fileArg instanceof MappedFile)) throw new TypeError("file must come from Kernel.memfdCreate() or Kernel.createFile()");
    if (fileArg !== undefined && fileArg.kernel !== this.kernel) throw new TypeError(`file ${fileArg.name} belongs to another Kernel`);
    // The file stands for a descriptor: once closed, mmap finds no file behind it.
    if (fileArg !== undefined && fileArg.closed && (flags & MAP_ANONYMOUS) === 0) return -EBADF;
    const address = options.address === undefined ? undefined : requireNumber(options.address, "address");
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
      if (address === undefined) throw new TypeError("address must be a number with MAP_FIXED, got undefined");
      start = asU64(address);
      // __get_unmapped_area checks the end against TASK_SIZE, then the
      // alignment, then mmap_min_addr (in security_mmap_addr).
      if (start > TASK_SIZE - size) return -ENOMEM;
      if (!pageAligned(start)) return -EINVAL;
      // NOTE: Linux lets a caller with CAP_SYS_RAWIO map below
      // mmap_min_addr, but this model refuses every process.
      if (start < this.kernel.mmapMinAddr) return -EPERM;
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
   * 0 (at once for a zero length), -EINVAL for an unaligned start or unknown
   * bits, -EACCES for PROT_WRITE on a shared mapping of a read-only file,
   * -ENOMEM when part of the range is unmapped or past TASK_SIZE (nothing is
   * changed then).
   */
  mprotect(address: number, length: number, prot: number): number {
    this.checkAlive("mprotect");
    const start = asU64(requireNumber(address, "address"));
    const len = asU64(requireNumber(length, "length"));
    const bits = asU64(requireNumber(prot, "prot"));
    // do_mprotect_pkey checks the alignment, then a zero length, then the protection bits.
    if (!pageAligned(start)) return -EINVAL;
    if (len === 0) return 0;
    if (!hasOnlyBits(bits, PROT_READ | PROT_WRITE)) return -EINVAL;
    if (start + len > TASK_SIZE) return -ENOMEM;
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
   * or SIGBUS, and with KernelError(ENOMEM) when a fault (a missing page, a
   * page table, a copy-on-write break) finds no free frame. The kernel would
   * run the OOM killer and retry the fault, but the model ends the access,
   * with the pages before the failing one already moved.
   */
  read(address: number, length: number): Promise<Uint8Array> {
    return this.readAccess(address, length, false);
  }

  /** Writes `data` at `address`, as the process's own stores would; see read(). */
  write(address: number, data: Uint8Array): Promise<void> {
    try {
      if (!(data instanceof Uint8Array)) throw new TypeError("data must be a Uint8Array");
      const pending = this.access(requireNumber(address, "address"), data, 0, true, false);
      return pending === null ? Promise.resolve() : pending.then(() => undefined);
    } catch (error) {
      return Promise.reject(error);
    }
  }

  /**
   * Reads user memory from kernel mode, as a system call such as write(2)
   * does with copy_from_user. Settles with { errno: 0, data }, or with
   * { errno: EFAULT } where the access would end in a signal, including a
   * fault on a userfaultfd created with UFFD_USER_MODE_ONLY, or where a
   * fault finds no free frame (the kernel's exception fixup turns a
   * kernel-mode fault that returns VM_FAULT_OOM into EFAULT).
   */
  async copyFromUser(address: number, length: number): Promise<{ readonly errno: number; readonly data?: Uint8Array }> {
    try {
      return { errno: 0, data: await this.readAccess(address, length, true) };
    } catch (error) {
      if (error instanceof SignalError || isOutOfMemory(error)) return { errno: EFAULT };
      throw error;
    }
  }

  /** Writes user memory from kernel mode (copy_to_user, as read(2) does); see copyFromUser(). */
  async copyToUser(address: number, data: Uint8Array): Promise<{ readonly errno: number }> {
    if (!(data instanceof Uint8Array)) throw new TypeError("data must be a Uint8Array");
    try {
      await this.access(requireNumber(address, "address"), data, 0, true, true);
      return { errno: 0 };
    } catch (error) {
      if (error instanceof SignalError || isOutOfMemory(error)) return { errno: EFAULT };
      throw error;
    }
  }

  private readAccess(address: number, length: number, kernelMode: boolean): Promise<Uint8Array> {
    try {
      requireNumber(length, "length");
      if (!Number.isSafeInteger(length) || length < 0) throw new RangeError(`length must be a whole number >= 0, got ${length}`);
      const out = allocateBuffer(length);
      const pending = this.access(requireNumber(address, "address"), out, 0, false, kernelMode);
      return pending === null ? Promise.resolve(out) : pending;
    } catch (error) {
      return Promise.reject(error);
    }
  }

  /**
   * Moves `buffer` to or from the process's memory from byte `done` on.
   * Runs synchronously and returns null when every byte moved without a
   * sleeping fault. At a fault that sleeps it returns a promise instead,
   * which goes on from there after the wake and settles with `buffer`.
   * Signals are thrown, synchronously up to the first sleep.
   */
  private access(address: number, buffer: Uint8Array, done: number, write: boolean, kernelMode: boolean): Promise<Uint8Array> | null {
    const core = this.kernel.core;
    // Once per call, not per chunk: nothing in the loop below can end the
    // process or fail the core without leaving it, and every resumption
    // after a sleep comes back through here.
    this.checkAlive(write ? "write" : "read");
    while (done < buffer.length) {
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
      if (write) io.set(length === buffer.length ? buffer : buffer.subarray(done, done + length));
      let flags = (write ? ACCESS_WRITE : 0) | (vma.writable ? ACCESS_VMA_WRITE : 0);
      if (vma.isShared) flags |= ACCESS_SHARED;
      const status = core.exports.access_vm(mm.pgd, at, length, flags);
      // A complete access moved every byte, which saves a call into the core.
      const moved = status === 0 ? length : core.exports.pages_done() >>> 0;
      // A load allocates nothing, so memory cannot have grown under `io`.
      if (!write && moved > 0) copyOut(io, buffer, done, moved);
      done += moved;
      if (status === 0) {
        mm.lock.readUnlock();
        continue;
      }
      const faultAt = address + done;
      let sleep: Promise<boolean> | null;
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
      if (sleep !== null) {
        const from = done;
        return sleep.then((exited) => {
          if (exited) throw new Error(`process ${this.pid} exited while its access at 0x${faultAt.toString(16)} was blocked on a fault`);
          return this.access(address, buffer, from, write, kernelMode) ?? buffer;
        });
      }
    }
    return null;
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
      const flagsText = Number.isSafeInteger(flags) && flags >= 0 ? `0x${flags.toString(16)}` : String(flags);
      throw new KernelError(EINVAL, `userfaultfd: invalid flags ${flagsText}; allowed are O_CLOEXEC, O_NONBLOCK and UFFD_USER_MODE_ONLY`);
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
    this.kernel.core.checkUsable();
    if (this.exitedFlag) return;
    this.exitedFlag = true;
    for (const ctx of this.kernel.contexts) {
      ctx.wakeAll((waiter) => waiter.mm === this.mm, true);
      // This process produced every event queued on a context of its mm.
      if (ctx.mm === this.mm) ctx.abortEvents();
    }
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

/** Returns a zeroed buffer of `length` bytes; throws RangeError naming the length when the engine cannot allocate it. */
function allocateBuffer(length: number): Uint8Array {
  try {
    return new Uint8Array(length);
  } catch (error) {
    if (!(error instanceof RangeError)) throw error;
    throw new RangeError(`length ${length} is too large for a read buffer: ${error.message}`);
  }
}

/** Returns whether `error` is the KernelError(ENOMEM) of a fault that found no free frame. */
function isOutOfMemory(error: unknown): boolean {
  return error instanceof KernelError && error.errno === ENOMEM;
}

/** Copies `length` bytes from the start of the I/O window into `buffer` at `at`; short reads skip the view a subarray would allocate. */
function copyOut(io: Uint8Array, buffer: Uint8Array, at: number, length: number): void {
  if (length <= 16) {
    for (let i = 0; i < length; i++) buffer[at + i] = io[i]!;
  } else {
    buffer.set(io.subarray(0, length), at);
  }
}
