// A kernel of the largest supported size, MAX_MEMORY, filled to its last
// frame. The fill touches about 4.1 GiB of host memory and took 5 to 13 s
// on a 2-vCPU VM, mostly the host's first touch of each page. So it has a
// file of its own, which vitest runs in a worker of its own.

import { expect, it } from "vitest";
import {
  EAGAIN, ENOMEM, KernelError, MAP_ANONYMOUS, MAP_FIXED, MAP_PRIVATE, MAX_FRAMES, MAX_MEMORY, UFFD_API,
  UFFDIO_REGISTER_MODE_MISSING,
} from "../src/index.js";
import { createKernel, settledNow } from "./helpers.js";

const PAGE = 4096;
const ANON_FIXED = MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED;
/** The source: 64 pages (256 KiB), small enough to stay in the CPU caches. */
const SRC = 0x1000_0000;
const SRC_PAGES = 64;
/** The destination, in a 512 GiB slot of its own. */
const DST = 0x100_0000_0000;

/** Returns source page `index`: every byte is index + 1, except byte 1, which is 0xee. */
function sourcePage(index: number): Uint8Array {
  const page = new Uint8Array(PAGE).fill(index + 1);
  page[1] = 0xee;
  return page;
}

it("fills every frame of a MAX_MEMORY kernel", async () => {
  expect(MAX_MEMORY).toBe(4080 * 2 ** 20);
  expect(MAX_FRAMES).toBe(1_044_480);
  const kernel = await createKernel({ maxMemory: MAX_MEMORY });
  expect(kernel.framesCapacity).toBe(MAX_FRAMES);

  const process = kernel.createProcess();
  expect(process.mmap(SRC_PAGES * PAGE, { flags: ANON_FIXED, address: SRC })).toBe(SRC);
  for (let page = 0; page < SRC_PAGES; page++) await settledNow(process.write(SRC + page * PAGE, sourcePage(page)));
  expect(process.mmap(MAX_FRAMES * PAGE, { flags: ANON_FIXED, address: DST })).toBe(DST);
  const uffd = process.userfaultfd();
  expect(uffd.api({ api: UFFD_API, features: 0 }).errno).toBe(0);
  expect(uffd.register({ start: DST, len: MAX_FRAMES * PAGE, mode: UFFDIO_REGISTER_MODE_MISSING }).errno).toBe(0);

  let filled = 0;
  let last = { errno: 0, copy: 0 };
  while (last.errno === 0) {
    last = uffd.copy({ dst: DST + filled * PAGE, src: SRC, len: SRC_PAGES * PAGE, mode: 0 });
    if (last.copy > 0) filled += last.copy / PAGE;
  }
  // Every frame is in use: the zero frame, the root, the source's three
  // tables and 64 pages, then the destination's PUD, 4 PMDs and 2036 PTE
  // tables with the 1,042,370 pages they map.
  expect(last).toEqual({ errno: EAGAIN, copy: (1_042_370 % SRC_PAGES) * PAGE });
  expect(filled).toBe(1_042_370);
  expect(1 + 1 + 3 + SRC_PAGES + 1 + 4 + 2036 + filled).toBe(MAX_FRAMES);
  expect(kernel.framesUsed).toBe(MAX_FRAMES);
  expect(uffd.copy({ dst: DST + filled * PAGE, src: SRC, len: PAGE, mode: 0 })).toEqual({ errno: ENOMEM, copy: -ENOMEM });
  // A store to an unregistered page finds neither a page-table frame nor a page frame.
  const other = 0x2000_0000;
  expect(process.mmap(PAGE, { flags: ANON_FIXED, address: other })).toBe(other);
  const write = await settledNow(process.write(other, Uint8Array.of(1))).catch((error: unknown) => error);
  expect(write).toBeInstanceOf(KernelError);
  expect(write).toMatchObject({ errno: ENOMEM });
  // The last PTE table has room left: the zero page needs no frame.
  expect(uffd.zeropage({ start: DST + filled * PAGE, len: PAGE, mode: 0 })).toEqual({ errno: 0, zeropage: PAGE });
  expect(kernel.framesUsed).toBe(MAX_FRAMES);

  // Every 997th page, the first and the last hold their source page, the
  // last ones at frame addresses near the top of the 4 GiB.
  const samples = [0, filled - 1];
  for (let page = 997; page < filled; page += 997) samples.push(page);
  const wrong: number[] = [];
  for (const page of samples) {
    const data = await settledNow(process.read(DST + page * PAGE, PAGE));
    const expected = sourcePage(page % SRC_PAGES);
    // A plain loop: vitest's deep equality takes milliseconds per 4 KiB page.
    if (data.some((byte, i) => byte !== expected[i])) wrong.push(page);
  }
  expect(wrong, "pages whose contents differ from their source page").toEqual([]);
  expect(samples.length).toBe(1047);
  const lastPte = kernel.core.exports.pte_read(process.mm.pgd, DST + (filled - 1) * PAGE) >>> 0;
  expect(lastPte).toBeGreaterThan(0xf000_0000);

  process.exit();
  expect(kernel.framesUsed).toBe(1);
}, 120_000);
