// mprotect: protection changes split VMAs and keep the registration.
import { describe, expect, it } from "vitest";
import {
  EACCES, EINVAL, ENOMEM, MAP_SHARED, PAGE_SIZE, PROT_READ, PROT_WRITE, SIGSEGV, SignalError, UFFD_API,
  UFFDIO_REGISTER_MODE_MISSING,
} from "../src/index.js";
import { createKernel, pageOf } from "./helpers.js";

describe("mprotect", () => {
  it("makes a page read-only and back", async () => {
    const kernel = await createKernel();
    const process = kernel.createProcess();
    const area = process.mmap(4 * PAGE_SIZE);
    await process.write(area + PAGE_SIZE, pageOf(5));

    expect(process.mprotect(area + PAGE_SIZE, PAGE_SIZE, PROT_READ)).toBe(0);
    expect(process.mm.vmaList().length).toBe(3);
    const denied = await process.write(area + PAGE_SIZE, Uint8Array.of(1)).catch((error: unknown) => error);
    expect(denied).toBeInstanceOf(SignalError);
    expect((denied as SignalError).signo).toBe(SIGSEGV);
    expect(Array.from(await process.read(area + PAGE_SIZE, 2))).toEqual([5, 5]);

    expect(process.mprotect(area + PAGE_SIZE, PAGE_SIZE, PROT_READ | PROT_WRITE)).toBe(0);
    expect(process.mm.vmaList().length).toBe(1);
    await process.write(area + PAGE_SIZE, Uint8Array.of(9));
    expect(Array.from(await process.read(area + PAGE_SIZE, 2))).toEqual([9, 5]);
  });

  it("keeps the userfaultfd registration", async () => {
    const kernel = await createKernel();
    const process = kernel.createProcess();
    const area = process.mmap(2 * PAGE_SIZE);
    const uffd = process.userfaultfd();
    uffd.api({ api: UFFD_API, features: 0 });
    uffd.register({ start: area, len: 2 * PAGE_SIZE, mode: UFFDIO_REGISTER_MODE_MISSING });
    expect(process.mprotect(area, PAGE_SIZE, PROT_READ)).toBe(0);
    expect(process.mm.vmaLookup(area)?.uffdFlags).toBe(UFFDIO_REGISTER_MODE_MISSING);
    expect(process.mm.vmaLookup(area + PAGE_SIZE)?.uffdFlags).toBe(UFFDIO_REGISTER_MODE_MISSING);
  });

  it("rejects bad arguments without changes", async () => {
    const kernel = await createKernel();
    const process = kernel.createProcess();
    const area = process.mmap(2 * PAGE_SIZE);
    expect(process.mprotect(area + 1, PAGE_SIZE, PROT_READ)).toBe(-EINVAL);
    expect(process.mprotect(area, PAGE_SIZE, 8)).toBe(-EINVAL);
    expect(process.mprotect(area, 4 * PAGE_SIZE, PROT_READ)).toBe(-ENOMEM);
    expect(process.mm.vmaLookup(area)?.prot).toBe(PROT_READ | PROT_WRITE);
    const file = kernel.memfdCreate("read-only", PAGE_SIZE, { readOnly: true });
    const mapped = process.mmap(PAGE_SIZE, { file, flags: MAP_SHARED, prot: PROT_READ });
    expect(process.mprotect(mapped, PAGE_SIZE, PROT_READ | PROT_WRITE)).toBe(-EACCES);
  });
});
