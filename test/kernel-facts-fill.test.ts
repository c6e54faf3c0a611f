// Scenarios 7-12 of the Linux 6.18 measurements: UFFDIO_COPY and
// UFFDIO_ZEROPAGE results, argument errors, bad targets, partial progress
// and out-fields. Each describe is named after the measured scenario, and
// every expected value is what the real kernel returned. "Untouched" means
// the out-field keeps the preset passed in.

import { describe, expect, it } from "vitest";
import {
  EAGAIN, EEXIST, EFAULT, EINVAL, ENOENT, MADV_DONTNEED, PROT_READ, TASK_SIZE, UFFDIO_COPY_MODE_DONTWAKE,
  UFFDIO_COPY_MODE_WP, UFFDIO_REGISTER_MODE_MISSING, UFFDIO_ZEROPAGE_MODE_DONTWAKE,
} from "../src/index.js";
import { drain, pageOf, settledNow, watch } from "./helpers.js";
import {
  PAGE, PLAIN, PRESET, REGION, SPARE, UNMAPPED, byte, byteAt, copyPage, createEnv, mapAt, mapRegistered, present,
  secondUffd, sourcePages,
} from "./facts-helpers.js";

const MISSING = UFFDIO_REGISTER_MODE_MISSING;
const at = (page: number) => REGION + page * PAGE;

describe("copy_basic", () => {
  it("fills a missing page", async () => {
    const env = await createEnv();
    mapRegistered(env, REGION, 2, MISSING);
    const src = await sourcePages(env, "a");
    expect(copyPage(env.uffd, REGION, src)).toEqual({ errno: 0, copy: PAGE });
  });

  it("EEXIST on a present page", async () => {
    const env = await createEnv();
    mapRegistered(env, REGION, 2, MISSING);
    const src = await sourcePages(env, "ab");
    expect(copyPage(env.uffd, REGION, src).errno, "first COPY").toBe(0);
    expect(copyPage(env.uffd, REGION, src + PAGE)).toEqual({ errno: EEXIST, copy: -EEXIST });
    expect(await byteAt(env, REGION), "content kept").toBe(byte("a"));
  });
});

describe("copy_arg_errors", () => {
  async function setup() {
    const env = await createEnv();
    mapRegistered(env, REGION, 4, MISSING);
    const src = await sourcePages(env, "ab");
    return { env, src };
  }

  // Each case is name, dst, len and mode. The out-field stays at PRESET.
  const untouched: Array<[string, number, number, number]> = [
    ["dst unaligned", REGION + 1, PAGE, 0],
    ["len 100", REGION, 100, 0],
    ["len 0", REGION, 0, 0],
    ["bad mode", REGION, PAGE, 1 << 2],
    ["dst at TASK_SIZE", TASK_SIZE, PAGE, 0],
  ];
  for (const [name, dst, len, mode] of untouched) {
    it(`${name} is EINVAL, untouched`, async () => {
      const { env, src } = await setup();
      expect(env.uffd.copy({ dst, src, len, mode, copy: PRESET })).toEqual({ errno: EINVAL, copy: PRESET });
    });
  }

  it("MODE_WP without WP registration", async () => {
    const { env, src } = await setup();
    const result = env.uffd.copy({ dst: REGION, src, len: PAGE, mode: UFFDIO_COPY_MODE_WP, copy: PRESET });
    expect(result).toEqual({ errno: EINVAL, copy: -EINVAL });
  });

  it("NULL src is EFAULT", async () => {
    const { env } = await setup();
    expect(env.uffd.copy({ dst: REGION, src: 0, len: PAGE, mode: 0, copy: PRESET })).toEqual({ errno: EFAULT, copy: -EFAULT });
  });

  it("allows an unaligned src", async () => {
    const { env, src } = await setup();
    expect(env.uffd.copy({ dst: REGION, src: src + 1, len: PAGE, mode: 0, copy: PRESET })).toEqual({ errno: 0, copy: PAGE });
  });
});

