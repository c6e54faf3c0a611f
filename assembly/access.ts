// A process's own loads and stores, and the anonymous page fault.
// Linux counterparts: the hardware access plus mm/memory.c do_wp_page()
// (copy-on-write break) and do_anonymous_page().
//
// The host splits an access by VMA and checks the VMA's permissions; these
// loops move bytes between process pages and the I/O window, and stop at
// the first page the host must handle (a missing page, a uffd-wp write, a
// poison marker, a write to a read-only mapping).

import { OK, ENOMEM, FAULT_MISSING, FAULT_WP, FAULT_ACCESS, FAULT_POISON } from "./status";
import { PAGE_SIZE, frameAlloc, frameAllocZeroed, frameGet, framePut, frameRefcount, zeroFrame } from "./frames";
import { PTE_PRESENT, PTE_WRITE, PTE_DIRTY, PTE_EXCLUSIVE, PTE_ZERO, PTE_UFFD_WP, PTE_POISON, pteSlot, pteFrame } from "./pgtable";
import { setPagesDone } from "./mfill";

/** access flag: the access is a store. */
export const ACCESS_WRITE: u32 = 1;
/** access flag: the VMA allows writes, so a read-only PTE is copy-on-write. */
export const ACCESS_VMA_WRITE: u32 = 2;
/** access flag: the VMA is a shared mapping: a write never copies, it only sets the write bit. */
export const ACCESS_SHARED: u32 = 4;

/**
 * Makes the present entry at `slot` writable for a store, breaking
 * copy-on-write sharing: in a private mapping a shared or zero frame is
 * replaced by a private copy; in a shared mapping the frame stays. Returns
 * the entry now in place, or 0 when no frame is left.
 */
function breakCow(slot: usize, pte: u64, shared: bool): u64 {
  const old = pteFrame(pte);
  let entry: u64;
  if (shared) {
    entry = pte | PTE_WRITE;
  } else if (old != zeroFrame && frameRefcount(old) == 1) {
    // Sole user: reuse the frame, as do_wp_page's reuse path does, which
    // makes the page exclusive again.
    entry = pte | PTE_WRITE | PTE_EXCLUSIVE;
  } else {
    const frame = old == zeroFrame ? frameAllocZeroed() : frameAlloc();
    if (frame == 0) return 0;
    if (old != zeroFrame) memory.copy(frame, old, PAGE_SIZE);
    framePut(old);
    entry = <u64>frame | PTE_PRESENT | PTE_WRITE | PTE_EXCLUSIVE;
  }
  store<u64>(slot, entry);
  return entry;
}

/**
 * Copies `len` bytes between process memory at `va` and the I/O window at
 * `io`: out of the process for a load, into it with ACCESS_WRITE. Leaves the
 * bytes done in `pagesDone` and returns OK or the FAULT_* status (or
 * ENOMEM) of the first page it could not complete.
 */
export function accessVm(root: usize, va: u64, len: u32, io: usize, flags: u32): i32 {
  const write = (flags & ACCESS_WRITE) != 0;
  let done: u32 = 0;
  setPagesDone(0);
  while (done < len) {
    const at = va + done;
    const offset = <u32>(at & (PAGE_SIZE - 1));
    let chunk = PAGE_SIZE - offset;
    if (chunk > len - done) chunk = len - done;

    const slot = pteSlot(root, at, false);
    let pte: u64 = slot == 0 ? 0 : load<u64>(slot);
    if ((pte & PTE_PRESENT) == 0) {
      return (pte & PTE_POISON) != 0 ? FAULT_POISON : FAULT_MISSING;
    }
    if (write) {
      if ((pte & PTE_UFFD_WP) != 0) return FAULT_WP;
      if ((pte & PTE_WRITE) == 0) {
        if ((flags & ACCESS_VMA_WRITE) == 0) return FAULT_ACCESS;
        pte = breakCow(slot, pte, (flags & ACCESS_SHARED) != 0);
        if (pte == 0) return ENOMEM;
      }
      memory.copy(pteFrame(pte) + offset, io + done, chunk);
      if ((pte & PTE_DIRTY) == 0) store<u64>(slot, pte | PTE_DIRTY);
    } else {
      memory.copy(io + done, pteFrame(pte) + offset, chunk);
    }
    done += chunk;
    setPagesDone(done);
  }
  return OK;
}

/**
 * Resolves a fault on an empty anonymous entry at `va`: a load maps the
 * shared zero frame read-only, a store maps a fresh zeroed frame writable.
 * An entry that is already populated is left alone (the fault raced with a
 * fill). A uffd-wp marker is replaced, keeping its bit on a read. Returns
 * OK or ENOMEM.
 */
export function doAnonymousPage(root: usize, va: u64, write: bool): i32 {
  const slot = pteSlot(root, va, true);
  if (slot == 0) return ENOMEM;
  const pte = load<u64>(slot);
  if (pte != 0 && pte != PTE_UFFD_WP) return OK;
  if (write) {
    const frame = frameAllocZeroed();
    if (frame == 0) return ENOMEM;
    store<u64>(slot, <u64>frame | PTE_PRESENT | PTE_WRITE | PTE_DIRTY | PTE_EXCLUSIVE);
  } else {
    // A read of a uffd-wp marker maps the zero page still protected, so a
    // later write raises the WP fault the marker stood for.
    frameGet(zeroFrame);
    store<u64>(slot, <u64>zeroFrame | PTE_PRESENT | PTE_ZERO | (pte & PTE_UFFD_WP));
  }
  return OK;
}
