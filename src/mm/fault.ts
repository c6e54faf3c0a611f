// The page-fault path of a simulated access.
// Linux counterparts: mm/memory.c handle_mm_fault() and do_anonymous_page(),
// and fs/userfaultfd.c handle_userfault().

import { ENOMEM, PAGE_SIZE, SIGBUS, UFFD_USER_MODE_ONLY, UFFD_FEATURE_WP_ASYNC, UFFD_FEATURE_EXACT_ADDRESS, UFFD_FEATURE_SIGBUS, UFFD_FEATURE_THREAD_ID, UFFD_PAGEFAULT_FLAG_MINOR, UFFD_PAGEFAULT_FLAG_WP, UFFD_PAGEFAULT_FLAG_WRITE } from "../constants.js";
import { KernelError, SignalError } from "../errors.js";
import { PTE_UFFD_WP, PTE_WRITE, WP_VMA_WRITE } from "../wasm/core.js";
import type { Process } from "./process.js";
import { VM_UFFD_MINOR, VM_UFFD_MISSING, VM_UFFD_WP, type Vma } from "./vma.js";

/**
 * Resolves a fault on a page with no present entry, with the mmap_lock held
 * for read; the lock is released before this returns. Returns null when the
 * access can be retried at once, or a promise that settles when a
 * userfaultfd wake lets the faulting thread retry: true when its process
 * exited meanwhile.
 */
export function handleMissingFault(process: Process, vma: Vma, address: number, write: boolean, kernelMode: boolean): Promise<boolean> | null {
  const mm = process.mm;
  const ctx = vma.uffdCtx;
  // A write to a uffd-wp marker is a WP fault first; a read treats it as none.
  if (write && (process.kernel.core.exports.pte_read(mm.pgd, address) >>> 0) === PTE_UFFD_WP) {
    return handleWpFault(process, vma, address, kernelMode);
  }
  if (vma.file !== null) return handleFileFault(process, vma, address, write, kernelMode);
  if (ctx !== null && (vma.uffdFlags & VM_UFFD_MISSING) !== 0 && !ctx.released) {
    const sleep = handleUserfault(process, vma, address, write ? UFFD_PAGEFAULT_FLAG_WRITE : 0, kernelMode);
    mm.lock.readUnlock();
    return sleep;
  }
  const status = process.kernel.core.exports.do_anonymous_page(mm.pgd, address, write ? 1 : 0);
  mm.lock.readUnlock();
  if (status === ENOMEM) throw new KernelError(ENOMEM, `out of memory: no frame for the fault at 0x${address.toString(16)}`);
  if (status !== 0) throw new Error(`do_anonymous_page failed with status ${status}`);
  return null;
}

/**
 * Resolves a write to a uffd-wp protected entry (a present page with the
 * uffd-wp bit, or a uffd-wp marker), with the mmap_lock held for read;
 * releases it. A WP-registered VMA gets a WP fault message, unless its
 * context has WP_ASYNC, which lifts the protection itself. Elsewhere the
 * bit is stale and is simply dropped. Returns null to retry at once, or
 * the promise of the WP fault's wake.
 */
export function handleWpFault(process: Process, vma: Vma, address: number, kernelMode: boolean): Promise<boolean> | null {
  const ctx = vma.uffdCtx;
  const registered = ctx !== null && (vma.uffdFlags & VM_UFFD_WP) !== 0 && !ctx.released;
  if (registered && (ctx.features & UFFD_FEATURE_WP_ASYNC) === 0) {
    const sleep = handleUserfault(process, vma, address, UFFD_PAGEFAULT_FLAG_WRITE | UFFD_PAGEFAULT_FLAG_WP, kernelMode);
    process.mm.lock.readUnlock();
    return sleep;
  }
  const page = address - (address % PAGE_SIZE);
  process.kernel.core.exports.mwriteprotect_range(process.mm.pgd, page, 1, vma.writable ? WP_VMA_WRITE : 0);
  process.mm.lock.readUnlock();
  return null;
}

