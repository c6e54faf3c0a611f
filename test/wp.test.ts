// uffd-wp on private anonymous memory with the default kernel (6.18):
// registration masks, UFFDIO_WRITEPROTECT, COPY with MODE_WP, the WP_ASYNC
// and WP_UNPOPULATED features, fork, and what ends the protection.
// Expected values are those a Linux 6.18 kernel returned for the same calls.

import { describe, expect, it } from "vitest";
import {
  EAGAIN, EINVAL, ENOENT, UFFD_EVENT_FORK, UFFD_EVENT_PAGEFAULT, UFFD_FEATURE_EVENT_FORK,
  UFFD_FEATURE_PAGEFAULT_FLAG_WP, UFFD_FEATURE_WP_ASYNC, UFFD_FEATURE_WP_UNPOPULATED, UFFDIO_COPY_MODE_WP,
  UFFDIO_REGISTER_MODE_MINOR, UFFDIO_REGISTER_MODE_MISSING, UFFDIO_REGISTER_MODE_WP, UFFDIO_WRITEPROTECT_MODE_DONTWAKE,
  type Process, type Userfaultfd,
} from "../src/index.js";
import { drain, pageOf, settled, settledNow, watch } from "./helpers.js";
import { PAGE, REGION, ZEROS, at, copy, forkWithEvent, populate, setup, srcByte, wpBit, type Env } from "./uffd-helpers.js";

const MISSING = UFFDIO_REGISTER_MODE_MISSING;
const WP = UFFDIO_REGISTER_MODE_WP;
/** UFFD_PAGEFAULT_FLAG_WRITE | UFFD_PAGEFAULT_FLAG_WP: what a write to a protected page reports. */
const WP_FAULT_FLAGS = 3;

/** Calls UFFDIO_WRITEPROTECT on `pages` pages from page `page` with `mode` (1 protects, 0 un-protects). */
function writeprotect(env: Env, page: number, mode: number, pages = 1, uffd = env.uffd) {
  return uffd.writeprotect({ start: at(page), len: pages * PAGE, mode });
}

/** Returns the message that a write fault on a protected page at `address` produces. */
function wpFault(address: number) {
  return { errno: 0, event: UFFD_EVENT_PAGEFAULT, flags: WP_FAULT_FLAGS, address, ptid: 0 };
}

/** Returns [start, end, uffdFlags] for each VMA of `process`. */
function modes(process: Process) {
  return process.mm.vmaList().map((vma) => [vma.start, vma.end, vma.uffdFlags]);
}

/** Creates a target registered WP-only whose page 0 contains 0x61 bytes and is protected. */
async function protectedPage(features = UFFD_FEATURE_PAGEFAULT_FLAG_WP): Promise<Env> {
  const env = await setup({ mode: WP, features });
  await populate(env, 0, 0x61);
  expect(writeprotect(env, 0, 1)).toEqual({ errno: 0 });
  return env;
}

describe("REGISTER with WP", () => {
  it("reports the ioctls of each mode", async () => {
    // Bits 2-5 and 8 are WAKE, COPY, ZEROPAGE, MOVE and POISON, and bit 6 is WRITEPROTECT.
    const cases: Array<[string, number, bigint]> = [
      ["MISSING", MISSING, 0x13cn],
      ["WP", WP, 0x17cn],
      ["MISSING|WP", MISSING | WP, 0x17cn],
    ];
    for (const [name, mode, ioctls] of cases) {
      const env = await setup({ mode: 0 });
      expect(env.uffd.register({ start: REGION, len: PAGE, mode }), name).toEqual({ errno: 0, ioctls });
    }
  });

  it("rejects MINOR on anonymous memory", async () => {
    const env = await setup({ mode: 0 });
    const result = env.uffd.register({ start: REGION, len: PAGE, mode: UFFDIO_REGISTER_MODE_MINOR });
    expect(result).toEqual({ errno: EINVAL, ioctls: 0n });
  });

  it("replaces MISSING with WP on re-register", async () => {
    const env = await setup({ mode: MISSING });
    expect(env.uffd.register({ start: REGION, len: 8 * PAGE, mode: WP }).errno).toBe(0);
    expect(modes(env.target)).toEqual([[at(0), at(8), WP]]);
    expect(await settledNow(env.target.read(at(0), PAGE))).toEqual(ZEROS);
    expect(env.uffd.read()).toEqual({ errno: EAGAIN });
  });
});

