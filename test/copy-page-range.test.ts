// copy_page_range over whole PTE tables and over parts of them: the core
// copies a fully covered table with one bulk copy, and a partly covered
// one entry by entry. Both must leave the child, the parent and the
// refcounts exactly as fork's rules require, for every kind of entry.

import { describe, expect, it } from "vitest";
import {
  CPR_COW, CPR_KEEP_UFFD_WP, PTE_DIRTY, PTE_EXCLUSIVE, PTE_FRAME_MASK, PTE_POISON, PTE_PRESENT, PTE_UFFD_WP, PTE_WRITE,
  WP_MARKERS, WP_PROTECT, WasmCore,
} from "../src/wasm/core.js";
import { ENOMEM, PAGE, VA, newCore, pattern, pte, store } from "./core-helpers.js";

const TABLE_PAGES = 512;

/** Fills one whole PTE table at VA with six kinds of entry, by page index modulo 6. */
function buildParent(core: WasmCore): number {
  const e = core.exports;
  const root = e.pgd_alloc();
  for (let i = 0; i < TABLE_PAGES; i++) {
    const va = VA + i * PAGE;
    switch (i % 6) {
      case 0: // none
        break;
      case 1: // private page, written: WRITE | DIRTY | EXCLUSIVE
        store(core, root, va, pattern(i));
        break;
      case 2: // read fault: the shared zero frame, read-only
        expect(e.do_anonymous_page(root, va, 0)).toBe(0);
        break;
      case 3: // written, then uffd-wp protected
        store(core, root, va, pattern(i));
        expect(e.mwriteprotect_range(root, va, 1, WP_PROTECT)).toBe(0);
        break;
      case 4: // poison marker
        expect(e.mfill_poison(root, va, 1)).toBe(0);
        break;
      case 5: // uffd-wp marker on an empty entry
        expect(e.mwriteprotect_range(root, va, 1, WP_PROTECT | WP_MARKERS)).toBe(0);
        break;
    }
  }
  return root;
}

/** Returns the child's entry that fork's rules give for parent entry `entry`. */
function expectedChild(entry: number, cow: boolean, keepWp: boolean): number {
  if (entry === 0) return 0;
  if ((entry & PTE_PRESENT) === 0) {
    if ((entry & PTE_POISON) !== 0) return entry;
    return keepWp ? entry : 0;
  }
  let child = cow ? entry & ~(PTE_WRITE | PTE_EXCLUSIVE) : entry & ~PTE_DIRTY;
  if (!keepWp) child &= ~PTE_UFFD_WP;
  return child >>> 0;
}

function expectedParent(entry: number, cow: boolean): number {
  return ((entry & PTE_PRESENT) !== 0 && cow ? entry & ~(PTE_WRITE | PTE_EXCLUSIVE) : entry) >>> 0;
}

const readTable = (core: WasmCore, root: number) => Array.from({ length: TABLE_PAGES }, (_, i) => pte(core, root, VA + i * PAGE));

/** Refcounts of the parent's page frames (not the pinned zero frame), by page index. */
function pageRefcounts(core: WasmCore, entries: readonly number[]): Map<number, number> {
  const zero = core.exports.zero_frame() >>> 0;
  const counts = new Map<number, number>();
  entries.forEach((entry, i) => {
    const frame = (entry & PTE_FRAME_MASK) >>> 0;
    if ((entry & PTE_PRESENT) !== 0 && frame !== zero) counts.set(i, core.exports.frame_refcount(frame) >>> 0);
  });
  return counts;
}

describe("copy_page_range entry rules", () => {
  const modes: Array<[string, Array<[number, number]>]> = [
    ["whole table", [[0, TABLE_PAGES]]],
    ["split table", [[0, 100], [100, TABLE_PAGES - 100]]],
  ];
  for (const [mode, calls] of modes) {
    for (const cow of [true, false]) {
      for (const keepWp of [false, true]) {
        it(`${mode}, ${cow ? "private" : "shared"}, ${keepWp ? "keeps" : "drops"} uffd-wp`, async () => {
          const core = await newCore(2048);
          const e = core.exports;
          const parent = buildParent(core);
          const before = readTable(core, parent);
          const refsBefore = pageRefcounts(core, before);
          const child = e.pgd_alloc();
          const flags = (cow ? CPR_COW : 0) | (keepWp ? CPR_KEEP_UFFD_WP : 0);
          let copied = 0;
          for (const [first, pages] of calls) {
            expect(e.copy_page_range(child, parent, VA + first * PAGE, pages, flags)).toBe(0);
            copied += e.pages_done() >>> 0;
          }
          // Pages of kinds 1, 2 and 3 are present: 86 + 85 + 85 of the 512.
          expect(copied).toBe(256);
          expect(readTable(core, child)).toEqual(before.map((entry) => expectedChild(entry, cow, keepWp)));
          expect(readTable(core, parent)).toEqual(before.map((entry) => expectedParent(entry, cow)));
          for (const [index, count] of pageRefcounts(core, before)) expect(count).toBe(refsBefore.get(index)! + 1);
        });
      }
    }
  }

  it("ENOMEM drops the references taken", async () => {
    // The child's PTE table cannot be allocated: the copy must undo its references.
    const core = await newCore(2048);
    const e = core.exports;
    const parent = buildParent(core);
    const before = readTable(core, parent);
    const refsBefore = pageRefcounts(core, before);
    const child = e.pgd_alloc();
    // Take every frame left, then give back two: the child's PUD and PMD fit, its PTE table does not.
    const spare: number[] = [];
    for (let root = e.pgd_alloc(); root !== 0; root = e.pgd_alloc()) spare.push(root);
    e.pgd_free(spare.pop()!);
    e.pgd_free(spare.pop()!);
    const used = e.frames_used();
    expect(e.copy_page_range(child, parent, VA, TABLE_PAGES, CPR_COW)).toBe(ENOMEM);
    expect(e.pages_done()).toBe(0);
    expect(pte(core, child, VA + PAGE)).toBe(0);
    expect(pageRefcounts(core, before)).toEqual(refsBefore);
    // Only the child's two upper tables were taken.
    expect(e.frames_used()).toBe(used + 2);
    // With the frames back, the same copy succeeds.
    e.pgd_free(spare.pop()!);
    expect(e.copy_page_range(child, parent, VA, TABLE_PAGES, CPR_COW)).toBe(0);
    expect(e.pages_done()).toBe(256);
  });
});
