// The invariant checker: compares the kernel model's state with the rules
// that every reachable state obeys. Nothing in the library calls it; the
// test suite runs it after every test, and users can call it in their own
// tests. Linux counterparts: the checks of CONFIG_DEBUG_VM (VM_BUG_ON_PAGE,
// the bad-page reports of mm/page_alloc.c) and the leak reports of
// kmemleak.
//
// The checks, grouped by the rule name a finding carries:
//
// - frame pool: every frame handed out has a known kind; a FREE frame has
//   refcount 0 and sits in the free ring exactly once; a frame in use has
//   refcount > 0 and is not in the ring; frames_used matches the kinds.
// - page tables and page caches: each entry holds only known bits and
//   points at a frame of the right kind (upper levels at TABLE frames, PTEs
//   at PAGE frames or the zero frame, cache entries at PAGE frames); a
//   non-present PTE is a uffd-wp or poison marker; only an entry with the
//   ZERO bit maps the zero frame, never writable or exclusive; an
//   exclusive page has refcount 1.
// - holders: a PAGE frame's refcount equals the PTEs and cache entries
//   that map it, the zero frame's is one more (it is pinned), each TABLE
//   frame has exactly one parent entry, and each ROOT frame exactly one
//   owner: a live process's pgd or the page cache of a file in
//   kernel.files. Benchmark buffers (BENCH frames) are pinned and skipped.
//   With no process and no file left, only the zero frame and benchmark
//   buffers are in use.
// - userfaultfd contexts: see contexts.ts.

import { Kernel } from "../mm/kernel.js";
import { checkContexts } from "./contexts.js";
import { checkFrames } from "./frames.js";

/** The invariant a finding breaks. */
export type InvariantRule =
  /** A frame's kind byte is unknown, or the zero frame is not of kind ZERO. */
  | "frame-kind"
  /** A FREE frame has a non-zero refcount. */
  | "free-refcount"
  /** The free ring misses a free frame, lists one twice, or lists a frame in use. */
  | "free-ring"
  /** frames_used disagrees with the kinds of the frames handed out. */
  | "frames-used"
  /** An entry or a root points at a FREE frame. */
  | "free-mapped"
  /** A frame in use has refcount 0, or its refcount differs from its holders. */
  | "refcount"
  /** An entry has unknown bits, a malformed marker, or a wrong ZERO, WRITE or EXCLUSIVE bit for its frame. */
  | "entry-bits"
  /** An entry points outside the pool or at a frame of the wrong kind. */
  | "entry-target"
  /** A page-table frame has no parent entry (a leak) or more than one. */
  | "table-parents"
  /** A ROOT frame has no owner (a leak) or several, or an owner's root is not a ROOT frame. */
  | "root-owner"
  /** An exclusive PTE maps a frame whose refcount is not 1. */
  | "exclusive"
  /** No process and no file is left, yet frames other than the zero frame are in use. */
  | "leak"
  /** A fault queue contains a waiter that was woken, is queued twice, or belongs to an exited process or another address space. */
  | "fault-queue"
  /** An event queue contains an event whose producer has exited, or a FORK event without a live child context. */
  | "event-queue"
  /** A userfaultfd context is leaked, released but still listed, or its descriptor count is wrong. */
  | "context";

/** One broken invariant. */
export interface InvariantFinding {
  readonly rule: InvariantRule;
  /** The broken rule in words, naming the frame address, entry, process or context involved. */
  readonly message: string;
  /** Linear-memory address of the frame the finding is about, when there is one. */
  readonly frame?: number;
}

/** Thrown by checkInvariants with every finding of one check. */
export class InvariantViolation extends Error {
  override name = "InvariantViolation";
  readonly findings: readonly InvariantFinding[];

  constructor(findings: readonly InvariantFinding[]) {
    const lines = findings.map((finding) => `- [${finding.rule}] ${finding.message}`);
    const count = findings.length === 1 ? "1 invariant violation" : `${findings.length} invariant violations`;
    super(`${count} in the kernel model:\n${lines.join("\n")}`);
    this.findings = Object.freeze([...findings]);
  }
}

/**
 * Checks the frame pool, every page table and page cache, and every
 * userfaultfd context of `kernel`. Returns quietly when all invariants
 * hold; otherwise throws InvariantViolation listing every finding. Only
 * reads state, so it can run at any point between two steps of the model,
 * including while tasks are blocked on faults or events. Throws
 * KernelFailedError for a kernel whose wasm core has failed, because its
 * memory may be half changed.
 */
export function checkInvariants(kernel: Kernel): void {
  if (!(kernel instanceof Kernel)) throw new TypeError(`checkInvariants: kernel must be a Kernel, got ${kernel === null ? "null" : typeof kernel}`);
  const findings: InvariantFinding[] = [];
  checkFrames(kernel, findings);
  checkContexts(kernel, findings);
  if (findings.length > 0) throw new InvariantViolation(findings);
}
