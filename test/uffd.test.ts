// The userfaultfd surface through the public API: the handshake, range
// registration, the fill ioctls, fault delivery, wake-ups and lifetimes.
// Expected values are those a Linux 6.18 kernel returned for the same calls.

import { describe, expect, it } from "vitest";
import {
  EAGAIN, EBUSY, EEXIST, EFAULT, EINVAL, ENOENT, ENOMEM, ESRCH, MADV_DONTNEED, MAP_ANONYMOUS, MAP_FIXED,
  MAP_PRIVATE, SIGBUS, SignalError, UFFD_API, UFFD_EVENT_FORK, UFFD_EVENT_PAGEFAULT, UFFD_FEATURE_EVENT_FORK,
  UFFD_FEATURE_EXACT_ADDRESS, UFFD_FEATURE_SIGBUS, UFFD_FEATURE_THREAD_ID, UFFD_PAGEFAULT_FLAG_WRITE,
  UFFDIO_COPY_MODE_DONTWAKE, UFFDIO_COPY_MODE_WP, UFFDIO_REGISTER_MODE_MISSING, UFFDIO_ZEROPAGE_MODE_DONTWAKE,
  type CopyArgs, type Kernel, type Process, type Userfaultfd, type ZeropageArgs,
} from "../src/index.js";
import { createKernel, drain, pageOf, settled, settledNow, watch } from "./helpers.js";

const PAGE = 4096;
/** The target's registered region. */
const REGION = 0x1000_0000;
const FIXED = MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED;
const MISSING = UFFDIO_REGISTER_MODE_MISSING;
const at = (page: number) => REGION + page * PAGE;
/** The byte that fills source page `i` of the monitor: 'A', 'B', ... */
const srcByte = (i: number) => 0x41 + i;
const ZEROS = pageOf(0);

interface Env {
  kernel: Kernel;
  target: Process;
  monitor: Process;
  /** The monitor's handle; the target closed its own. */
  uffd: Userfaultfd;
  /** The monitor's 16 source pages, page i filled with srcByte(i). */
  src: number;
}

/** Creates a target with `pages` pages at REGION, registered MISSING unless `register` is false. */
async function setup({ features = 0, pages = 8, register = true } = {}): Promise<Env> {
  const kernel = await createKernel();
  const target = kernel.createProcess();
  const monitor = kernel.createProcess();
  expect(target.mmap(pages * PAGE, { flags: FIXED, address: REGION })).toBe(REGION);
  const own = target.userfaultfd();
  expect(own.api({ api: UFFD_API, features }).errno).toBe(0);
  const uffd = own.dupInto(monitor);
  own.close();
  if (register) expect(uffd.register({ start: REGION, len: pages * PAGE, mode: MISSING }).errno).toBe(0);
  const src = monitor.mmap(16 * PAGE);
  for (let i = 0; i < 16; i++) await monitor.write(src + i * PAGE, pageOf(srcByte(i)));
  return { kernel, target, monitor, uffd, src };
}

/** Copies `pages` pages from source page `from` to target page `to`. */
function copy(env: Env, to: number, from: number, pages = 1, mode = 0) {
  return env.uffd.copy({ dst: at(to), src: env.src + from * PAGE, len: pages * PAGE, mode });
}

function present(env: Env, page: number, pages = 1): number {
  return env.kernel.core.exports.count_present(env.target.mm.pgd, at(page), pages);
}

/** Returns [start, end, uffdFlags, registered to `uffd`] for each VMA of the target. */
function layout(env: Env, uffd = env.uffd) {
  return env.target.mm.vmaList().map((vma) => [vma.start, vma.end, vma.uffdFlags, vma.uffdCtx === uffd.ctx]);
}

