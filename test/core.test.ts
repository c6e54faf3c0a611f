// The wasm core through its raw exports: frame pool, page tables, the fill
// loops, fork's copy_page_range, process access and teardown.

import { describe, expect, it } from "vitest";
import {
  ACCESS_WRITE, CPR_COW, CPR_KEEP_UFFD_WP, FAULT_ACCESS, FAULT_MISSING,
  PTE_DIRTY, PTE_EXCLUSIVE, PTE_FRAME_MASK, PTE_PRESENT, PTE_UFFD_WP, PTE_WRITE, PTE_ZERO, SRC_FAULT, WasmCore,
} from "../src/wasm/core.js";
import { EEXIST, EINVAL, ENOMEM, PAGE, RW, VA, VB, frameOf, load, mfillCopyStatus, newCore, pattern, pte, store } from "./core-helpers.js";
import { pageOf } from "./helpers.js";

describe("frame pool", () => {
  it("pins the zero frame at init", async () => {
    const core = await newCore();
    const e = core.exports;
    expect(e.frames_used()).toBe(1);
    expect(e.zero_frame() >>> 0).toBe(e.frame_base() >>> 0);
    expect(e.frame_refcount(e.zero_frame())).toBe(1);
  });

  it("keeps the zero frame through map and zap", async () => {
    const core = await newCore();
    const e = core.exports;
    const root = e.pgd_alloc();
    expect(e.do_anonymous_page(root, VA, 0)).toBe(0);
    expect(e.do_anonymous_page(root, VA + PAGE, 0)).toBe(0);
    expect(e.frame_refcount(e.zero_frame())).toBe(3);

    expect(e.zap_page_range(root, VA, 2)).toBe(0);
    expect(e.frame_refcount(e.zero_frame())).toBe(1);
    expect(e.zap_page_range(root, VA, 2)).toBe(0);
    expect(e.frame_refcount(e.zero_frame())).toBe(1);
    expect(e.pgd_free(root)).toBe(0);
    expect(e.frames_used()).toBe(1);
  });

  it("never writes the zero frame", async () => {
    const core = await newCore();
    const e = core.exports;
    const root = e.pgd_alloc();
    expect(e.do_anonymous_page(root, VA, 0)).toBe(0);
    core.io().set(pageOf(0x5a));
    expect(e.access_vm(root, VA, PAGE, RW)).toBe(0);

    expect(core.bytes(e.zero_frame() >>> 0, PAGE).every((byte) => byte === 0)).toBe(true);
    expect(frameOf(core, root, VA)).not.toBe(e.zero_frame() >>> 0);
  });

  it("reuses a freed frame", async () => {
    const core = await newCore();
    const e = core.exports;
    const root = e.pgd_alloc();
    store(core, root, VA, pattern(1));
    const first = frameOf(core, root, VA);
    const used = e.frames_used();

    expect(e.zap_page_range(root, VA, 1)).toBe(0);
    expect(e.frames_used()).toBe(used - 1);
    expect(e.frame_refcount(first)).toBe(0);

    expect(e.do_anonymous_page(root, VA + PAGE, 1)).toBe(0);
    expect(frameOf(core, root, VA + PAGE)).toBe(first);
    expect(e.frame_refcount(first)).toBe(1);
    expect(e.frames_used()).toBe(used);
    expect(load(core, root, VA + PAGE).every((byte) => byte === 0)).toBe(true);
  });

  it("grows linear memory on demand", async () => {
    const core = await newCore(4096, 1);
    const e = core.exports;
    const root = e.pgd_alloc();
    store(core, root, VA, pattern(2));
    const before = e.memory.buffer.byteLength;

    for (let i = 1; i < 128; i++) expect(e.do_anonymous_page(root, VA + i * PAGE, 1)).toBe(0);

    expect(e.memory.buffer.byteLength).toBeGreaterThan(before);
    expect(e.memory.buffer.byteLength).toBeGreaterThanOrEqual((e.frame_base() >>> 0) + 133 * PAGE);
    expect(core.io().buffer).toBe(e.memory.buffer);
    expect(load(core, root, VA)).toEqual(pattern(2));
  });

  it("returns ENOMEM at the cap without a trap", async () => {
    // 8 frames: the zero frame, the root, three tables below it and three pages.
    const core = await newCore(8);
    const e = core.exports;
    const root = e.pgd_alloc();
    for (let i = 0; i < 3; i++) store(core, root, VA + i * PAGE, pattern(i));
    expect(e.frames_used()).toBe(8);
    expect(e.frames_capacity()).toBe(8);

    expect(e.do_anonymous_page(root, VA + 3 * PAGE, 1)).toBe(ENOMEM);
    expect(e.pgd_alloc()).toBe(0);
    expect(e.frames_used()).toBe(8);
    expect(pte(core, root, VA + 3 * PAGE)).toBe(0);
    for (let i = 0; i < 3; i++) expect(load(core, root, VA + i * PAGE)).toEqual(pattern(i));

    expect(e.zap_page_range(root, VA, 1)).toBe(0);
    expect(e.do_anonymous_page(root, VA + 3 * PAGE, 1)).toBe(0);
  });

  it("rejects a second init and a layout above 4 GiB", async () => {
    const core = await newCore();
    expect(core.exports.init(16, 1)).toBe(EINVAL);
    await expect(WasmCore.create("debug", 2 ** 20, 1)).rejects.toBeInstanceOf(RangeError);
  });
});