describe("copy_bad_targets", () => {
  it("unmapped src is EFAULT", async () => {
    const env = await createEnv();
    mapRegistered(env, REGION, 4, MISSING);
    expect(copyPage(env.uffd, REGION, UNMAPPED)).toEqual({ errno: EFAULT, copy: -EFAULT });
  });

  it("unmapped second src page is partial", async () => {
    const env = await createEnv();
    mapRegistered(env, REGION, 4, MISSING);
    // One source page with nothing mapped after it.
    mapAt(env, SPARE, 1);
    await settledNow(env.target.write(SPARE, pageOf(byte("a"))));
    expect(copyPage(env.uffd, REGION, SPARE, 2 * PAGE)).toEqual({ errno: EAGAIN, copy: PAGE });
  });

  it("unregistered dst is ENOENT", async () => {
    const env = await createEnv();
    mapAt(env, PLAIN, 2);
    const src = await sourcePages(env, "a");
    expect(copyPage(env.uffd, PLAIN, src)).toEqual({ errno: ENOENT, copy: -ENOENT });
  });

  it("dst in a hole is ENOENT", async () => {
    const env = await createEnv();
    mapRegistered(env, at(0), 2, MISSING);
    mapRegistered(env, at(3), 2, MISSING);
    const src = await sourcePages(env, "a");
    expect(copyPage(env.uffd, at(2), src)).toEqual({ errno: ENOENT, copy: -ENOENT });
  });

  it("munmapped dst is ENOENT", async () => {
    const env = await createEnv();
    mapRegistered(env, REGION, 4, MISSING);
    const src = await sourcePages(env, "a");
    expect(await settledNow(env.target.munmap(at(1), PAGE))).toBe(0);
    expect(copyPage(env.uffd, at(1), src)).toEqual({ errno: ENOENT, copy: -ENOENT });
  });

  it("crossing the VMA end is ENOENT", async () => {
    const env = await createEnv();
    mapRegistered(env, REGION, 4, MISSING);
    const src = await sourcePages(env, "ab");
    expect(copyPage(env.uffd, at(3), src, 2 * PAGE)).toEqual({ errno: ENOENT, copy: -ENOENT });
  });

  it("crossing into an unregistered VMA is ENOENT", async () => {
    const env = await createEnv();
    mapAt(env, REGION, 4);
    expect(env.uffd.register({ start: REGION, len: 2 * PAGE, mode: MISSING }).errno).toBe(0);
    const src = await sourcePages(env, "ab");
    expect(copyPage(env.uffd, at(1), src, 2 * PAGE)).toEqual({ errno: ENOENT, copy: -ENOENT });
  });

  it("other uffd of the same mm", async () => {
    const env = await createEnv();
    mapRegistered(env, REGION, 4, MISSING);
    const src = await sourcePages(env, "a");
    const other = secondUffd(env);
    expect(copyPage(other, REGION, src)).toEqual({ errno: 0, copy: PAGE });
  });
});

describe("copy_partial", () => {
  async function setup() {
    const env = await createEnv();
    mapRegistered(env, REGION, 8, MISSING);
    const src = await sourcePages(env, "abcd");
    expect(copyPage(env.uffd, at(6), src).errno, "COPY of page 6").toBe(0);
    return { env, src };
  }

  it("stops at a present middle page", async () => {
    const { env, src } = await setup();
    expect(copyPage(env.uffd, at(4), src, 4 * PAGE)).toEqual({ errno: EAGAIN, copy: 2 * PAGE });
    expect(present(env, at(4)), "p4").toBe(1);
    expect(present(env, at(5)), "p5").toBe(1);
    expect(present(env, at(7)), "p7").toBe(0);
  });

  it("EEXIST on a present first page", async () => {
    const { env, src } = await setup();
    expect(copyPage(env.uffd, at(6), src, 2 * PAGE)).toEqual({ errno: EEXIST, copy: -EEXIST });
  });

  it("retries the remainder", async () => {
    const { env, src } = await setup();
    expect(copyPage(env.uffd, at(4), src, 4 * PAGE).errno, "partial COPY").toBe(EAGAIN);
    expect(copyPage(env.uffd, at(7), src + 3 * PAGE)).toEqual({ errno: 0, copy: PAGE });
  });
});

