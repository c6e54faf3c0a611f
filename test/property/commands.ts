// The monitor's steps of the property tests (userfaultfd ioctls, reads,
// fault handling, close) and the arbitraries that build every command.
// The steps of target processes are in process-steps.ts.

import fc from "fast-check";
import {
  EEXIST, UFFD_EVENT_FORK, UFFD_EVENT_PAGEFAULT, UFFD_EVENT_REMAP, UFFD_PAGEFAULT_FLAG_WP, UFFDIO_COPY_MODE_DONTWAKE,
  UFFDIO_COPY_MODE_WP, UFFDIO_REGISTER_MODE_MISSING, UFFDIO_REGISTER_MODE_WP, UFFDIO_WRITEPROTECT_MODE_DONTWAKE,
  UFFDIO_WRITEPROTECT_MODE_WP, UFFDIO_ZEROPAGE_MODE_DONTWAKE, UFFDIO_MOVE_MODE_ALLOW_SRC_HOLES,
  type ForkMsg, type ReadResult,
} from "../../src/index.js";
import {
  Access, EVENT_FEATURES, Exit, Fork, MadviseDontneed, Mmap, Mremap, Munmap, OpenUffd, Step, expectFields, fail, hex,
  pageAddress, pickContext,
} from "./process-steps.js";
import { PAGE, type Reference } from "./reference.js";
import type { ExpectedMsg, RefCtx } from "./reference-uffd.js";
import { SOURCE_PAGES, WINDOW, WINDOW_PAGES, type System } from "./system.js";

/** A step of the monitor on one of its open userfaultfds. */
abstract class UffdStep extends Step {
  constructor(protected readonly uffdIndex: number) {
    super();
  }

  override check(ref: Readonly<Reference>): boolean {
    return pickContext(ref, this.uffdIndex) !== undefined;
  }

  protected apply(ref: Reference, sys: System): void {
    const ctx = pickContext(ref, this.uffdIndex)!;
    this.picked = `${ctx}`;
    this.applyTo(ctx, ref, sys);
  }

  protected abstract applyTo(ctx: RefCtx, ref: Reference, sys: System): void;
}

const MODE_NAMES: Record<number, string> = { 1: "MISSING", 2: "WP", 3: "MISSING | WP" };

class Register extends UffdStep {
  constructor(uffdIndex: number, private readonly page: number, private readonly pages: number, private readonly mode: number) {
    super(uffdIndex);
  }

  override check(ref: Readonly<Reference>): boolean {
    const ctx = pickContext(ref, this.uffdIndex);
    if (ctx === undefined) return false;
    if ((this.mode & UFFDIO_REGISTER_MODE_WP) === 0) return true;
    // NOTE: the reference does not model uffd-wp on shared memory, so WP is registered on private memory only.
    for (let i = 0; i < this.pages; i++) if (ctx.mm.maps.get(pageAddress(this.page + i))?.file) return false;
    return true;
  }

  protected applyTo(ctx: RefCtx, _ref: Reference, sys: System): void {
    const start = pageAddress(this.page);
    const expected = ctx.register(start, this.pages * PAGE, this.mode);
    expectFields("UFFDIO_REGISTER", sys.handle(ctx).register({ start, len: this.pages * PAGE, mode: this.mode }), expected);
  }

  protected describe(): string {
    return `UFFDIO_REGISTER(uffd ${this.uffdIndex}, ${hex(pageAddress(this.page))}, ${this.pages} pages, ${MODE_NAMES[this.mode]})`;
  }
}

class Unregister extends UffdStep {
  constructor(uffdIndex: number, private readonly page: number, private readonly pages: number) {
    super(uffdIndex);
  }

  protected applyTo(ctx: RefCtx, _ref: Reference, sys: System): void {
    const start = pageAddress(this.page);
    const expected = ctx.unregister(start, this.pages * PAGE);
    expectFields("UFFDIO_UNREGISTER", sys.handle(ctx).unregister({ start, len: this.pages * PAGE }), expected);
  }

  protected describe(): string {
    return `UFFDIO_UNREGISTER(uffd ${this.uffdIndex}, ${hex(pageAddress(this.page))}, ${this.pages} pages)`;
  }
}

