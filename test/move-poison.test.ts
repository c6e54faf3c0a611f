// UFFDIO_MOVE and UFFDIO_POISON on private anonymous memory with the
// default kernel (6.18): results, out-fields, errors and the
// mmap_changing gate. Expected values are those a Linux 6.18 kernel
// returned for the same calls, except where a test states that it follows
// the kernel source.

import { describe, expect, it } from "vitest";
import {
  EAGAIN, EBUSY, EEXIST, EFAULT, EINVAL, ENOENT, MAP_ANONYMOUS, MAP_FIXED, MAP_SHARED, PROT_READ, SIGBUS,
  SignalError, UFFD_API, UFFD_EVENT_FORK, UFFD_EVENT_PAGEFAULT, UFFD_FEATURE_EVENT_FORK, UFFD_FEATURE_MOVE,
  UFFD_FEATURE_POISON, UFFDIO_REGISTER_MODE_MISSING,
} from "../src/index.js";
import { createKernel, pageOf, settled, settledNow, watch } from "./helpers.js";
import {
  FIXED, PAGE, REGION, ZEROS, at, copy, frameOf, pteOf, rejection, setup, srcByte, type Env,
} from "./uffd-helpers.js";

const MISSING = UFFDIO_REGISTER_MODE_MISSING;
const ALLOW_SRC_HOLES = 2;
/** Source mapping in the target. Pages 0-2 contain srcByte(i) and page 3 stays empty. */
const SRC = 0x2000_0000;
const srcAt = (page: number) => SRC + page * PAGE;
/** A read-only mapping in the target. */
const READ_ONLY = 0x3000_0000;
/** A mapping in the target registered to a second uffd. */
const FOREIGN = 0x4000_0000;
/** A mapping in the target registered to no uffd. */
const UNREGISTERED = 0x5000_0000;

/** Creates the setup() target and monitor, plus SRC, READ_ONLY, FOREIGN and UNREGISTERED in the target. */
async function setupMove(features = UFFD_FEATURE_MOVE | UFFD_FEATURE_POISON): Promise<Env> {
  const env = await setup({ features });
  const target = env.target;
  expect(target.mmap(4 * PAGE, { flags: FIXED, address: SRC })).toBe(SRC);
  for (let i = 0; i < 3; i++) await settledNow(target.write(srcAt(i), pageOf(srcByte(i))));
  expect(target.mmap(PAGE, { flags: FIXED, address: READ_ONLY, prot: PROT_READ })).toBe(READ_ONLY);
  expect(target.mmap(PAGE, { flags: FIXED, address: FOREIGN })).toBe(FOREIGN);
  expect(target.mmap(PAGE, { flags: FIXED, address: UNREGISTERED })).toBe(UNREGISTERED);
  const foreign = target.userfaultfd();
  expect(foreign.api({ api: UFFD_API, features: 0 }).errno).toBe(0);
  expect(foreign.register({ start: FOREIGN, len: PAGE, mode: MISSING }).errno).toBe(0);
  return env;
}

/** Calls UFFDIO_MOVE through the target's own handle, with the out-field preset to 99. */
function move(env: Env, dst: number, src: number, len = PAGE, mode = 0) {
  return env.own.move({ dst, src, len, mode, move: 99 });
}

function poison(env: Env, page: number, mode = 0) {
  return env.uffd.poison({ start: at(page), len: PAGE, mode, updated: 55 });
}

