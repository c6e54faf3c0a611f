// The simulated kernel: physical memory (the wasm core), processes, the
// userfaultfd contexts, and the version-dependent behaviour.

import { ENOMEM, PAGE_SIZE } from "../constants.js";
import { KernelError } from "../errors.js";
import { WasmCore, type CoreBuild } from "../wasm/core.js";
import type { GateMode, UffdContext } from "../uffd/context.js";
import { kernelProfile, type KernelProfile, type KernelVersion } from "./profile.js";
import { MappedFile, type FileKind } from "./file.js";
import { Process } from "./process.js";
import type { Scheduler } from "../sched/scheduler.js";

export interface KernelOptions {
  /** The kernel version to behave as (default "6.18"); see KERNEL_VERSIONS. */
  kernel?: KernelVersion;
  /**
   * With false, COPY and ZEROPAGE go through while a non-cooperative event
   * is pending, as before Linux 4.18, whatever the version. True (the
   * default) keeps the version's gate; it is an error with kernel "4.17".
   */
  mmapChangingGate?: boolean;
  /**
   * The most simulated physical memory, in bytes: the frame cap is
   * maxMemory / 4096, and frames run out (ENOMEM) there. Default 1 GiB, at
   * most MAX_MEMORY. Linear memory grows on demand, so a large cap costs
   * host memory only for the frames in use.
   */
  maxMemory?: number;
  /** Lowest address mmap and the range checks accept (vm.mmap_min_addr; default 65536). */
  mmapMinAddr?: number;
  /** vm.unprivileged_userfaultfd: let unprivileged processes create any userfaultfd (default false). */
  unprivilegedUserfaultfd?: boolean;
  /** The wasm build to run: "release" (default) or "debug", with assertions on. */
  build?: CoreBuild;
}

/** The names KernelOptions accepts. */
const KERNEL_OPTION_NAMES: readonly string[] = ["kernel", "mmapChangingGate", "maxMemory", "mmapMinAddr", "unprivilegedUserfaultfd", "build"];

/** Deterministic counts of work done, for benchmarks and tests. */
export interface KernelStats {
  /** Calls of UFFDIO_COPY, ZEROPAGE, CONTINUE, POISON, MOVE and WRITEPROTECT after UFFDIO_API, failed ones included. */
  ioctls: number;
  pagesCopied: number;
  pagesZeroed: number;
  /** Calls that returned EAGAIN, for any of its causes. */
  eagain: number;
  /** Faults queued on a userfaultfd. */
  faults: number;
  /** Present PTEs copied by fork. */
  ptesCopied: number;
  forks: number;
}

/** Returns `options[field]`, undefined when absent; throws TypeError unless `options` is an object and the field a boolean. */
function optionalBoolean(options: object, call: string, field: string): boolean | undefined {
  if (typeof options !== "object" || options === null) throw new TypeError(`${call}: options must be an object`);
  const value = (options as Record<string, unknown>)[field];
  if (value !== undefined && typeof value !== "boolean") throw new TypeError(`${call}: ${field} must be a boolean, got ${typeof value}`);
  return value as boolean | undefined;
}

/** I/O window for process reads and writes: 256 KiB, so one access call moves up to 64 pages. */
const IO_WINDOW_PAGES = 64;
const DEFAULT_MAX_MEMORY = 1 << 30;

/**
 * The largest maxMemory supported: 4080 MiB (4 GiB - 16 MiB), 1,044,480
 * frames. wasm32 linear memory is at most 4 GiB, and besides the frames it
 * contains 9 bytes of metadata per frame (9 MiB at this size), the 256 KiB
 * I/O window and the module's static data. With today's core the layout
 * fits up to 1,046,212 frames (about 4086.8 MiB), and the 16 MiB margin
 * keeps this constant valid as the static data grows.
 */
export const MAX_MEMORY = 4080 * 1024 * 1024;
/** The largest frame cap: MAX_MEMORY / 4096 = 1,044,480 frames of 4 KiB. */
export const MAX_FRAMES = MAX_MEMORY / PAGE_SIZE;

export class Kernel {
  readonly core: WasmCore;
  readonly profile: KernelProfile;
  readonly gateMode: GateMode;
  /** Whether a gate EAGAIN writes -EAGAIN to the out-field (Linux 6.15 and later). */
  readonly writesOutFieldOnGate: boolean;
  readonly mmapMinAddr: number;
  readonly unprivilegedUserfaultfd: boolean;
  readonly processes = new Map<number, Process>();
  /** Live userfaultfd contexts, for exit's wake-up of blocked faults. */
  readonly contexts = new Set<UffdContext>();
  /** Files whose page cache is still allocated. */
  readonly files = new Set<MappedFile>();
  readonly stats: KernelStats = { ioctls: 0, pagesCopied: 0, pagesZeroed: 0, eagain: 0, faults: 0, ptesCopied: 0, forks: 0 };
  private nextPid = 1;
  /** The scheduler that runs simulated threads, or null for plain promise order. */
  scheduler: Scheduler | null = null;

