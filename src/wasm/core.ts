// Loads the wasm core and gives it a typed face. The binaries are embedded
// (see assembly/build.mjs), so loading needs neither the file system nor
// fetch and works the same in Node and in a browser.

import { KernelFailedError } from "../errors.js";
import { debugSha256, debugWasm, releaseSha256, releaseWasm } from "./binaries.generated.js";

/** The raw exports of assembly/index.ts; u32 results must be read with `>>> 0`. */
export interface CoreExports {
  readonly memory: WebAssembly.Memory;
  init(capFrames: number, ioPages: number): number;
  reset(): number;
  io_base(): number;
  io_size(): number;
  frame_base(): number;
  zero_frame(): number;
  frames_used(): number;
  frames_capacity(): number;
  /** Refreshes the frame pool's layout record (ten u32 words, in the order of framesLayout in assembly/frames.ts) and returns its address. */
  frames_layout(): number;
  frame_refcount(frame: number): number;
  pages_done(): number;
  pgd_alloc(): number;
  pgd_free(root: number): number;
  pte_read(root: number, va: number): number;
  /** Returns pages filled * 4096 + status. */
  mfill_copy(dstRoot: number, dst: number, srcRoot: number, src: number, pages: number, pteFlags: number): number;
  mfill_zeropage(dstRoot: number, dst: number, pages: number): number;
  copy_page_range(dstRoot: number, srcRoot: number, start: number, pages: number, flags: number): number;
  zap_page_range(root: number, start: number, pages: number, keepUffdWp?: number): number;
  free_pgtables(root: number, start: number, pages: number): number;
  count_present(root: number, start: number, pages: number): number;
  access_vm(root: number, va: number, len: number, flags: number): number;
  do_anonymous_page(root: number, va: number, write: number): number;
  set_copy_kernel(kernel: number): number;
  get_copy_kernel(): number;
  frames_alloc_contiguous(count: number): number;
  copy_pages_bench(kernel: number, dst: number, dstPages: number, src: number, srcPages: number, count: number, rounds: number): number;
  /** Returns the present PTEs found over `rounds` walks of `pages` pages, or -EINVAL. */
  pte_walk_bench(root: number, start: number, pages: number, flags: number, seed: number, rounds: number): number;
  mfill_poison(dstRoot: number, dst: number, pages: number): number;
  move_pages(root: number, dst: number, src: number, pages: number, flags: number): number;
  mwriteprotect_range(root: number, start: number, pages: number, flags: number): number;
  move_page_tables(root: number, from: number, to: number, pages: number): number;
  cache_lookup(cache: number, off: number): number;
  cache_entry(cache: number, off: number): number;
  cache_hwpoison(cache: number, off: number): number;
  cache_find_or_add_zero(cache: number, off: number): number;
  cache_punch_hole(cache: number, off: number, pages: number): number;
  map_frame(root: number, va: number, frame: number, pteFlags: number): number;
  mfill_shmem(dstRoot: number, dst: number, cache: number, off: number, srcRoot: number, src: number, pages: number, pteFlags: number, zero: number): number;
  mfill_continue(dstRoot: number, dst: number, cache: number, off: number, pages: number, pteFlags: number): number;
  /** Test hook: growth of linear memory past `wasmPages` 64 KiB pages fails (0 removes the limit). */
  limit_memory_growth_for_testing(wasmPages: number): number;
}

export type CoreBuild = "release" | "debug";

// Status codes of assembly/status.ts that are not errno numbers.
export const SRC_FAULT = 1001;
export const FAULT_MISSING = 1002;
export const FAULT_WP = 1003;
export const FAULT_ACCESS = 1004;
export const FAULT_POISON = 1005;

// PTE bits of assembly/pgtable.ts.
export const PTE_PRESENT = 1 << 0;
export const PTE_WRITE = 1 << 1;
export const PTE_DIRTY = 1 << 6;
export const PTE_EXCLUSIVE = 1 << 8;
export const PTE_ZERO = 1 << 9;
export const PTE_UFFD_WP = 1 << 10;
export const PTE_POISON = 1 << 11;
export const PTE_FRAME_MASK = 0xfffff000;

// copy_page_range flags of assembly/memory.ts.
export const CPR_COW = 1;
export const CPR_KEEP_UFFD_WP = 2;

// access_vm flags of assembly/access.ts.
export const ACCESS_WRITE = 1;
export const ACCESS_VMA_WRITE = 2;
export const ACCESS_SHARED = 4;

// mwriteprotect_range flags of assembly/protect.ts.
export const WP_PROTECT = 1;
export const WP_MARKERS = 2;
export const WP_VMA_WRITE = 4;

// move_pages flags of assembly/mfill.ts.
export const MOVE_ALLOW_SRC_HOLES = 2;
export const MOVE_DST_WRITE = 4;

