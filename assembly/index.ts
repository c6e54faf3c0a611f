// The exports of the wasm core: the typed boundary the host calls.
//
// Every export returns a status (see status.ts) or a plain count, and none
// traps on bad input: roots must be tables this module handed out and
// addresses must be whole numbers below TASK_SIZE, or the call returns
// EINVAL without touching memory. Addresses travel as f64, which holds any
// 48-bit address exactly and avoids BigInt at the boundary.

import { OK, EINVAL } from "./status";
import {
  PAGE_SHIFT, FRAME_BENCH, FRAME_FREE, FRAME_PAGE, FRAME_ROOT, framesInit, framesReset, frameKind, framesUsedCount, framesCapacity, framesAllocContiguous,
  frameRefcount, frameBase, ioBase, ioSize, zeroFrame, framesLayout, FRAMES_LAYOUT_WORDS, limitMemoryGrowthForTesting,
} from "./frames";
import { TASK_SIZE, pgdAlloc, pgdFree, pteRead, freePteTables, walkCacheFlush } from "./pgtable";
import { setCopyKernel, getCopyKernel, copyPagesBench } from "./copy";
import { mfillCopy, mfillZeropage, mfillPoison, movePages, pagesDone } from "./mfill";
import { mwriteprotectRange } from "./protect";
import { cacheEntry, cacheHwpoison, cacheFindOrAddZero, cacheLookup, cachePunchHole, mapFrame, mfillContinue, mfillShmem } from "./shmem";
import { copyPageRange, zapPageRange, countPresent, movePageTables } from "./memory";
import { accessVm, doAnonymousPage } from "./access";
import { pteWalkBench } from "./walk";

const TASK_SIZE_F64: f64 = <f64>TASK_SIZE;

// @ts-ignore: decorator
@inline function validAddress(va: f64): bool {
  // NaN fails both comparisons.
  return va >= 0 && va < TASK_SIZE_F64 && va == Math.floor(va);
}

// @ts-ignore: decorator
@inline function validRange(va: f64, pages: u32): bool {
  return validAddress(va) && va + <f64>pages * 4096 <= TASK_SIZE_F64 && (<u64>va & 4095) == 0;
}

// @ts-ignore: decorator
@inline function validRoot(root: u32): bool {
  return frameKind(<usize>root) == FRAME_ROOT;
}

/** Returns whether [start, start + pages frames) was handed out by frames_alloc_contiguous. */
function benchBuffer(start: u32, pages: u32): bool {
  if (pages == 0) return false;
  for (let i: u32 = 0; i < pages; i++) {
    if (frameKind(<usize>start + (<usize>i << PAGE_SHIFT)) != FRAME_BENCH) return false;
  }
  return true;
}

export function init(capFrames: u32, ioPages: u32): i32 {
  return framesInit(capFrames, ioPages);
}

/** Frees every frame at once (all page tables and pages), for a kernel reused between runs. */
export function reset(): i32 {
  const status = framesReset();
  walkCacheFlush();
  return status;
}

export function io_base(): u32 {
  return <u32>ioBase;
}

export function io_size(): u32 {
  return ioSize;
}

export function frame_base(): u32 {
  return <u32>frameBase;
}

export function zero_frame(): u32 {
  return <u32>zeroFrame;
}

export function frames_used(): u32 {
  return framesUsedCount();
}

export function frames_capacity(): u32 {
  return framesCapacity();
}

// Static data below __heap_base, so filling it never touches the frame pool.
const framesLayoutRecord: usize = memory.data(<i32>(FRAMES_LAYOUT_WORDS * 4), 4);

/**
 * Refreshes a record of the frame pool's layout (see framesLayout) and
 * returns its address, for the host's invariant checker. Valid before init,
 * when every word is 0.
 */
export function frames_layout(): u32 {
  framesLayout(framesLayoutRecord);
  return <u32>framesLayoutRecord;
}

export function frame_refcount(frame: u32): u32 {
  return frameKind(<usize>frame) != FRAME_FREE ? frameRefcount(<usize>frame) : 0;
}

/** Number of pages (or bytes, for access_vm) the last range call completed. */
export function pages_done(): u32 {
  return pagesDone;
}

/** Returns a new empty top-level table, or 0 when no frame is left. */
export function pgd_alloc(): u32 {
  return <u32>pgdAlloc();
}

/** Zaps every page of the tree and frees all its tables. */
export function pgd_free(root: u32): i32 {
  if (!validRoot(root)) return EINVAL;
  zapPageRange(<usize>root, 0, TASK_SIZE);
  pgdFree(<usize>root);
  return OK;
}

/** Returns the PTE for `va` (entries fit in 32 bits; read it as unsigned). */
export function pte_read(root: u32, va: f64): u32 {
  if (!validRoot(root) || !validAddress(va)) return 0;
  return <u32>pteRead(<usize>root, <u64>va);
}

