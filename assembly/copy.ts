// Page copy kernels: copy one 4 KiB page from `src` to `dst`.
//
// Two variants are kept so the benchmark can compare them on each machine:
// the bulk-memory `memory.copy` instruction and a 128-bit SIMD loop. The
// default is `memory.copy`: on x86-64 under Node 20 it runs at native memcpy
// speed both in cache and when streaming, while the SIMD loop falls behind
// when streaming (`uffd-wasm bench` prints both).

import { PAGE_SIZE } from "./frames";

export const COPY_KERNEL_MEMORY_COPY: i32 = 0;
export const COPY_KERNEL_SIMD: i32 = 1;

let copyKernel: i32 = COPY_KERNEL_MEMORY_COPY;

/** Selects the kernel used by every page copy; false for an unknown id. */
export function setCopyKernel(kernel: i32): bool {
  if (kernel != COPY_KERNEL_MEMORY_COPY && kernel != COPY_KERNEL_SIMD) return false;
  copyKernel = kernel;
  return true;
}

export function getCopyKernel(): i32 {
  return copyKernel;
}

// @ts-ignore: decorator
@inline export function copyPageMemoryCopy(dst: usize, src: usize): void {
  memory.copy(dst, src, PAGE_SIZE);
}

export function copyPageSimd(dst: usize, src: usize): void {
  // Four 16-byte lanes per step: 64 steps per page.
  for (let off: usize = 0; off < PAGE_SIZE; off += 64) {
    const a = v128.load(src + off);
    const b = v128.load(src + off + 16);
    const c = v128.load(src + off + 32);
    const d = v128.load(src + off + 48);
    v128.store(dst + off, a);
    v128.store(dst + off + 16, b);
    v128.store(dst + off + 32, c);
    v128.store(dst + off + 48, d);
  }
}

/** Copies one page with the selected kernel. */
// @ts-ignore: decorator
@inline export function copyPage(dst: usize, src: usize): void {
  if (copyKernel == COPY_KERNEL_MEMORY_COPY) copyPageMemoryCopy(dst, src);
  else copyPageSimd(dst, src);
}

/**
 * Copies `count` pages from `src` to `dst` with kernel `kernel`, `rounds`
 * times over. With `srcPages` or `dstPages` smaller than `count`, the
 * addresses wrap, so a small source can feed a large destination. Used by the
 * benchmark to time the kernels without a host call per page.
 */
export function copyPagesBench(kernel: i32, dst: usize, dstPages: u32, src: usize, srcPages: u32, count: u32, rounds: u32): i32 {
  if (dstPages == 0 || srcPages == 0) return 22;
  const dstEnd = dst + (<usize>dstPages << 12);
  const srcEnd = src + (<usize>srcPages << 12);
  const simd = kernel == COPY_KERNEL_SIMD;
  for (let r: u32 = 0; r < rounds; r++) {
    let to = dst;
    let from = src;
    // One loop per kernel, so the timed loop carries no per-page branch on it.
    if (simd) {
      for (let i: u32 = 0; i < count; i++) {
        copyPageSimd(to, from);
        to += PAGE_SIZE;
        from += PAGE_SIZE;
        if (to == dstEnd) to = dst;
        if (from == srcEnd) from = src;
      }
    } else {
      for (let i: u32 = 0; i < count; i++) {
        copyPageMemoryCopy(to, from);
        to += PAGE_SIZE;
        from += PAGE_SIZE;
        if (to == dstEnd) to = dst;
        if (from == srcEnd) from = src;
      }
    }
  }
  return 0;
}