describe("UFFDIO_MOVE", () => {
  it("is reported by API and REGISTER", async () => {
    const process = (await createKernel()).createProcess();
    expect(process.mmap(PAGE, { flags: FIXED, address: REGION })).toBe(REGION);
    const uffd = process.userfaultfd();
    expect(uffd.api({ api: UFFD_API, features: 0 }).features & (1 << 16)).toBe(1 << 16);
    expect(uffd.register({ start: REGION, len: PAGE, mode: MISSING }).ioctls & (1n << 5n)).toBe(1n << 5n);
  });

  it("moves one page's frame", async () => {
    const env = await setupMove();
    const frame = frameOf(env, srcAt(0));
    expect(frame).not.toBe(0);
    expect(move(env, at(0), srcAt(0))).toEqual({ errno: 0, move: PAGE });
    expect(frameOf(env, at(0))).toBe(frame);
    expect(pteOf(env, srcAt(0))).toBe(0);
    expect(await settledNow(env.target.read(at(0), PAGE))).toEqual(pageOf(srcByte(0)));
    expect(await settledNow(env.target.read(srcAt(0), PAGE))).toEqual(ZEROS);
  });

  it("returns the kernel's errors", async () => {
    const env = await setupMove();
    expect(copy(env, 1, 1).errno).toBe(0);
    // Each case: name, dst, src, len, mode, errno, out-field (99 is the untouched preset).
    const cases: Array<[string, number, number, number, number, number, number]> = [
      ["dst present", at(1), srcAt(0), PAGE, 0, EEXIST, -EEXIST],
      ["src none", at(0), srcAt(3), PAGE, 0, ENOENT, -ENOENT],
      ["dst unregistered", UNREGISTERED, srcAt(0), PAGE, 0, EINVAL, -EINVAL],
      ["dst of another uffd", FOREIGN, srcAt(0), PAGE, 0, EINVAL, -EINVAL],
      ["src read-only", at(0), READ_ONLY, PAGE, 0, EINVAL, -EINVAL],
      ["dst crosses the VMA end", at(7), srcAt(0), 2 * PAGE, 0, EINVAL, -EINVAL],
      ["src crosses the VMA end", at(0), srcAt(3), 2 * PAGE, 0, EINVAL, -EINVAL],
      ["dst equals src", at(1), at(1), PAGE, 0, EEXIST, -EEXIST],
      ["dst unaligned", at(0) + 1, srcAt(0), PAGE, 0, EINVAL, 99],
      ["src unaligned", at(0), srcAt(0) + 1, PAGE, 0, EINVAL, 99],
      ["mode 4", at(0), srcAt(0), PAGE, 4, EINVAL, 99],
    ];
    for (const [name, dst, src, len, mode, errno, out] of cases) {
      expect(move(env, dst, src, len, mode), name).toEqual({ errno, move: out });
    }
    expect(pteOf(env, at(0))).toBe(0);
    expect(await settledNow(env.target.read(srcAt(0), 1))).toEqual(Uint8Array.of(srcByte(0)));
  });

  it("returns EINVAL for a shared source", async () => {
    const env = await setupMove();
    const shared = 0x6000_0000;
    const flags = MAP_SHARED | MAP_ANONYMOUS | MAP_FIXED;
    expect(env.target.mmap(PAGE, { flags, address: shared })).toBe(shared);
    await settledNow(env.target.write(shared, pageOf(0x73)));
    expect(move(env, at(0), shared)).toEqual({ errno: EINVAL, move: -EINVAL });
  });

  it("counts a hole with ALLOW_SRC_HOLES", async () => {
    const env = await setupMove();
    expect(move(env, at(0), srcAt(3), PAGE, ALLOW_SRC_HOLES)).toEqual({ errno: 0, move: PAGE });
    expect(pteOf(env, at(0))).toBe(0);
  });

  it("moves the zero page", async () => {
    const env = await setupMove();
    expect(await settledNow(env.target.read(srcAt(3), 1))).toEqual(Uint8Array.of(0));
    expect(move(env, at(0), srcAt(3))).toEqual({ errno: 0, move: PAGE });
    expect(await settledNow(env.target.read(at(0), PAGE))).toEqual(ZEROS);
    expect(env.uffd.read()).toEqual({ errno: EAGAIN });
  });

  it("works without FEATURE_MOVE", async () => {
    const env = await setupMove(0);
    expect(move(env, at(0), srcAt(0))).toEqual({ errno: 0, move: PAGE });
  });

  it("leaves a registered source missing", async () => {
    const env = await setupMove();
    expect(copy(env, 0, 2).errno).toBe(0);
    expect(move(env, at(1), at(0))).toEqual({ errno: 0, move: PAGE });
    const reader = watch(env.target.read(at(0), 1));
    expect(env.uffd.read()).toEqual({ errno: 0, event: UFFD_EVENT_PAGEFAULT, flags: 0, address: at(0), ptid: 0 });
    expect(copy(env, 0, 0).errno).toBe(0);
    expect(await settled(reader)).toEqual(Uint8Array.of(srcByte(0)));
    expect(await settledNow(env.target.read(at(1), 1))).toEqual(Uint8Array.of(srcByte(2)));
  });

  it("returns EBUSY for a page shared with a child", async () => {
    const env = await setupMove();
    const child = await settledNow(env.target.fork());
    expect(move(env, at(0), srcAt(0))).toEqual({ errno: EBUSY, move: -EBUSY });
    expect(await settledNow(child.read(srcAt(0), 1))).toEqual(Uint8Array.of(srcByte(0)));
  });

  it("stays EBUSY after the child exits", async () => {
    // Kernel source, not a measured result: fork clears the page's
    // anon-exclusive flag, MOVE rejects a page without it, and only a
    // write fault by the parent sets it again. The child's exit does not.
    const env = await setupMove();
    const child = await settledNow(env.target.fork());
    child.exit();
    expect(move(env, at(0), srcAt(0))).toEqual({ errno: EBUSY, move: -EBUSY });
    await settledNow(env.target.write(srcAt(0), Uint8Array.of(0x70)));
    expect(move(env, at(0), srcAt(0))).toEqual({ errno: 0, move: PAGE });
  });

  it("returns EFAULT for a poisoned source", async () => {
    // Kernel source, not a measured result: a source entry that is neither
    // present nor swapped, such as a poison marker, fails with EFAULT.
    const env = await setupMove();
    expect(poison(env, 2).errno).toBe(0);
    expect(move(env, at(3), at(2))).toEqual({ errno: EFAULT, move: -EFAULT });
  });

  it("rejects a move from another process", async () => {
    const env = await setupMove();
    const result = env.uffd.move({ dst: at(0), src: srcAt(0), len: PAGE, mode: 0, move: 99 });
    expect(result).toEqual({ errno: EINVAL, move: 99 });
  });

  it("stops at a missing second source page", async () => {
    const env = await setupMove();
    expect(move(env, at(0), srcAt(2), 2 * PAGE)).toEqual({ errno: EAGAIN, move: PAGE });
    expect(await settledNow(env.target.read(at(0), 1))).toEqual(Uint8Array.of(srcByte(2)));
    expect(pteOf(env, at(1))).toBe(0);
  });
});

