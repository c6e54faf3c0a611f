// A plain reference model of the processes' memory, for the property tests.
// For each process it records what each page of the address space maps and
// which bytes it contains, page by page, following the rules of mmap,
// munmap, mremap, madvise(MADV_DONTNEED), fork, exit and ordinary loads and
// stores. It has no page tables, frames or VMA objects. Userfaultfd
// contexts, their queues and the ioctls are in reference-uffd.ts.
//
// One thing it takes from the kernel under test: where VMA boundaries lie
// (the `Layout`). Whether two adjacent, compatible VMAs are merged is a
// policy that decides some errno values (a COPY across two VMAs is ENOENT)
// but not memory contents. So the property checks instead that every VMA
// the kernel reports has uniform attributes that match this model page by
// page.
//
// Blocking calls follow the kernel's protocol: an access that faults on a
// registered page sleeps until a wake, then retries; munmap, mremap,
// madvise and fork sleep until the monitor reads their events. The model
// resumes such a call only in drain(), as the kernel under test resumes it
// only in a later microtask.

import {
  EFAULT, EINVAL, ENOMEM, SIGBUS, SIGSEGV, UFFD_EVENT_FORK, UFFD_EVENT_REMAP, UFFD_EVENT_REMOVE, UFFD_EVENT_UNMAP,
  UFFD_FEATURE_EVENT_FORK, UFFD_FEATURE_EVENT_REMAP, UFFD_FEATURE_EVENT_REMOVE, UFFD_FEATURE_EVENT_UNMAP,
  UFFD_PAGEFAULT_FLAG_WP, UFFD_PAGEFAULT_FLAG_WRITE, UFFDIO_REGISTER_MODE_MISSING, UFFDIO_REGISTER_MODE_WP,
} from "../../src/index.js";
import { RefCtx, type RefEvent } from "./reference-uffd.js";

export const PAGE = 4096;

/** Page contents: the 4096 bytes, or null for a page of zeros. Never changed in place. */
export type PageData = Uint8Array | null;

/** A present page of a private anonymous mapping. */
export interface PrivatePage {
  data: PageData;
  /** Mapped to the shared zero page (after a read fault or UFFDIO_ZEROPAGE). */
  zeroPage: boolean;
  /**
   * Owned by this process alone (PageAnonExclusive): false after fork until
   * this process writes the page. UFFDIO_MOVE rejects a non-exclusive
   * page with EBUSY.
   */
  exclusive: boolean;
  /** The uffd-wp bit. */
  wp: boolean;
}

/** The shmem object behind a shared anonymous mapping: its page cache, by page index. */
export class RefFile {
  readonly pages = new Map<number, PageData>();

  constructor(readonly id: number, readonly sizePages: number) {}
}

/** What one page of an address space maps. */
export interface PageMapping {
  /** The shmem object of a shared mapping, or null for private anonymous memory. */
  readonly file: RefFile | null;
  /** Page index in `file`; 0 for private memory. */
  readonly fileIndex: number;
  ctx: RefCtx | null;
  /** UFFDIO_REGISTER_MODE_* bits; 0 exactly when `ctx` is null. */
  uffdFlags: number;
}

/** How a finished call ended: its value, or the signal that ended an access. */
export type CallOutcome = { readonly value: unknown } | { readonly signal: number };

/** A system call or access that has started and not yet returned. */
interface PendingCall {
  readonly name: string;
  /** Set while an access sleeps on a fault: the context and page address it waits on. */
  fault: { ctx: RefCtx; address: number } | null;
  /** Retries the access after a wake; null for calls that wait on events. */
  readonly retry: (() => void) | null;
}

/** The kernel under test's VMA boundaries, read before each command. */
export interface Layout {
  /** The [start, end) of the VMA containing `address` in process `pid`, or undefined. */
  vmaAt(pid: number, address: number): { start: number; end: number } | undefined;
}

export class RefProcess {
  readonly maps = new Map<number, PageMapping>();
  readonly pages = new Map<number, PrivatePage>();
  exited = false;
  /** A fork child whose fork() has not returned yet: it exists but does not run. */
  embryo = false;
  call: PendingCall | null = null;
  /** Outcomes of calls that finished since the harness last looked, oldest first. */
  readonly finished: CallOutcome[] = [];

  constructor(readonly pid: number) {}

  get runnable(): boolean {
    return !this.exited && !this.embryo && this.call === null;
  }
}

/** One event a producer queues, and the context that gets it. */
export interface EventRequest {
  readonly ctx: RefCtx;
  readonly event: RefEvent;
}