describe("UFFDIO_API", () => {
  it("rejects a wrong api with a zeroed result", async () => {
    const uffd = (await createKernel()).createProcess().userfaultfd();
    expect(uffd.api({ api: 0xab, features: 0 })).toEqual({ errno: EINVAL, api: 0, features: 0, ioctls: 0n });
  });

  it("rejects an unknown feature, then a retry works", async () => {
    const uffd = (await createKernel()).createProcess().userfaultfd();
    expect(uffd.api({ api: UFFD_API, features: 1 << 17 })).toEqual({ errno: EINVAL, api: 0, features: 0, ioctls: 0n });
    expect(uffd.api({ api: UFFD_API, features: 1n << 63n }).errno).toBe(EINVAL);
    const result = uffd.api({ api: UFFD_API, features: UFFD_FEATURE_EVENT_FORK });
    expect(result.errno).toBe(0);
    expect(result.api).toBe(UFFD_API);
    expect(result.ioctls).toBe(0x8000000000000003n);
  });

  it("rejects a second call", async () => {
    const uffd = (await createKernel()).createProcess().userfaultfd();
    expect(uffd.api({ api: UFFD_API, features: 0 }).errno).toBe(0);
    expect(uffd.api({ api: UFFD_API, features: 0 })).toEqual({ errno: EINVAL, api: 0, features: 0, ioctls: 0n });
  });

  it("gates read and ioctls before the handshake", async () => {
    const target = (await createKernel()).createProcess();
    expect(target.mmap(PAGE, { flags: FIXED, address: REGION })).toBe(REGION);
    const uffd = target.userfaultfd();
    expect(uffd.read()).toEqual({ errno: EINVAL });
    expect(uffd.register({ start: REGION, len: PAGE, mode: MISSING }).errno).toBe(EINVAL);
    expect(uffd.wake({ start: REGION, len: PAGE }).errno).toBe(EINVAL);
    expect(uffd.copy({ dst: REGION, src: REGION, len: PAGE, mode: 0, copy: 3 })).toEqual({ errno: EINVAL, copy: 3 });
  });
});

describe("UFFDIO_REGISTER", () => {
  it("rejects bad arguments with EINVAL", async () => {
    const env = await setup({ register: false });
    const cases: Array<[string, number, number, number]> = [
      ["unaligned start", at(0) + 1, PAGE, MISSING],
      ["unaligned len", at(0), 100, MISSING],
      ["len 0", at(0), 0, MISSING],
      ["mode 0", at(0), PAGE, 0],
      ["unknown mode bit", at(0), PAGE, 1 << 3],
      ["MINOR on anonymous memory", at(0), PAGE, 1 << 2],
      ["start at TASK_SIZE", 2 ** 47, PAGE, MISSING],
      ["start below mmap_min_addr", 0, PAGE, MISSING],
    ];
    for (const [name, start, len, mode] of cases) {
      expect(env.uffd.register({ start, len, mode }), name).toEqual({ errno: EINVAL, ioctls: 0n });
    }
    expect(layout(env)).toEqual([[at(0), at(8), 0, false]]);
  });

  it("rejects an unmapped range", async () => {
    const env = await setup({ register: false });
    expect(env.uffd.register({ start: at(64), len: PAGE, mode: MISSING }).errno).toBe(EINVAL);
  });

  it("reports the fill ioctls", async () => {
    const env = await setup({ register: false });
    const result = env.uffd.register({ start: at(0), len: PAGE, mode: MISSING });
    expect(result.errno).toBe(0);
    // WAKE, COPY and ZEROPAGE are bits 2, 3 and 4.
    expect(result.ioctls & 0x1cn).toBe(0x1cn);
  });

  it("skips a hole in the middle", async () => {
    const env = await setup({ register: false, pages: 3 });
    expect(await env.target.munmap(at(1), PAGE)).toBe(0);
    expect(env.uffd.register({ start: at(0), len: 3 * PAGE, mode: MISSING }).errno).toBe(0);
    expect(layout(env)).toEqual([[at(0), at(1), MISSING, true], [at(2), at(3), MISSING, true]]);
  });

  it("skips an unmapped head or tail", async () => {
    const env = await setup({ register: false, pages: 4 });
    expect(await env.target.munmap(at(0), PAGE)).toBe(0);
    expect(await env.target.munmap(at(3), PAGE)).toBe(0);
    expect(env.uffd.register({ start: at(0), len: 2 * PAGE, mode: MISSING }).errno).toBe(0);
    expect(env.uffd.register({ start: at(2), len: 2 * PAGE, mode: MISSING }).errno).toBe(0);
    expect(layout(env)).toEqual([[at(1), at(3), MISSING, true]]);
  });

  it("returns EBUSY for another uffd", async () => {
    const env = await setup({ pages: 4 });
    const other = env.target.userfaultfd();
    expect(other.api({ api: UFFD_API, features: 0 }).errno).toBe(0);
    expect(other.register({ start: at(0), len: 4 * PAGE, mode: MISSING }).errno).toBe(EBUSY);
    expect(other.register({ start: at(3), len: 2 * PAGE, mode: MISSING }).errno).toBe(EBUSY);
    expect(layout(env)).toEqual([[at(0), at(4), MISSING, true]]);
  });

  it("accepts the same mode again", async () => {
    const env = await setup({ pages: 4 });
    expect(env.uffd.register({ start: at(1), len: PAGE, mode: MISSING }).errno).toBe(0);
    expect(layout(env)).toEqual([[at(0), at(4), MISSING, true]]);
  });
});

