// Physical frames: the pool of 4 KiB pages on wasm linear memory.
// Linux counterpart: the page allocator and struct page's _refcount.
//
// Layout of linear memory (addresses grow to the right):
//
//   0         __heap_base   metaBase                                          frameBase
//   +---------+-------------+---------------+----------------+----------+-------+----------------------------+
//   | AS data | (unused)    | refcount[cap] | freeQueue[cap] | kind[cap]| I/O   | frame 0 | frame 1 | ...      |
//   |         |             | u32 per frame | u32 indices    | u8 each  | window| (zero)  |         | grows -> |
//   +---------+-------------+---------------+----------------+----------+-------+----------------------------+
//
// Each frame's kind (FRAME_*) says what it is used for, so the exports can
// reject an address that is not a table root or a benchmark buffer instead
// of walking garbage. A frame is named by its linear-memory address, which is 4 KiB aligned, so a
// page-table entry can hold it directly (see pgtable.ts). Frame 0 is the
// shared zero frame: it is never written and never freed. Linear memory grows
// on demand in steps, and never past frameBase + cap * 4 KiB nor past the
// 4 GiB that wasm32 can address; running out is ENOMEM, never a trap.

import { OK, EINVAL, ENOMEM } from "./status";

export const PAGE_SHIFT: u32 = 12;
export const PAGE_SIZE: u32 = 4096;
const WASM_PAGE_SHIFT: u32 = 16;
const WASM_PAGES_MAX: u32 = 65536;

export const FRAME_FREE: u8 = 0;
export const FRAME_PAGE: u8 = 1;
export const FRAME_TABLE: u8 = 2;
export const FRAME_ROOT: u8 = 3;
export const FRAME_BENCH: u8 = 4;
export const FRAME_ZERO: u8 = 5;

let metaBase: usize = 0;
// Freed frames wait in a FIFO ring of frame indices. First in, first out
// keeps the order in which a range was freed: a zap frees ascending
// addresses, so refilling the range gets ascending frames again, which
// streams about twice as fast as the descending order a stack would give.
let freeQueueBase: usize = 0;
let freeHead: u32 = 0;
let freeCount: u32 = 0;
let kindBase: usize = 0;
export let ioBase: usize = 0;
export let ioSize: u32 = 0;
export let frameBase: usize = 0;
/** Address of the shared zero frame. */
export let zeroFrame: usize = 0;
let frameCap: u32 = 0;
/** Index of the first frame never handed out; frames from here on are zero. */
let frameNext: u32 = 0;
let framesUsed: u32 = 0;
let initialized: bool = false;

/**
 * Lays out metadata, I/O window and frame area for at most `cap` frames and
 * an I/O window of `ioPages` pages, then takes frame 0 as the zero frame.
 * Returns OK, EINVAL when called twice or with a zero size, or ENOMEM when
 * the layout does not fit in 4 GiB or memory cannot grow to hold it.
 */
export function framesInit(cap: u32, ioPages: u32): i32 {
  if (initialized || cap < 2 || ioPages == 0) return EINVAL;
  const base = (<u64>__heap_base + 15) & ~(<u64>15);
  const metaBytes = <u64>cap * 9;
  const ioStart = (base + metaBytes + PAGE_SIZE - 1) & ~(<u64>PAGE_SIZE - 1);
  const framesStart = ioStart + (<u64>ioPages << PAGE_SHIFT);
  const limit = <u64>WASM_PAGES_MAX << WASM_PAGE_SHIFT;
  if (framesStart + (<u64>cap << PAGE_SHIFT) > limit) return ENOMEM;
  poolEndPages = <u32>((framesStart + (<u64>cap << PAGE_SHIFT) + 0xffff) >> WASM_PAGE_SHIFT);
  // The metadata, the window and the zero frame must exist from the start.
  if (!ensureMemory(framesStart + PAGE_SIZE)) return ENOMEM;
  metaBase = <usize>base;
  freeQueueBase = metaBase + <usize>cap * 4;
  kindBase = freeQueueBase + <usize>cap * 4;
  ioBase = <usize>ioStart;
  ioSize = ioPages << PAGE_SHIFT;
  frameBase = <usize>framesStart;
  frameCap = cap;
  initialized = true;
  startEmpty();
  return OK;
}