describe("page tables", () => {
  it("reads 0 for an unmapped address", async () => {
    const core = await newCore();
    const root = core.exports.pgd_alloc();
    expect(pte(core, root, VA)).toBe(0);
  });

  it("marks an anonymous write page", async () => {
    const core = await newCore();
    const root = core.exports.pgd_alloc();
    expect(core.exports.do_anonymous_page(root, VA + 123, 1)).toBe(0);
    const entry = pte(core, root, VA);
    expect(entry & (PTE_PRESENT | PTE_WRITE | PTE_DIRTY)).toBe(PTE_PRESENT | PTE_WRITE | PTE_DIRTY);
    expect(entry & (PTE_ZERO | PTE_UFFD_WP)).toBe(0);
    expect(frameOf(core, root, VA)).not.toBe(core.exports.zero_frame() >>> 0);
  });

  it("maps the zero frame read-only on a read", async () => {
    const core = await newCore();
    const root = core.exports.pgd_alloc();
    expect(core.exports.do_anonymous_page(root, VA, 0)).toBe(0);
    const entry = pte(core, root, VA);
    expect(entry & (PTE_PRESENT | PTE_ZERO)).toBe(PTE_PRESENT | PTE_ZERO);
    expect(entry & PTE_WRITE).toBe(0);
    expect(frameOf(core, root, VA)).toBe(core.exports.zero_frame() >>> 0);
  });

  it("takes only WRITE and UFFD_WP from mfill flags", async () => {
    const core = await newCore();
    const e = core.exports;
    const root = e.pgd_alloc();
    store(core, root, VA, pattern(3));

    expect(mfillCopyStatus(e, root, VB, root, VA, 1, PTE_WRITE)).toBe(0);
    expect(pte(core, root, VB) & ~PTE_FRAME_MASK).toBe(PTE_PRESENT | PTE_DIRTY | PTE_EXCLUSIVE | PTE_WRITE);
    expect(mfillCopyStatus(e, root, VB + PAGE, root, VA, 1, PTE_UFFD_WP)).toBe(0);
    expect(pte(core, root, VB + PAGE) & ~PTE_FRAME_MASK).toBe(PTE_PRESENT | PTE_DIRTY | PTE_EXCLUSIVE | PTE_UFFD_WP);
    expect(mfillCopyStatus(e, root, VB + 2 * PAGE, root, VA, 1, 0xffffffff)).toBe(0);
    expect(pte(core, root, VB + 2 * PAGE) & ~PTE_FRAME_MASK).toBe(PTE_PRESENT | PTE_DIRTY | PTE_EXCLUSIVE | PTE_WRITE | PTE_UFFD_WP);
  });
});