describe("UFFDIO_UNREGISTER", () => {
  it("rejects bad arguments and unmapped ranges", async () => {
    const env = await setup();
    expect(env.uffd.unregister({ start: at(0) + 1, len: PAGE }).errno).toBe(EINVAL);
    expect(env.uffd.unregister({ start: at(0), len: 0 }).errno).toBe(EINVAL);
    expect(env.uffd.unregister({ start: at(64), len: PAGE }).errno).toBe(EINVAL);
    expect(layout(env)).toEqual([[at(0), at(8), MISSING, true]]);
  });

  it("accepts a never-registered range", async () => {
    const env = await setup();
    expect(env.target.mmap(PAGE, { flags: FIXED, address: at(64) })).toBe(at(64));
    expect(env.uffd.unregister({ start: at(64), len: PAGE }).errno).toBe(0);
  });

  it("splits a partly unregistered VMA", async () => {
    const env = await setup();
    expect(env.uffd.unregister({ start: at(1), len: PAGE }).errno).toBe(0);
    expect(layout(env)).toEqual([[at(0), at(1), MISSING, true], [at(1), at(2), 0, false], [at(2), at(8), MISSING, true]]);
    expect(await settledNow(env.target.read(at(1), PAGE))).toEqual(ZEROS);
    expect(env.uffd.read()).toEqual({ errno: EAGAIN });
  });

  it("makes a later COPY fail with ENOENT", async () => {
    const env = await setup();
    expect(env.uffd.unregister({ start: at(0), len: 8 * PAGE }).errno).toBe(0);
    expect(copy(env, 0, 0)).toEqual({ errno: ENOENT, copy: -ENOENT });
  });

  it("rejects a range of another uffd", async () => {
    const env = await setup();
    const other = env.target.userfaultfd();
    expect(other.api({ api: UFFD_API, features: 0 }).errno).toBe(0);
    expect(other.unregister({ start: at(0), len: PAGE }).errno).toBe(EINVAL);
    expect(layout(env)).toEqual([[at(0), at(8), MISSING, true]]);
  });
});