describe("UFFDIO_WRITEPROTECT", () => {
  it("protects a present page", async () => {
    const env = await protectedPage();
    expect(wpBit(env, at(0))).toBe(1);
    expect(await settledNow(env.target.read(at(0), PAGE))).toEqual(pageOf(0x61));
    expect(env.uffd.read()).toEqual({ errno: EAGAIN });
  });

  it("blocks a write with a WP fault", async () => {
    const env = await protectedPage();
    const writer = watch(env.target.write(at(0) + 5, Uint8Array.of(0x78)));
    expect(env.uffd.read()).toEqual(wpFault(at(0)));
    await drain();
    expect(writer.state).toBe("pending");
    expect(await settledNow(env.target.read(at(0) + 5, 1))).toEqual(Uint8Array.of(0x61));
  });

  it("wakes the writer on un-protect", async () => {
    const env = await protectedPage();
    const writer = watch(env.target.write(at(0) + 5, Uint8Array.of(0x78)));
    expect(env.uffd.read()).toEqual(wpFault(at(0)));

    expect(writeprotect(env, 0, 0)).toEqual({ errno: 0 });
    await settled(writer);
    expect(await settledNow(env.target.read(at(0) + 4, 3))).toEqual(Uint8Array.of(0x61, 0x78, 0x61));
    expect(wpBit(env, at(0))).toBe(0);
  });

  it("keeps the writer asleep with DONTWAKE", async () => {
    const env = await protectedPage();
    const writer = watch(env.target.write(at(0), Uint8Array.of(0x78)));
    expect(env.uffd.read()).toEqual(wpFault(at(0)));

    expect(writeprotect(env, 0, UFFDIO_WRITEPROTECT_MODE_DONTWAKE)).toEqual({ errno: 0 });
    await drain();
    expect(writer.state).toBe("pending");
    expect(env.uffd.wake({ start: at(0), len: PAGE }).errno).toBe(0);
    await settled(writer);
    expect(env.uffd.read()).toEqual({ errno: EAGAIN });
  });

  it("lets writes through after un-protect", async () => {
    const env = await protectedPage();
    expect(writeprotect(env, 0, 0)).toEqual({ errno: 0 });
    await settledNow(env.target.write(at(0) + 6, Uint8Array.of(0x79)));
    expect(env.uffd.read()).toEqual({ errno: EAGAIN });
    expect(await settledNow(env.target.read(at(0) + 6, 1))).toEqual(Uint8Array.of(0x79));
  });

  it("returns the kernel's argument errors", async () => {
    // Page 0 registered WP, page 1 MISSING only, page 2 not registered.
    const env = await setup({ mode: 0 });
    await populate(env, 0, 0x61);
    expect(env.uffd.register({ start: at(0), len: PAGE, mode: WP }).errno).toBe(0);
    expect(env.uffd.register({ start: at(1), len: PAGE, mode: MISSING }).errno).toBe(0);
    const cases: Array<[string, number, number, number, number]> = [
      ["WP|DONTWAKE", at(0), PAGE, 3, EINVAL],
      ["unaligned start", at(0) + 1, PAGE, 1, EINVAL],
      ["unaligned len", at(0), 100, 1, EINVAL],
      ["len 0", at(0), 0, 1, EINVAL],
      ["mode 4", at(0), PAGE, 4, EINVAL],
      ["MISSING-only range", at(1), PAGE, 1, ENOENT],
      ["unregistered range", at(2), PAGE, 1, ENOENT],
      ["unmapped range", at(64), PAGE, 1, ENOENT],
      ["un-protect of a never-protected page", at(0), PAGE, 0, 0],
    ];
    for (const [name, start, len, mode, errno] of cases) {
      expect(env.uffd.writeprotect({ start, len, mode }), name).toEqual({ errno });
    }
    expect(wpBit(env, at(0))).toBe(0);
  });

  it("protects the WP VMA before a MISSING-only one", async () => {
    const env = await setup({ mode: 0 });
    await populate(env, 0, 0x61);
    expect(env.uffd.register({ start: at(0), len: PAGE, mode: WP }).errno).toBe(0);
    expect(env.uffd.register({ start: at(1), len: PAGE, mode: MISSING }).errno).toBe(0);
    expect(writeprotect(env, 0, 1, 2)).toEqual({ errno: ENOENT });
    expect(wpBit(env, at(0))).toBe(1);
  });

  it("skips a hole between WP VMAs", async () => {
    const env = await setup({ mode: 0 });
    await populate(env, 0, 0x61);
    await populate(env, 2, 0x63);
    expect(await env.target.munmap(at(1), PAGE)).toBe(0);
    expect(env.uffd.register({ start: at(0), len: 3 * PAGE, mode: WP }).errno).toBe(0);
    expect(writeprotect(env, 0, 1, 3)).toEqual({ errno: 0 });
    expect(wpBit(env, at(0))).toBe(1);
    expect(wpBit(env, at(2))).toBe(1);
  });

  it("returns EAGAIN while FORK is unread", async () => {
    const env = await setup({ mode: WP, features: UFFD_FEATURE_EVENT_FORK });
    const fork = watch(env.target.fork());
    expect(writeprotect(env, 0, 1)).toEqual({ errno: EAGAIN });
    expect(env.uffd.read()).toMatchObject({ event: UFFD_EVENT_FORK });
    await settled(fork);
    expect(writeprotect(env, 0, 1)).toEqual({ errno: 0 });
  });
});