describe("copy kernels", () => {
  it("give identical bytes in mfill_copy", async () => {
    const core = await newCore();
    const e = core.exports;
    const root = e.pgd_alloc();
    store(core, root, VA, pattern(4));

    expect(e.set_copy_kernel(0)).toBe(0);
    expect(mfillCopyStatus(e, root, VB, root, VA, 1, PTE_WRITE)).toBe(0);
    expect(e.set_copy_kernel(1)).toBe(0);
    expect(e.get_copy_kernel()).toBe(1);
    expect(mfillCopyStatus(e, root, VB + PAGE, root, VA, 1, PTE_WRITE)).toBe(0);

    expect(load(core, root, VB)).toEqual(pattern(4));
    expect(load(core, root, VB + PAGE)).toEqual(pattern(4));
  });

  it("give identical bytes in the benchmark loop", async () => {
    const core = await newCore();
    const e = core.exports;
    const base = e.frames_alloc_contiguous(3) >>> 0;
    expect(base).not.toBe(0);
    core.bytes(base, PAGE).set(pattern(5));

    expect(e.copy_pages_bench(0, base + PAGE, 1, base, 1, 1, 1)).toBe(0);
    expect(e.copy_pages_bench(1, base + 2 * PAGE, 1, base, 1, 1, 1)).toBe(0);
    expect(core.bytes(base + PAGE, PAGE)).toEqual(pattern(5));
    expect(core.bytes(base + 2 * PAGE, PAGE)).toEqual(pattern(5));
  });

  it("rejects an unknown kernel id", async () => {
    const core = await newCore();
    expect(core.exports.set_copy_kernel(2)).toBe(EINVAL);
    expect(core.exports.get_copy_kernel()).toBe(0);
  });
});

describe("mfill_copy", () => {
  it("copies into a missing page", async () => {
    const core = await newCore();
    const e = core.exports;
    const root = e.pgd_alloc();
    store(core, root, VA, pattern(6));
    expect(mfillCopyStatus(e, root, VB, root, VA, 1, PTE_WRITE)).toBe(0);
    expect(e.pages_done()).toBe(1);
    expect(load(core, root, VB)).toEqual(pattern(6));
    expect(frameOf(core, root, VB)).not.toBe(frameOf(core, root, VA));
  });

  it("returns EEXIST on a present page", async () => {
    const core = await newCore();
    const e = core.exports;
    const root = e.pgd_alloc();
    store(core, root, VA, pattern(7));
    store(core, root, VB, pattern(8));
    const used = e.frames_used();

    expect(mfillCopyStatus(e, root, VB, root, VA, 1, PTE_WRITE)).toBe(EEXIST);
    expect(e.pages_done()).toBe(0);
    expect(load(core, root, VB)).toEqual(pattern(8));
    expect(e.frames_used()).toBe(used);
  });

  it("stops at a present page with pages_done", async () => {
    const core = await newCore();
    const e = core.exports;
    const root = e.pgd_alloc();
    for (let i = 0; i < 4; i++) store(core, root, VA + i * PAGE, pattern(10 + i));
    store(core, root, VB + 2 * PAGE, pattern(20));

    expect(mfillCopyStatus(e, root, VB, root, VA, 4, PTE_WRITE)).toBe(EEXIST);
    expect(e.pages_done()).toBe(2);
    expect(load(core, root, VB)).toEqual(pattern(10));
    expect(load(core, root, VB + PAGE)).toEqual(pattern(11));
    expect(load(core, root, VB + 2 * PAGE)).toEqual(pattern(20));
    expect(pte(core, root, VB + 3 * PAGE)).toBe(0);
  });

  it("copies an unaligned source across two frames", async () => {
    const core = await newCore();
    const e = core.exports;
    const root = e.pgd_alloc();
    store(core, root, VA, pattern(30));
    store(core, root, VA + PAGE, pattern(31));

    expect(mfillCopyStatus(e, root, VB, root, VA + 100, 1, PTE_WRITE)).toBe(0);
    const expected = new Uint8Array(PAGE);
    expected.set(pattern(30).subarray(100));
    expected.set(pattern(31).subarray(0, 100), PAGE - 100);
    expect(load(core, root, VB)).toEqual(expected);
  });

  it("returns SRC_FAULT on a missing source", async () => {
    const core = await newCore();
    const e = core.exports;
    const root = e.pgd_alloc();
    store(core, root, VA, pattern(32));

    expect(mfillCopyStatus(e, root, VB, root, VA + 8 * PAGE, 1, PTE_WRITE)).toBe(SRC_FAULT);
    expect(e.pages_done()).toBe(0);
    expect(pte(core, root, VB)).toBe(0);
    expect(mfillCopyStatus(e, root, VB, root, VA + 1, 1, PTE_WRITE)).toBe(SRC_FAULT);
    expect(pte(core, root, VB)).toBe(0);
    expect(mfillCopyStatus(e, root, VB, root, VA, 2, PTE_WRITE)).toBe(SRC_FAULT);
    expect(e.pages_done()).toBe(1);
    expect(pte(core, root, VB + PAGE)).toBe(0);
  });

  it("keeps the prefix when frames run out", async () => {
    // The zero frame, the root, three tables below it, four source pages, the
    // destination PTE table and room for two more frames.
    const core = await newCore(12);
    const e = core.exports;
    const root = e.pgd_alloc();
    for (let i = 0; i < 4; i++) store(core, root, VA + i * PAGE, pattern(40 + i));
    expect(e.mfill_zeropage(root, VB + 10 * PAGE, 1)).toBe(0);
    expect(e.frames_used()).toBe(10);

    expect(mfillCopyStatus(e, root, VB, root, VA, 4, PTE_WRITE)).toBe(ENOMEM);
    expect(e.pages_done()).toBe(2);
    expect(e.frames_used()).toBe(12);
    expect(load(core, root, VB)).toEqual(pattern(40));
    expect(load(core, root, VB + PAGE)).toEqual(pattern(41));
    expect(pte(core, root, VB + 2 * PAGE)).toBe(0);
    expect(pte(core, root, VB + 3 * PAGE)).toBe(0);
  });
});