describe("UFFDIO_COPY", () => {
  it("fills a missing page", async () => {
    const env = await setup();
    expect(copy(env, 0, 0)).toEqual({ errno: 0, copy: PAGE });
    expect(await settledNow(env.target.read(at(0), PAGE))).toEqual(pageOf(srcByte(0)));
  });

  it("returns EEXIST on a present page", async () => {
    const env = await setup();
    expect(copy(env, 0, 0).errno).toBe(0);
    expect(copy(env, 0, 1)).toEqual({ errno: EEXIST, copy: -EEXIST });
    expect(await settledNow(env.target.read(at(0), PAGE))).toEqual(pageOf(srcByte(0)));
  });

  it("rejects bad arguments with the out-field untouched", async () => {
    const env = await setup();
    const cases: Array<[string, Partial<CopyArgs>]> = [
      ["unaligned dst", { dst: at(0) + 1 }],
      ["len 100", { len: 100 }],
      ["len 0", { len: 0 }],
      ["unknown mode bit", { mode: 1 << 2 }],
      ["dst at TASK_SIZE", { dst: 2 ** 47 }],
      ["dst below mmap_min_addr", { dst: 0 }],
    ];
    for (const [name, override] of cases) {
      const args = { dst: at(0), src: env.src, len: PAGE, mode: 0, copy: 777, ...override };
      expect(env.uffd.copy(args), name).toEqual({ errno: EINVAL, copy: 777 });
    }
    expect(present(env, 0)).toBe(0);
  });

  it("rejects mode bits above bit 31", async () => {
    // The kernel reads mode as a u64. The API maps a number that is not a
    // whole u64 (negative, fractional, NaN) to a huge one, so it fails too.
    const env = await setup();
    for (const mode of [2 ** 32, 2 ** 40 + UFFDIO_COPY_MODE_DONTWAKE, -1, 0.5, NaN]) {
      expect(env.uffd.copy({ dst: at(0), src: env.src, len: PAGE, mode, copy: 777 }), `mode ${mode}`).toEqual({ errno: EINVAL, copy: 777 });
    }
    expect(present(env, 0)).toBe(0);
  });

  it("rejects MODE_WP without WP registration", async () => {
    const env = await setup();
    expect(copy(env, 0, 0, 1, UFFDIO_COPY_MODE_WP)).toEqual({ errno: EINVAL, copy: -EINVAL });
  });

  it("returns EFAULT for an unreadable source", async () => {
    const env = await setup();
    expect(env.uffd.copy({ dst: at(0), src: 0, len: PAGE, mode: 0 })).toEqual({ errno: EFAULT, copy: -EFAULT });
    expect(env.uffd.copy({ dst: at(0), src: 0x5000_0000, len: PAGE, mode: 0 })).toEqual({ errno: EFAULT, copy: -EFAULT });
    expect(present(env, 0)).toBe(0);
  });

  it("stops before an unmapped second source page", async () => {
    const env = await setup();
    expect(await env.monitor.munmap(env.src + PAGE, PAGE)).toBe(0);
    expect(copy(env, 0, 0, 2)).toEqual({ errno: EAGAIN, copy: PAGE });
    expect(present(env, 0)).toBe(1);
    expect(present(env, 1)).toBe(0);
  });

  it("returns ENOENT outside one registered VMA", async () => {
    const env = await setup();
    expect(env.target.mmap(PAGE, { flags: FIXED, address: at(64) })).toBe(at(64));
    expect(await env.target.munmap(at(4), PAGE)).toBe(0);
    const cases: Array<[string, number, number]> = [
      ["unregistered", at(64), PAGE],
      ["hole", at(4), PAGE],
      ["crosses into a hole", at(3), 2 * PAGE],
      ["crosses the VMA end", at(7), 2 * PAGE],
    ];
    for (const [name, dst, len] of cases) {
      expect(env.uffd.copy({ dst, src: env.src, len, mode: 0 }), name).toEqual({ errno: ENOENT, copy: -ENOENT });
    }
    expect(env.target.mmap(PAGE, { flags: FIXED, address: at(8) })).toBe(at(8));
    expect(copy(env, 7, 0, 2), "crosses into an unregistered VMA").toEqual({ errno: ENOENT, copy: -ENOENT });
  });

  it("accepts an unaligned source", async () => {
    const env = await setup();
    expect(env.uffd.copy({ dst: at(0), src: env.src + 100, len: PAGE, mode: 0 })).toEqual({ errno: 0, copy: PAGE });
    const expected = pageOf(srcByte(0));
    expected.fill(srcByte(1), PAGE - 100);
    expect(await settledNow(env.target.read(at(0), PAGE))).toEqual(expected);
  });

  it("stops at a present middle page", async () => {
    const env = await setup();
    expect(copy(env, 2, 9).errno).toBe(0);
    expect(copy(env, 0, 0, 4)).toEqual({ errno: EAGAIN, copy: 2 * PAGE });
    expect(present(env, 0, 2)).toBe(2);
    expect(present(env, 3)).toBe(0);
    expect(copy(env, 2, 2, 2)).toEqual({ errno: EEXIST, copy: -EEXIST });
    expect(copy(env, 3, 3)).toEqual({ errno: 0, copy: PAGE });
    expect(await settledNow(env.target.read(at(1), PAGE))).toEqual(pageOf(srcByte(1)));
    expect(await settledNow(env.target.read(at(2), PAGE))).toEqual(pageOf(srcByte(9)));
  });

  it("accepts DONTWAKE with no waiter", async () => {
    const env = await setup();
    expect(copy(env, 0, 0, 1, UFFDIO_COPY_MODE_DONTWAKE)).toEqual({ errno: 0, copy: PAGE });
  });

  it("returns EEXIST on a zero page", async () => {
    const env = await setup({ register: false });
    expect(await settledNow(env.target.read(at(0), 1))).toEqual(Uint8Array.of(0));
    expect(env.uffd.register({ start: at(0), len: 8 * PAGE, mode: MISSING }).errno).toBe(0);
    expect(copy(env, 0, 0)).toEqual({ errno: EEXIST, copy: -EEXIST });
  });

  it("fills again after MADV_DONTNEED", async () => {
    const env = await setup();
    expect(copy(env, 0, 0).errno).toBe(0);
    expect(await env.target.madvise(at(0), PAGE, MADV_DONTNEED)).toBe(0);
    expect(copy(env, 0, 1)).toEqual({ errno: 0, copy: PAGE });
    expect(await settledNow(env.target.read(at(0), PAGE))).toEqual(pageOf(srcByte(1)));
  });

  it("fills through another uffd of the same mm", async () => {
    const env = await setup();
    const other = env.target.userfaultfd();
    expect(other.api({ api: UFFD_API, features: 0 }).errno).toBe(0);
    const fromMonitor = other.dupInto(env.monitor);
    expect(fromMonitor.copy({ dst: at(0), src: env.src, len: PAGE, mode: 0 })).toEqual({ errno: 0, copy: PAGE });
  });
});

