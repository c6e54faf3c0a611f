// The wasm core's argument checks: every export must return EINVAL (or 0 for
// the lookups) on an address or root it did not hand out, and never trap.

import { describe, expect, it } from "vitest";
import { CPR_COW, PTE_WRITE, WALK_RANDOM, WasmCore } from "../src/wasm/core.js";
import { EINVAL, PAGE, TASK_SIZE, VA, VB, frameOf, mfillCopyStatus, newCore, pattern, store } from "./core-helpers.js";
import { pageOf } from "./helpers.js";

describe("argument checks", () => {
  const badAddresses: Array<[string, number]> = [
    ["NaN", NaN],
    ["negative", -PAGE],
    ["fractional", VA + 0.5],
    ["TASK_SIZE", TASK_SIZE],
    ["above TASK_SIZE", TASK_SIZE + PAGE],
    ["infinite", Infinity],
  ];

  /** Lists every export that takes an address, as a call with `va` in the address slot. */
  function addressCalls(core: WasmCore, root: number, other: number): Array<[string, (va: number) => number]> {
    const e = core.exports;
    return [
      ["mfill_copy dst", (va) => mfillCopyStatus(e, root, va, other, VA, 1, 0)],
      ["mfill_copy src", (va) => mfillCopyStatus(e, root, VB, other, va, 1, 0)],
      ["mfill_zeropage", (va) => e.mfill_zeropage(root, va, 1)],
      ["copy_page_range", (va) => e.copy_page_range(other, root, va, 1, CPR_COW)],
      ["zap_page_range", (va) => e.zap_page_range(root, va, 1)],
      ["free_pgtables", (va) => e.free_pgtables(root, va, 1)],
      ["access_vm", (va) => e.access_vm(root, va, 1, 0)],
      ["do_anonymous_page", (va) => e.do_anonymous_page(root, va, 1)],
    ];
  }

  it("rejects bad addresses with EINVAL", async () => {
    const core = await newCore();
    const e = core.exports;
    const root = e.pgd_alloc();
    const other = e.pgd_alloc();
    store(core, other, VA, pattern(90));
    const used = e.frames_used();
    for (const [callName, call] of addressCalls(core, root, other)) {
      for (const [valueName, va] of badAddresses) {
        expect(call(va), `${callName} with ${valueName}`).toBe(EINVAL);
      }
    }
    expect(e.frames_used()).toBe(used);
  });

  it("rejects unaligned range starts", async () => {
    const core = await newCore();
    const e = core.exports;
    const root = e.pgd_alloc();
    const other = e.pgd_alloc();
    expect(mfillCopyStatus(e, root, VB + 1, other, VA, 1, 0)).toBe(EINVAL);
    expect(e.mfill_zeropage(root, VA + 8, 1)).toBe(EINVAL);
    expect(e.copy_page_range(other, root, VA + 8, 1, CPR_COW)).toBe(EINVAL);
    expect(e.zap_page_range(root, VA + 8, 1)).toBe(EINVAL);
    expect(e.free_pgtables(root, VA + 8, 1)).toBe(EINVAL);
  });

  it("rejects ranges that end above TASK_SIZE", async () => {
    const core = await newCore();
    const e = core.exports;
    const root = e.pgd_alloc();
    expect(e.mfill_zeropage(root, TASK_SIZE - PAGE, 2)).toBe(EINVAL);
    expect(e.zap_page_range(root, TASK_SIZE - PAGE, 2)).toBe(EINVAL);
    expect(e.access_vm(root, TASK_SIZE - 1, 2, 0)).toBe(EINVAL);
    expect(mfillCopyStatus(e, root, VA, root, TASK_SIZE - PAGE + 1, 1, 0)).toBe(EINVAL);
  });

  it("rejects bogus roots", async () => {
    const core = await newCore();
    const e = core.exports;
    const root = e.pgd_alloc();
    const bogus: Array<[string, number]> = [
      ["0", 0],
      ["1", 1],
      ["zero frame", e.zero_frame()],
      ["unaligned", root + 8],
      ["never handed out", (e.frame_base() >>> 0) + 500 * PAGE],
      ["below the frames", (e.io_base() >>> 0)],
    ];
    for (const [name, value] of bogus) {
      expect(e.pgd_free(value), `pgd_free(${name})`).toBe(EINVAL);
      expect(mfillCopyStatus(e, value, VA, root, VB, 1, 0), `mfill_copy dst root ${name}`).toBe(EINVAL);
      expect(mfillCopyStatus(e, root, VA, value, VB, 1, 0), `mfill_copy src root ${name}`).toBe(EINVAL);
      expect(e.mfill_zeropage(value, VA, 1), `mfill_zeropage(${name})`).toBe(EINVAL);
      expect(e.copy_page_range(value, root, VA, 1, CPR_COW), `copy_page_range dst ${name}`).toBe(EINVAL);
      expect(e.copy_page_range(root, value, VA, 1, CPR_COW), `copy_page_range src ${name}`).toBe(EINVAL);
      expect(e.zap_page_range(value, VA, 1), `zap_page_range(${name})`).toBe(EINVAL);
      expect(e.access_vm(value, VA, 1, 0), `access_vm(${name})`).toBe(EINVAL);
      expect(e.do_anonymous_page(value, VA, 1), `do_anonymous_page(${name})`).toBe(EINVAL);
      expect(e.pte_read(value, VA), `pte_read(${name})`).toBe(0);
      expect(e.count_present(value, VA, 1), `count_present(${name})`).toBe(0);
    }
    expect(e.frames_used()).toBe(2);
    expect(e.frame_refcount(1)).toBe(0);
    expect(e.frame_refcount((e.frame_base() >>> 0) + 500 * PAGE)).toBe(0);
  });

  it("rejects a root already freed", async () => {
    const core = await newCore();
    const e = core.exports;
    const root = e.pgd_alloc();
    store(core, root, VA, pattern(91));
    expect(e.pgd_free(root)).toBe(0);

    expect(e.pgd_free(root)).toBe(EINVAL);
    expect(e.access_vm(root, VA, 1, 0)).toBe(EINVAL);
    expect(e.frames_used()).toBe(1);
  });

  it("rejects a data frame as a root", async () => {
    const core = await newCore();
    const e = core.exports;
    const root = e.pgd_alloc();
    store(core, root, VA, pageOf(0xff));
    const data = frameOf(core, root, VA);

    expect(e.pte_read(data, VA)).toBe(0);
    expect(e.access_vm(data, VA, 1, 0)).toBe(EINVAL);
    expect(e.pgd_free(data)).toBe(EINVAL);
  });
});

