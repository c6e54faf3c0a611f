// The steps of the property tests, for fast-check's model-based runner, and
// those that a target process takes. Each step applies one system call,
// access or userfaultfd operation to the reference model and to the kernel
// under test and checks the result the reference predicts. Then it lets
// both settle and compares their state. The monitor's steps are in
// commands.ts.
//
// Commands name their process and context by an index into the runnable
// processes (or open contexts) of the moment, so a command stays valid when
// the shrinker drops others. The run's log (System.log) records what each
// step picked, and a failure prints it.

import fc from "fast-check";
import {
  MADV_DONTNEED, MAP_ANONYMOUS, MAP_FIXED, MAP_PRIVATE, MAP_SHARED, MREMAP_FIXED, MREMAP_MAYMOVE, UFFD_API,
  UFFD_FEATURE_EVENT_FORK, UFFD_FEATURE_EVENT_REMAP, UFFD_FEATURE_EVENT_REMOVE, UFFD_FEATURE_EVENT_UNMAP,
} from "../../src/index.js";
import { PAGE, type Reference, type RefProcess } from "./reference.js";
import type { RefCtx } from "./reference-uffd.js";
import { WINDOW, type System } from "./system.js";

/** At most this many target processes are alive at once. */
const MAX_TARGETS = 4;
/** At most this many userfaultfds are open at once. */
const MAX_OPEN_CONTEXTS = 4;

export const hex = (value: number) => `0x${value.toString(16)}`;
export const pageAddress = (page: number) => WINDOW + page * PAGE;

export function fail(message: string): never {
  throw new Error(`kernel and reference model differ: ${message}`);
}

/** Fails unless every field of `expected` has the same value in `actual`. */
export function expectFields(call: string, actual: object, expected: object): void {
  for (const [key, value] of Object.entries(expected)) {
    const got = (actual as Record<string, unknown>)[key];
    if (got !== value) fail(`${call}: ${key} is ${String(got)}, expected ${String(value)} (result ${JSON.stringify(actual, bigintJson)}, expected ${JSON.stringify(expected, bigintJson)})`);
  }
}

const bigintJson = (_key: string, value: unknown) => (typeof value === "bigint" ? `0x${value.toString(16)}` : value);

export function pickProcess(ref: Readonly<Reference>, processIndex: number): RefProcess | undefined {
  const runnable = ref.runnableProcesses();
  return runnable.length === 0 ? undefined : runnable[processIndex % runnable.length];
}

export function openContexts(ref: Readonly<Reference>): RefCtx[] {
  return ref.contexts.filter((ctx) => ctx.handleOpen);
}

export function pickContext(ref: Readonly<Reference>, uffdIndex: number): RefCtx | undefined {
  const open = openContexts(ref);
  return open.length === 0 ? undefined : open[uffdIndex % open.length];
}

/** Returns the bytes an access stores: `fill`, `fill + 1`, ... so that misplaced bytes show. */
function storeData(fill: number, length: number): Uint8Array {
  const data = new Uint8Array(length);
  for (let i = 0; i < length; i++) data[i] = (fill + i) & 0xff;
  return data;
}

export abstract class Step implements fc.AsyncCommand<Reference, System> {
  /** What this run picked (pid, context, message), for the run's log. */
  protected picked = "";

  abstract check(ref: Readonly<Reference>): boolean;
  protected abstract apply(ref: Reference, sys: System): void;
  protected abstract describe(): string;

  async run(ref: Reference, sys: System): Promise<void> {
    this.picked = "";
    try {
      this.apply(ref, sys);
    } finally {
      sys.log.push(`${this.describe()}${this.picked === "" ? "" : ` [${this.picked}]`}`);
    }
    await sys.settle(ref);
  }

  toString(): string {
    return this.describe();
  }

  /** Lets fast-check print the step in a counterexample as toString() does. */
  [fc.toStringMethod](): string {
    return this.toString();
  }
}