describe("mfill_zeropage", () => {
  it("maps the zero frame", async () => {
    const core = await newCore();
    const e = core.exports;
    const root = e.pgd_alloc();
    expect(e.mfill_zeropage(root, VA, 3)).toBe(0);
    expect(e.pages_done()).toBe(3);
    expect(e.frame_refcount(e.zero_frame())).toBe(4);
    expect(pte(core, root, VA + 2 * PAGE) & ~PTE_FRAME_MASK).toBe(PTE_PRESENT | PTE_ZERO);
    expect(frameOf(core, root, VA + 2 * PAGE)).toBe(e.zero_frame() >>> 0);
    expect(load(core, root, VA, 3 * PAGE).every((byte) => byte === 0)).toBe(true);
  });

  it("stops at a present page", async () => {
    const core = await newCore();
    const e = core.exports;
    const root = e.pgd_alloc();
    store(core, root, VA + PAGE, pattern(50));
    expect(e.mfill_zeropage(root, VA, 3)).toBe(EEXIST);
    expect(e.pages_done()).toBe(1);
    expect(load(core, root, VA + PAGE)).toEqual(pattern(50));
    expect(pte(core, root, VA + 2 * PAGE)).toBe(0);
  });
});

describe("copy_page_range", () => {
  async function forked() {
    const core = await newCore();
    const e = core.exports;
    const parent = e.pgd_alloc();
    store(core, parent, VA, pattern(60));
    const frame = frameOf(core, parent, VA);
    const child = e.pgd_alloc();
    const used = e.frames_used();
    expect(e.copy_page_range(child, parent, VA, 4, CPR_COW)).toBe(0);
    return { core, e, parent, child, frame, used };
  }

  it("shares pages copy-on-write", async () => {
    const { core, e, parent, child, frame, used } = await forked();
    expect(e.pages_done()).toBe(1);
    expect(frameOf(core, child, VA)).toBe(frame);
    expect(e.frame_refcount(frame)).toBe(2);
    expect(pte(core, parent, VA) & PTE_WRITE).toBe(0);
    expect(pte(core, child, VA) & PTE_WRITE).toBe(0);
    // Only the child's three tables below its root are new, and no page is copied.
    expect(e.frames_used()).toBe(used + 3);
  });

  it("breaks COW on a child write", async () => {
    const { core, e, parent, child, frame } = await forked();
    core.io().set([1, 2, 3]);
    expect(e.access_vm(child, VA + 10, 3, RW)).toBe(0);

    expect(frameOf(core, child, VA)).not.toBe(frame);
    expect(pte(core, child, VA) & PTE_WRITE).toBe(PTE_WRITE);
    expect(e.frame_refcount(frame)).toBe(1);
    expect(load(core, parent, VA)).toEqual(pattern(60));
    expect(load(core, child, VA, 13).subarray(10)).toEqual(Uint8Array.from([1, 2, 3]));
    expect(load(core, child, VA + 13, 100)).toEqual(pattern(60).subarray(13, 113));
  });

  it("breaks COW on a parent write", async () => {
    const { core, e, parent, child, frame } = await forked();
    core.io().set([9]);
    expect(e.access_vm(parent, VA, 1, RW)).toBe(0);

    expect(frameOf(core, parent, VA)).not.toBe(frame);
    expect(load(core, child, VA)).toEqual(pattern(60));
    expect(load(core, parent, VA, 1)[0]).toBe(9);
  });

  it("reuses the frame once the other side left", async () => {
    const { core, e, parent, child, frame } = await forked();
    core.io().set([7]);
    expect(e.access_vm(child, VA, 1, RW)).toBe(0);
    const used = e.frames_used();

    expect(e.access_vm(parent, VA, 1, RW)).toBe(0);
    expect(frameOf(core, parent, VA)).toBe(frame);
    expect(pte(core, parent, VA) & PTE_WRITE).toBe(PTE_WRITE);
    expect(e.frames_used()).toBe(used);
  });

  it("faults a write without VMA write permission", async () => {
    const { core, e, child, frame } = await forked();
    expect(e.access_vm(child, VA, 1, ACCESS_WRITE)).toBe(FAULT_ACCESS);
    expect(frameOf(core, child, VA)).toBe(frame);
  });

  it("keeps the parent writable without COW", async () => {
    const core = await newCore();
    const e = core.exports;
    const parent = e.pgd_alloc();
    store(core, parent, VA, pattern(61));
    const child = e.pgd_alloc();
    expect(e.copy_page_range(child, parent, VA, 1, 0)).toBe(0);
    expect(pte(core, parent, VA) & PTE_WRITE).toBe(PTE_WRITE);
    expect(pte(core, child, VA) & PTE_DIRTY).toBe(0);
    expect(frameOf(core, child, VA)).toBe(frameOf(core, parent, VA));
  });

  it("keeps uffd-wp only when asked", async () => {
    const core = await newCore();
    const e = core.exports;
    const parent = e.pgd_alloc();
    store(core, parent, VB, pattern(62));
    expect(mfillCopyStatus(e, parent, VA, parent, VB, 1, PTE_UFFD_WP)).toBe(0);
    const childWithoutWp = e.pgd_alloc();
    const childWithWp = e.pgd_alloc();
    expect(e.copy_page_range(childWithoutWp, parent, VA, 1, CPR_COW)).toBe(0);
    expect(e.copy_page_range(childWithWp, parent, VA, 1, CPR_COW | CPR_KEEP_UFFD_WP)).toBe(0);
    expect(pte(core, childWithoutWp, VA) & PTE_UFFD_WP).toBe(0);
    expect(pte(core, childWithWp, VA) & PTE_UFFD_WP).toBe(PTE_UFFD_WP);
  });

  it("allocates nothing for an empty range", async () => {
    const core = await newCore();
    const e = core.exports;
    const parent = e.pgd_alloc();
    const child = e.pgd_alloc();
    const used = e.frames_used();
    expect(e.copy_page_range(child, parent, VA, 512, CPR_COW)).toBe(0);
    expect(e.pages_done()).toBe(0);
    expect(e.frames_used()).toBe(used);
  });
});