/**
 * Runs the UFFDIO_COPY page loop and returns pages filled * 4096 + status
 * in one f64, which saves the host a second call per ioctl (the status is
 * below 4096, the pages below 2^36).
 */
export function mfill_copy(dstRoot: u32, dst: f64, srcRoot: u32, src: f64, pages: u32, pteFlags: u32): f64 {
  if (!validRoot(dstRoot) || !validRoot(srcRoot) || !validRange(dst, pages)) return EINVAL;
  if (!validAddress(src) || src + (<f64>pages + 1) * 4096 > TASK_SIZE_F64) return EINVAL;
  const status = mfillCopy(<usize>dstRoot, <u64>dst, <usize>srcRoot, <u64>src, pages, <u64>pteFlags & 0x402);
  return <f64>pagesDone * 4096 + <f64>status;
}

export function mfill_zeropage(dstRoot: u32, dst: f64, pages: u32): i32 {
  if (!validRoot(dstRoot) || !validRange(dst, pages)) return EINVAL;
  return mfillZeropage(<usize>dstRoot, <u64>dst, pages);
}

export function copy_page_range(dstRoot: u32, srcRoot: u32, start: f64, pages: u32, flags: u32): i32 {
  if (!validRoot(dstRoot) || !validRoot(srcRoot) || dstRoot == srcRoot || !validRange(start, pages)) return EINVAL;
  const from = <u64>start;
  return copyPageRange(<usize>dstRoot, <usize>srcRoot, from, from + (<u64>pages << PAGE_SHIFT), flags);
}

/** Zaps the range; `keepUffdWp` non-zero leaves uffd-wp markers where protected entries were. */
export function zap_page_range(root: u32, start: f64, pages: u32, keepUffdWp: u32): i32 {
  if (!validRoot(root) || !validRange(start, pages)) return EINVAL;
  const from = <u64>start;
  return zapPageRange(<usize>root, from, from + (<u64>pages << PAGE_SHIFT), keepUffdWp != 0);
}

/** Frees the PTE tables wholly inside the range; its entries must be zapped. */
export function free_pgtables(root: u32, start: f64, pages: u32): i32 {
  if (!validRoot(root) || !validRange(start, pages)) return EINVAL;
  const from = <u64>start;
  freePteTables(<usize>root, from, from + (<u64>pages << PAGE_SHIFT));
  return OK;
}

export function count_present(root: u32, start: f64, pages: u32): u32 {
  if (!validRoot(root) || !validRange(start, pages)) return 0;
  const from = <u64>start;
  return countPresent(<usize>root, from, from + (<u64>pages << PAGE_SHIFT));
}

/** Moves `len` bytes between the process at `va` and the start of the I/O window. */
export function access_vm(root: u32, va: f64, len: u32, flags: u32): i32 {
  if (!validRoot(root) || !validAddress(va) || len > ioSize) return EINVAL;
  if (va + <f64>len > TASK_SIZE_F64) return EINVAL;
  return accessVm(<usize>root, <u64>va, len, ioBase, flags);
}

export function do_anonymous_page(root: u32, va: f64, write: u32): i32 {
  if (!validRoot(root) || !validAddress(va)) return EINVAL;
  return doAnonymousPage(<usize>root, <u64>va & ~(<u64>4095), write != 0);
}

export function set_copy_kernel(kernel: i32): i32 {
  return setCopyKernel(kernel) ? OK : EINVAL;
}

export function get_copy_kernel(): i32 {
  return getCopyKernel();
}

/** Takes `count` contiguous frames for a benchmark buffer; 0 when they do not fit. */
export function frames_alloc_contiguous(count: u32): u32 {
  return <u32>framesAllocContiguous(count);
}

/**
 * Test hook: makes growth of linear memory past `wasmPages` 64 KiB pages
 * fail as a failed memory.grow does. 0 or a reset removes the limit.
 * Returns the previous limit. Only tests call it.
 */
export function limit_memory_growth_for_testing(wasmPages: u32): u32 {
  return limitMemoryGrowthForTesting(wasmPages);
}

/**
 * Times the walk: looks up `pages` PTEs from `start` `rounds` times, in
 * ascending order or pseudo-random with flags bit 0 (see walk.ts). Returns
 * the present PTEs found, or -EINVAL for a bad root, range or page count.
 */
export function pte_walk_bench(root: u32, start: f64, pages: u32, flags: u32, seed: u32, rounds: u32): f64 {
  if (!validRoot(root) || pages == 0 || !validRange(start, pages) || flags > 1) return -<f64>EINVAL;
  return pteWalkBench(<usize>root, <u64>start, pages, flags, seed, rounds);
}