/** A producer's steps: it yields each event and receives whether it was read (false: the context was released). */
export type ProducerSteps = Generator<EventRequest, unknown, boolean>;

const pageOf = (address: number) => address - (address % PAGE);

export class Reference {
  readonly processes: RefProcess[] = [];
  readonly contexts: RefCtx[] = [];
  private readonly runnable: Array<() => void> = [];
  private nextPid = 1;
  private nextFileId = 1;
  private nextCtxId = 1;
  layout: Layout;
  /** The monitor's source pages for UFFDIO_COPY, by index. */
  readonly sourcePages: readonly Uint8Array[];

  constructor(layout: Layout, sourcePages: readonly Uint8Array[]) {
    this.layout = layout;
    this.sourcePages = sourcePages;
  }

  /** Adds a process, taking the next pid as Kernel.createProcess() and fork() do. */
  createProcess(): RefProcess {
    const process = new RefProcess(this.nextPid++);
    this.processes.push(process);
    return process;
  }

  /** Adds a userfaultfd context of `mm`'s address space. */
  newContext(mm: RefProcess, features: number): RefCtx {
    const ctx = new RefCtx(this, mm, features, this.nextCtxId++);
    this.contexts.push(ctx);
    return ctx;
  }

  /** Processes that may issue a system call now, in pid order. */
  runnableProcesses(): RefProcess[] {
    return this.processes.filter((process) => process.runnable);
  }

  /** Schedules `step` for the next drain(), as a promise callback is. */
  defer(step: () => void): void {
    this.runnable.push(step);
  }

  /** Runs every resumed call and producer, including those they resume in turn. */
  drain(): void {
    for (let guard = 0; this.runnable.length > 0; guard++) {
      if (guard > 10_000) throw new Error("reference drain did not settle");
      this.runnable.shift()!();
    }
  }

  // Calls and producers.

  /** Starts a call that returns `outcome` now or later, and marks the process blocked until it does. */
  private startCall(process: RefProcess, name: string, retry: (() => void) | null): PendingCall {
    if (!process.runnable) throw new Error(`reference: pid ${process.pid} cannot start ${name} now`);
    const call: PendingCall = { name, fault: null, retry };
    process.call = call;
    return call;
  }

  private finishCall(process: RefProcess, outcome: CallOutcome): void {
    process.call = null;
    process.finished.push(outcome);
  }

  /**
   * Runs `steps` for `process` (or for no process, as mmap(MAP_FIXED)'s
   * detached UNMAP delivery): queues each event it yields and resumes it in
   * the drain after the event is read or dropped. `done` gets the result.
   */
  runProducer(steps: ProducerSteps, done: (result: unknown) => void): void {
    const advance = (read: boolean | undefined) => {
      const next = read === undefined ? steps.next() : steps.next(read);
      if (next.done) {
        done(next.value);
        return;
      }
      const { ctx, event } = next.value;
      if (ctx.released) {
        this.defer(() => advance(false));
        return;
      }
      ctx.events.push({ event, resume: (wasRead) => this.defer(() => advance(wasRead)) });
    };
    // As in the kernel under test, the steps up to the first event run in
    // the call itself. The call's promise settles in a later microtask.
    advance(undefined);
  }

  /** Starts a blocking call that runs `steps`; the process stays blocked until they return. */
  private startProducerCall(process: RefProcess, name: string, steps: ProducerSteps, after?: (result: unknown) => void): void {
    this.startCall(process, name, null);
    this.runProducer(steps, (result) => {
      after?.(result);
      this.finishCall(process, { value: result });
    });
  }

  // Memory.

  /** Removes the mappings of [start, end) and returns the contexts owed an UNMAP event, each with its gate raised. */
  private unmapRange(process: RefProcess, start: number, end: number): RefCtx[] {
    const contexts: RefCtx[] = [];
    for (let address = start; address < end; address += PAGE) {
      const mapping = process.maps.get(address);
      if (mapping === undefined) continue;
      const ctx = mapping.ctx;
      if (ctx !== null && (ctx.features & UFFD_FEATURE_EVENT_UNMAP) !== 0 && !contexts.includes(ctx)) {
        ctx.gate++;
        contexts.push(ctx);
      }
      process.maps.delete(address);
      process.pages.delete(address);
    }
    return contexts;
  }

  private *unmapEvents(contexts: readonly RefCtx[], start: number, end: number): ProducerSteps {
    for (const ctx of contexts) {
      yield { ctx, event: { event: UFFD_EVENT_UNMAP, start, end } };
      ctx.gate--;
    }
    return 0;
  }