/** `misalign` bytes added to the destination make the call invalid (EINVAL unless the gate is closed). */
class Copy extends UffdStep {
  constructor(
    uffdIndex: number, private readonly page: number, private readonly pages: number, private readonly sourceIndex: number,
    private readonly mode: number, private readonly misalign: number,
  ) {
    super(uffdIndex);
  }

  protected applyTo(ctx: RefCtx, _ref: Reference, sys: System): void {
    copyBoth(ctx, sys, pageAddress(this.page) + this.misalign, this.pages, this.sourceIndex, this.mode);
  }

  protected describe(): string {
    const modes = [(this.mode & UFFDIO_COPY_MODE_WP) !== 0 ? "WP" : "", (this.mode & UFFDIO_COPY_MODE_DONTWAKE) !== 0 ? "DONTWAKE" : ""];
    const mode = modes.filter((name) => name !== "").join(" | ") || "0";
    const dst = hex(pageAddress(this.page) + this.misalign);
    return `UFFDIO_COPY(uffd ${this.uffdIndex}, ${dst}, ${this.pages} pages from source page ${this.sourceIndex}, mode ${mode})`;
  }
}

function copyBoth(ctx: RefCtx, sys: System, dst: number, pages: number, sourceIndex: number, mode: number): { errno: number } {
  const expected = ctx.copy(dst, pages * PAGE, sourceIndex, mode);
  const actual = sys.handle(ctx).copy({ dst, src: sys.source + sourceIndex * PAGE, len: pages * PAGE, mode });
  expectFields(`UFFDIO_COPY at ${hex(dst)}`, actual, expected);
  return expected;
}

class Zeropage extends UffdStep {
  constructor(uffdIndex: number, private readonly page: number, private readonly pages: number, private readonly dontWake: boolean, private readonly misalign: number) {
    super(uffdIndex);
  }

  protected applyTo(ctx: RefCtx, _ref: Reference, sys: System): void {
    zeropageBoth(ctx, sys, pageAddress(this.page) + this.misalign, this.pages, this.dontWake);
  }

  protected describe(): string {
    const start = hex(pageAddress(this.page) + this.misalign);
    return `UFFDIO_ZEROPAGE(uffd ${this.uffdIndex}, ${start}, ${this.pages} pages${this.dontWake ? ", DONTWAKE" : ""})`;
  }
}

function zeropageBoth(ctx: RefCtx, sys: System, start: number, pages: number, dontWake: boolean): { errno: number } {
  const expected = ctx.zeropage(start, pages * PAGE, dontWake);
  const mode = dontWake ? UFFDIO_ZEROPAGE_MODE_DONTWAKE : 0;
  expectFields(`UFFDIO_ZEROPAGE at ${hex(start)}`, sys.handle(ctx).zeropage({ start, len: pages * PAGE, mode }), expected);
  return expected;
}

/** UFFDIO_MOVE, issued from a handle in the context's own address space, as the kernel requires. */
class Move extends UffdStep {
  constructor(uffdIndex: number, private readonly dstPage: number, private readonly srcPage: number, private readonly pages: number, private readonly allowHoles: boolean) {
    super(uffdIndex);
  }

  override check(ref: Readonly<Reference>): boolean {
    const apart = this.dstPage + this.pages <= this.srcPage || this.srcPage + this.pages <= this.dstPage;
    // The caller must live in the context's address space, so the target must not have exited.
    return apart && super.check(ref) && !pickContext(ref, this.uffdIndex)!.mm.exited;
  }

  protected applyTo(ctx: RefCtx, _ref: Reference, sys: System): void {
    const dst = pageAddress(this.dstPage);
    const src = pageAddress(this.srcPage);
    const expected = ctx.move(dst, src, this.pages * PAGE, this.allowHoles);
    const own = sys.handle(ctx).dupInto(sys.process(ctx.mm.pid));
    try {
      const mode = this.allowHoles ? UFFDIO_MOVE_MODE_ALLOW_SRC_HOLES : 0;
      expectFields("UFFDIO_MOVE", own.move({ dst, src, len: this.pages * PAGE, mode }), expected);
    } finally {
      own.close();
    }
  }

