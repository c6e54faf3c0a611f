// fork(): duplication of the address space and the FORK event.
// Linux counterparts: dup_mmap() (kernel/fork.c, mm/mmap.c since 6.15),
// copy_page_range() (mm/memory.c), and dup_userfaultfd(),
// dup_userfaultfd_complete() and dup_userfaultfd_fail() (fs/userfaultfd.c).
//
// The race the mmap_changing gate closes (Linux 4.18):
//
//   target (fork)                          monitor
//   -------------------------------------  --------------------------------
//   take parent and child mmap_lock
//   dup_userfaultfd: raise mmap_changing
//   copy_page_range: page X still empty
//   drop both locks
//                                          UFFDIO_COPY(X)
//                                            gate on:  EAGAIN, X untouched
//                                            gate off: X filled in the
//                                            parent only; the child's X is
//                                            missing though the monitor
//                                            copied it before seeing FORK
//   queue FORK, sleep until read
//                                          read() -> FORK(child uffd)
//   resume, lower mmap_changing
//                                          retry COPY(X) in the parent, and
//                                          serve the child on its own uffd

import { ENOMEM, PAGE_SIZE, UFFD_EVENT_FORK, UFFD_FEATURE_EVENT_FORK } from "../constants.js";
import { KernelError } from "../errors.js";
import { CPR_COW, CPR_KEEP_UFFD_WP } from "../wasm/core.js";
import { UffdContext } from "../uffd/context.js";
import type { Process } from "./process.js";
import { VM_UFFD_WP, type Vma } from "./vma.js";

/**
 * Moves the child VMA's registration to the child context of its parent
 * context, creating that context and raising the parent's mmap_changing on
 * first use; a context without EVENT_FORK leaves the child VMA unregistered.
 */
function dupUserfaultfd(child: Process, vma: Vma, contexts: Map<UffdContext, UffdContext>): void {
  const parentCtx = vma.uffdCtx;
  if (parentCtx === null) return;
  if ((parentCtx.features & UFFD_FEATURE_EVENT_FORK) === 0) {
    vma.resetUffd();
    return;
  }
  let childCtx = contexts.get(parentCtx);
  if (childCtx === undefined) {
    childCtx = new UffdContext(parentCtx.kernel, child.mm, parentCtx.flags);
    childCtx.features = parentCtx.features;
    childCtx.apiDone = true;
    parentCtx.kernel.contexts.add(childCtx);
    parentCtx.raiseMmapChanging();
    contexts.set(parentCtx, childCtx);
  }
  vma.uffdCtx = childCtx;
}

/**
 * Copies the address space of `parent` into a new process (dup_mmap) and
 * delivers one FORK event per parent context with EVENT_FORK, each waiting
 * until read. Settles with the child once every event has been read.
 */
export async function forkProcess(parent: Process): Promise<Process> {
  const kernel = parent.kernel;
  const core = kernel.core.exports;
  const child = kernel.spawnProcess(parent.privileged);
  if (child === null) throw new KernelError(ENOMEM, "fork: no frame for the child's page table");
  // copy_files runs before copy_mm: the half-built child already has the
  // parent's open files while fork waits for the monitor.
  for (const [fd, file] of parent.files) file.dupInto(child, fd);

  const contexts = new Map<UffdContext, UffdContext>();
  let status = 0;
  parent.mm.lock.writeLock();
  child.mm.lock.writeLock();
  for (const parentVma of parent.mm.vmaList()) {
    const vma = parentVma.clone();
    dupUserfaultfd(child, vma, contexts);
    child.mm.insertVma(vma);
    // vma_needs_copy: a shared mapping without uffd-wp state is not copied;
    // the child faults its pages in from the page cache.
    const keepWp = (vma.uffdFlags & VM_UFFD_WP) !== 0;
    if (vma.isShared && !keepWp) continue;
    const flags = (vma.isShared ? 0 : CPR_COW) | (keepWp ? CPR_KEEP_UFFD_WP : 0);
    status = core.copy_page_range(child.mm.pgd, parent.mm.pgd, vma.start, vma.length / PAGE_SIZE, flags);
    kernel.stats.ptesCopied += core.pages_done() >>> 0;
    if (status !== 0) break;
  }
  child.mm.lock.writeUnlock();
  parent.mm.lock.writeUnlock();

  if (status !== 0) {
    child.exit();
    if (kernel.profile.forkEventOnFailure) {
      // Before Linux 6.12 a failed fork still sent its FORK events, each
      // naming a context whose address space is already gone.
      for (const [parentCtx, childCtx] of contexts) {
        const read = await parentCtx.eventWaitCompletion(UFFD_EVENT_FORK, childCtx);
        // An event unlinked unread drops its child context with it.
        if (!read) kernel.contexts.delete(childCtx);
        parentCtx.lowerMmapChanging();
      }
    } else {
      // dup_userfaultfd_fail (Linux 6.12 and later): no FORK event for a
      // failed fork; lower each parent's mmap_changing and drop the child.
      for (const [parentCtx, childCtx] of contexts) {
        parentCtx.lowerMmapChanging();
        kernel.contexts.delete(childCtx);
      }
    }
    throw new KernelError(ENOMEM, `fork: out of memory while copying page tables (status ${status})`);
  }
  kernel.stats.forks++;

  // dup_userfaultfd_complete: one FORK event per context, in order.
  for (const [parentCtx, childCtx] of contexts) {
    const read = await parentCtx.eventWaitCompletion(UFFD_EVENT_FORK, childCtx);
    if (!read) {
      // The event was unlinked unread, because the parent context was
      // released or the parent is exiting: the child's VMAs lose their
      // registration to the orphaned context.
      child.mm.lock.writeLock();
      for (const vma of child.mm.vmaList()) if (vma.uffdCtx === childCtx) vma.resetUffd();
      child.mm.lock.writeUnlock();
      kernel.contexts.delete(childCtx);
    }
    parentCtx.lowerMmapChanging();
  }
  if (parent.exited) {
    // Killed while waiting: copy_process fails and frees the child.
    child.exit();
    throw new Error(`fork: process ${parent.pid} exited while its FORK event was unread, so the child is gone`);
  }
  return child;
}