describe("COPY with MODE_WP", () => {
  it("maps a protected page", async () => {
    const env = await setup({ mode: MISSING | WP, features: UFFD_FEATURE_PAGEFAULT_FLAG_WP });
    expect(copy(env, 0, 0, UFFDIO_COPY_MODE_WP)).toEqual({ errno: 0, copy: PAGE });
    expect(await settledNow(env.target.read(at(0), PAGE))).toEqual(pageOf(srcByte(0)));
    expect(env.uffd.read()).toEqual({ errno: EAGAIN });

    const writer = watch(env.target.write(at(0), Uint8Array.of(1)));
    expect(env.uffd.read()).toEqual(wpFault(at(0)));
    await drain();
    expect(writer.state).toBe("pending");
  });

  it("rejects MODE_WP without WP registration", async () => {
    const env = await setup({ mode: MISSING });
    expect(copy(env, 0, 0, UFFDIO_COPY_MODE_WP)).toEqual({ errno: EINVAL, copy: -EINVAL });
  });
});

describe("WP features", () => {
  it("flags WP faults without FLAG_WP", async () => {
    const env = await protectedPage(0);
    watch(env.target.write(at(0), Uint8Array.of(1)));
    expect(env.uffd.read()).toEqual(wpFault(at(0)));
  });

  it("WP_ASYNC resolves a write without a message", async () => {
    const env = await protectedPage(UFFD_FEATURE_WP_ASYNC);
    await settledNow(env.target.write(at(0), Uint8Array.of(0x7a)));
    expect(env.uffd.read()).toEqual({ errno: EAGAIN });
    expect(await settledNow(env.target.read(at(0), 2))).toEqual(Uint8Array.of(0x7a, 0x61));
    expect(wpBit(env, at(0))).toBe(0);
  });

  it("WP_UNPOPULATED protects an empty page", async () => {
    const env = await setup({ mode: WP, features: UFFD_FEATURE_WP_UNPOPULATED });
    expect(writeprotect(env, 0, 1)).toEqual({ errno: 0 });
    const writer = watch(env.target.write(at(0) + 1, Uint8Array.of(0x6d)));
    expect(env.uffd.read()).toEqual(wpFault(at(0)));
    await drain();
    expect(writer.state).toBe("pending");

    expect(writeprotect(env, 0, 0)).toEqual({ errno: 0 });
    await settled(writer);
    expect(await settledNow(env.target.read(at(0), 2))).toEqual(Uint8Array.of(0, 0x6d));
    expect(env.uffd.read()).toEqual({ errno: EAGAIN });
  });

  it("leaves an empty page unprotected by default", async () => {
    const env = await setup({ mode: WP });
    expect(writeprotect(env, 0, 1)).toEqual({ errno: 0 });
    await settledNow(env.target.write(at(0), Uint8Array.of(0x6d)));
    expect(env.uffd.read()).toEqual({ errno: EAGAIN });
  });
});