  protected describe(): string {
    const holes = this.allowHoles ? ", ALLOW_SRC_HOLES" : "";
    return `UFFDIO_MOVE(uffd ${this.uffdIndex}, ${hex(pageAddress(this.srcPage))} -> ${hex(pageAddress(this.dstPage))}, ${this.pages} pages${holes})`;
  }
}

class Writeprotect extends UffdStep {
  constructor(uffdIndex: number, private readonly page: number, private readonly pages: number, private readonly mode: number) {
    super(uffdIndex);
  }

  protected applyTo(ctx: RefCtx, _ref: Reference, sys: System): void {
    writeprotectBoth(ctx, sys, pageAddress(this.page), this.pages, this.mode);
  }

  protected describe(): string {
    const names = [(this.mode & UFFDIO_WRITEPROTECT_MODE_WP) !== 0 ? "WP" : "", (this.mode & UFFDIO_WRITEPROTECT_MODE_DONTWAKE) !== 0 ? "DONTWAKE" : ""];
    const mode = names.filter((name) => name !== "").join(" | ") || "0";
    return `UFFDIO_WRITEPROTECT(uffd ${this.uffdIndex}, ${hex(pageAddress(this.page))}, ${this.pages} pages, mode ${mode})`;
  }
}

function writeprotectBoth(ctx: RefCtx, sys: System, start: number, pages: number, mode: number): void {
  const expected = ctx.writeprotect(start, pages * PAGE, mode);
  expectFields(`UFFDIO_WRITEPROTECT at ${hex(start)}`, sys.handle(ctx).writeprotect({ start, len: pages * PAGE, mode }), expected);
}

class Wake extends UffdStep {
  constructor(uffdIndex: number, private readonly page: number, private readonly pages: number) {
    super(uffdIndex);
  }

  protected applyTo(ctx: RefCtx, _ref: Reference, sys: System): void {
    wakeBoth(ctx, sys, pageAddress(this.page), this.pages);
  }

  protected describe(): string {
    return `UFFDIO_WAKE(uffd ${this.uffdIndex}, ${hex(pageAddress(this.page))}, ${this.pages} pages)`;
  }
}

function wakeBoth(ctx: RefCtx, sys: System, start: number, pages: number): void {
  ctx.wakeRange(start, pages * PAGE);
  expectFields(`UFFDIO_WAKE at ${hex(start)}`, sys.handle(ctx).wake({ start, len: pages * PAGE }), { errno: 0 });
}

/** Reads one message on both sides and compares it; a FORK gives the monitor the child's handle. */
function readBoth(ctx: RefCtx, sys: System): ExpectedMsg {
  const expected = ctx.read();
  const actual: ReadResult = sys.handle(ctx).read();
  if (expected.errno !== 0) {
    expectFields(`read(${ctx})`, actual, expected);
    return expected;
  }
  if (actual.errno !== 0 || !("event" in actual) || actual.event !== expected.event) {
    fail(`read(${ctx}) returned ${JSON.stringify(actual, (key, value) => (key === "uffd" ? "<uffd>" : value))}, expected event ${hex(expected.event)}`);
  }
  switch (expected.event) {
    case UFFD_EVENT_PAGEFAULT:
      expectFields(`read(${ctx})`, actual, { flags: expected.flags, address: expected.address, ptid: 0 });
      break;
    case UFFD_EVENT_FORK:
      sys.adoptHandle(expected.child, (actual as ForkMsg).uffd);
      break;
    case UFFD_EVENT_REMAP:
      expectFields(`read(${ctx})`, actual, { from: expected.from, to: expected.to, len: expected.len });
      break;
    default:
      expectFields(`read(${ctx})`, actual, { start: expected.start, end: expected.end });
  }
  return expected;
}

/**
 * read() of one message. With `copyAfter`, a one-page COPY follows before
 * anything else runs: after reading an event its producer has not resumed
 * yet, so the gate must still be closed.
 */
class Read extends UffdStep {
  constructor(uffdIndex: number, private readonly copyAfter: boolean) {
    super(uffdIndex);
  }

  protected applyTo(ctx: RefCtx, _ref: Reference, sys: System): void {
    const msg = readBoth(ctx, sys);
    this.picked += msg.errno === 0 ? `, event ${hex(msg.event)}` : ", EAGAIN";
    if (this.copyAfter) copyBoth(ctx, sys, WINDOW, 1, 0, 0);
  }