describe("UFFDIO_POISON", () => {
  it("poisons a missing page", async () => {
    const env = await setupMove();
    expect(poison(env, 0)).toEqual({ errno: 0, updated: PAGE });
    const error = await rejection(env.target.read(at(0), 1));
    expect(error).toBeInstanceOf(SignalError);
    expect(error).toMatchObject({ signo: SIGBUS, address: at(0) });
    expect(env.uffd.read()).toEqual({ errno: EAGAIN });

    expect(copy(env, 1, 1)).toEqual({ errno: 0, copy: PAGE });
    expect(await settledNow(env.target.read(at(1), 1))).toEqual(Uint8Array.of(srcByte(1)));
  });

  it("raises SIGBUS on a write too", async () => {
    const env = await setupMove();
    expect(poison(env, 0).errno).toBe(0);
    expect(await rejection(env.target.write(at(0), Uint8Array.of(1)))).toMatchObject({ signo: SIGBUS });
  });

  it("returns EEXIST on a present page", async () => {
    const env = await setupMove();
    expect(copy(env, 0, 0).errno).toBe(0);
    expect(poison(env, 0)).toEqual({ errno: EEXIST, updated: -EEXIST });
  });

  it("returns ENOENT when unregistered", async () => {
    const env = await setup({ mode: 0, features: UFFD_FEATURE_POISON });
    expect(poison(env, 0)).toEqual({ errno: ENOENT, updated: -ENOENT });
  });

  it("rejects a bad mode untouched", async () => {
    const env = await setupMove();
    expect(poison(env, 0, 2)).toEqual({ errno: EINVAL, updated: 55 });
    expect(pteOf(env, at(0))).toBe(0);
  });

  it("is copied by fork", async () => {
    const env = await setupMove();
    expect(poison(env, 0).errno).toBe(0);
    const child = await settledNow(env.target.fork());
    expect(await rejection(child.read(at(0), 1))).toMatchObject({ signo: SIGBUS, address: at(0) });
  });
});

describe("gate", () => {
  it("returns EAGAIN with -EAGAIN while FORK is unread", async () => {
    const env = await setupMove(UFFD_FEATURE_EVENT_FORK | UFFD_FEATURE_MOVE | UFFD_FEATURE_POISON);
    const fork = watch(env.target.fork());
    expect(move(env, at(0), srcAt(0)), "MOVE").toEqual({ errno: EAGAIN, move: -EAGAIN });
    expect(poison(env, 0), "POISON").toEqual({ errno: EAGAIN, updated: -EAGAIN });
    expect(move(env, at(0) + 1, srcAt(0)), "MOVE with bad arguments").toEqual({ errno: EAGAIN, move: -EAGAIN });
    expect(pteOf(env, at(0))).toBe(0);

    expect(env.uffd.read()).toMatchObject({ event: UFFD_EVENT_FORK });
    await settled(fork);
    expect(move(env, at(0), srcAt(0))).toEqual({ errno: EBUSY, move: -EBUSY });
    expect(poison(env, 1)).toEqual({ errno: 0, updated: PAGE });
  });
});
