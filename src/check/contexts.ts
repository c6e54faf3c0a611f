// The userfaultfd half of the invariant checker: the contexts the kernel
// lists, the ones its processes reach through VMAs and descriptors, and
// their fault and event queues.
//
// The rules, all of which hold at every point between two steps:
//
// - A context reached from a live VMA or an open descriptor is listed in
//   kernel.contexts, so process exit finds it and wakes its faults, and is
//   not released. A listed context is not released either (the last close
//   releases it and removes it at once).
// - A listed context has an open descriptor, a live VMA registered with it,
//   or a queued FORK event that will hand it to the monitor. Without any
//   of them nothing can reach it again, so it is a leak.
// - ctx.files equals the descriptors on it in live processes' file tables.
// - A fault waiter is queued once, has not been woken, and belongs to a
//   live process whose address space is the context's: every wake removes
//   the waiter first, exit wakes its process's waiters, and release wakes
//   them all.
// - A queued event's producer is alive. Events are produced only by the
//   process whose address space the context serves (fork, mremap, munmap,
//   madvise), so that process must be live; the kernel unlinks the event of
//   a producer killed while it waits (userfaultfd_event_wait_completion).
//   A FORK event names a child context that is still listed.

import {
  UFFD_EVENT_FORK, UFFD_EVENT_REMAP, UFFD_EVENT_REMOVE, UFFD_EVENT_UNMAP,
} from "../constants.js";
import type { Kernel } from "../mm/kernel.js";
import type { Mm } from "../mm/mm.js";
import type { Process } from "../mm/process.js";
import type { FaultWaiter, UffdContext } from "../uffd/context.js";
import type { InvariantFinding } from "./invariants.js";

const EVENT_NAMES = new Map([
  [UFFD_EVENT_FORK, "FORK"],
  [UFFD_EVENT_REMAP, "REMAP"],
  [UFFD_EVENT_REMOVE, "REMOVE"],
  [UFFD_EVENT_UNMAP, "UNMAP"],
]);

const hex = (value: number) => `0x${value.toString(16)}`;

/** The references of live processes to one context. */
interface ContextUse {
  /** Open descriptors, as "pid N fd M". */
  readonly descriptors: string[];
  /** VMAs registered with the context, as "pid N [start, end)". */
  readonly vmas: string[];
}

class ContextIndex {
  /** The live process of each address space. */
  private readonly owners = new Map<Mm, Process>();
  readonly uses = new Map<UffdContext, ContextUse>();

  constructor(kernel: Kernel) {
    for (const process of kernel.processes.values()) this.owners.set(process.mm, process);
  }

  use(ctx: UffdContext): ContextUse {
    let use = this.uses.get(ctx);
    if (use === undefined) {
      use = { descriptors: [], vmas: [] };
      this.uses.set(ctx, use);
    }
    return use;
  }

  /** Returns the live process whose address space is `mm`, or undefined when it has exited. */
  ownerOf(mm: Mm): Process | undefined {
    const process = this.owners.get(mm);
    return process !== undefined && mm.alive ? process : undefined;
  }

  /** Names a context in messages by the process it serves and its descriptors. */
  describe(ctx: UffdContext): string {
    const owner = this.ownerOf(ctx.mm);
    const target = owner === undefined ? "an exited address space" : `pid ${owner.pid}`;
    const descriptors = this.uses.get(ctx)?.descriptors ?? [];
    const open = descriptors.length === 0 ? "no open descriptor" : `open as ${descriptors.join(", ")}`;
    return `userfaultfd context of ${target} (${open})`;
  }
}

/** Records every context the live processes reach, checking each VMA's registration on the way. */
function indexContexts(kernel: Kernel, index: ContextIndex, findings: InvariantFinding[]): void {
  for (const process of kernel.processes.values()) {
    for (const [fd, handle] of process.files) index.use(handle.ctx).descriptors.push(`pid ${process.pid} fd ${fd}`);
    for (const vma of process.mm.vmaList()) {
      const ctx = vma.uffdCtx;
      if (ctx === null) continue;
      index.use(ctx).vmas.push(`pid ${process.pid} [${hex(vma.start)}, ${hex(vma.end)})`);
      if (ctx.mm !== process.mm) {
        findings.push({
          rule: "context",
          message: `pid ${process.pid} VMA [${hex(vma.start)}, ${hex(vma.end)}): registered with a ${index.describe(ctx)}, which serves another address space`,
        });
      }
    }
  }
}