describe("UFFDIO_ZEROPAGE", () => {
  const zeropage = (env: Env, page: number, pages = 1, mode = 0) =>
    env.uffd.zeropage({ start: at(page), len: pages * PAGE, mode });

  it("maps zeros on two pages", async () => {
    const env = await setup();
    expect(zeropage(env, 0, 2)).toEqual({ errno: 0, zeropage: 2 * PAGE });
    expect(await settledNow(env.target.read(at(0), 2 * PAGE))).toEqual(pageOf(0, 2 * PAGE));
    expect(env.uffd.read()).toEqual({ errno: EAGAIN });
  });

  it("returns EEXIST on a present page", async () => {
    const env = await setup();
    expect(copy(env, 0, 0).errno).toBe(0);
    expect(zeropage(env, 0)).toEqual({ errno: EEXIST, zeropage: -EEXIST });
    expect(await settledNow(env.target.read(at(0), PAGE))).toEqual(pageOf(srcByte(0)));
  });

  it("stops at a present middle page", async () => {
    const env = await setup();
    expect(copy(env, 1, 0).errno).toBe(0);
    expect(zeropage(env, 0, 3)).toEqual({ errno: EAGAIN, zeropage: PAGE });
    expect(present(env, 0)).toBe(1);
    expect(present(env, 2)).toBe(0);
  });

  it("rejects bad arguments with the out-field untouched", async () => {
    const env = await setup();
    const cases: Array<[string, Partial<ZeropageArgs>]> = [
      ["unaligned start", { start: at(0) + 1 }],
      ["len 100", { len: 100 }],
      ["unknown mode bit", { mode: 1 << 1 }],
    ];
    for (const [name, override] of cases) {
      const args = { start: at(0), len: PAGE, mode: 0, zeropage: 555, ...override };
      expect(env.uffd.zeropage(args), name).toEqual({ errno: EINVAL, zeropage: 555 });
    }
    expect(present(env, 0)).toBe(0);
  });

  it("rejects mode bits above bit 31", async () => {
    const env = await setup();
    for (const mode of [2 ** 32, 2 ** 40 + UFFDIO_ZEROPAGE_MODE_DONTWAKE, -1, 0.5, NaN]) {
      expect(env.uffd.zeropage({ start: at(0), len: PAGE, mode, zeropage: 555 }), `mode ${mode}`).toEqual({ errno: EINVAL, zeropage: 555 });
    }
    expect(present(env, 0)).toBe(0);
  });

  it("returns ENOENT on an unregistered range", async () => {
    const env = await setup({ register: false });
    expect(zeropage(env, 0)).toEqual({ errno: ENOENT, zeropage: -ENOENT });
  });

  it("accepts DONTWAKE", async () => {
    const env = await setup();
    expect(zeropage(env, 0, 1, UFFDIO_ZEROPAGE_MODE_DONTWAKE)).toEqual({ errno: 0, zeropage: PAGE });
  });

  it("lets a later write finish without an event", async () => {
    const env = await setup();
    expect(zeropage(env, 0).errno).toBe(0);
    await settledNow(env.target.write(at(0) + 10, Uint8Array.of(0x77)));
    expect(env.uffd.read()).toEqual({ errno: EAGAIN });
    expect(await settledNow(env.target.read(at(0) + 9, 3))).toEqual(Uint8Array.of(0, 0x77, 0));
  });
});

