// The kernel under test for the property tests, and the comparison of its
// state with the reference model after every step. The comparison covers
// mappings and their registration page by page, the bytes and uffd-wp bit
// of every private page, every shared page cache, each context's gate and
// queues, which calls are still blocked and what the finished ones
// returned. It reads the wasm core directly (PTEs, frames, caches), so it
// never faults a page in.

import { Buffer } from "node:buffer";
import { checkInvariants } from "../../src/check/invariants.js";
import {
  Kernel, MAP_ANONYMOUS, MAP_PRIVATE, PAGE_SIZE, SignalError, type MappedFile, type Process, type Userfaultfd,
} from "../../src/index.js";
import type { UffdContext } from "../../src/uffd/context.js";
import { PTE_FRAME_MASK, PTE_PRESENT, PTE_UFFD_WP } from "../../src/wasm/core.js";
import { drain, watch, type Watched } from "../helpers.js";
import { PAGE, Reference, type CallOutcome, type Layout, type PageData, type RefFile, type RefProcess } from "./reference.js";
import type { RefCtx } from "./reference-uffd.js";

/** The address window the targets map, unmap and touch: small, so that operations collide. */
export const WINDOW = 0x1000_0000;
export const WINDOW_PAGES = 16;
/** Pages of the monitor's UFFDIO_COPY source, page i filled with sourceByte(i, offset). */
export const SOURCE_PAGES = 8;
/** Simulated memory of the kernel: 4 MiB, far more than a run maps, so no call fails with ENOMEM. */
export const MAX_MEMORY = 4 << 20;

const ZEROS = new Uint8Array(PAGE);

/** Byte `offset` of the monitor's source page `index`: every byte differs from its neighbours and from other pages. */
function sourcePage(index: number): Uint8Array {
  const page = new Uint8Array(PAGE);
  for (let offset = 0; offset < PAGE; offset++) page[offset] = (0x41 + index * 31 + offset * 7) & 0xff;
  return page;
}

export const SOURCE_DATA: readonly Uint8Array[] = Array.from({ length: SOURCE_PAGES }, (_, index) => sourcePage(index));

/** Throws the comparison failure `message`. */
function mismatch(message: string): never {
  throw new Error(`kernel and reference model differ: ${message}`);
}

const hex = (value: number) => `0x${value.toString(16)}`;

function sameBytes(actual: Uint8Array, expected: PageData): boolean {
  return Buffer.compare(actual, expected ?? ZEROS) === 0;
}

export class System implements Layout {
  readonly kernel: Kernel;
  monitor!: Process;
  /** Address of the monitor's source pages. */
  source = 0;
  /** Target processes by pid, exited ones included. */
  readonly processes = new Map<number, Process>();
  /** The call each target has in flight, by pid. */
  readonly calls = new Map<number, Watched<unknown>>();
  /** The monitor's handle on each context. */
  readonly handles = new Map<RefCtx, Userfaultfd>();
  private readonly contexts = new Map<RefCtx, UffdContext>();
  private readonly files = new Map<RefFile, MappedFile>();
  /** Every command run since the last reset, as printed. */
  readonly log: string[] = [];

  constructor(kernel: Kernel) {
    this.kernel = kernel;
  }

  static async create(): Promise<System> {
    return new System(await Kernel.create({ build: "debug", maxMemory: MAX_MEMORY }));
  }

  /**
   * Starts a run: resets the kernel, creates the monitor (pid 1) with its
   * source pages and one target (pid 2), and returns the reference model
   * of the same state.
   */
  async start(): Promise<{ ref: Reference; target: RefProcess }> {
    this.kernel.reset();
    this.processes.clear();
    this.calls.clear();
    this.handles.clear();
    this.contexts.clear();
    this.files.clear();
    this.log.length = 0;
    this.monitor = this.kernel.createProcess();
    this.source = this.monitor.mmap(SOURCE_PAGES * PAGE, { flags: MAP_PRIVATE | MAP_ANONYMOUS });
    for (let i = 0; i < SOURCE_PAGES; i++) await this.monitor.write(this.source + i * PAGE, SOURCE_DATA[i]!);

    const ref = new Reference(this, SOURCE_DATA);
    ref.createProcess().exited = true; // pid 1: the monitor, which the reference does not model
    const target = ref.createProcess();
    this.adopt(target.pid, this.kernel.createProcess());
    return { ref, target };
  }

  /** Records the kernel's process for reference pid `pid`. */
  adopt(pid: number, process: Process | undefined): Process {
    if (process === undefined || process.pid !== pid) mismatch(`expected a process with pid ${pid}, got ${process?.pid}`);
    this.processes.set(pid, process);
    return process;
  }

  process(pid: number): Process {
    return this.processes.get(pid) ?? mismatch(`no process with pid ${pid}`);
  }

  handle(ctx: RefCtx): Userfaultfd {
    return this.handles.get(ctx) ?? mismatch(`the monitor has no handle on ${ctx}`);
  }

