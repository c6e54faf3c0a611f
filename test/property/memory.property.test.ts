// Property: random sequences of mmap(MAP_FIXED), munmap, mremap,
// madvise(MADV_DONTNEED), fork, exit, reads and writes, with no
// userfaultfd, agree with the reference model after every step. Also
// checks that a fixed seed reproduces a run, and pins the mremap case the
// property found.
import fc from "fast-check";
import { beforeAll, describe, expect, it } from "vitest";
import { MAP_ANONYMOUS, MAP_FIXED, MAP_PRIVATE, MREMAP_FIXED, MREMAP_MAYMOVE, PAGE_SIZE, type Kernel } from "../../src/index.js";
import { createKernel, pageOf } from "../helpers.js";
import { checkProperty, runSequence, sequences, type PropertyOptions } from "./run.js";
import { System } from "./system.js";

const OPTIONS: PropertyOptions = { withMonitor: false, runs: 3500, seed: 0x5eed_0001, maxCommands: 30 };

let sys: System;
beforeAll(async () => {
  sys = await System.create();
});

describe("memory without a monitor", () => {
  it("matches the reference model", async () => {
    await checkProperty(sys, OPTIONS);
  }, 180_000);
});

/** Runs `runs` sequences from `seed` and returns the log of every run, one string per run. */
async function logsOf(options: PropertyOptions, seed: number, runs: number): Promise<string[]> {
  const logs: string[] = [];
  await fc.assert(
    fc.asyncProperty(sequences(options), async (sequence) => {
      await runSequence(sys, sequence);
      logs.push(sys.log.join("\n"));
    }),
    { seed, numRuns: runs },
  );
  return logs;
}

describe("fixed seed", () => {
  it("generates the same sequences", () => {
    const print = (seed: number) => fc.sample(sequences({ ...OPTIONS, withMonitor: true }), { seed, numRuns: 20 }).map((sequence) => fc.stringify(sequence));
    const first = print(7);
    expect(print(7)).toEqual(first);
    expect(print(8)).not.toEqual(first);
  });

  it("reproduces the same runs", async () => {
    const options = { ...OPTIONS, withMonitor: true };
    const first = await logsOf(options, 11, 30);
    expect(first).toHaveLength(30);
    expect(await logsOf(options, 11, 30)).toEqual(first);
    expect(await logsOf(options, 12, 30)).not.toEqual(first);
  }, 60_000);
});

describe("mremap to a fixed target in its own mapping", () => {
  const PAGE = PAGE_SIZE;
  const BASE = 0x1000_0000;
  let kernel: Kernel;
  beforeAll(async () => {
    kernel = await createKernel();
  });

  it("moves the page and keeps the rest mapped", async () => {
    // One 8-page mapping, and page 2 moves over page 0. The unmap of the
    // target splits the mapping before the move, so the move must look the
    // source up again instead of using the piece that was removed.
    const process = kernel.createProcess();
    expect(process.mmap(8 * PAGE, { flags: MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, address: BASE })).toBe(BASE);
    await process.write(BASE + 2 * PAGE, pageOf(0x42));
    await process.write(BASE + 3 * PAGE, pageOf(0x43));

    expect(await process.mremap(BASE + 2 * PAGE, PAGE, PAGE, MREMAP_MAYMOVE | MREMAP_FIXED, BASE)).toBe(BASE);

    const ranges = process.mm.vmaList().map((vma) => [vma.start, vma.end]);
    expect(ranges).toEqual([[BASE, BASE + 2 * PAGE], [BASE + 3 * PAGE, BASE + 8 * PAGE]]);
    expect(Array.from(await process.read(BASE, 2))).toEqual([0x42, 0x42]);
    expect(Array.from(await process.read(BASE + PAGE, 2))).toEqual([0, 0]);
    expect(Array.from(await process.read(BASE + 3 * PAGE, 2))).toEqual([0x43, 0x43]);
    await expect(process.read(BASE + 2 * PAGE, 1)).rejects.toThrow(/SIGSEGV/);
  });
});
