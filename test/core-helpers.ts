// Setup and accessors for the tests that drive the wasm core directly.

import { ACCESS_VMA_WRITE, ACCESS_WRITE, PTE_FRAME_MASK, WasmCore } from "../src/wasm/core.js";

export const PAGE = 4096;
export const EEXIST = 17;
export const ENOMEM = 12;
export const EINVAL = 22;
export const TASK_SIZE = 2 ** 47;
/** A 2 MiB aligned address, so pages from here share one PTE table. */
export const VA = 0x1000_0000;
/** The next 2 MiB region: same upper tables as VA, its own PTE table. */
export const VB = VA + 0x20_0000;
export const RW = ACCESS_WRITE | ACCESS_VMA_WRITE;

/** Creates a debug-build core with room for `capFrames` frames. */
export function newCore(capFrames = 1024, ioPages = 4): Promise<WasmCore> {
  return WasmCore.create("debug", capFrames, ioPages);
}

/** Returns a page whose bytes vary within the page and between seeds. */
export function pattern(seed: number): Uint8Array {
  return Uint8Array.from({ length: PAGE }, (_, i) => (i * 7 + seed * 13 + (i >> 8)) & 255);
}

export function pte(core: WasmCore, root: number, va: number): number {
  return core.exports.pte_read(root, va) >>> 0;
}

export function frameOf(core: WasmCore, root: number, va: number): number {
  return (pte(core, root, va) & PTE_FRAME_MASK) >>> 0;
}

/** Maps a writable page at `va` (if none is there) and stores `data` in it. */
export function store(core: WasmCore, root: number, va: number, data: Uint8Array): void {
  const status = core.exports.do_anonymous_page(root, va, 1);
  if (status !== 0) throw new Error(`do_anonymous_page at 0x${va.toString(16)} returned ${status}`);
  core.io().set(data);
  const written = core.exports.access_vm(root, va, data.length, RW);
  if (written !== 0) throw new Error(`access_vm write at 0x${va.toString(16)} returned ${written}`);
}

/** Reads `length` bytes at `va`; throws unless every byte is mapped. */
export function load(core: WasmCore, root: number, va: number, length = PAGE): Uint8Array {
  const status = core.exports.access_vm(root, va, length, 0);
  if (status !== 0) throw new Error(`access_vm read at 0x${va.toString(16)} returned ${status}`);
  return core.io().slice(0, length);
}

/**
 * Runs mfill_copy and returns its status; the export packs pages done * 4096
 * plus the status into one number, and pages_done() still reports the pages.
 */
export function mfillCopyStatus(exports: WasmCore["exports"], ...args: Parameters<WasmCore["exports"]["mfill_copy"]>): number {
  return exports.mfill_copy(...args) % PAGE;
}