  /** Records the monitor's handle on `ctx`. */
  adoptHandle(ctx: RefCtx, handle: Userfaultfd): void {
    this.handles.set(ctx, handle);
    this.pair(this.contexts, ctx, handle.ctx, `${ctx}`);
  }

  /** Records that process `pid` started `call`. */
  track(pid: number, call: Promise<unknown>): void {
    this.calls.set(pid, watch(call));
  }

  vmaAt(pid: number, address: number): { start: number; end: number } | undefined {
    const process = this.kernel.processes.get(pid);
    const vma = process?.mm.vmaLookup(address);
    return vma === undefined ? undefined : { start: vma.start, end: vma.end };
  }

  /** Lets every woken task of the kernel and of the reference run, then compares the two. */
  async settle(ref: Reference): Promise<void> {
    await drain();
    ref.drain();
    this.compare(ref);
  }

  /** Compares the whole state with `ref` and runs the invariant checker. */
  compare(ref: Reference): void {
    for (const process of ref.processes) {
      if (process.pid === 1) continue;
      this.compareCalls(process);
      if (process.exited) {
        if (this.kernel.processes.has(process.pid)) mismatch(`pid ${process.pid} should have exited`);
        continue;
      }
      this.compareProcess(process);
    }
    for (const ctx of ref.contexts) this.compareContext(ctx);
    checkInvariants(this.kernel);
  }

  /** Maps `key` to `value` one to one, failing when either side is already paired elsewhere. */
  private pair<K, V>(map: Map<K, V>, key: K, value: V, name: string): void {
    const known = map.get(key);
    if (known === value) return;
    if (known !== undefined) mismatch(`${name} corresponds to two different kernel objects`);
    for (const other of map.values()) if (other === value) mismatch(`${name} and another reference object share one kernel object`);
    map.set(key, value);
  }

  private compareCalls(process: RefProcess): void {
    const watched = this.calls.get(process.pid);
    for (const outcome of process.finished.splice(0)) {
      if (watched === undefined) mismatch(`pid ${process.pid} finished a call the kernel never started`);
      if (watched.state === "pending") mismatch(`pid ${process.pid}: the kernel's call is still blocked, expected it to return ${describe(outcome)}`);
      this.compareOutcome(process.pid, watched, outcome);
      this.calls.delete(process.pid);
    }
    const pending = this.calls.get(process.pid);
    if (process.call !== null && pending?.state !== "pending") {
      mismatch(`pid ${process.pid}: ${process.call.name} should still be blocked, but the kernel's call ${pending === undefined ? "never started" : "returned"}`);
    }
    if (process.call === null && pending !== undefined) mismatch(`pid ${process.pid}: the kernel's call returned ${pending.state === "pending" ? "nothing yet" : "early"}`);
  }

  private compareOutcome(pid: number, watched: Watched<unknown>, outcome: CallOutcome): void {
    if ("signal" in outcome) {
      const reason = watched.reason;
      if (watched.state !== "rejected" || !(reason instanceof SignalError) || reason.signo !== outcome.signal) {
        mismatch(`pid ${pid}: expected signal ${outcome.signal}, got ${watched.state} ${String(reason ?? watched.value)}`);
      }
      return;
    }
    if (watched.state === "rejected") mismatch(`pid ${pid}: expected ${describe(outcome)}, the call threw ${String(watched.reason)}`);
    const actual = watched.value;
    const expected = outcome.value;
    if (expected instanceof Uint8Array) {
      if (!(actual instanceof Uint8Array) || Buffer.compare(actual, expected) !== 0) mismatch(`pid ${pid}: read returned other bytes than expected`);
      return;
    }
    const value = typeof actual === "object" && actual !== null && "pid" in actual ? (actual as Process).pid : actual;
    if (value !== expected) mismatch(`pid ${pid}: the call returned ${String(value)}, expected ${String(expected)}`);
  }