/** Empties the pool's counters and free ring, then takes frame 0 as the zero frame again. */
function startEmpty(): void {
  frameNext = 0;
  freeHead = 0;
  freeCount = 0;
  framesUsed = 0;
  zeroFrame = frameAlloc(FRAME_ZERO);
}

/**
 * Returns the pool to its state right after framesInit, keeping the layout
 * and the memory already grown: every frame handed out is zeroed again, so
 * frames past frameNext stay zero as frameAllocZeroed assumes.
 */
export function framesReset(): i32 {
  if (!initialized) return EINVAL;
  memory.fill(frameBase, 0, <usize>frameNext << PAGE_SHIFT);
  memory.fill(metaBase, 0, <usize>frameNext << 2);
  memory.fill(kindBase, 0, <usize>frameNext);
  growLimitPages = WASM_PAGES_MAX;
  startEmpty();
  return OK;
}

/**
 * The size, in 64 KiB wasm pages, that growMemory refuses to pass: 65536
 * (4 GiB, all that wasm32 addresses) unless a test lowers it with
 * limitMemoryGrowthForTesting.
 */
let growLimitPages: u32 = WASM_PAGES_MAX;

/**
 * Test hook: makes every later growth of linear memory past `wasmPages`
 * fail exactly as a failed memory.grow does, so tests can run the
 * allocation paths out of memory before the frame cap. 0, a value above
 * 65536, or framesReset removes the limit. Returns the previous limit.
 */
export function limitMemoryGrowthForTesting(wasmPages: u32): u32 {
  const previous = growLimitPages;
  growLimitPages = wasmPages == 0 || wasmPages > WASM_PAGES_MAX ? WASM_PAGES_MAX : wasmPages;
  return previous;
}

/** Runs memory.grow; false where it returns -1 or where the size would pass growLimitPages. */
function growMemory(pages: i32): bool {
  if (<u64>memory.size() + <u64>pages > <u64>growLimitPages) return false;
  return memory.grow(pages) >= 0;
}

/** Size, in 64 KiB wasm pages, of the memory that contains the whole frame pool: growth stops there. */
let poolEndPages: u32 = WASM_PAGES_MAX;

/** Grows linear memory so that bytes below `end` exist; false if it cannot. */
function ensureMemory(end: u64): bool {
  const size = <i32>memory.size();
  const have = <u64>size << WASM_PAGE_SHIFT;
  if (end <= have) return true;
  const needPages = <i32>((end - have + 0xffff) >> WASM_PAGE_SHIFT);
  // Grow by an eighth of the current size at least, so growth is amortised.
  // Each memory.grow took 1 to 7 ms in Node 20 on a 2-vCPU VM, more for
  // larger memories. Growing by the exact need near a 4 GiB pool, one 64 KiB
  // step per 16 frames, took a minute. A step that would pass the pool's end
  // stops there instead.
  let step = size >> 3;
  if (step < needPages) step = needPages;
  const room = <i32>poolEndPages - size;
  if (step > room) step = room > needPages ? room : needPages;
  if (growMemory(step)) return true;
  return growMemory(needPages);
}

// @ts-ignore: decorator
@inline export function frameIndex(frame: usize): u32 {
  return <u32>((frame - frameBase) >> PAGE_SHIFT);
}

// @ts-ignore: decorator
@inline export function refcountSlot(frame: usize): usize {
  return metaBase + (<usize>frameIndex(frame) << 2);
}

/** Returns the FRAME_* kind of `frame`, or FRAME_FREE for any address that is not a live frame. */
export function frameKind(frame: usize): u8 {
  if (frame < frameBase || (frame & (PAGE_SIZE - 1)) != 0) return FRAME_FREE;
  const index = frameIndex(frame);
  if (index >= frameNext) return FRAME_FREE;
  return load<u8>(kindBase + index);
}

export function setFrameKind(frame: usize, kind: u8): void {
  store<u8>(kindBase + frameIndex(frame), kind);
}

/**
 * Takes a frame of kind `kind` whose contents are unspecified, with
 * refcount 1. Returns its address, or 0 when the pool or linear memory is
 * exhausted.
 */