/**
 * Resolves a fault on a file mapping (shmem_fault, filemap_fault) with the
 * mmap_lock held for read; releases it. A page in the cache is mapped, or
 * raises a MINOR fault in a MINOR-registered VMA; a hole raises a MISSING
 * fault in a MISSING-registered VMA, else gets a zeroed page in the cache.
 * A private mapping maps cache pages read-only, so a write copies them.
 */
function handleFileFault(process: Process, vma: Vma, address: number, write: boolean, kernelMode: boolean): Promise<boolean> | null {
  const mm = process.mm;
  const core = process.kernel.core.exports;
  const file = vma.file!;
  const page = address - (address % PAGE_SIZE);
  const offset = vma.fileOffset(page);
  if (offset >= file.size) {
    mm.lock.readUnlock();
    throw new SignalError(SIGBUS, address, `offset ${offset} is past the end of file ${file.name}`);
  }
  const ctx = vma.uffdCtx;
  const live = ctx !== null && !ctx.released;
  const writeFlag = write ? UFFD_PAGEFAULT_FLAG_WRITE : 0;
  if (file.isHwpoisoned(offset)) {
    mm.lock.readUnlock();
    throw new SignalError(SIGBUS, address, `memory error on the page at offset ${offset} of ${file.name}`);
  }
  let frame = core.cache_lookup(file.cache, offset) >>> 0;
  if (frame !== 0 && live && (vma.uffdFlags & VM_UFFD_MINOR) !== 0) {
    const sleep = handleUserfault(process, vma, address, writeFlag | UFFD_PAGEFAULT_FLAG_MINOR, kernelMode);
    mm.lock.readUnlock();
    return sleep;
  }
  if (frame === 0 && live && (vma.uffdFlags & VM_UFFD_MISSING) !== 0) {
    const sleep = handleUserfault(process, vma, address, writeFlag, kernelMode);
    mm.lock.readUnlock();
    return sleep;
  }
  if (frame === 0) frame = core.cache_find_or_add_zero(file.cache, offset) >>> 0;
  const status = frame === 0 ? ENOMEM : core.map_frame(mm.pgd, page, frame, vma.isShared && vma.writable ? PTE_WRITE : 0);
  mm.lock.readUnlock();
  if (status === ENOMEM) throw new KernelError(ENOMEM, `out of memory: no frame for the fault at 0x${address.toString(16)}`);
  if (status !== 0) throw new Error(`map_frame failed with status ${status}`);
  return null;
}

/**
 * Queues the fault on the VMA's context (handle_userfault), or raises
 * SIGBUS when the context has UFFD_FEATURE_SIGBUS, or when the fault comes
 * from kernel mode (`kernelMode`, a system call touching user memory) and
 * the context was created with UFFD_USER_MODE_ONLY: the system call then
 * fails with EFAULT.
 */
function handleUserfault(process: Process, vma: Vma, address: number, flags: number, kernelMode: boolean): Promise<boolean> {
  const ctx = vma.uffdCtx!;
  if ((ctx.features & UFFD_FEATURE_SIGBUS) !== 0) {
    process.mm.lock.readUnlock();
    throw new SignalError(SIGBUS, address, "userfaultfd registered with UFFD_FEATURE_SIGBUS");
  }
  if (kernelMode && (ctx.flags & UFFD_USER_MODE_ONLY) !== 0) {
    process.mm.lock.readUnlock();
    throw new SignalError(SIGBUS, address, "kernel-mode fault on a userfaultfd created with UFFD_USER_MODE_ONLY");
  }
  const ptid = (ctx.features & UFFD_FEATURE_THREAD_ID) !== 0 ? process.pid : 0;
  const exact = (ctx.features & UFFD_FEATURE_EXACT_ADDRESS) !== 0;
  return ctx.queueFault(process.mm, address, flags, ptid, exact);
}