  private constructor(core: WasmCore, profile: KernelProfile, options: KernelOptions) {
    this.core = core;
    this.profile = profile;
    this.gateMode = options.mmapChangingGate === false ? "none" : profile.gate;
    this.writesOutFieldOnGate = profile.outFieldOnGate;
    this.mmapMinAddr = options.mmapMinAddr ?? 65536;
    this.unprivilegedUserfaultfd = options.unprivilegedUserfaultfd === true;
    core.onFailure = () => this.wakeSleepersOnFailure();
  }

  /**
   * Wakes every thread asleep on a userfaultfd once the core has failed:
   * blocked faults retry, event producers and waiting reads resume, and
   * each then meets the failure check and rejects with KernelFailedError
   * instead of waiting forever.
   */
  private wakeSleepersOnFailure(): void {
    for (const ctx of this.contexts) ctx.wakeEverySleeper();
  }

  /**
   * Creates a kernel. Throws TypeError for options of the wrong type and
   * RangeError for a memory size that wasm32 cannot hold.
   */
  static async create(options: KernelOptions = {}): Promise<Kernel> {
    if (typeof options !== "object" || options === null) throw new TypeError("options must be an object");
    // A misspelt option would otherwise leave its default in force unnoticed.
    for (const name of Object.keys(options)) {
      if (!KERNEL_OPTION_NAMES.includes(name)) throw new TypeError(`unknown option ${JSON.stringify(name)}; the options are ${KERNEL_OPTION_NAMES.join(", ")}`);
    }
    // Only an absent option takes its default; null is a wrong type.
    const profile = kernelProfile(options.kernel === undefined ? "6.18" : options.kernel);
    const gate = optionalBoolean(options, "Kernel.create", "mmapChangingGate");
    if (gate === true && profile.gate === "none") {
      throw new RangeError(`kernel ${profile.version} has no mmap_changing gate; use kernel "4.18" or later`);
    }
    const maxMemory = options.maxMemory === undefined ? DEFAULT_MAX_MEMORY : options.maxMemory;
    if (typeof maxMemory !== "number") throw new TypeError(`maxMemory must be a number, got ${typeof maxMemory}`);
    if (!Number.isSafeInteger(maxMemory) || maxMemory < 2 * PAGE_SIZE) {
      throw new RangeError(`maxMemory must be a whole number of bytes >= 8192, got ${String(maxMemory)}`);
    }
    if (maxMemory > MAX_MEMORY) {
      throw new RangeError(`maxMemory ${maxMemory} is above the maximum MAX_MEMORY = ${MAX_MEMORY} bytes (${MAX_FRAMES} frames of 4 KiB)`);
    }
    const build = options.build === undefined ? "release" : options.build;
    if (build !== "release" && build !== "debug") throw new TypeError(`build must be "release" or "debug", got ${String(build)}`);
    optionalBoolean(options, "Kernel.create", "unprivilegedUserfaultfd");
    const minAddr = options.mmapMinAddr === undefined ? 65536 : options.mmapMinAddr;
    if (typeof minAddr !== "number") throw new TypeError(`mmapMinAddr must be a number, got ${typeof minAddr}`);
    if (!Number.isSafeInteger(minAddr) || minAddr < 0 || minAddr % PAGE_SIZE !== 0) {
      throw new RangeError(`mmapMinAddr must be a page-aligned whole number, got ${String(minAddr)}`);
    }
    const core = await WasmCore.create(build, Math.floor(maxMemory / PAGE_SIZE), IO_WINDOW_PAGES);
    return new Kernel(core, profile, options);
  }

  /**
   * Returns the kernel to its state right after create(): every process,
   * userfaultfd, file and frame is dropped at once, and the counters and
   * process ids start again. Much cheaper than creating a kernel, for
   * running many short scenarios. Objects from before the reset must not
   * be used after it. A kernel whose wasm core failed cannot be reset: this
   * throws KernelFailedError, because the failure may have damaged memory
   * that the reset keeps (the layout, the grown memory).
   */
  reset(): void {
    this.core.checkUsable();
    for (const process of this.processes.values()) process.markExited();
    this.processes.clear();
    this.contexts.clear();
    for (const file of this.files) file.cache = 0;
    this.files.clear();
    const status = this.core.exports.reset();
    if (status !== 0) throw new Error(`wasm core reset failed with status ${status}`);
    for (const key of Object.keys(this.stats) as (keyof KernelStats)[]) this.stats[key] = 0;
    this.nextPid = 1;
    this.scheduler = null;
  }

  /**
   * Marks a point inside a system call where the kernel may be preempted
   * (for example between dropping and retaking mmap_lock). With a scheduler
   * running a thread, returns the promise of the yield; otherwise null, and
   * the caller goes on synchronously.
   */
  preemptionPoint(label: string): Promise<void> | null {
    const thread = this.scheduler?.currentThread ?? null;
    return thread === null ? null : thread.yield(label);
  }