export function frameAlloc(kind: u8 = FRAME_PAGE): usize {
  let frame: usize;
  if (freeCount > 0) {
    frame = frameBase + (<usize>load<u32>(freeQueueBase + (<usize>freeHead << 2)) << PAGE_SHIFT);
    if (++freeHead == frameCap) freeHead = 0;
    freeCount--;
  } else {
    if (frameNext >= frameCap) return 0;
    frame = frameBase + (<usize>frameNext << PAGE_SHIFT);
    if (!ensureMemory(<u64>frame + PAGE_SIZE)) return 0;
    frameNext++;
  }
  store<u32>(refcountSlot(frame), 1);
  setFrameKind(frame, kind);
  framesUsed++;
  return frame;
}

/** Takes a frame of kind `kind` filled with zeros, with refcount 1; 0 when exhausted. */
export function frameAllocZeroed(kind: u8 = FRAME_PAGE): usize {
  // Frames never handed out are still zero from memory.grow.
  const fresh = freeCount == 0;
  const frame = frameAlloc(kind);
  if (frame != 0 && !fresh) memory.fill(frame, 0, PAGE_SIZE);
  return frame;
}

// @ts-ignore: decorator
@inline export function frameGet(frame: usize): void {
  const slot = refcountSlot(frame);
  store<u32>(slot, load<u32>(slot) + 1);
}

// @ts-ignore: decorator
@inline export function frameRefcount(frame: usize): u32 {
  return load<u32>(refcountSlot(frame));
}

/** Drops one reference to `frame`, returning it to the pool at zero. */
export function framePut(frame: usize): void {
  const slot = refcountSlot(frame);
  const count = load<u32>(slot);
  assert(count > 0, "framePut on a free frame");
  if (count == 1 && frame == zeroFrame) return; // the zero frame is pinned
  store<u32>(slot, count - 1);
  if (count == 1) {
    setFrameKind(frame, FRAME_FREE);
    // At most frameCap frames are ever free, so the ring cannot overflow.
    let tail = freeHead + freeCount;
    if (tail >= frameCap) tail -= frameCap;
    store<u32>(freeQueueBase + (<usize>tail << 2), frameIndex(frame));
    freeCount++;
    framesUsed--;
  }
}

/**
 * Takes `count` frames at consecutive addresses from the never-used part of
 * the pool, for callers that need one contiguous buffer (benchmarks, the
 * I/O of large regions). Returns the first address, or 0.
 */
export function framesAllocContiguous(count: u32): usize {
  if (count == 0 || <u64>frameNext + count > <u64>frameCap) return 0;
  const first = frameBase + (<usize>frameNext << PAGE_SHIFT);
  if (!ensureMemory(<u64>first + (<u64>count << PAGE_SHIFT))) return 0;
  for (let i: u32 = 0; i < count; i++) {
    store<u32>(metaBase + (<usize>(frameNext + i) << 2), 1);
    store<u8>(kindBase + frameNext + i, FRAME_BENCH);
  }
  frameNext += count;
  framesUsed += count;
  return first;
}

export function framesUsedCount(): u32 {
  return framesUsed;
}

export function framesCapacity(): u32 {
  return frameCap;
}

export function framesFreeCount(): u32 {
  return frameCap - framesUsed;
}

/** Number of u32 words framesLayout writes. */
export const FRAMES_LAYOUT_WORDS: u32 = 10;

/**
 * Writes the pool's layout and counters to the FRAMES_LAYOUT_WORDS u32
 * words at `out`. The order is: refcount array, free ring, kind array,
 * first frame, capacity, frames handed out so far (frameNext), free ring
 * head, free ring length, frames in use, zero frame. The host's invariant
 * checker reads the pool through these addresses without changing it.
 */
export function framesLayout(out: usize): void {
  store<u32>(out, <u32>metaBase);
  store<u32>(out + 4, <u32>freeQueueBase);
  store<u32>(out + 8, <u32>kindBase);
  store<u32>(out + 12, <u32>frameBase);
  store<u32>(out + 16, frameCap);
  store<u32>(out + 20, frameNext);
  store<u32>(out + 24, freeHead);
  store<u32>(out + 28, freeCount);
  store<u32>(out + 32, framesUsed);
  store<u32>(out + 36, <u32>zeroFrame);
}