describe("access_vm", () => {
  it("stops at a missing page with bytes done", async () => {
    const core = await newCore();
    const e = core.exports;
    const root = e.pgd_alloc();
    store(core, root, VA, pattern(70));
    expect(e.access_vm(root, VA + 100, 8000, 0)).toBe(FAULT_MISSING);
    expect(e.pages_done()).toBe(PAGE - 100);
    expect(core.io().slice(0, PAGE - 100)).toEqual(pattern(70).subarray(100));
  });

  it("reads zeros from the zero page", async () => {
    const core = await newCore();
    const root = core.exports.pgd_alloc();
    expect(core.exports.do_anonymous_page(root, VA, 0)).toBe(0);
    core.io().fill(0xee);
    expect(load(core, root, VA).every((byte) => byte === 0)).toBe(true);
  });

  it("allocates on a write to the zero page", async () => {
    const core = await newCore();
    const e = core.exports;
    const root = e.pgd_alloc();
    expect(e.do_anonymous_page(root, VA, 0)).toBe(0);
    const used = e.frames_used();
    core.io().set([0x42]);
    expect(e.access_vm(root, VA + 5, 1, RW)).toBe(0);

    expect(e.frames_used()).toBe(used + 1);
    expect(frameOf(core, root, VA)).not.toBe(e.zero_frame() >>> 0);
    expect(e.frame_refcount(e.zero_frame())).toBe(1);
    expect(pte(core, root, VA) & PTE_ZERO).toBe(0);
    expect(load(core, root, VA, 6)).toEqual(Uint8Array.from([0, 0, 0, 0, 0, 0x42]));
  });

  it("rejects a length above the I/O window", async () => {
    const core = await newCore(64, 2);
    const root = core.exports.pgd_alloc();
    expect(core.exports.access_vm(root, VA, 2 * PAGE + 1, 0)).toBe(EINVAL);
  });
});