  /**
   * Maps `pages` fresh pages at `address` (mmap with MAP_FIXED) and returns
   * the address at once.
   * NOTE: the kernel's mmap() would sleep until the monitor reads the UNMAP
   * events of the range it replaces. Like the model, this leaves them queued.
   */
  mmapFixed(process: RefProcess, address: number, pages: number, shared: boolean): number {
    const end = address + pages * PAGE;
    const contexts = this.unmapRange(process, address, end);
    if (contexts.length > 0) this.runProducer(this.unmapEvents(contexts, address, end), () => {});
    const file = shared ? new RefFile(this.nextFileId++, pages) : null;
    for (let i = 0; i < pages; i++) {
      process.maps.set(address + i * PAGE, { file, fileIndex: file === null ? 0 : i, ctx: null, uffdFlags: 0 });
    }
    return address;
  }

  /** munmap(2) of an aligned, non-empty range: settles with 0 after its UNMAP events are read. */
  munmap(process: RefProcess, address: number, pages: number): void {
    const end = address + pages * PAGE;
    const contexts = this.unmapRange(process, address, end);
    this.startProducerCall(process, "munmap", this.unmapEvents(contexts, address, end));
  }

  /** madvise(MADV_DONTNEED): one REMOVE per VMA chunk of a context with EVENT_REMOVE, sent before that chunk is zapped. */
  madviseDontneed(process: RefProcess, address: number, pages: number): void {
    this.startProducerCall(process, "madvise", this.madviseSteps(process, address, address + pages * PAGE));
  }

  private *madviseSteps(process: RefProcess, start: number, end: number): ProducerSteps {
    let result = 0;
    let cursor = start;
    while (cursor < end) {
      const vma = this.firstVmaIn(process, cursor, end);
      if (vma === undefined) {
        result = -ENOMEM;
        break;
      }
      if (vma.start > cursor) result = -ENOMEM;
      const chunkStart = Math.max(cursor, vma.start);
      let chunkEnd = Math.min(end, vma.end);
      const ctx = process.maps.get(chunkStart)!.ctx;
      if (ctx !== null && (ctx.features & UFFD_FEATURE_EVENT_REMOVE) !== 0 && !ctx.released) {
        ctx.gate++;
        yield { ctx, event: { event: UFFD_EVENT_REMOVE, start: chunkStart, end: chunkEnd } };
        ctx.gate--;
        // The registration may have changed while the call slept.
        chunkEnd = Math.min(chunkEnd, this.layout.vmaAt(process.pid, chunkStart)!.end);
      }
      // Private pages go; a shared mapping's page cache keeps its pages.
      for (let page = chunkStart; page < chunkEnd; page += PAGE) process.pages.delete(page);
      cursor = chunkEnd;
    }
    return result;
  }

  private firstVmaIn(process: RefProcess, start: number, end: number): { start: number; end: number } | undefined {
    for (let address = start; address < end; address += PAGE) {
      if (process.maps.has(address)) return this.layout.vmaAt(process.pid, address);
    }
    return undefined;
  }

  /**
   * mremap(2) that shrinks or grows in place (`target` null, no MAYMOVE) or
   * moves to `target` (MREMAP_MAYMOVE | MREMAP_FIXED).
   */
  mremap(process: RefProcess, old: number, oldPages: number, newPages: number, target: number | null): void {
    this.startProducerCall(process, "mremap", this.mremapSteps(process, old, oldPages * PAGE, newPages * PAGE, target));
  }

