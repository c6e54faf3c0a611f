// The page-table walk timed inside wasm, for the benchmark: the walk
// figures timed from JS are dominated by the JS-to-wasm call, so this loop
// walks many addresses per call.
// Linux counterpart: the walk of follow_page() / walk_page_range() down to
// the PTE, here pteRead() with its table cache.

import { PAGE_SHIFT } from "./frames";
import { PTE_PRESENT, pteRead } from "./pgtable";

/** Order flag of pteWalkBench: addresses from a fixed xorshift sequence instead of ascending. */
export const WALK_RANDOM: u32 = 1;

/**
 * Walks `rounds` times over `pages` page addresses from `start`. The order
 * is ascending, or with WALK_RANDOM a xorshift32 sequence fixed by `seed`,
 * in which pages may repeat. Returns the number of present PTEs found.
 */
export function pteWalkBench(root: usize, start: u64, pages: u32, flags: u32, seed: u32, rounds: u32): f64 {
  let present: u64 = 0;
  const random = (flags & WALK_RANDOM) != 0;
  for (let round: u32 = 0; round < rounds; round++) {
    let state = seed == 0 ? 0x9e3779b9 : seed;
    for (let i: u32 = 0; i < pages; i++) {
      let page = i;
      if (random) {
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        page = state % pages;
      }
      present += pteRead(root, start + (<u64>page << PAGE_SHIFT)) & PTE_PRESENT;
    }
  }
  return <f64>present;
}