// pte_walk_bench flags of assembly/walk.ts.
export const WALK_RANDOM = 1;

export const COPY_KERNEL_MEMORY_COPY = 0;
export const COPY_KERNEL_SIMD = 1;

/** Raised when the wasm core aborts: a bug in the core, never bad input. */
export class WasmCoreAbort extends Error {
  override name = "WasmCoreAbort";
}

const modules = new Map<CoreBuild, Promise<WebAssembly.Module>>();

function decodeBase64(text: string): Uint8Array<ArrayBuffer> {
  const binary = atob(text);
  const bytes = new Uint8Array(new ArrayBuffer(binary.length));
  for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
  return bytes;
}

function compiled(build: CoreBuild): Promise<WebAssembly.Module> {
  let module = modules.get(build);
  if (!module) {
    module = WebAssembly.compile(decodeBase64(build === "release" ? releaseWasm : debugWasm));
    modules.set(build, module);
  }
  return module;
}

/** SHA-256 (hex) of the embedded wasm binary of `build`. */
export function wasmSha256(build: CoreBuild): string {
  if (build !== "release" && build !== "debug") throw new TypeError(`build must be "release" or "debug", got ${String(build)}`);
  return build === "release" ? releaseSha256 : debugSha256;
}

/** Reads an AssemblyScript string (UTF-16, byte length at ptr - 4) from memory. */
function liftString(memory: WebAssembly.Memory, ptr: number): string {
  if (!ptr) return "";
  const bytes = new Uint32Array(memory.buffer)[(ptr - 4) >>> 2] ?? 0;
  return String.fromCharCode(...new Uint16Array(memory.buffer, ptr, bytes >>> 1));
}

type ExportFunction = (...args: number[]) => number;
type Guard = (core: WasmCore, name: string, fn: ExportFunction) => ExportFunction;

// Wrappers by parameter count: each passes exactly the parameters the
// export declares, as a direct call would, and allocates nothing per call.
const GUARDS: readonly Guard[] = [
  (core, name, fn) => () => { core.checkUsable(); try { return fn(); } catch (error) { throw core.markFailed(name, error); } },
  (core, name, fn) => (a) => { core.checkUsable(); try { return fn(a); } catch (error) { throw core.markFailed(name, error); } },
  (core, name, fn) => (a, b) => { core.checkUsable(); try { return fn(a, b); } catch (error) { throw core.markFailed(name, error); } },
  (core, name, fn) => (a, b, c) => { core.checkUsable(); try { return fn(a, b, c); } catch (error) { throw core.markFailed(name, error); } },
  (core, name, fn) => (a, b, c, d) => { core.checkUsable(); try { return fn(a, b, c, d); } catch (error) { throw core.markFailed(name, error); } },
  (core, name, fn) => (a, b, c, d, e) => {
    core.checkUsable();
    try { return fn(a, b, c, d, e); } catch (error) { throw core.markFailed(name, error); }
  },
  (core, name, fn) => (a, b, c, d, e, f) => {
    core.checkUsable();
    try { return fn(a, b, c, d, e, f); } catch (error) { throw core.markFailed(name, error); }
  },
  (core, name, fn) => (a, b, c, d, e, f, g) => {
    core.checkUsable();
    try { return fn(a, b, c, d, e, f, g); } catch (error) { throw core.markFailed(name, error); }
  },
  (core, name, fn) => (a, b, c, d, e, f, g, h) => {
    core.checkUsable();
    try { return fn(a, b, c, d, e, f, g, h); } catch (error) { throw core.markFailed(name, error); }
  },
  (core, name, fn) => (a, b, c, d, e, f, g, h, i) => {
    core.checkUsable();
    try { return fn(a, b, c, d, e, f, g, h, i); } catch (error) { throw core.markFailed(name, error); }
  },
];

// Wrappers of their own for the exports on the hot paths (the fill ioctls
// and the access loop). V8 shares type feedback among all closures made
// from one function literal, so the inner call of a wrapper shared by many
// exports is megamorphic. In a loop of pte_read and pages_done calls on a
// 2-vCPU VM (Node 20), that cost about 5 ns a call, against 1 to 2 ns for
// a literal used by one export.
const HOT_GUARDS: Readonly<Record<string, Guard>> = {
  pages_done: (core, name, fn) => () => { core.checkUsable(); try { return fn(); } catch (error) { throw core.markFailed(name, error); } },
  pte_read: (core, name, fn) => (a, b) => { core.checkUsable(); try { return fn(a, b); } catch (error) { throw core.markFailed(name, error); } },
  mfill_zeropage: (core, name, fn) => (a, b, c) => {
    core.checkUsable();
    try { return fn(a, b, c); } catch (error) { throw core.markFailed(name, error); }
  },
  do_anonymous_page: (core, name, fn) => (a, b, c) => {
    core.checkUsable();
    try { return fn(a, b, c); } catch (error) { throw core.markFailed(name, error); }
  },
  access_vm: (core, name, fn) => (a, b, c, d) => {
    core.checkUsable();
    try { return fn(a, b, c, d); } catch (error) { throw core.markFailed(name, error); }
  },
  mfill_copy: (core, name, fn) => (a, b, c, d, e, f) => {
    core.checkUsable();
    try { return fn(a, b, c, d, e, f); } catch (error) { throw core.markFailed(name, error); }
  },
};