describe("faults", () => {
  it("queues a read fault", async () => {
    const env = await setup();
    watch(env.target.read(at(3) + 123, 1));
    expect(env.uffd.read()).toEqual({ errno: 0, event: UFFD_EVENT_PAGEFAULT, flags: 0, address: at(3), ptid: 0 });
  });

  it("reports the thread id with THREAD_ID", async () => {
    const env = await setup({ features: UFFD_FEATURE_THREAD_ID });
    watch(env.target.read(at(0), 1));
    expect(env.uffd.read()).toMatchObject({ event: UFFD_EVENT_PAGEFAULT, ptid: env.target.pid });
  });

  it("flags a write fault", async () => {
    const env = await setup();
    watch(env.target.write(at(1) + 123, Uint8Array.of(1)));
    expect(env.uffd.read()).toEqual({
      errno: 0, event: UFFD_EVENT_PAGEFAULT, flags: UFFD_PAGEFAULT_FLAG_WRITE, address: at(1), ptid: 0,
    });
  });

  it("reports the exact address with EXACT_ADDRESS", async () => {
    const env = await setup({ features: UFFD_FEATURE_EXACT_ADDRESS });
    watch(env.target.read(at(2) + 123, 1));
    expect(env.uffd.read()).toMatchObject({ flags: 0, address: at(2) + 123 });
  });

  it("blocks the access until COPY", async () => {
    const env = await setup();
    const log: string[] = [];
    const access = env.target.read(at(0), PAGE).then((bytes) => {
      log.push("access done");
      return bytes;
    });
    expect(env.uffd.read()).toMatchObject({ address: at(0) });
    await drain();
    expect(log).toEqual([]);

    log.push("copy");
    expect(copy(env, 0, 0).errno).toBe(0);
    expect(await settledNow(access)).toEqual(pageOf(srcByte(0)));
    expect(log).toEqual(["copy", "access done"]);
  });

  it("delivers a fault once", async () => {
    const env = await setup();
    watch(env.target.read(at(0), 1));
    expect(env.uffd.read()).toMatchObject({ event: UFFD_EVENT_PAGEFAULT });
    expect(env.uffd.read()).toEqual({ errno: EAGAIN });
    expect(env.uffd.readable).toBe(false);
  });

  it("drops an unread fault woken by COPY", async () => {
    const env = await setup();
    const access = watch(env.target.read(at(0), 1));
    expect(copy(env, 0, 0).errno).toBe(0);
    await drain();
    expect(access.state).toBe("fulfilled");
    expect(env.uffd.read()).toEqual({ errno: EAGAIN });
  });

  it("faults again after WAKE without a fill", async () => {
    const env = await setup();
    const access = watch(env.target.read(at(0), 1));
    expect(env.uffd.read()).toMatchObject({ address: at(0) });
    expect(env.uffd.wake({ start: at(0), len: PAGE }).errno).toBe(0);
    await drain();
    expect(access.state).toBe("pending");
    expect(env.uffd.read()).toMatchObject({ event: UFFD_EVENT_PAGEFAULT, address: at(0) });
    expect(copy(env, 0, 0).errno).toBe(0);
    expect(await settled(access)).toEqual(Uint8Array.of(srcByte(0)));
  });

  it("wakes only the filled prefix", async () => {
    const env = await setup();
    expect(copy(env, 2, 9).errno).toBe(0);
    const before = watch(env.target.read(at(1), 1));
    const after = watch(env.target.read(at(3), 1));
    expect(env.uffd.read()).toMatchObject({ address: at(1) });
    expect(env.uffd.read()).toMatchObject({ address: at(3) });

    expect(copy(env, 0, 0, 4)).toEqual({ errno: EAGAIN, copy: 2 * PAGE });
    await drain();
    expect(before.state).toBe("fulfilled");
    expect(after.state).toBe("pending");
    // A woken access on a still-missing page would fault again here.
    expect(env.uffd.read()).toEqual({ errno: EAGAIN });
    expect(copy(env, 3, 3).errno).toBe(0);
    expect(await settled(after)).toEqual(Uint8Array.of(srcByte(3)));
  });

  it("stays blocked after COPY with DONTWAKE", async () => {
    const env = await setup();
    const access = watch(env.target.read(at(0), 1));
    expect(env.uffd.read()).toMatchObject({ address: at(0) });
    expect(copy(env, 0, 0, 1, UFFDIO_COPY_MODE_DONTWAKE)).toEqual({ errno: 0, copy: PAGE });
    await drain();
    expect(access.state).toBe("pending");
    expect(env.uffd.read()).toEqual({ errno: EAGAIN });

    expect(env.uffd.wake({ start: at(0), len: PAGE }).errno).toBe(0);
    expect(await settled(access)).toEqual(Uint8Array.of(srcByte(0)));
  });
});