  private *mremapSteps(process: RefProcess, old: number, oldLen: number, newLen: number, target: number | null): ProducerSteps {
    if (target !== null && target < old + oldLen && old < target + newLen) return -EINVAL;
    const vma = this.layout.vmaAt(process.pid, old);
    if (vma === undefined || old + oldLen > vma.end) return -EFAULT;
    if (target === null) {
      if (newLen <= oldLen) {
        const contexts = this.unmapRange(process, old + newLen, old + oldLen);
        yield* this.unmapEvents(contexts, old + newLen, old + oldLen);
        return old;
      }
      if (vma.end !== old + oldLen || !this.rangeFree(process, old + oldLen, old + newLen)) return -ENOMEM;
      // Grow in place: the new pages continue the last page's mapping.
      const last = process.maps.get(old + oldLen - PAGE)!;
      for (let offset = oldLen; offset < newLen; offset += PAGE) {
        const fileIndex = last.file === null ? 0 : last.fileIndex + (offset - oldLen) / PAGE + 1;
        process.maps.set(old + offset, { file: last.file, fileIndex, ctx: last.ctx, uffdFlags: last.uffdFlags });
      }
      return old;
    }

    const targetUnmaps = this.unmapRange(process, target, target + newLen);
    // move_vma: the mapping and its present pages go to the target; a
    // grown tail continues the mapping, a shrunk tail stays to be unmapped.
    const first = process.maps.get(old)!;
    let remap: RefCtx | null = null;
    let keepRegistration = true;
    if (first.ctx !== null) {
      if ((first.ctx.features & UFFD_FEATURE_EVENT_REMAP) !== 0) {
        remap = first.ctx;
        remap.gate++;
      } else {
        keepRegistration = false;
      }
    }
    for (let offset = 0; offset < newLen; offset += PAGE) {
      const fileIndex = first.file === null ? 0 : first.fileIndex + offset / PAGE;
      const ctx = keepRegistration ? first.ctx : null;
      process.maps.set(target + offset, { file: first.file, fileIndex, ctx, uffdFlags: ctx === null ? 0 : first.uffdFlags });
      if (offset >= oldLen) continue;
      const page = process.pages.get(old + offset);
      if (page === undefined) continue;
      process.pages.delete(old + offset);
      // Without EVENT_REMAP a WP-registered range loses its uffd-wp bits with the registration.
      const dropWp = !keepRegistration && (first.uffdFlags & UFFDIO_REGISTER_MODE_WP) !== 0;
      process.pages.set(target + offset, dropWp ? { ...page, wp: false } : page);
    }
    const oldUnmaps = this.unmapRange(process, old, old + oldLen);

    yield* this.unmapEvents(targetUnmaps, target, target + newLen);
    if (remap !== null) {
      yield { ctx: remap, event: { event: UFFD_EVENT_REMAP, from: old, to: target, len: oldLen } };
      remap.gate--;
    }
    yield* this.unmapEvents(oldUnmaps, old, old + oldLen);
    return target;
  }

  private rangeFree(process: RefProcess, start: number, end: number): boolean {
    for (let address = start; address < end; address += PAGE) if (process.maps.has(address)) return false;
    return true;
  }

  /**
   * fork(2): the child gets the parent's mappings and, for private memory,
   * its present pages copy-on-write. A registration whose context has
   * EVENT_FORK moves to a child context, one per parent context. Creating
   * it raises the parent's gate and owes the parent a FORK event. Any other
   * registration is dropped in the child. The call settles with the
   * child's pid after every FORK is read.
   */
  fork(parent: RefProcess): RefProcess {
    const child = this.createProcess();
    child.embryo = true;
    const childContexts = new Map<RefCtx, RefCtx>();
    for (const address of [...parent.maps.keys()].sort((a, b) => a - b)) {
      const mapping = parent.maps.get(address)!;
      let ctx: RefCtx | null = null;
      if (mapping.ctx !== null && (mapping.ctx.features & UFFD_FEATURE_EVENT_FORK) !== 0) {
        ctx = childContexts.get(mapping.ctx) ?? null;
        if (ctx === null) {
          ctx = this.newContext(child, mapping.ctx.features);
          mapping.ctx.gate++;
          childContexts.set(mapping.ctx, ctx);
        }
      }
      child.maps.set(address, { file: mapping.file, fileIndex: mapping.fileIndex, ctx, uffdFlags: ctx === null ? 0 : mapping.uffdFlags });
      const page = parent.pages.get(address);
      if (page === undefined) continue;
      page.exclusive = false;
      const keepWp = ctx !== null && (mapping.uffdFlags & UFFDIO_REGISTER_MODE_WP) !== 0;
      child.pages.set(address, { data: page.data, zeroPage: page.zeroPage, exclusive: false, wp: page.wp && keepWp });
    }
    const steps = this.forkSteps(child, childContexts);
    this.startProducerCall(parent, "fork", steps, () => {
      child.embryo = false;
    });
    return child;
  }

  private *forkSteps(child: RefProcess, childContexts: Map<RefCtx, RefCtx>): ProducerSteps {
    for (const [parentCtx, childCtx] of childContexts) {
      const read = yield { ctx: parentCtx, event: { event: UFFD_EVENT_FORK, child: childCtx } };
      if (!read) {
        // The parent context was released first: the child keeps its pages
        // but loses the registration to the orphaned context.
        for (const mapping of child.maps.values()) {
          if (mapping.ctx !== childCtx) continue;
          mapping.ctx = null;
          mapping.uffdFlags = 0;
        }
        childCtx.dropped = true;
      }
      parentCtx.gate--;
    }
    return child.pid;
  }

