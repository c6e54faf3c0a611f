// The reference model's userfaultfd contexts: registration, the fault and
// event queues, the mmap_changing gate, and the result each ioctl must
// return. It follows the kernel's documented rules as of Linux 6.18, where
// the gate writes -EAGAIN to the out-field and UNREGISTER of another
// context's range is EINVAL. Only private and shared anonymous memory is
// covered, and the property tests register WP on private memory only.

import {
  EAGAIN, EBUSY, EEXIST, EFAULT, EINVAL, ENOENT, ENOMEM, ESRCH, UFFD_EVENT_PAGEFAULT,
  UFFDIO_COPY_MODE_DONTWAKE, UFFDIO_COPY_MODE_WP, UFFDIO_REGISTER_MODE_MISSING, UFFDIO_REGISTER_MODE_WP,
  UFFDIO_WRITEPROTECT_MODE_DONTWAKE, UFFDIO_WRITEPROTECT_MODE_WP, UFFD_EVENT_FORK, UFFD_EVENT_REMAP,
  UFFD_EVENT_REMOVE, UFFD_EVENT_UNMAP,
} from "../../src/index.js";
import { PAGE, type PageMapping, type Reference, type RefProcess } from "./reference.js";

/** A non-cooperative event as the monitor reads it; FORK names the child's context. */
export type RefEvent =
  | { readonly event: typeof UFFD_EVENT_FORK; readonly child: RefCtx }
  | { readonly event: typeof UFFD_EVENT_REMAP; readonly from: number; readonly to: number; readonly len: number }
  | { readonly event: typeof UFFD_EVENT_REMOVE | typeof UFFD_EVENT_UNMAP; readonly start: number; readonly end: number };

interface QueuedEvent {
  readonly event: RefEvent;
  /** Lets the producer go on in the next drain: `read` false when the context was released. */
  readonly resume: (read: boolean) => void;
}

/** A thread asleep on a fault of this context. */
interface RefFault {
  readonly process: RefProcess;
  readonly address: number;
  readonly flags: number;
}

/** What read() must return: a fault, an event, or EAGAIN when nothing is queued. */
export type ExpectedMsg =
  | { readonly errno: 0; readonly event: typeof UFFD_EVENT_PAGEFAULT; readonly flags: number; readonly address: number }
  | ({ readonly errno: 0 } & RefEvent)
  | { readonly errno: typeof EAGAIN };

/** Range ioctls UFFDIO_REGISTER reports on Linux 6.18: WAKE, COPY, ZEROPAGE, MOVE and POISON, plus WRITEPROTECT with WP mode. */
export const REGISTER_IOCTLS_MISSING = 0x13cn;
export const REGISTER_IOCTLS_WP = 0x17cn;

/** Page-aligned, non-empty range: what every ioctl checks after the gate. */
function rangeValid(start: number, len: number): boolean {
  return start % PAGE === 0 && len % PAGE === 0 && len > 0;
}

export class RefCtx {
  /** mmap_changing: events prepared whose producer has not resumed yet. */
  gate = 0;
  /** Set on the last close; never cleared. */
  released = false;
  /** Whether the monitor has a handle; it gets one for a fork child's context when it reads FORK. */
  handleOpen = false;
  /** A fork child's context whose FORK event was dropped unread: it is gone. */
  dropped = false;
  /** Faults not read yet, oldest first. */
  readonly faults: RefFault[] = [];
  /** Faults read whose threads still sleep. */
  readonly readFaults: RefFault[] = [];
  /** Events not read yet, oldest first. */
  readonly events: QueuedEvent[] = [];

  /** `id` numbers the contexts of one run in creation order, for messages. */
  constructor(private readonly ref: Reference, readonly mm: RefProcess, readonly features: number, readonly id: number) {}

  get alive(): boolean {
    return !this.mm.exited;
  }

  /** Returns the mapped pages of [start, start + len) in this context's address space, in address order. */
  private mappedPages(start: number, len: number): Array<[number, PageMapping]> {
    const pages: Array<[number, PageMapping]> = [];
    for (let address = start; address < start + len; address += PAGE) {
      const mapping = this.mm.maps.get(address);
      if (mapping !== undefined) pages.push([address, mapping]);
    }
    return pages;
  }

  /** Wakes the sleeping faults whose page lies in [start, start + len). */
  wakeRange(start: number, len: number): void {
    const inRange = (fault: RefFault) => fault.address >= start && fault.address < start + len;
    for (const queue of [this.faults, this.readFaults]) {
      for (let i = 0; i < queue.length; ) {
        const fault = queue[i]!;
        if (!inRange(fault)) {
          i++;
          continue;
        }
        queue.splice(i, 1);
        this.ref.wakeAccess(fault.process);
      }
    }
  }