  private compareProcess(process: RefProcess): void {
    const real = this.process(process.pid);
    if (this.kernel.processes.get(process.pid) !== real || real.exited) mismatch(`pid ${process.pid} should be alive`);
    const core = this.kernel.core.exports;
    const zeroFrame = core.zero_frame() >>> 0;
    let mappedPages = 0;
    for (const vma of real.mm.vmaList()) {
      for (let address = vma.start; address < vma.end; address += PAGE) {
        mappedPages++;
        const mapping = process.maps.get(address) ?? mismatch(`pid ${process.pid} maps ${hex(address)}, the reference does not`);
        const where = `pid ${process.pid} at ${hex(address)}`;
        if ((mapping.file !== null) !== vma.isShared || (vma.file !== null) !== vma.isShared) mismatch(`${where}: shared should be ${mapping.file !== null}`);
        if (mapping.file !== null) {
          this.pair(this.files, mapping.file, vma.file!, `shared object ${mapping.file.id}`);
          const index = (vma.pgoff + (address - vma.start)) / PAGE;
          if (index !== mapping.fileIndex) mismatch(`${where}: maps page ${index} of its object, expected ${mapping.fileIndex}`);
        }
        if (mapping.uffdFlags !== vma.uffdFlags) mismatch(`${where}: userfaultfd flags ${vma.uffdFlags}, expected ${mapping.uffdFlags}`);
        if (mapping.ctx === null) {
          if (vma.uffdCtx !== null) mismatch(`${where}: registered, expected unregistered`);
        } else {
          if (vma.uffdCtx === null) mismatch(`${where}: unregistered, expected registered to ${mapping.ctx}`);
          this.pair(this.contexts, mapping.ctx, vma.uffdCtx, `${mapping.ctx}`);
        }
        const pte = core.pte_read(real.mm.pgd, address) >>> 0;
        if (mapping.file === null) this.comparePrivatePage(process, address, pte, zeroFrame);
        else if ((pte & PTE_PRESENT) !== 0) this.compareSharedPte(where, vma.file!, (vma.pgoff + (address - vma.start)), pte);
      }
    }
    if (mappedPages !== process.maps.size) mismatch(`pid ${process.pid} maps ${mappedPages} pages, expected ${process.maps.size}`);
    for (let i = 0; i < WINDOW_PAGES; i++) {
      const address = WINDOW + i * PAGE;
      if (!process.maps.has(address) && core.pte_read(real.mm.pgd, address) !== 0) mismatch(`pid ${process.pid}: unmapped ${hex(address)} has a page-table entry`);
    }
    for (const mapping of process.maps.values()) if (mapping.file !== null) this.compareFile(mapping.file);
  }

  private comparePrivatePage(process: RefProcess, address: number, pte: number, zeroFrame: number): void {
    const where = `pid ${process.pid} at ${hex(address)}`;
    const page = process.pages.get(address);
    const present = (pte & PTE_PRESENT) !== 0;
    if (page === undefined) {
      if (present || pte !== 0) mismatch(`${where}: page-table entry ${hex(pte)}, expected none`);
      return;
    }
    if (!present) mismatch(`${where}: page missing, expected present`);
    const frame = (pte & PTE_FRAME_MASK) >>> 0;
    if ((frame === zeroFrame) !== page.zeroPage) mismatch(`${where}: zero page ${frame === zeroFrame}, expected ${page.zeroPage}`);
    if (((pte & PTE_UFFD_WP) !== 0) !== page.wp) mismatch(`${where}: uffd-wp bit ${(pte & PTE_UFFD_WP) !== 0}, expected ${page.wp}`);
    if (!sameBytes(this.kernel.core.bytes(frame, PAGE), page.data)) mismatch(`${where}: the page holds other bytes than expected`);
  }

  /** A present PTE of a shared mapping must map the page cache's page. */
  private compareSharedPte(where: string, file: MappedFile, offset: number, pte: number): void {
    const cached = this.kernel.core.exports.cache_lookup(file.cache, offset) >>> 0;
    if (cached !== ((pte & PTE_FRAME_MASK) >>> 0)) mismatch(`${where}: the entry does not map the page-cache page`);
  }

  private compareFile(file: RefFile): void {
    const real = this.files.get(file) ?? mismatch(`shared object ${file.id} has no kernel file`);
    const core = this.kernel.core.exports;
    for (let index = 0; index < file.sizePages; index++) {
      const frame = core.cache_lookup(real.cache, index * PAGE) >>> 0;
      const expected = file.pages.get(index);
      const where = `page ${index} of shared object ${file.id}`;
      if ((frame !== 0) !== file.pages.has(index)) mismatch(`${where}: cached ${frame !== 0}, expected ${file.pages.has(index)}`);
      if (frame !== 0 && !sameBytes(this.kernel.core.bytes(frame, PAGE), expected ?? null)) mismatch(`${where} holds other bytes than expected`);
    }
  }

  private compareContext(ctx: RefCtx): void {
    const real = this.contexts.get(ctx);
    if (real === undefined || ctx.dropped) return;
    const expect = (field: string, actual: unknown, expected: unknown) => {
      if (actual !== expected) mismatch(`${ctx}: ${field} is ${String(actual)}, expected ${String(expected)}`);
    };
    expect("mmap_changing", real.mmapChanging, ctx.gate);
    expect("released", real.released, ctx.released);
    expect("unread faults", real.faultPending.length, ctx.faults.length);
    expect("read faults still asleep", [...real.faultRead].length, ctx.readFaults.length);
    expect("unread events", real.eventQueue.length, ctx.events.length);
  }
}

function describe(outcome: CallOutcome): string {
  if ("signal" in outcome) return `signal ${outcome.signal}`;
  return outcome.value instanceof Uint8Array ? `${outcome.value.length} bytes` : String(outcome.value);
}

/** The page size the reference assumes must be the kernel's. */
if (PAGE !== PAGE_SIZE) throw new Error(`reference page size ${PAGE} differs from PAGE_SIZE ${PAGE_SIZE}`);