  /**
   * exit(2) of a process that is not blocked: its memory goes; contexts of
   * its address space stay, dead. Events it still has queued there (from
   * mmap(MAP_FIXED), which does not wait for them) are dropped unread.
   */
  exit(process: RefProcess): void {
    if (!process.runnable) throw new Error(`reference: pid ${process.pid} cannot exit now`);
    for (const ctx of this.contexts) if (ctx.mm === process) ctx.abortEvents();
    process.exited = true;
    process.maps.clear();
    process.pages.clear();
  }

  /**
   * Starts a load (`data` null) or a store of `data` at [address, address
   * + length). It finishes with the bytes read (or undefined for a store),
   * or with SIGSEGV/SIGBUS; a fault on a registered page blocks it.
   */
  access(process: RefProcess, address: number, length: number, data: Uint8Array | null): void {
    const out = new Uint8Array(data === null ? length : 0);
    let done = 0;
    const step = () => {
      while (done < length) {
        const at = address + done;
        const page = pageOf(at);
        const chunk = Math.min(length - done, page + PAGE - at);
        const stop = this.accessPage(process, page, at - page, chunk, data?.subarray(done, done + chunk) ?? null, out, done);
        if (stop === "blocked") return;
        if (typeof stop === "number") {
          this.finishCall(process, { signal: stop });
          return;
        }
        done += chunk;
      }
      this.finishCall(process, { value: data === null ? out : undefined });
    };
    this.startCall(process, data === null ? "read" : "write", step);
    step();
  }

  /** Moves one chunk of an access within one page: "done", "blocked" on a fault, or the signal number. */
  private accessPage(
    process: RefProcess, page: number, offset: number, length: number, data: Uint8Array | null, out: Uint8Array, outAt: number,
  ): "done" | "blocked" | number {
    const mapping = process.maps.get(page);
    if (mapping === undefined) return SIGSEGV;
    const write = data !== null;
    const missingRegistered = mapping.ctx !== null && (mapping.uffdFlags & UFFDIO_REGISTER_MODE_MISSING) !== 0;
    if (mapping.file !== null) {
      const file = mapping.file;
      if (mapping.fileIndex >= file.sizePages) return SIGBUS;
      if (!file.pages.has(mapping.fileIndex)) {
        if (missingRegistered) return this.fault(process, mapping.ctx!, page, write ? UFFD_PAGEFAULT_FLAG_WRITE : 0);
        file.pages.set(mapping.fileIndex, null);
      }
      const current = file.pages.get(mapping.fileIndex)!;
      if (write) file.pages.set(mapping.fileIndex, withBytes(current, offset, data));
      else if (current !== null) out.set(current.subarray(offset, offset + length), outAt);
      return "done";
    }

    let present = process.pages.get(page);
    if (present === undefined) {
      if (missingRegistered) return this.fault(process, mapping.ctx!, page, write ? UFFD_PAGEFAULT_FLAG_WRITE : 0);
      // An ordinary fault: a load maps the zero page, a store a new page.
      present = { data: null, zeroPage: !write, exclusive: write, wp: false };
      process.pages.set(page, present);
    }
    if (!write) {
      if (present.data !== null) out.set(present.data.subarray(offset, offset + length), outAt);
      return "done";
    }
    if (present.wp) {
      if (mapping.ctx !== null && (mapping.uffdFlags & UFFDIO_REGISTER_MODE_WP) !== 0) {
        return this.fault(process, mapping.ctx, page, UFFD_PAGEFAULT_FLAG_WRITE | UFFD_PAGEFAULT_FLAG_WP);
      }
      present.wp = false;
    }
    // A store makes the page this process's own (copy-on-write break or reuse).
    process.pages.set(page, { data: withBytes(present.data, offset, data), zeroPage: false, exclusive: true, wp: false });
    return "done";
  }

  private fault(process: RefProcess, ctx: RefCtx, address: number, flags: number): "blocked" {
    process.call!.fault = { ctx, address };
    ctx.faults.push({ process, address, flags });
    return "blocked";
  }

  /** Resumes the access of `process`, woken from its fault: it retries in the next drain. */
  wakeAccess(process: RefProcess): void {
    const call = process.call;
    if (call === null || call.fault === null || call.retry === null) throw new Error(`reference: pid ${process.pid} has no fault to wake`);
    call.fault = null;
    this.defer(call.retry);
  }
}

/** Returns `base` (null: zeros) with `bytes` written at `offset`, as a new page. */
function withBytes(base: PageData, offset: number, bytes: Uint8Array): Uint8Array {
  const page = base === null ? new Uint8Array(PAGE) : base.slice();
  page.set(bytes, offset);
  return page;
}