  register(start: number, len: number, mode: number): { errno: number; ioctls: bigint } {
    if (!this.alive) return { errno: ENOMEM, ioctls: 0n };
    const pages = this.mappedPages(start, len);
    if (pages.length === 0) return { errno: EINVAL, ioctls: 0n };
    if (pages.some(([, mapping]) => mapping.ctx !== null && mapping.ctx !== this)) return { errno: EBUSY, ioctls: 0n };
    for (const [, mapping] of pages) {
      // A range that already has every requested mode keeps its extra modes.
      if (mapping.ctx === this && (mapping.uffdFlags & mode) === mode) continue;
      mapping.ctx = this;
      mapping.uffdFlags = mode;
    }
    return { errno: 0, ioctls: (mode & UFFDIO_REGISTER_MODE_WP) !== 0 ? REGISTER_IOCTLS_WP : REGISTER_IOCTLS_MISSING };
  }

  unregister(start: number, len: number): { errno: number } {
    if (!this.alive) return { errno: ENOMEM };
    const pages = this.mappedPages(start, len);
    if (pages.length === 0) return { errno: EINVAL };
    if (pages.some(([, mapping]) => mapping.ctx !== null && mapping.ctx !== this)) return { errno: EINVAL };
    for (const [address, mapping] of pages) {
      if (mapping.ctx === null) continue;
      // Only MISSING registration wakes its faults; WP faults sleep on.
      if ((mapping.uffdFlags & UFFDIO_REGISTER_MODE_MISSING) !== 0) this.wakeRange(address, PAGE);
      if ((mapping.uffdFlags & UFFDIO_REGISTER_MODE_WP) !== 0) this.clearWp(address);
      mapping.ctx = null;
      mapping.uffdFlags = 0;
    }
    return { errno: 0 };
  }

  private clearWp(address: number): void {
    const page = this.mm.pages.get(address);
    if (page !== undefined) page.wp = false;
  }

  /**
   * Checks the destination of a fill: the gate first, then a live address
   * space, then a range inside one registered VMA (of any context).
   * Returns the errno and out-field to report, or null to go on.
   */
  private fillEntry(dst: number, len: number): { errno: number; out: number } | null {
    if (this.gate > 0) return { errno: EAGAIN, out: -EAGAIN };
    // Invalid arguments leave the out-field alone: it keeps its preset, 0 here.
    if (!rangeValid(dst, len)) return { errno: EINVAL, out: 0 };
    if (!this.alive) return { errno: ESRCH, out: 0 };
    const vma = this.ref.layout.vmaAt(this.mm.pid, dst);
    if (vma === undefined || dst + len > vma.end || this.mm.maps.get(dst)!.ctx === null) return { errno: ENOENT, out: -ENOENT };
    return null;
  }

  /** Turns bytes done (or a negative errno) into the ioctl's errno, and wakes the done prefix. */
  private finish(dst: number, len: number, result: number, dontWake: boolean): { errno: number; out: number } {
    if (result < 0) return { errno: -result, out: result };
    if (!dontWake) this.wakeRange(dst, result);
    return { errno: result === len ? 0 : EAGAIN, out: result };
  }

  /** UFFDIO_COPY of `len` bytes from the monitor's source page `srcIndex` on. */
  copy(dst: number, len: number, srcIndex: number, mode: number): { errno: number; copy: number } {
    const entry = this.fillEntry(dst, len);
    if (entry !== null) return { errno: entry.errno, copy: entry.out };
    const mapping = this.mm.maps.get(dst)!;
    if ((mode & UFFDIO_COPY_MODE_WP) !== 0 && (mapping.uffdFlags & UFFDIO_REGISTER_MODE_WP) === 0) return { errno: EINVAL, copy: -EINVAL };
    let done = 0;
    let error = 0;
    for (; done < len; done += PAGE) {
      const source = this.ref.sourcePages[srcIndex + done / PAGE]!;
      error = this.fillPage(dst + done, source, false, (mode & UFFDIO_COPY_MODE_WP) !== 0);
      if (error !== 0) break;
    }
    const result = this.finish(dst, len, done > 0 ? done : -error, (mode & UFFDIO_COPY_MODE_DONTWAKE) !== 0);
    return { errno: result.errno, copy: result.out };
  }

  /** UFFDIO_ZEROPAGE: the zero page on private memory, a zeroed page-cache page on shared memory. */
  zeropage(start: number, len: number, dontWake: boolean): { errno: number; zeropage: number } {
    const entry = this.fillEntry(start, len);
    if (entry !== null) return { errno: entry.errno, zeropage: entry.out };
    let done = 0;
    let error = 0;
    for (; done < len; done += PAGE) {
      error = this.fillPage(start + done, null, true, false);
      if (error !== 0) break;
    }
    const result = this.finish(start, len, done > 0 ? done : -error, dontWake);
    return { errno: result.errno, zeropage: result.out };
  }

  /** Fills one page: returns 0, EEXIST for a populated page, EFAULT past the end of a shared mapping's object. */
  private fillPage(address: number, data: Uint8Array | null, zeroPage: boolean, wp: boolean): number {
    const mapping = this.mm.maps.get(address)!;
    if (mapping.file !== null) {
      if (mapping.fileIndex >= mapping.file.sizePages) return EFAULT;
      if (mapping.file.pages.has(mapping.fileIndex)) return EEXIST;
      mapping.file.pages.set(mapping.fileIndex, data);
      return 0;
    }
    if (this.mm.pages.has(address)) return EEXIST;
    this.mm.pages.set(address, { data, zeroPage, exclusive: !zeroPage, wp });
    return 0;
  }