/** Returns `raw` with every function wrapped so that a throw marks `core` failed and a failed core throws. */
function guardExports(core: WasmCore, raw: CoreExports): CoreExports {
  const guarded: Record<string, unknown> = {};
  for (const [name, value] of Object.entries(raw)) {
    if (typeof value !== "function") {
      guarded[name] = value;
      continue;
    }
    const guard = HOT_GUARDS[name] ?? GUARDS[value.length];
    const wrapper = guard?.(core, name, value as ExportFunction);
    if (wrapper === undefined || wrapper.length !== value.length) {
      throw new Error(`wasm export ${name} has ${value.length} parameters, and no guard in src/wasm/core.ts passes that many`);
    }
    guarded[name] = wrapper;
  }
  return guarded as unknown as CoreExports;
}

/**
 * One instance of the wasm core with its I/O window.
 *
 * A throw out of any export (a trap, or WasmCoreAbort from the abort
 * import) is a bug in the core that may have left its memory half changed.
 * So the first one marks the core failed: that call rethrows the original
 * error, and every later call of an export, io() or bytes() throws
 * KernelFailedError naming it. Nothing clears the mark.
 */
export class WasmCore {
  readonly build: CoreBuild;
  readonly sha256: string;
  readonly exports: CoreExports;
  readonly ioBase: number;
  readonly ioSize: number;
  private view: Uint8Array;
  private failedExport = "";
  private failureValue: unknown = null;

  private constructor(build: CoreBuild, raw: CoreExports) {
    this.build = build;
    this.sha256 = wasmSha256(build);
    this.exports = guardExports(this, raw);
    this.ioBase = raw.io_base() >>> 0;
    this.ioSize = raw.io_size() >>> 0;
    this.view = new Uint8Array(raw.memory.buffer, this.ioBase, this.ioSize);
  }

  /**
   * Instantiates the core with room for `capFrames` frames and an I/O window
   * of `ioPages` pages. Throws RangeError when the layout cannot fit.
   */
  static async create(build: CoreBuild, capFrames: number, ioPages: number): Promise<WasmCore> {
    let memory: WebAssembly.Memory | undefined;
    const imports = {
      env: {
        abort(message: number, file: number, line: number, column: number): never {
          const text = memory ? `${liftString(memory, message)} at ${liftString(memory, file)}:${line}:${column}` : "abort";
          throw new WasmCoreAbort(`wasm core aborted: ${text}`);
        },
      },
    };
    const instance = await WebAssembly.instantiate(await compiled(build), imports);
    const exports = instance.exports as unknown as CoreExports;
    memory = exports.memory;
    const status = exports.init(capFrames, ioPages);
    if (status !== 0) {
      throw new RangeError(`wasm core cannot hold ${capFrames} frames and a ${ioPages}-page I/O window (status ${status})`);
    }
    return new WasmCore(build, exports);
  }

  /** The error the first failed export call threw, or null while the core is usable. */
  get failure(): unknown {
    return this.failureValue;
  }

  /** Throws KernelFailedError once an export call has failed. */
  checkUsable(): void {
    if (this.failedExport !== "") throw new KernelFailedError(this.failedExport, this.failureValue);
  }

  /** Records the first failure, of export `name` with `error`, and returns `error` for the caller to rethrow. */
  markFailed(name: string, error: unknown): unknown {
    if (this.failedExport === "") {
      this.failedExport = name;
      this.failureValue = error;
      this.onFailure?.();
    }
    return error;
  }

  /** Runs once, right after the first failure is recorded: the kernel wakes its sleepers there. */
  onFailure: (() => void) | null = null;

  /** Returns the I/O window, re-created after linear memory has grown. */
  io(): Uint8Array {
    this.checkUsable();
    // Growing memory detaches the old buffer, which empties every view on it:
    // a length check is much cheaper than reading memory.buffer each time.
    if (this.view.byteLength === 0) {
      this.view = new Uint8Array(this.exports.memory.buffer, this.ioBase, this.ioSize);
    }
    return this.view;
  }

  /** Returns a view of physical memory, for tests and benchmarks, valid until memory grows. */
  bytes(address: number, length: number): Uint8Array {
    this.checkUsable();
    return new Uint8Array(this.exports.memory.buffer, address, length);
  }
}
