// Race scenarios: a lazy-restore monitor copying a target's pages in the
// background while the target forks, moves its memory with mremap, drops it
// with madvise(MADV_DONTNEED) or unmaps part of it, then reads the pages
// concerned. Every read is checked against the transparency oracle.
//
// Each scenario registers a few pages at REGION (snapshot page i is filled
// with the byte 0x41 + i) and runs two threads, "target" and "monitor",
// plus "child" once the target has forked. The monitor thread goes in the
// monitor column of traces, every other thread in the process column.
//
// Expected outcomes, which the race tests pin: with the gate off, fork and
// mremap have schedules that break the oracle. There a COPY lands after the
// page tables were copied or moved, so the monitor believes a page present
// where it is not. REMOVE and UNMAP do not break this monitor, which copies
// one page per call from a single thread. With the gate on, no schedule of
// any scenario breaks the oracle.

import {
  MAP_ANONYMOUS, MAP_FIXED, MAP_PRIVATE, MREMAP_FIXED, MREMAP_MAYMOVE, PAGE_SIZE, UFFD_API, UFFD_FEATURE_EVENT_FORK,
  UFFD_FEATURE_EVENT_REMAP, UFFD_FEATURE_EVENT_REMOVE, UFFD_FEATURE_EVENT_UNMAP, UFFDIO_REGISTER_MODE_MISSING,
} from "../constants.js";
import { SignalError } from "../errors.js";
import { Kernel } from "../mm/kernel.js";
import { MADV_DONTNEED } from "../mm/unmap.js";
import type { Process } from "../mm/process.js";
import { spawnLazyRestore } from "../monitor/lazy-restore.js";
import { Oracle, describeBytes, hex, runViolations, type ReadOutcome } from "../monitor/oracle.js";
import { Scheduler, type ChooseFn, type RunResult, type SimThread, type Step } from "../sched/scheduler.js";
import type { CoreBuild } from "../wasm/core.js";

export type ScenarioName = "fork" | "mremap" | "remove" | "unmap";

export const SCENARIO_NAMES: readonly ScenarioName[] = ["fork", "mremap", "remove", "unmap"];

/** Start of the target's registered pages. */
export const REGION = 0x1000_0000;
/** The free range the mremap scenario moves REGION to. */
export const MOVED = 0x2000_0000;
/** Name of the monitor's thread: its steps go in the monitor column. */
export const MONITOR_THREAD = "monitor";

/** Returns the byte that fills snapshot page `index`. */
export const snapshotByte = (index: number): number => 0x41 + index;

const at = (page: number) => REGION + page * PAGE_SIZE;

interface ScenarioSpec {
  readonly summary: string;
  /** Pages registered at REGION. */
  readonly pages: number;
  /** Event features of the target's userfaultfd. */
  readonly features: number;
  /** The target thread's work. */
  readonly workload: (target: TargetThread) => Promise<void>;
}

const SCENARIOS: Record<ScenarioName, ScenarioSpec> = {
  fork: {
    summary: "background COPY against fork; parent and child then read both pages",
    pages: 2,
    features: UFFD_FEATURE_EVENT_FORK,
    async workload(target) {
      await target.fork(async (child) => {
        await child.read(at(0));
        await child.read(at(1));
      });
      await target.read(at(0));
      await target.read(at(1));
    },
  },
  mremap: {
    summary: "background COPY against mremap(MREMAP_MAYMOVE | MREMAP_FIXED) of both pages; the target then reads them at the new address",
    pages: 2,
    features: UFFD_FEATURE_EVENT_REMAP,
    async workload(target) {
      await target.mremapFixed(REGION, 2 * PAGE_SIZE, MOVED);
      await target.read(MOVED);
      await target.read(MOVED + PAGE_SIZE);
    },
  },
  remove: {
    summary: "background COPY against madvise(MADV_DONTNEED) of page 1 after a write to it; the target then reads pages 0 and 1",
    pages: 2,
    features: UFFD_FEATURE_EVENT_REMOVE,
    async workload(target) {
      await target.write(at(1), 0x70);
      await target.madviseDontneed(at(1), PAGE_SIZE);
      await target.read(at(0));
      await target.read(at(1));
    },
  },
  unmap: {
    summary: "background COPY against munmap of page 1; the target then reads page 0, page 1 (SIGSEGV) and page 2",
    pages: 3,
    features: UFFD_FEATURE_EVENT_UNMAP,
    async workload(target) {
      await target.munmap(at(1), PAGE_SIZE);
      await target.read(at(0));
      await target.read(at(1));
      await target.read(at(2));
    },
  },
};

/** Returns what scenario `name` runs, in one line. */
export function scenarioSummary(name: ScenarioName): string {
  return SCENARIOS[name].summary;
}