  /**
   * UFFDIO_MOVE of private pages within this context's address space, from
   * a caller in that address space; `src` and `dst` ranges do not overlap.
   */
  move(dst: number, src: number, len: number, allowSrcHoles: boolean): { errno: number; move: number } {
    if (this.gate > 0) return { errno: EAGAIN, move: -EAGAIN };
    if (!this.alive) return { errno: ESRCH, move: 0 };
    const dstVma = this.ref.layout.vmaAt(this.mm.pid, dst);
    const srcVma = this.ref.layout.vmaAt(this.mm.pid, src);
    if (dstVma === undefined || srcVma === undefined) return { errno: ENOENT, move: -ENOENT };
    const dstMapping = this.mm.maps.get(dst)!;
    const srcMapping = this.mm.maps.get(src)!;
    const invalid =
      dstMapping.file !== null || srcMapping.file !== null || dst + len > dstVma.end || src + len > srcVma.end ||
      dstMapping.ctx !== this;
    if (invalid) return { errno: EINVAL, move: -EINVAL };

    let done = 0;
    let error = 0;
    for (; done < len; done += PAGE) {
      if (this.mm.pages.has(dst + done)) {
        error = EEXIST;
        break;
      }
      const page = this.mm.pages.get(src + done);
      if (page === undefined) {
        if (allowSrcHoles) continue;
        error = ENOENT;
        break;
      }
      if (!page.zeroPage && !page.exclusive) {
        error = EBUSY;
        break;
      }
      // The page itself moves; it arrives writable and without uffd-wp.
      this.mm.pages.delete(src + done);
      this.mm.pages.set(dst + done, { data: page.data, zeroPage: page.zeroPage, exclusive: !page.zeroPage, wp: false });
    }

    const result = this.finish(dst, len, done > 0 ? done : -error, false);
    return { errno: result.errno, move: result.out };
  }

  /** UFFDIO_WRITEPROTECT: every mapped page of the range must be WP-registered (by any context of the address space). */
  writeprotect(start: number, len: number, mode: number): { errno: number } {
    if (this.gate > 0) return { errno: EAGAIN };
    if (!rangeValid(start, len)) return { errno: EINVAL };
    const protect = (mode & UFFDIO_WRITEPROTECT_MODE_WP) !== 0;
    if (protect && (mode & UFFDIO_WRITEPROTECT_MODE_DONTWAKE) !== 0) return { errno: EINVAL };
    if (!this.alive) return { errno: ESRCH };
    const pages = this.mappedPages(start, len);
    if (pages.length === 0) return { errno: ENOENT };
    for (const [address, mapping] of pages) {
      // Pages before the first unregistered one keep their change.
      if ((mapping.uffdFlags & UFFDIO_REGISTER_MODE_WP) === 0) return { errno: ENOENT };
      if (mapping.file !== null) throw new Error("reference: WP on shared memory is not modelled");
      const page = this.mm.pages.get(address);
      if (page !== undefined) page.wp = protect;
    }
    if (mode === 0) this.wakeRange(start, len);
    return { errno: 0 };
  }

  /** read(): the oldest unread fault, else the oldest event; reading an event lets its producer go on. */
  read(): ExpectedMsg {
    const fault = this.faults.shift();
    if (fault !== undefined) {
      this.readFaults.push(fault);
      return { errno: 0, event: UFFD_EVENT_PAGEFAULT, flags: fault.flags, address: fault.address };
    }
    const queued = this.events.shift();
    if (queued === undefined) return { errno: EAGAIN };
    if (queued.event.event === UFFD_EVENT_FORK) queued.event.child.handleOpen = true;
    queued.resume(true);
    return { errno: 0, ...queued.event };
  }

  /**
   * Closes the last handle: the ranges are unregistered (uffd-wp bits
   * cleared), every sleeping fault retries as an ordinary fault, and
   * producers of unread events go on without a read.
   */
  close(): void {
    this.handleOpen = false;
    if (this.alive) {
      for (const [address, mapping] of this.mm.maps) {
        if (mapping.ctx !== this) continue;
        if ((mapping.uffdFlags & UFFDIO_REGISTER_MODE_WP) !== 0) this.clearWp(address);
        mapping.ctx = null;
        mapping.uffdFlags = 0;
      }
    }
    this.released = true;
    for (const fault of this.faults.splice(0)) this.ref.wakeAccess(fault.process);
    for (const fault of this.readFaults.splice(0)) this.ref.wakeAccess(fault.process);
    this.abortEvents();
  }

  /** Ends the wait of every queued event's producer without a read. */
  abortEvents(): void {
    for (const queued of this.events.splice(0)) queued.resume(false);
  }

  toString(): string {
    return `uffd${this.id}(pid ${this.mm.pid})`;
  }
}