describe("fork of a protected page", () => {
  /** Writes to page 0 of `process` and expects a WP fault on `uffd`, leaving the writer blocked. */
  function expectWpFault(process: Process, uffd: Userfaultfd, name: string) {
    watch(process.write(at(0), Uint8Array.of(0x77)));
    expect(uffd.read(), name).toEqual(wpFault(at(0)));
  }

  it("stays protected with EVENT_FORK", async () => {
    const env = await protectedPage(UFFD_FEATURE_EVENT_FORK);
    const { child, childUffd } = await forkWithEvent(env);
    expect(wpBit(env, at(0), child)).toBe(1);
    expectWpFault(child, childUffd, "child write");
    expect(env.uffd.read()).toEqual({ errno: EAGAIN });
    expectWpFault(env.target, env.uffd, "parent write");
  });

  it("loses protection without EVENT_FORK", async () => {
    const env = await protectedPage(0);
    const child = await settledNow(env.target.fork());
    expect(wpBit(env, at(0), child)).toBe(0);
    await settledNow(child.write(at(0), Uint8Array.of(0x63)));
    expect(env.uffd.read()).toEqual({ errno: EAGAIN });
    expect(await settledNow(child.read(at(0), 2))).toEqual(Uint8Array.of(0x63, 0x61));
    expect(await settledNow(env.target.read(at(0), 1))).toEqual(Uint8Array.of(0x61));
    expectWpFault(env.target, env.uffd, "parent write");
  });
});

describe("end of protection", () => {
  it("UNREGISTER clears protection", async () => {
    const env = await protectedPage();
    expect(env.uffd.unregister({ start: REGION, len: 8 * PAGE }).errno).toBe(0);
    expect(wpBit(env, at(0))).toBe(0);
    await settledNow(env.target.write(at(0), Uint8Array.of(0x75)));
    expect(env.uffd.read()).toEqual({ errno: EAGAIN });
    expect(await settledNow(env.target.read(at(0), 2))).toEqual(Uint8Array.of(0x75, 0x61));
  });

  it("UNREGISTER leaves a WP fault asleep", async () => {
    // Only MISSING registrations wake their faults on UNREGISTER.
    const env = await protectedPage();
    const writer = watch(env.target.write(at(0), Uint8Array.of(0x75)));
    expect(env.uffd.read()).toEqual(wpFault(at(0)));

    expect(env.uffd.unregister({ start: REGION, len: 8 * PAGE }).errno).toBe(0);
    await drain();
    expect(writer.state).toBe("pending");
    expect(env.uffd.wake({ start: at(0), len: PAGE }).errno).toBe(0);
    await settled(writer);
    expect(await settledNow(env.target.read(at(0), 1))).toEqual(Uint8Array.of(0x75));
  });

  it("close clears protection", async () => {
    const env = await protectedPage();
    env.own.close();
    env.uffd.close();
    expect(wpBit(env, at(0))).toBe(0);
    await settledNow(env.target.write(at(0), Uint8Array.of(0x75)));
    expect(await settledNow(env.target.read(at(0), 2))).toEqual(Uint8Array.of(0x75, 0x61));
    expect(modes(env.target)).toEqual([[at(0), at(8), 0]]);
  });
});