describe("UFFDIO_WAKE", () => {
  it("rejects bad ranges", async () => {
    const env = await setup();
    expect(env.uffd.wake({ start: at(0) + 1, len: PAGE }).errno).toBe(EINVAL);
    expect(env.uffd.wake({ start: at(0), len: 0 }).errno).toBe(EINVAL);
  });

  it("accepts ranges with nothing to wake", async () => {
    const env = await setup();
    expect(env.target.mmap(PAGE, { flags: FIXED, address: at(64) })).toBe(at(64));
    expect(env.uffd.wake({ start: at(0), len: PAGE }).errno, "no waiters").toBe(0);
    expect(env.uffd.wake({ start: at(64), len: PAGE }).errno, "unregistered").toBe(0);
    expect(env.uffd.wake({ start: at(128), len: PAGE }).errno, "unmapped").toBe(0);
  });
});

describe("lifetime", () => {
  it("UNREGISTER wakes a blocked access", async () => {
    const env = await setup();
    const access = watch(env.target.read(at(0), PAGE));
    expect(env.uffd.read()).toMatchObject({ address: at(0) });
    expect(env.uffd.unregister({ start: at(0), len: PAGE }).errno).toBe(0);
    expect(await settled(access)).toEqual(ZEROS);
    expect(env.uffd.read()).toEqual({ errno: EAGAIN });
  });

  it("SIGBUS feature raises SIGBUS without an event", async () => {
    const env = await setup({ features: UFFD_FEATURE_SIGBUS });
    const error = await settledNow(env.target.read(at(0), 1)).catch((reason: unknown) => reason);
    expect(error).toBeInstanceOf(SignalError);
    expect(error).toMatchObject({ signo: SIGBUS, address: at(0) });
    expect(env.uffd.read()).toEqual({ errno: EAGAIN });
    expect(copy(env, 0, 0)).toEqual({ errno: 0, copy: PAGE });
    expect(await settledNow(env.target.read(at(0), 1))).toEqual(Uint8Array.of(srcByte(0)));
  });

  it("close wakes blocked accesses", async () => {
    const env = await setup();
    expect(copy(env, 0, 2).errno).toBe(0);
    const reader = watch(env.target.read(at(1), PAGE));
    expect(env.uffd.read()).toMatchObject({ address: at(1) });
    const writer = watch(env.target.write(at(2), pageOf(0x77)));

    env.uffd.close();
    expect(await settled(reader)).toEqual(ZEROS);
    await settled(writer);
    expect(await settledNow(env.target.read(at(2), PAGE))).toEqual(pageOf(0x77));
    expect(await settledNow(env.target.read(at(0), PAGE))).toEqual(pageOf(srcByte(2)));
    expect(layout(env)).toEqual([[at(0), at(8), 0, false]]);
  });

  it("only the last close releases", async () => {
    const env = await setup();
    const second = env.uffd.dupInto(env.monitor);
    const access = watch(env.target.read(at(0), 1));
    env.uffd.close();
    await drain();
    expect(access.state).toBe("pending");
    expect(second.ctx.released).toBe(false);

    second.close();
    expect(await settled(access)).toEqual(Uint8Array.of(0));
  });

  it("reads faults before events", async () => {
    const env = await setup({ features: UFFD_FEATURE_EVENT_FORK });
    const fork = watch(env.target.fork());
    const access = watch(env.target.read(at(0), 1));
    expect(env.uffd.read()).toMatchObject({ event: UFFD_EVENT_PAGEFAULT, address: at(0) });
    expect(env.uffd.read()).toMatchObject({ event: UFFD_EVENT_FORK });

    await settled(fork);
    expect(copy(env, 0, 0).errno).toBe(0);
    expect(await settled(access)).toEqual(Uint8Array.of(srcByte(0)));
  });

  it("gives ESRCH and ENOMEM after the target exits", async () => {
    const env = await setup();
    env.target.exit();
    expect(env.uffd.copy({ dst: at(0), src: env.src, len: PAGE, mode: 0, copy: 9 })).toEqual({ errno: ESRCH, copy: 9 });
    expect(env.uffd.zeropage({ start: at(0), len: PAGE, mode: 0, zeropage: 9 })).toEqual({ errno: ESRCH, zeropage: 9 });
    expect(env.uffd.register({ start: at(0), len: PAGE, mode: MISSING }).errno).toBe(ENOMEM);
    expect(env.uffd.unregister({ start: at(0), len: PAGE }).errno).toBe(ENOMEM);
    expect(env.uffd.wake({ start: at(0), len: PAGE }).errno).toBe(0);
  });
});