export function isScenarioName(value: string): value is ScenarioName {
  return (SCENARIO_NAMES as readonly string[]).includes(value);
}

/**
 * Throws TypeError unless `name` is a string and `options` an object with
 * a boolean `gate`, and RangeError for a name not in SCENARIO_NAMES.
 */
export function checkScenarioArgs(name: unknown, options: unknown): void {
  if (typeof name !== "string") throw new TypeError(`scenario name must be a string, got ${name === null ? "null" : typeof name}`);
  if (!isScenarioName(name)) throw new RangeError(`unknown scenario ${JSON.stringify(name)}; expected one of ${SCENARIO_NAMES.join(", ")}`);
  if (typeof options !== "object" || options === null) throw new TypeError("options must be an object");
  const gate = (options as Record<string, unknown>).gate;
  if (typeof gate !== "boolean") throw new TypeError(`gate must be a boolean, got ${gate === null ? "null" : typeof gate}`);
}

export interface ScenarioOptions {
  /** Whether the kernel keeps the mmap_changing gate (Linux 4.18 and later) or runs without it. */
  gate: boolean;
  /** The scheduling strategy of the run. */
  choose: ChooseFn;
  /** The wasm build; default "release". */
  build?: CoreBuild;
}

export interface ScenarioRun {
  readonly scenario: ScenarioName;
  readonly gate: boolean;
  readonly result: RunResult;
  /** Oracle mismatches in read order, then a deadlock or a thread's error; empty when the run passes. */
  readonly violations: readonly string[];
  /** Every turn a thread took, in run order. */
  readonly steps: readonly Step[];
  readonly wasmSha256: string;
}

/** The state the target threads share: the kernel, the scheduler, the oracle and the count of running target threads. */
interface Env {
  readonly kernel: Kernel;
  readonly scheduler: Scheduler;
  readonly oracle: Oracle;
  running: number;
}

/** A target thread's system calls, each one step, with the oracle kept up to date and every read checked. */
class TargetThread {
  private readonly env: Env;
  private readonly thread: SimThread;
  private readonly process: Process;

  constructor(env: Env, thread: SimThread, process: Process) {
    this.env = env;
    this.thread = thread;
    this.process = process;
  }

  private get name(): string {
    return this.thread.name;
  }

  /** Reads one page at `address` and checks it against the oracle; a SIGSEGV is an outcome, not an error. */
  async read(address: number): Promise<void> {
    let outcome: ReadOutcome;
    try {
      outcome = await this.thread.op(`read ${hex(address)}`, () => this.process.read(address, PAGE_SIZE));
    } catch (error) {
      if (!(error instanceof SignalError)) throw error;
      outcome = error;
    }
    const read = outcome;
    this.thread.note(read instanceof SignalError ? `signal ${read.signo}` : () => describeBytes(read));
    const violation = this.env.oracle.checkRead(this.name, this.process.pid, address, PAGE_SIZE, outcome);
    if (violation !== null) this.thread.note(`VIOLATION: ${violation}`);
  }

  /** Fills the page at `address` with `byte`. */
  async write(address: number, byte: number): Promise<void> {
    const data = new Uint8Array(PAGE_SIZE).fill(byte);
    await this.thread.op(`write ${hex(address)} with 0x${byte.toString(16)}`, () => this.process.write(address, data));
    this.env.oracle.write(this.process.pid, address, data);
  }

  async madviseDontneed(address: number, length: number): Promise<void> {
    const result = await this.thread.op(`madvise ${hex(address)}, ${length} bytes, MADV_DONTNEED`, () => this.process.madvise(address, length, MADV_DONTNEED));
    this.expectResult("madvise", result, 0);
    this.env.oracle.zero(this.process.pid, address, address + length);
  }

  async munmap(address: number, length: number): Promise<void> {
    const result = await this.thread.op(`munmap ${hex(address)}, ${length} bytes`, () => this.process.munmap(address, length));
    this.expectResult("munmap", result, 0);
    this.env.oracle.unmap(this.process.pid, address, address + length);
  }

  /** Moves [from, from + length) to `to` with mremap(MREMAP_MAYMOVE | MREMAP_FIXED). */
  async mremapFixed(from: number, length: number, to: number): Promise<void> {
    const label = `mremap ${hex(from)} → ${hex(to)}, ${length} bytes`;
    const result = await this.thread.op(label, () => this.process.mremap(from, length, length, MREMAP_MAYMOVE | MREMAP_FIXED, to));
    this.expectResult("mremap", result, to);
    this.env.oracle.move(this.process.pid, from, to, length);
  }

  /** Forks; the child runs `body` on a new thread named "child". */
  async fork(body: (child: TargetThread) => Promise<void>): Promise<void> {
    const child = await this.thread.op("fork", () => this.process.fork());
    this.thread.note(`returns child pid ${child.pid}`);
    this.env.oracle.fork(this.process.pid, child.pid);
    spawnTarget(this.env, "child", child, body);
  }