describe("copy_misc", () => {
  it("DONTWAKE with no waiter", async () => {
    const env = await createEnv();
    mapRegistered(env, REGION, 2, MISSING);
    const src = await sourcePages(env, "a");
    expect(copyPage(env.uffd, REGION, src, PAGE, UFFDIO_COPY_MODE_DONTWAKE)).toEqual({ errno: 0, copy: PAGE });
  });

  it("EEXIST on the zero page", async () => {
    const env = await createEnv();
    mapAt(env, REGION, 2);
    // A read before registration maps the shared zero page.
    expect(await byteAt(env, REGION)).toBe(0);
    expect(env.uffd.register({ start: REGION, len: 2 * PAGE, mode: MISSING }).errno).toBe(0);
    const src = await sourcePages(env, "a");
    expect(copyPage(env.uffd, REGION, src)).toEqual({ errno: EEXIST, copy: -EEXIST });
  });

  it("fills again after MADV_DONTNEED", async () => {
    const env = await createEnv();
    mapRegistered(env, REGION, 2, MISSING);
    const src = await sourcePages(env, "a");
    expect(copyPage(env.uffd, REGION, src).errno, "first COPY").toBe(0);
    expect(await settledNow(env.target.madvise(REGION, PAGE, MADV_DONTNEED))).toBe(0);
    expect(copyPage(env.uffd, REGION, src)).toEqual({ errno: 0, copy: PAGE });
  });

  it("fills a PROT_READ VMA", async () => {
    const env = await createEnv();
    mapAt(env, REGION, 2, { prot: PROT_READ });
    expect(env.uffd.register({ start: REGION, len: 2 * PAGE, mode: MISSING }).errno).toBe(0);
    const src = await sourcePages(env, "a");
    expect(copyPage(env.uffd, REGION, src)).toEqual({ errno: 0, copy: PAGE });
    expect(await byteAt(env, REGION), "byte 0").toBe(97);
  });
});

describe("zeropage", () => {
  async function setup() {
    const env = await createEnv();
    mapRegistered(env, REGION, 8, MISSING);
    mapAt(env, PLAIN, 2);
    return env;
  }

  it("maps two pages", async () => {
    const env = await setup();
    expect(env.uffd.zeropage({ start: REGION, len: 2 * PAGE, mode: 0 })).toEqual({ errno: 0, zeropage: 2 * PAGE });
  });

  it("EEXIST on a present page", async () => {
    const env = await setup();
    expect(env.uffd.zeropage({ start: REGION, len: PAGE, mode: 0 }).errno, "first ZEROPAGE").toBe(0);
    expect(env.uffd.zeropage({ start: REGION, len: PAGE, mode: 0 })).toEqual({ errno: EEXIST, zeropage: -EEXIST });
  });

  it("stops at a present middle page", async () => {
    const env = await setup();
    const src = await sourcePages(env, "a");
    expect(copyPage(env.uffd, at(4), src).errno, "COPY of page 4").toBe(0);
    expect(env.uffd.zeropage({ start: at(3), len: 3 * PAGE, mode: 0 })).toEqual({ errno: EAGAIN, zeropage: PAGE });
    expect(present(env, at(3)), "p3").toBe(1);
    expect(present(env, at(5)), "p5").toBe(0);
  });

  // Each case is name, start, len and mode. The out-field stays at PRESET.
  const untouched: Array<[string, number, number, number]> = [
    ["unaligned", REGION + 1, PAGE, 0],
    ["len 100", REGION, 100, 0],
    ["bad mode", REGION, PAGE, 1 << 1],
  ];
  for (const [name, start, len, mode] of untouched) {
    it(`${name} is EINVAL, untouched`, async () => {
      const env = await setup();
      expect(env.uffd.zeropage({ start, len, mode, zeropage: PRESET })).toEqual({ errno: EINVAL, zeropage: PRESET });
    });
  }

  it("unregistered is ENOENT", async () => {
    const env = await setup();
    expect(env.uffd.zeropage({ start: PLAIN, len: PAGE, mode: 0 })).toEqual({ errno: ENOENT, zeropage: -ENOENT });
  });

  it("DONTWAKE maps a page", async () => {
    const env = await setup();
    const result = env.uffd.zeropage({ start: at(6), len: PAGE, mode: UFFDIO_ZEROPAGE_MODE_DONTWAKE });
    expect(result).toEqual({ errno: 0, zeropage: PAGE });
  });

  it("write afterwards raises no event", async () => {
    const env = await setup();
    expect(env.uffd.zeropage({ start: REGION, len: PAGE, mode: 0 }).errno, "ZEROPAGE").toBe(0);
    const write = watch(env.target.write(REGION, new Uint8Array([byte("x")])));
    await drain();
    expect(write.state, "write completed").toBe("fulfilled");
    expect(env.uffd.read(), "uffd event").toEqual({ errno: EAGAIN });
  });
});