describe("copy_pages_bench", () => {
  it("rejects a benchmark buffer never handed out", async () => {
    const core = await newCore();
    const e = core.exports;
    const base = e.frames_alloc_contiguous(1) >>> 0;
    // The frame after `base` is inside linear memory but not handed out yet.
    // The pool later hands it out as an already zeroed page table.
    expect(base + 2 * PAGE).toBeLessThanOrEqual(e.memory.buffer.byteLength);
    core.bytes(base, PAGE).fill(0xff);
    expect(e.copy_pages_bench(0, base + PAGE, 1, base, 1, 1, 1)).toBe(EINVAL);
  });
});

describe("pte_walk_bench", () => {
  it("counts the present PTEs of a walk, in order and in random order", async () => {
    const core = await newCore();
    const e = core.exports;
    const root = e.pgd_alloc();
    store(core, root, VA, pattern(1));
    store(core, root, VA + 2 * PAGE, pattern(2));
    // Two of the four pages are present: a sequential pass finds 2, three passes 6.
    expect(e.pte_walk_bench(root, VA, 4, 0, 0, 1)).toBe(2);
    expect(e.pte_walk_bench(root, VA, 4, 0, 0, 3)).toBe(6);
    // A random walk of a fully present range finds every address it draws.
    expect(e.pte_walk_bench(root, VA, 1, WALK_RANDOM, 7, 5)).toBe(5);
  });

  it("rejects a bad root, range, page count or flag with -EINVAL", async () => {
    const core = await newCore();
    const e = core.exports;
    const root = e.pgd_alloc();
    expect(e.pte_walk_bench(root + PAGE, VA, 1, 0, 0, 1)).toBe(-EINVAL);
    expect(e.pte_walk_bench(root, VA + 1, 1, 0, 0, 1)).toBe(-EINVAL);
    expect(e.pte_walk_bench(root, NaN, 1, 0, 0, 1)).toBe(-EINVAL);
    expect(e.pte_walk_bench(root, TASK_SIZE - PAGE, 2, 0, 0, 1)).toBe(-EINVAL);
    expect(e.pte_walk_bench(root, VA, 0, 0, 0, 1)).toBe(-EINVAL);
    expect(e.pte_walk_bench(root, VA, 1, 2, 0, 1)).toBe(-EINVAL);
  });
});