  private expectResult(call: string, result: number, expected: number): void {
    this.thread.note(`returns ${result < 0 ? result : hex(result)}`);
    if (result !== expected) throw new Error(`${this.name}: ${call} returned ${result}, expected ${expected}`);
  }
}

/** Spawns a target thread for `process` running `body`; the monitor stops once no target thread runs. */
function spawnTarget(env: Env, name: string, process: Process, body: (target: TargetThread) => Promise<void>): void {
  env.running++;
  env.scheduler.spawn(name, async (thread) => {
    try {
      await body(new TargetThread(env, thread, process));
    } finally {
      env.running--;
    }
  });
}

/**
 * Idle kernels for the next run, one per gate setting and build. Creating
 * a kernel instantiates the wasm core, whose memory reserves 10 GiB of
 * address space (Node 20 on x86-64) until it is garbage collected, and an
 * exploration runs thousands of scenarios. A kernel is reset before reuse
 * and is never shared by two runs at once.
 */
const idleKernels = new Map<string, Kernel>();

async function acquireKernel(gate: boolean, build: CoreBuild): Promise<Kernel> {
  const key = `${gate}/${build}`;
  const idle = idleKernels.get(key);
  if (idle === undefined) return Kernel.create({ mmapChangingGate: gate, maxMemory: 8 << 20, build });
  idleKernels.delete(key);
  idle.reset();
  return idle;
}

function releaseKernel(kernel: Kernel, gate: boolean, build: CoreBuild): void {
  kernel.scheduler = null;
  idleKernels.set(`${gate}/${build}`, kernel);
}

/**
 * Runs scenario `name` once under `options.choose`, on a kernel of its
 * own. Throws what the strategy threw (ReplayMismatch for a replay that no
 * longer fits), Error when the setup fails, and TypeError or RangeError for
 * arguments of the wrong type or an unknown scenario.
 */
export async function runScenario(name: ScenarioName, options: ScenarioOptions): Promise<ScenarioRun> {
  checkScenarioArgs(name, options);
  if (typeof options.choose !== "function") throw new TypeError(`choose must be a strategy function, got ${typeof options.choose}`);
  const build = options.build ?? "release";
  const kernel = await acquireKernel(options.gate, build);
  try {
    return await runOn(kernel, name, options);
  } finally {
    releaseKernel(kernel, options.gate, build);
  }
}

async function runOn(kernel: Kernel, name: ScenarioName, options: ScenarioOptions): Promise<ScenarioRun> {
  const spec = SCENARIOS[name];
  const target = kernel.createProcess();
  const monitorProcess = kernel.createProcess();
  const length = spec.pages * PAGE_SIZE;
  if (target.mmap(length, { flags: MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, address: REGION }) !== REGION) {
    throw new Error(`scenario ${name}: mmap at ${hex(REGION)} failed`);
  }
  const own = target.userfaultfd();
  const api = own.api({ api: UFFD_API, features: spec.features });
  if (api.errno !== 0) throw new Error(`scenario ${name}: UFFDIO_API failed with errno ${api.errno}`);
  const uffd = own.dupInto(monitorProcess);
  own.close();
  const registered = uffd.register({ start: REGION, len: length, mode: UFFDIO_REGISTER_MODE_MISSING });
  if (registered.errno !== 0) throw new Error(`scenario ${name}: UFFDIO_REGISTER failed with errno ${registered.errno}`);

  // The snapshot lives in the monitor's memory; the oracle keeps its own copy.
  const staging = monitorProcess.mmap(length);
  const sources = new Map<number, number>();
  const pages = new Map<number, Uint8Array>();
  for (let i = 0; i < spec.pages; i++) {
    const contents = new Uint8Array(PAGE_SIZE).fill(snapshotByte(i));
    await monitorProcess.write(staging + i * PAGE_SIZE, contents);
    sources.set(at(i), staging + i * PAGE_SIZE);
    pages.set(at(i), contents);
  }
  const oracle = new Oracle();
  oracle.addProcess(target.pid, pages);

  const scheduler = new Scheduler(options.choose);
  kernel.scheduler = scheduler;
  const env: Env = { kernel, scheduler, oracle, running: 0 };
  spawnTarget(env, "target", target, spec.workload);
  spawnLazyRestore(scheduler, { uffd, snapshot: sources, targetDone: () => env.running === 0, threadName: MONITOR_THREAD });
  const result = await scheduler.run();
  if (result.status === "failed" && result.failedThread === undefined) throw result.error;
  return {
    scenario: name,
    gate: options.gate,
    result,
    violations: [...oracle.violations, ...runViolations(result)],
    steps: scheduler.steps,
    wasmSha256: kernel.wasmSha256,
  };
}