/** A step of one target process. */
abstract class ProcessStep extends Step {
  constructor(protected readonly processIndex: number) {
    super();
  }

  check(ref: Readonly<Reference>): boolean {
    return pickProcess(ref, this.processIndex) !== undefined;
  }

  protected apply(ref: Reference, sys: System): void {
    const process = pickProcess(ref, this.processIndex)!;
    this.picked = `pid ${process.pid}`;
    this.applyTo(process, ref, sys);
  }

  protected abstract applyTo(process: RefProcess, ref: Reference, sys: System): void;
}

export class Mmap extends ProcessStep {
  constructor(processIndex: number, private readonly page: number, private readonly pages: number, private readonly shared: boolean) {
    super(processIndex);
  }

  protected applyTo(process: RefProcess, ref: Reference, sys: System): void {
    const address = pageAddress(this.page);
    const expected = ref.mmapFixed(process, address, this.pages, this.shared);
    const flags = MAP_FIXED | MAP_ANONYMOUS | (this.shared ? MAP_SHARED : MAP_PRIVATE);
    const actual = sys.process(process.pid).mmap(this.pages * PAGE, { flags, address });
    if (actual !== expected) fail(`mmap returned ${actual}, expected ${hex(expected)}`);
  }

  protected describe(): string {
    return `mmap(target ${this.processIndex}, ${hex(pageAddress(this.page))}, ${this.pages} pages, ${this.shared ? "MAP_SHARED" : "MAP_PRIVATE"} | MAP_FIXED)`;
  }
}

export class Munmap extends ProcessStep {
  constructor(processIndex: number, private readonly page: number, private readonly pages: number) {
    super(processIndex);
  }

  protected applyTo(process: RefProcess, ref: Reference, sys: System): void {
    ref.munmap(process, pageAddress(this.page), this.pages);
    sys.track(process.pid, sys.process(process.pid).munmap(pageAddress(this.page), this.pages * PAGE));
  }

  protected describe(): string {
    return `munmap(target ${this.processIndex}, ${hex(pageAddress(this.page))}, ${this.pages} pages)`;
  }
}

export class Mremap extends ProcessStep {
  constructor(
    processIndex: number, private readonly page: number, private readonly oldPages: number, private readonly newPages: number,
    private readonly targetPage: number | null,
  ) {
    super(processIndex);
  }

  protected applyTo(process: RefProcess, ref: Reference, sys: System): void {
    const old = pageAddress(this.page);
    const target = this.targetPage === null ? null : pageAddress(this.targetPage);
    ref.mremap(process, old, this.oldPages, this.newPages, target);
    const flags = target === null ? 0 : MREMAP_MAYMOVE | MREMAP_FIXED;
    sys.track(process.pid, sys.process(process.pid).mremap(old, this.oldPages * PAGE, this.newPages * PAGE, flags, target ?? undefined));
  }

  protected describe(): string {
    const move = this.targetPage === null ? "in place" : `MREMAP_MAYMOVE | MREMAP_FIXED to ${hex(pageAddress(this.targetPage))}`;
    return `mremap(target ${this.processIndex}, ${hex(pageAddress(this.page))}, ${this.oldPages} -> ${this.newPages} pages, ${move})`;
  }
}

export class MadviseDontneed extends ProcessStep {
  constructor(processIndex: number, private readonly page: number, private readonly pages: number) {
    super(processIndex);
  }

  protected applyTo(process: RefProcess, ref: Reference, sys: System): void {
    ref.madviseDontneed(process, pageAddress(this.page), this.pages);
    sys.track(process.pid, sys.process(process.pid).madvise(pageAddress(this.page), this.pages * PAGE, MADV_DONTNEED));
  }

  protected describe(): string {
    return `madvise(target ${this.processIndex}, ${hex(pageAddress(this.page))}, ${this.pages} pages, MADV_DONTNEED)`;
  }
}