  /**
   * Blocks the calling simulated thread until `executor`'s wake function
   * is called: every sleep of the model goes through here, so an attached
   * scheduler sees each wake. Without a scheduler it is a plain promise.
   */
  waitFor<T>(waitsFor: string, executor: (wake: (value: T) => void) => void): Promise<T> {
    if (typeof executor !== "function") throw new TypeError(`waitFor: executor must be a function, got ${executor === null ? "null" : typeof executor}`);
    return this.scheduler === null ? new Promise<T>(executor) : this.scheduler.waitFor(waitsFor, executor);
  }

  /**
   * Creates a process with an empty address space; `privileged: false`
   * drops CAP_SYS_PTRACE (the default is a root process). Throws
   * KernelError (ENOMEM) when no frame is left for its page table.
   */
  createProcess(options: { privileged?: boolean } = {}): Process {
    const privileged = optionalBoolean(options, "createProcess", "privileged") ?? true;
    const process = this.spawnProcess(privileged);
    if (process === null) throw new KernelError(ENOMEM, "createProcess: no frame left for a page table");
    return process;
  }

  /** Creates a process, or returns null when no frame is left for its page table (fork's path; createProcess is the API). */
  spawnProcess(privileged = true): Process | null {
    if (typeof privileged !== "boolean") throw new TypeError(`spawnProcess: privileged must be a boolean, got ${typeof privileged}`);
    const pgd = this.core.exports.pgd_alloc() >>> 0;
    if (pgd === 0) return null;
    const process = new Process(this, this.nextPid++, pgd, privileged);
    this.processes.set(process.pid, process);
    return process;
  }

  /**
   * Creates a shmem file of `size` bytes (memfd_create(2) and ftruncate):
   * mappings of it can be registered with userfaultfd, MINOR mode included.
   * With `readOnly` the handle is as if reopened O_RDONLY: a shared mapping
   * of it cannot be made writable, and registering it fails with EPERM.
   */
  memfdCreate(name: string, size: number, options: { readOnly?: boolean } = {}): MappedFile {
    return this.createMappedFile("shmem", name, size, optionalBoolean(options, "memfdCreate", "readOnly") ?? false);
  }

  /**
   * Creates a regular (non-shmem) file of `size` bytes, opened read-only
   * with `readOnly`. Its mappings cannot be registered with userfaultfd.
   */
  createFile(name: string, size: number, options: { readOnly?: boolean } = {}): MappedFile {
    return this.createMappedFile("regular", name, size, optionalBoolean(options, "createFile", "readOnly") ?? false);
  }

  /** Creates the hidden shmem file behind a shared anonymous mapping, closed from the start (mmap's path). */
  createAnonymousShmem(size: number): MappedFile | null {
    if (typeof size !== "number" || !Number.isSafeInteger(size) || size <= 0 || size % PAGE_SIZE !== 0) {
      throw new RangeError(`createAnonymousShmem: size must be a whole number of pages, got ${String(size)}`);
    }
    const cache = this.core.exports.pgd_alloc() >>> 0;
    if (cache === 0) return null;
    const file = new MappedFile(this, "shmem", "dev/zero (shared)", size, false, cache);
    file.closed = true;
    this.files.add(file);
    return file;
  }

  private createMappedFile(kind: FileKind, name: string, size: number, readOnly: boolean): MappedFile {
    if (typeof name !== "string") throw new TypeError("name must be a string");
    if (typeof size !== "number") throw new TypeError(`size must be a number, got ${size === null ? "null" : typeof size}`);
    if (!Number.isSafeInteger(size) || size < 0) {
      throw new RangeError(`size must be a whole number of bytes, got ${String(size)}`);
    }
    const cache = this.core.exports.pgd_alloc() >>> 0;
    if (cache === 0) throw new KernelError(ENOMEM, `no frame left for the page cache of ${name}`);
    const file = new MappedFile(this, kind, name, size, readOnly, cache);
    this.files.add(file);
    return file;
  }

  /** Frees the page cache of every closed file that no live VMA maps. */
  releaseUnusedFiles(): void {
    this.core.checkUsable();
    for (const file of this.files) {
      if (!file.closed) continue;
      let mapped = false;
      for (const process of this.processes.values()) {
        if (process.mm.vmaList().some((vma) => vma.file === file)) {
          mapped = true;
          break;
        }
      }
      if (mapped) continue;
      this.core.exports.pgd_free(file.cache);
      file.cache = 0;
      this.files.delete(file);
    }
  }

  /** Frames in use (page tables, pages and the zero frame). */
  get framesUsed(): number {
    return this.core.exports.frames_used() >>> 0;
  }

  /** The maximum number of frames this kernel can have in use. */
  get framesCapacity(): number {
    return this.core.exports.frames_capacity() >>> 0;
  }

  /**
   * The error that made this kernel unusable (the first throw out of its
   * wasm core), or null. Once set, every method of the kernel and of its
   * processes, userfaultfds and files throws KernelFailedError.
   */
  get failure(): unknown {
    return this.core.failure;
  }

  /** SHA-256 of the wasm binary this kernel runs. */
  get wasmSha256(): string {
    return this.core.sha256;
  }
}