describe("teardown", () => {
  it("zap returns page frames", async () => {
    const core = await newCore();
    const e = core.exports;
    const root = e.pgd_alloc();
    const used = e.frames_used();
    for (let i = 0; i < 5; i++) store(core, root, VA + i * PAGE, pattern(i));
    expect(e.frames_used()).toBe(used + 3 + 5);

    expect(e.zap_page_range(root, VA, 8)).toBe(0);
    expect(e.pages_done()).toBe(5);
    expect(e.frames_used()).toBe(used + 3);
    expect(pte(core, root, VA + 4 * PAGE)).toBe(0);
    expect(e.count_present(root, VA, 8)).toBe(0);
  });

  it("free_pgtables releases a zapped table", async () => {
    const core = await newCore();
    const e = core.exports;
    const root = e.pgd_alloc();
    store(core, root, VA, pattern(80));
    expect(e.zap_page_range(root, VA, 512)).toBe(0);
    const used = e.frames_used();
    expect(e.free_pgtables(root, VA, 512)).toBe(0);
    expect(e.frames_used()).toBe(used - 1);
    expect(e.do_anonymous_page(root, VA, 1)).toBe(0);
  });

  it("fills through a new table after free_pgtables", async () => {
    const core = await newCore();
    const e = core.exports;
    const root = e.pgd_alloc();
    store(core, root, VA, pattern(81));
    expect(mfillCopyStatus(e, root, VB, root, VA, 1, PTE_WRITE)).toBe(0);
    expect(e.zap_page_range(root, VB, 512)).toBe(0);
    expect(e.free_pgtables(root, VB, 512)).toBe(0);
    // The freed table frame comes back first, as a data page full of 0xff.
    store(core, root, VA + PAGE, pageOf(0xff));

    expect(mfillCopyStatus(e, root, VB, root, VA, 1, PTE_WRITE)).toBe(0);
    expect(load(core, root, VB)).toEqual(pattern(81));
    expect(load(core, root, VA + PAGE)).toEqual(pageOf(0xff));
  });

  it("pgd_free returns every frame", async () => {
    const core = await newCore();
    const e = core.exports;
    const a = e.pgd_alloc();
    const b = e.pgd_alloc();
    for (const va of [VA, VB, 0x7f00_0000_0000, 0x40_0000_0000]) {
      store(core, a, va, pattern(va % 251));
      expect(e.do_anonymous_page(a, va + PAGE, 0)).toBe(0);
    }
    expect(e.mfill_zeropage(a, VA + 8 * PAGE, 4)).toBe(0);
    expect(e.copy_page_range(b, a, VA, 512, CPR_COW)).toBe(0);
    core.io().set([1]);
    expect(e.access_vm(b, VA, 1, RW)).toBe(0);

    expect(e.pgd_free(a)).toBe(0);
    expect(e.pgd_free(b)).toBe(0);
    expect(e.frames_used()).toBe(1);
    expect(e.frame_refcount(e.zero_frame())).toBe(1);
  });
});