  protected describe(): string {
    return `read(uffd ${this.uffdIndex}${this.copyAfter ? ", then UFFDIO_COPY at once" : ""})`;
  }
}

/**
 * A cooperative monitor's step: read one message and resolve a fault in
 * it, a MISSING fault with COPY (or ZEROPAGE) and WAKE after EEXIST, a WP
 * fault by un-protecting the page.
 */
class Serve extends UffdStep {
  constructor(uffdIndex: number, private readonly zeropage: boolean) {
    super(uffdIndex);
  }

  protected applyTo(ctx: RefCtx, _ref: Reference, sys: System): void {
    const msg = readBoth(ctx, sys);
    if (msg.errno !== 0 || msg.event !== UFFD_EVENT_PAGEFAULT) {
      this.picked += msg.errno === 0 ? `, event ${hex(msg.event)}` : ", EAGAIN";
      return;
    }
    this.picked += `, fault at ${hex(msg.address)}`;
    if ((msg.flags & UFFD_PAGEFAULT_FLAG_WP) !== 0) {
      writeprotectBoth(ctx, sys, msg.address, 1, 0);
      return;
    }
    const sourceIndex = (msg.address / PAGE) % SOURCE_PAGES;
    const result = this.zeropage ? zeropageBoth(ctx, sys, msg.address, 1, false) : copyBoth(ctx, sys, msg.address, 1, sourceIndex, 0);
    if (result.errno === EEXIST) wakeBoth(ctx, sys, msg.address, 1);
  }

  protected describe(): string {
    return `serve(uffd ${this.uffdIndex} with ${this.zeropage ? "UFFDIO_ZEROPAGE" : "UFFDIO_COPY"})`;
  }
}

class Close extends UffdStep {
  protected applyTo(ctx: RefCtx, _ref: Reference, sys: System): void {
    ctx.close();
    sys.handle(ctx).close();
  }

  protected describe(): string {
    return `close(uffd ${this.uffdIndex})`;
  }
}

// Arbitraries. Ranges stay inside the window, so that most calls meet
// mappings, registrations and pages of earlier ones.

const processIndex = fc.nat(7);
const uffdIndex = fc.nat(7);
/** A range of 1 to 4 pages inside the window. */
const range = fc.tuple(fc.nat(WINDOW_PAGES - 1), fc.integer({ min: 1, max: 4 })).map(([page, pages]) => [page, Math.min(pages, WINDOW_PAGES - page)] as const);

const memoryCommands: fc.Arbitrary<Step>[] = [
  fc.tuple(processIndex, range, fc.boolean()).map(([w, [page, pages], shared]) => new Mmap(w, page, pages, shared)),
  fc.tuple(processIndex, range, fc.boolean()).map(([w, [page, pages], shared]) => new Mmap(w, page, pages, shared)),
  fc.tuple(processIndex, range).map(([w, [page, pages]]) => new Munmap(w, page, pages)),
  fc
    .tuple(processIndex, range, fc.integer({ min: 1, max: 4 }), fc.option(fc.nat(WINDOW_PAGES - 1), { nil: null }))
    .map(([w, [page, oldPages], newPages, target]) => {
      const fits = target === null ? newPages : Math.min(newPages, WINDOW_PAGES - target);
      return new Mremap(w, page, oldPages, fits, target);
    }),
  fc.tuple(processIndex, range).map(([w, [page, pages]]) => new MadviseDontneed(w, page, pages)),
  processIndex.map((w) => new Fork(w)),
  processIndex.map((w) => new Exit(w)),
  ...[0, 1, 2].map(() =>
    fc
      .tuple(processIndex, fc.nat(WINDOW_PAGES - 1), fc.nat(PAGE - 1), fc.integer({ min: 1, max: 2 * PAGE }), fc.option(fc.nat(255), { nil: null }))
      .map(([w, page, offset, length, fill]) => new Access(w, page, offset, length, fill)),
  ),
];