export function copy_pages_bench(kernel: i32, dst: u32, dstPages: u32, src: u32, srcPages: u32, count: u32, rounds: u32): i32 {
  if (!benchBuffer(dst, dstPages) || !benchBuffer(src, srcPages)) return EINVAL;
  return copyPagesBench(kernel, <usize>dst, dstPages, <usize>src, srcPages, count, rounds);
}

export function mfill_poison(dstRoot: u32, dst: f64, pages: u32): i32 {
  if (!validRoot(dstRoot) || !validRange(dst, pages)) return EINVAL;
  return mfillPoison(<usize>dstRoot, <u64>dst, pages);
}

export function move_pages(root: u32, dst: f64, src: f64, pages: u32, flags: u32): i32 {
  if (!validRoot(root) || !validRange(dst, pages) || !validRange(src, pages)) return EINVAL;
  return movePages(<usize>root, <u64>dst, <u64>src, pages, flags);
}

export function mwriteprotect_range(root: u32, start: f64, pages: u32, flags: u32): i32 {
  if (!validRoot(root) || !validRange(start, pages)) return EINVAL;
  const from = <u64>start;
  return mwriteprotectRange(<usize>root, from, from + (<u64>pages << PAGE_SHIFT), flags);
}

/** Moves the entries of [from, from + pages) to `to` (mremap); the ranges must not overlap. */
export function move_page_tables(root: u32, from: f64, to: f64, pages: u32): i32 {
  if (!validRoot(root) || !validRange(from, pages) || !validRange(to, pages)) return EINVAL;
  const span = <f64>pages * 4096;
  if (from < to + span && to < from + span) return EINVAL;
  return movePageTables(<usize>root, <u64>from, <u64>to, pages);
}

/** Returns the frame in the cache tree `cache` at file offset `off`, or 0. */
export function cache_lookup(cache: u32, off: f64): u32 {
  if (!validRoot(cache) || !validAddress(off)) return 0;
  return <u32>cacheLookup(<usize>cache, <u64>off);
}

/** Returns the frame cached at `off`, adding a zeroed one for a hole; 0 when no frame is left. */
export function cache_find_or_add_zero(cache: u32, off: f64): u32 {
  if (!validRoot(cache) || !validRange(off, 1)) return 0;
  return <u32>cacheFindOrAddZero(<usize>cache, <u64>off);
}

export function cache_punch_hole(cache: u32, off: f64, pages: u32): i32 {
  if (!validRoot(cache) || !validRange(off, pages)) return EINVAL;
  return cachePunchHole(<usize>cache, <u64>off, pages);
}

/** Maps the live frame `frame` at `va`, taking a reference; a populated entry is left alone. */
export function map_frame(root: u32, va: f64, frame: u32, pteFlags: u32): i32 {
  if (!validRoot(root) || !validRange(va, 1) || frameKind(<usize>frame) != FRAME_PAGE) return EINVAL;
  return mapFrame(<usize>root, <u64>va, <usize>frame, <u64>pteFlags & 0x402);
}

export function mfill_shmem(dstRoot: u32, dst: f64, cache: u32, off: f64, srcRoot: u32, src: f64, pages: u32, pteFlags: u32, zero: u32): i32 {
  if (!validRoot(dstRoot) || !validRoot(cache) || !validRoot(srcRoot)) return EINVAL;
  if (!validRange(dst, pages) || !validRange(off, pages)) return EINVAL;
  if (zero == 0 && (!validAddress(src) || src + (<f64>pages + 1) * 4096 > TASK_SIZE_F64)) return EINVAL;
  return mfillShmem(<usize>dstRoot, <u64>dst, <usize>cache, <u64>off, <usize>srcRoot, <u64>src, pages, <u64>pteFlags & 0x402, zero != 0);
}

export function mfill_continue(dstRoot: u32, dst: f64, cache: u32, off: f64, pages: u32, pteFlags: u32): i32 {
  if (!validRoot(dstRoot) || !validRoot(cache) || !validRange(dst, pages) || !validRange(off, pages)) return EINVAL;
  return mfillContinue(<usize>dstRoot, <u64>dst, <usize>cache, <u64>off, pages, <u64>pteFlags & 0x402);
}

/** Returns the raw cache entry at `off` (frame | PRESENT, with POISON for a memory error), or 0. */
export function cache_entry(cache: u32, off: f64): u32 {
  if (!validRoot(cache) || !validAddress(off)) return 0;
  return <u32>cacheEntry(<usize>cache, <u64>off);
}

/** Marks the cached page at `off` as hit by a memory error; EINVAL when the cache has none. */
export function cache_hwpoison(cache: u32, off: f64): i32 {
  if (!validRoot(cache) || !validRange(off, 1)) return EINVAL;
  return cacheHwpoison(<usize>cache, <u64>off) ? OK : EINVAL;
}
