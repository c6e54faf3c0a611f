// The README's first program, step by step, with its printed values asserted.
import { describe, expect, it } from "vitest";
import {
  EAGAIN, Kernel, PAGE_SIZE, UFFD_API, UFFD_EVENT_FORK, UFFD_EVENT_PAGEFAULT, UFFD_FEATURE_EVENT_FORK,
  UFFDIO_REGISTER_MODE_MISSING, type ForkMsg,
} from "../src/index.js";

async function firstProgram(mmapChangingGate: boolean) {
  const kernel = await Kernel.create({ mmapChangingGate, build: "debug" });
  const parent = kernel.createProcess();
  const area = parent.mmap(16 * PAGE_SIZE);
  const staging = parent.mmap(PAGE_SIZE);
  await parent.write(staging, new Uint8Array(PAGE_SIZE).fill(7));

  const uffd = parent.userfaultfd();
  uffd.api({ api: UFFD_API, features: UFFD_FEATURE_EVENT_FORK });
  uffd.register({ start: area, len: 16 * PAGE_SIZE, mode: UFFDIO_REGISTER_MODE_MISSING });

  const forking = parent.fork();
  const first = uffd.copy({ dst: area, src: staging, len: PAGE_SIZE, mode: 0 });
  const msg = uffd.read() as ForkMsg;
  const child = await forking;
  const retry = uffd.copy({ dst: area, src: staging, len: PAGE_SIZE, mode: 0 });

  const childRead = child.read(area, 1);
  const fault = msg.uffd.read();
  const childCopy = msg.uffd.copy({ dst: area, src: staging, len: PAGE_SIZE, mode: 0 });
  return { first, msg, retry, fault, childCopy, childByte: await childRead };
}

describe("README first program", () => {
  it("gets EAGAIN, then fills parent and child", async () => {
    const run = await firstProgram(true);
    expect(run.first).toEqual({ errno: EAGAIN, copy: -EAGAIN });
    expect(run.msg.event).toBe(UFFD_EVENT_FORK);
    expect(run.retry).toEqual({ errno: 0, copy: PAGE_SIZE });
    expect(run.fault).toMatchObject({ event: UFFD_EVENT_PAGEFAULT });
    expect(run.childCopy).toEqual({ errno: 0, copy: PAGE_SIZE });
    expect(Array.from(run.childByte)).toEqual([7]);
  });

  it("fills the parent only without the gate", async () => {
    const run = await firstProgram(false);
    expect(run.first).toEqual({ errno: 0, copy: PAGE_SIZE });
    expect(run.retry).toEqual({ errno: 17, copy: -17 });
    expect(run.fault).toMatchObject({ event: UFFD_EVENT_PAGEFAULT });
    expect(Array.from(run.childByte)).toEqual([7]);
  });
});
