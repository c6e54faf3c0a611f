// Shared setup for the tests: every kernel runs the debug wasm build, whose
// assertions trap on a broken invariant instead of corrupting state.

import { Kernel, type KernelOptions } from "../src/index.js";

export function createKernel(options: KernelOptions = {}): Promise<Kernel> {
  return Kernel.create({ build: "debug", maxMemory: 64 << 20, ...options });
}

/** A page of `PAGE_SIZE` bytes, all equal to `value`. */
export function pageOf(value: number, size = 4096): Uint8Array {
  return new Uint8Array(size).fill(value);
}