function checkFaultWaiters(ctx: UffdContext, name: string, index: ContextIndex, findings: InvariantFinding[]): void {
  const seen = new Set<FaultWaiter>();
  const check = (waiter: FaultWaiter, queue: string) => {
    const fault = `fault at ${hex(waiter.address)} in the ${queue} queue of the ${name}`;
    const fail = (what: string) => findings.push({ rule: "fault-queue", message: `${fault}: ${what}` });
    if (seen.has(waiter)) fail("queued twice");
    seen.add(waiter);
    if (waiter.woken) fail("already woken, but still queued");
    if (ctx.released) fail("the context is released, and release wakes every fault");
    const owner = index.ownerOf(waiter.mm);
    if (owner === undefined) fail("its process has exited, and exit wakes its faults");
    else if (waiter.mm !== ctx.mm) fail(`belongs to pid ${owner.pid}, not to the address space the context serves`);
  };
  for (const waiter of ctx.faultPending) check(waiter, "pending");
  for (const waiter of ctx.faultRead) check(waiter, "read");
}

function checkEvents(ctx: UffdContext, name: string, kernel: Kernel, index: ContextIndex, findings: InvariantFinding[]): void {
  for (const event of ctx.eventQueue) {
    const label = EVENT_NAMES.get(event.event) ?? `event ${hex(event.event)}`;
    const what = `${label} event queued on the ${name}`;
    const fail = (why: string) => findings.push({ rule: "event-queue", message: `${what}: ${why}` });
    if (ctx.released) fail("the context is released, and release completes every event");
    if (index.ownerOf(ctx.mm) === undefined) fail("its producer has exited, and an exiting producer unlinks its event");
    if (event.event === UFFD_EVENT_FORK && (event.child === null || !kernel.contexts.has(event.child))) {
      fail("its child context is missing from kernel.contexts");
    }
  }
}

/** Returns the contexts named by queued FORK events, which are reachable though nothing else uses them yet. */
function forkChildren(contexts: Iterable<UffdContext>): Set<UffdContext> {
  const children = new Set<UffdContext>();
  for (const ctx of contexts) {
    for (const event of ctx.eventQueue) if (event.child !== null) children.add(event.child);
  }
  return children;
}

/** Checks every userfaultfd context of `kernel`, appending what is wrong to `findings`. */
export function checkContexts(kernel: Kernel, findings: InvariantFinding[]): void {
  const index = new ContextIndex(kernel);
  indexContexts(kernel, index, findings);
  const all = new Set<UffdContext>([...kernel.contexts, ...index.uses.keys()]);
  const pendingChildren = forkChildren(all);

  for (const ctx of all) {
    const name = index.describe(ctx);
    const use = index.uses.get(ctx) ?? { descriptors: [], vmas: [] };
    const listed = kernel.contexts.has(ctx);
    const fail = (why: string) => findings.push({ rule: "context", message: `${name}: ${why}` });
    if (!listed) {
      const users = [...use.descriptors, ...use.vmas.map((vma) => `VMA ${vma}`)];
      fail(`used by ${users.join(", ")}, but missing from kernel.contexts, so exit cannot wake its faults`);
    }
    if (ctx.released && (listed || use.vmas.length > 0 || use.descriptors.length > 0)) {
      fail("released, yet still listed, registered or open");
    }
    if (ctx.files !== use.descriptors.length) {
      fail(`counts ${ctx.files} open descriptors, but live processes hold ${use.descriptors.length}`);
    }
    if (listed && use.descriptors.length === 0 && use.vmas.length === 0 && !pendingChildren.has(ctx)) {
      fail("listed, but no descriptor, VMA or queued FORK event reaches it: a leaked context");
    }
    checkFaultWaiters(ctx, name, index, findings);
    checkEvents(ctx, name, kernel, index, findings);
  }
}