/** Mostly 0, sometimes 512: a misaligned fill destination. */
const misalign = fc.constantFrom(0, 0, 0, 0, 0, 0, 0, 512);
const featureSet = fc.subarray(EVENT_FEATURES.map(([bit]) => bit)).map((bits) => bits.reduce((all, bit) => all | bit, 0));
const registerMode = fc.constantFrom(UFFDIO_REGISTER_MODE_MISSING, UFFDIO_REGISTER_MODE_WP, UFFDIO_REGISTER_MODE_MISSING | UFFDIO_REGISTER_MODE_WP);

const monitorCommands: fc.Arbitrary<Step>[] = [
  fc.tuple(processIndex, featureSet).map(([w, features]) => new OpenUffd(w, features)),
  ...[0, 1].map(() => fc.tuple(uffdIndex, range, registerMode).map(([c, [page, pages], mode]) => new Register(c, page, pages, mode))),
  fc.tuple(uffdIndex, range).map(([c, [page, pages]]) => new Unregister(c, page, pages)),
  fc
    .tuple(uffdIndex, range, fc.nat(SOURCE_PAGES - 1), fc.constantFrom(0, 0, UFFDIO_COPY_MODE_WP, UFFDIO_COPY_MODE_DONTWAKE), misalign)
    .map(([c, [page, pages], source, mode, offset]) => new Copy(c, page, pages, Math.min(source, SOURCE_PAGES - pages), mode, offset)),
  fc.tuple(uffdIndex, range, fc.boolean(), misalign).map(([c, [page, pages], dontWake, offset]) => new Zeropage(c, page, pages, dontWake, offset)),
  fc
    .tuple(uffdIndex, range, fc.nat(WINDOW_PAGES - 1), fc.boolean())
    .map(([c, [dst, pages], src, holes]) => new Move(c, dst, Math.min(src, WINDOW_PAGES - pages), pages, holes)),
  fc
    .tuple(uffdIndex, range, fc.constantFrom(UFFDIO_WRITEPROTECT_MODE_WP, 0, UFFDIO_WRITEPROTECT_MODE_DONTWAKE, UFFDIO_WRITEPROTECT_MODE_WP | UFFDIO_WRITEPROTECT_MODE_DONTWAKE))
    .map(([c, [page, pages], mode]) => new Writeprotect(c, page, pages, mode)),
  fc.tuple(uffdIndex, range).map(([c, [page, pages]]) => new Wake(c, page, pages)),
  fc.tuple(uffdIndex, fc.boolean()).map(([c, copyAfter]) => new Read(c, copyAfter)),
  ...[0, 1, 2].map(() => fc.tuple(uffdIndex, fc.boolean()).map(([c, zero]) => new Serve(c, zero))),
  uffdIndex.map((c) => new Close(c)),
];

/**
 * Returns the first steps of a run with a monitor, which make faults and
 * moves common from the start. They map 8 private and 4 shared pages at the
 * start of the window and write private pages 4 to 7. Then they open a
 * userfaultfd with `features` and register all 12 pages MISSING, and with
 * `wp` the private ones MISSING | WP.
 */
export function monitorSetup(features: number, wp: boolean): Step[] {
  const steps: Step[] = [
    new Mmap(0, 0, 8, false), new Mmap(0, 8, 4, true), new Access(0, 4, 0, 4 * PAGE, 0x80), new OpenUffd(0, features),
    new Register(0, 0, 12, UFFDIO_REGISTER_MODE_MISSING),
  ];
  if (wp) steps.push(new Register(0, 0, 8, UFFDIO_REGISTER_MODE_MISSING | UFFDIO_REGISTER_MODE_WP));
  return steps;
}

/** Returns the arbitrary of monitorSetup(), with random event features unless `features` is given. */
export function monitorSetups(features?: number): fc.Arbitrary<Step[]> {
  return fc.tuple(features === undefined ? featureSet : fc.constant(features), fc.boolean()).map(([bits, wp]) => monitorSetup(bits, wp));
}

/** Every event feature: FORK, REMAP, REMOVE and UNMAP. */
export const ALL_EVENTS = EVENT_FEATURES.reduce((all, [bit]) => all | bit, 0);

/** Returns the command arbitraries: memory operations only, or with userfaultfds and a monitor. */
export function commandArbitraries(withMonitor: boolean): fc.Arbitrary<Step>[] {
  return withMonitor ? [...memoryCommands, ...monitorCommands] : memoryCommands;
}

