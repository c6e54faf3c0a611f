// The userfaultfd context: features, the fault and event queues, and the
// mmap_changing gate. Linux counterpart: struct userfaultfd_ctx and the
// queueing half of fs/userfaultfd.c (handle_userfault,
// userfaultfd_event_wait_completion, userfaultfd_ctx_read, wake_userfault).
//
// Fields are guarded as in the kernel by the queue locks, which this
// single-threaded model does not need to spell out: every method runs to
// completion before another task runs.

import type { Kernel } from "../mm/kernel.js";
import type { Mm } from "../mm/mm.js";
import { PAGE_SIZE } from "../constants.js";
import { pagefaultMsg, type PagefaultMsg, type UffdMsg } from "./messages.js";

/** A thread asleep in handle_userfault, waiting to be woken. */
export interface FaultWaiter {
  /** Page-aligned fault address: what range wakes compare with. */
  readonly address: number;
  readonly msg: PagefaultMsg;
  readonly mm: Mm;
  /** Resumes the faulting access; `exited` when its process died meanwhile. Call it through wakeWaiter. */
  readonly wake: (exited: boolean) => void;
  /** Set when the waiter is woken; a woken waiter must no longer be queued. */
  woken: boolean;
}

/** Marks `waiter` woken and resumes its access; the caller has already unqueued it. */
function wakeWaiter(waiter: FaultWaiter, exited: boolean): void {
  waiter.woken = true;
  waiter.wake(exited);
}

/** A non-cooperative event whose producer sleeps until the event is read. */
export interface EventWaiter {
  readonly event: number;
  /** For UFFD_EVENT_FORK: the context created for the child. */
  readonly child: UffdContext | null;
  /** The message of any other event; FORK's is built when read. */
  readonly msg: UffdMsg | null;
  /** Ends the producer's wait: `read` is false when the context was released. */
  readonly complete: (read: boolean) => void;
}

/** The kernel's representation of mmap_changing, by version. */
export type GateMode = "none" | "bool" | "counter";

export class UffdContext {
  readonly kernel: Kernel;
  /** The address space whose faults this context receives. */
  readonly mm: Mm;
  /** userfaultfd() flags; inherited by a context created at fork. */
  readonly flags: number;
  /** Features enabled by UFFDIO_API; meaningful once `apiDone`. */
  features = 0;
  apiDone = false;
  /** Set on the last close; never cleared. */
  released = false;
  /** Pending non-cooperative changes; COPY and ZEROPAGE fail with EAGAIN while above 0. */
  mmapChanging = 0;
  /** Open file references (Userfaultfd handles). */
  files = 0;
  /** Faults not yet returned by read(), oldest first. */
  readonly faultPending: FaultWaiter[] = [];
  /** Faults returned by read() whose threads still sleep. */
  readonly faultRead: FaultWaiter[] = [];
  /** Events not yet read, oldest first. */
  readonly eventQueue: EventWaiter[] = [];
  /** Callbacks of waiting reads, run once when a message arrives or on release. */
  private readers: Array<() => void> = [];

  constructor(kernel: Kernel, mm: Mm, flags: number) {
    this.kernel = kernel;
    this.mm = mm;
    this.flags = flags;
  }

  get gateMode(): GateMode {
    return this.kernel.gateMode;
  }

  /** Returns whether fills must fail with EAGAIN now; never with gate mode "none", which keeps the count at 0. */
  get gateClosed(): boolean {
    return this.mmapChanging > 0;
  }

  /** Raises mmap_changing at event preparation (dup_userfaultfd and the like). */
  raiseMmapChanging(): void {
    if (this.gateMode === "counter") this.mmapChanging++;
    else if (this.gateMode === "bool") this.mmapChanging = 1;
  }

  /** Lowers mmap_changing when an event's producer resumes. */
  lowerMmapChanging(): void {
    if (this.gateMode === "counter") {
      if (this.mmapChanging === 0) throw new Error("mmap_changing would go below zero");
      this.mmapChanging--;
    } else if (this.gateMode === "bool") {
      // 4.18 to 5.14 kept a bool: the first completion opens the gate even
      // while another event of the same context is still unread.
      this.mmapChanging = 0;
    }
  }

  get hasMessages(): boolean {
    return this.faultPending.length > 0 || this.eventQueue.length > 0;
  }