export class Fork extends ProcessStep {
  override check(ref: Readonly<Reference>): boolean {
    const alive = ref.processes.filter((process) => process.pid !== 1 && !process.exited).length;
    return super.check(ref) && alive < MAX_TARGETS;
  }

  protected applyTo(process: RefProcess, ref: Reference, sys: System): void {
    const child = ref.fork(process);
    sys.track(process.pid, sys.process(process.pid).fork());
    sys.adopt(child.pid, sys.kernel.processes.get(child.pid));
    this.picked += `, child pid ${child.pid}`;
  }

  protected describe(): string {
    return `fork(target ${this.processIndex})`;
  }
}

export class Exit extends ProcessStep {
  override check(ref: Readonly<Reference>): boolean {
    const alive = ref.processes.filter((process) => process.pid !== 1 && !process.exited).length;
    return super.check(ref) && alive > 1;
  }

  protected applyTo(process: RefProcess, ref: Reference, sys: System): void {
    ref.exit(process);
    sys.process(process.pid).exit();
  }

  protected describe(): string {
    return `exit(target ${this.processIndex})`;
  }
}

export class Access extends ProcessStep {
  constructor(
    processIndex: number, private readonly page: number, private readonly offset: number, private readonly length: number,
    private readonly fill: number | null,
  ) {
    super(processIndex);
  }

  protected applyTo(process: RefProcess, ref: Reference, sys: System): void {
    const address = pageAddress(this.page) + this.offset;
    const real = sys.process(process.pid);
    if (this.fill === null) {
      ref.access(process, address, this.length, null);
      sys.track(process.pid, real.read(address, this.length));
    } else {
      const data = storeData(this.fill, this.length);
      ref.access(process, address, this.length, data);
      sys.track(process.pid, real.write(address, data));
    }
  }

  protected describe(): string {
    const address = hex(pageAddress(this.page) + this.offset);
    if (this.fill === null) return `read(target ${this.processIndex}, ${address}, ${this.length} bytes)`;
    return `write(target ${this.processIndex}, ${address}, ${this.length} bytes from ${hex(this.fill)})`;
  }
}

export const EVENT_FEATURES = [
  [UFFD_FEATURE_EVENT_FORK, "EVENT_FORK"],
  [UFFD_FEATURE_EVENT_REMAP, "EVENT_REMAP"],
  [UFFD_FEATURE_EVENT_REMOVE, "EVENT_REMOVE"],
  [UFFD_FEATURE_EVENT_UNMAP, "EVENT_UNMAP"],
] as const;

function featureNames(features: number): string {
  const names = EVENT_FEATURES.filter(([bit]) => (features & bit) !== 0).map(([, name]) => name);
  return names.length === 0 ? "0" : names.join(" | ");
}

/** userfaultfd() and UFFDIO_API in a target; the monitor keeps the only handle. */
export class OpenUffd extends ProcessStep {
  constructor(processIndex: number, private readonly features: number) {
    super(processIndex);
  }

  override check(ref: Readonly<Reference>): boolean {
    const process = pickProcess(ref, this.processIndex);
    if (process === undefined || openContexts(ref).length >= MAX_OPEN_CONTEXTS) return false;
    return ref.contexts.filter((ctx) => ctx.mm === process && !ctx.released && !ctx.dropped).length < 2;
  }

  protected applyTo(process: RefProcess, ref: Reference, sys: System): void {
    const ctx = ref.newContext(process, this.features);
    ctx.handleOpen = true;
    const own = sys.process(process.pid).userfaultfd();
    expectFields("UFFDIO_API", own.api({ api: UFFD_API, features: this.features }), { errno: 0 });
    sys.adoptHandle(ctx, own.dupInto(sys.monitor));
    own.close();
    this.picked += `, ${ctx}`;
  }

  protected describe(): string {
    return `userfaultfd(target ${this.processIndex}, features ${featureNames(this.features)})`;
  }
}
