// Kernel.reset: one kernel reused for many short runs.
import { describe, expect, it } from "vitest";
import { PAGE_SIZE, UFFD_API, UFFDIO_REGISTER_MODE_MISSING } from "../src/index.js";
import { createKernel, pageOf } from "./helpers.js";

describe("Kernel.reset", () => {
  it("returns every frame and zeroes them", async () => {
    const kernel = await createKernel({ maxMemory: 1 << 20 });
    const baseline = kernel.framesUsed;
    const first = kernel.createProcess();
    const area = first.mmap(8 * PAGE_SIZE);
    await first.write(area, pageOf(0xab, 8 * PAGE_SIZE));
    await first.fork();
    kernel.reset();
    expect(kernel.framesUsed).toBe(baseline);

    const second = kernel.createProcess();
    expect(second.pid).toBe(1);
    const again = second.mmap(8 * PAGE_SIZE);
    expect(again).toBe(area);
    // A write fault takes a fresh frame: it must read as zeros, not 0xab.
    await second.write(again, Uint8Array.of(1));
    expect(Array.from(await second.read(again + 1, 4))).toEqual([0, 0, 0, 0]);
  });

  it("drops processes, contexts and counters", async () => {
    const kernel = await createKernel({ maxMemory: 1 << 20 });
    const process = kernel.createProcess();
    const area = process.mmap(PAGE_SIZE);
    const uffd = process.userfaultfd();
    uffd.api({ api: UFFD_API, features: 0 });
    uffd.register({ start: area, len: PAGE_SIZE, mode: UFFDIO_REGISTER_MODE_MISSING });
    void process.read(area, 1);
    expect(kernel.stats.faults).toBe(1);

    kernel.reset();
    expect(kernel.processes.size).toBe(0);
    expect(kernel.contexts.size).toBe(0);
    expect(kernel.stats.faults).toBe(0);
    expect(process.exited).toBe(true);
  });
});