  /** Registers a one-shot callback for the next message or release. */
  onReadable(callback: () => void): void {
    this.readers.push(callback);
  }

  private notifyReaders(): void {
    if (this.readers.length === 0) return;
    const readers = this.readers;
    this.readers = [];
    for (const reader of readers) reader();
  }

  /**
   * Queues a fault and returns a promise that settles when a wake covers
   * its address (handle_userfault). `exited` is true when the faulting
   * process died while asleep.
   */
  queueFault(mm: Mm, address: number, flags: number, ptid: number, exact: boolean): Promise<boolean> {
    const pageAddress = address - (address % PAGE_SIZE);
    // The label only matters to a scheduler. Building it cost about 5% of a
    // fault round trip in a CPU profile on Node 20.
    const label = this.kernel.scheduler === null ? "" : `a wake of the fault at 0x${pageAddress.toString(16)}`;
    return this.kernel.waitFor<boolean>(label, (resolve) => {
      const waiter: FaultWaiter = {
        address: pageAddress,
        msg: pagefaultMsg(flags, exact ? address : pageAddress, ptid),
        mm,
        wake: resolve,
        woken: false,
      };
      this.faultPending.push(waiter);
      this.kernel.stats.faults++;
      this.notifyReaders();
    });
  }

  /** Takes the oldest unread fault and moves it to the read set. */
  takeFault(): FaultWaiter | undefined {
    const waiter = this.faultPending.shift();
    if (waiter !== undefined) this.faultRead.push(waiter);
    return waiter;
  }

  /** Wakes every sleeping fault whose address is in [start, start + length). */
  wakeRange(start: number, length: number): void {
    const end = start + length;
    if (this.faultPending.length !== 0) wakeIn(this.faultPending, start, end);
    if (this.faultRead.length !== 0) wakeIn(this.faultRead, start, end);
  }

  /** Wakes every sleeping fault: at release, or with `exited` for a dead mm's threads. */
  wakeAll(filter?: (waiter: FaultWaiter) => boolean, exited = false): void {
    const pending = this.faultPending.splice(0);
    for (const waiter of pending) {
      if (filter && !filter(waiter)) this.faultPending.push(waiter);
      else wakeWaiter(waiter, exited);
    }
    const read = this.faultRead.splice(0);
    for (const waiter of read) {
      if (filter && !filter(waiter)) this.faultRead.push(waiter);
      else wakeWaiter(waiter, exited);
    }
  }

  /**
   * Queues an event and sleeps until a read() completes it, or until the
   * context is released (userfaultfd_event_wait_completion). Returns true
   * when the event was read. The caller lowers mmap_changing afterwards.
   */
  eventWaitCompletion(event: number, child: UffdContext | null, msg: UffdMsg | null = null): Promise<boolean> {
    // The producer is always the process of this.mm: once it is exiting it
    // queues nothing and returns at once, as if unread.
    if (this.released || !this.mm.alive) return Promise.resolve(false);
    return this.kernel.waitFor<boolean>(`a read of event 0x${event.toString(16)}`, (resolve) => {
      this.eventQueue.push({ event, child, msg, complete: resolve });
      this.notifyReaders();
    });
  }

  /** Marks the context released and wakes every waiter (userfaultfd_release). */
  release(): void {
    this.released = true;
    this.wakeEverySleeper();
  }

  /**
   * Unlinks every queued event and ends its producer's wait as unread: at
   * release, or when the producer, the process of this.mm, exits (a fatal
   * signal ends the wait in userfaultfd_event_wait_completion).
   */
  abortEvents(): void {
    const events = this.eventQueue.splice(0);
    for (const event of events) event.complete(false);
  }

  /** Wakes every sleeper of this context (faults, event producers, waiting reads): at release, or after the core failed. */
  wakeEverySleeper(): void {
    this.wakeAll();
    this.abortEvents();
    this.notifyReaders();
  }
}

/** Takes the waiters of `queue` whose page is in [start, end) out of it, in order, and wakes them. */
function wakeIn(queue: FaultWaiter[], start: number, end: number): void {
  for (let i = 0; i < queue.length; ) {
    const waiter = queue[i]!;
    if (waiter.address >= start && waiter.address < end) {
      // shift() allocates nothing; splice() makes an array of what it removed.
      if (i === 0) queue.shift();
      else queue.splice(i, 1);
      wakeWaiter(waiter, false);
    } else {
      i++;
    }
  }
}
