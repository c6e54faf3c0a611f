// Kernel versions: Kernel.create({ kernel }), the mmap_changing gate of each
// release (none in 4.17, a bool in 4.18, a counter from 5.15), the gate's
// out-field, UNREGISTER of another uffd's range, and which ioctls and
// features each version has. Expected values are those of the named Linux
// release on x86-64.

import { describe, expect, it } from "vitest";
import {
  EAGAIN, EINVAL, KERNEL_VERSIONS, UFFD_API, UFFD_EVENT_FORK, UFFD_EVENT_PAGEFAULT, UFFD_FEATURE_EVENT_FORK,
  UFFDIO_REGISTER_MODE_MISSING, UFFDIO_REGISTER_MODE_WP, kernelProfile,
  type KernelVersion, type Process,
} from "../src/index.js";
import { createKernel, pageOf, settled, settledNow, watch } from "./helpers.js";
import { FIXED, PAGE, REGION, ZEROS, at, copy, populate, setup, srcByte, type Env } from "./uffd-helpers.js";

const MISSING = UFFDIO_REGISTER_MODE_MISSING;
const WP = UFFDIO_REGISTER_MODE_WP;
/** A source mapping in the target, for MOVE. */
const SRC = 0x2000_0000;

/** Returns [start, end, uffdFlags, registered to `env.uffd`] for each VMA of `process`. */
function layout(env: Env, process: Process = env.target) {
  return process.mm.vmaList().map((vma) => [vma.start, vma.end, vma.uffdFlags, vma.uffdCtx === env.uffd.ctx]);
}

/** Copies source page 0 to page 0 with the out-field preset to 77. */
function presetCopy(env: Env) {
  return env.uffd.copy({ dst: at(0), src: env.src, len: PAGE, mode: 0, copy: 77 });
}

/** Creates a second uffd on the target, with the handshake done. */
function secondUffd(env: Env) {
  const other = env.target.userfaultfd();
  expect(other.api({ api: UFFD_API, features: 0 }).errno).toBe(0);
  return other;
}

describe("Kernel.create", () => {
  it("lists five versions", () => {
    expect(KERNEL_VERSIONS).toEqual(["4.17", "4.18", "5.15", "6.8", "6.18"]);
  });

  it("rejects an unknown version", async () => {
    await expect(createKernel({ kernel: "5.10" as KernelVersion })).rejects.toBeInstanceOf(RangeError);
    expect(() => kernelProfile("5.10")).toThrow(RangeError);
  });

  it("rejects the gate option on 4.17", async () => {
    await expect(createKernel({ kernel: "4.17", mmapChangingGate: true })).rejects.toBeInstanceOf(RangeError);
  });
});

describe("mmap_changing gate", () => {
  it("4.17 lets COPY through during fork", async () => {
    const env = await setup({ kernel: "4.17", features: UFFD_FEATURE_EVENT_FORK });
    const fork = watch(env.target.fork());
    expect(copy(env, 0, 0)).toEqual({ errno: 0, copy: PAGE });
    expect(env.uffd.read()).toMatchObject({ event: UFFD_EVENT_FORK });
    await settled(fork);
  });

  it("turns off on 6.18 with mmapChangingGate false", async () => {
    const env = await setup({ gate: false, features: UFFD_FEATURE_EVENT_FORK });
    const fork = watch(env.target.fork());
    expect(copy(env, 0, 0)).toEqual({ errno: 0, copy: PAGE });
    expect(env.uffd.read()).toMatchObject({ event: UFFD_EVENT_FORK });
    await settled(fork);
  });

  it("4.18 opens after the first of two FORKs", async () => {
    // 4.18 to 5.14 kept a bool that the first resuming producer cleared.
    const env = await setup({ kernel: "4.18", features: UFFD_FEATURE_EVENT_FORK });
    const first = watch(env.target.fork());
    const second = watch(env.target.fork());
    expect(copy(env, 0, 0).errno).toBe(EAGAIN);

    expect(env.uffd.read()).toMatchObject({ event: UFFD_EVENT_FORK });
    await settled(first);
    expect(second.state).toBe("pending");
    expect(copy(env, 0, 0)).toEqual({ errno: 0, copy: PAGE });

    expect(env.uffd.read()).toMatchObject({ event: UFFD_EVENT_FORK });
    await settled(second);
  });

  it("5.15 and later wait for both FORKs", async () => {
    for (const kernel of ["5.15", "6.8", "6.18"] as const) {
      const env = await setup({ kernel, features: UFFD_FEATURE_EVENT_FORK });
      const first = watch(env.target.fork());
      const second = watch(env.target.fork());

      expect(env.uffd.read()).toMatchObject({ event: UFFD_EVENT_FORK });
      await settled(first);
      expect(second.state).toBe("pending");
      expect(copy(env, 0, 0).errno, `${kernel} with one FORK unread`).toBe(EAGAIN);

      expect(env.uffd.read()).toMatchObject({ event: UFFD_EVENT_FORK });
      await settled(second);
      expect(copy(env, 0, 0), `${kernel} with both read`).toEqual({ errno: 0, copy: PAGE });
    }
  });

  it("writes -EAGAIN to the out-field from 6.18", async () => {
    // 77 is the preset: before 6.15 the gate EAGAIN left the out-field untouched.
    const cases: Array<[KernelVersion, number]> = [["4.18", 77], ["5.15", 77], ["6.8", 77], ["6.18", -EAGAIN]];
    for (const [kernel, out] of cases) {
      const env = await setup({ kernel, features: UFFD_FEATURE_EVENT_FORK });
      const fork = watch(env.target.fork());
      expect(presetCopy(env), kernel).toEqual({ errno: EAGAIN, copy: out });
      expect(env.uffd.read()).toMatchObject({ event: UFFD_EVENT_FORK });
      await settled(fork);
    }
  });
});

describe("UNREGISTER of another uffd's range", () => {
  it("6.18 returns EINVAL", async () => {
    const env = await setup({ kernel: "6.18" });
    expect(secondUffd(env).unregister({ start: at(0), len: PAGE }).errno).toBe(EINVAL);
    expect(layout(env)).toEqual([[at(0), at(8), MISSING, true]]);
  });

  it("6.8 unregisters it", async () => {
    const env = await setup({ kernel: "6.8" });
    expect(secondUffd(env).unregister({ start: at(0), len: PAGE }).errno).toBe(0);
    expect(layout(env)).toEqual([[at(0), at(1), 0, false], [at(1), at(8), MISSING, true]]);
    expect(await settledNow(env.target.read(at(0), PAGE))).toEqual(ZEROS);
    expect(env.uffd.read()).toEqual({ errno: EAGAIN });
  });
});

describe("WP by version", () => {
  it("4.18 rejects WP", async () => {
    const env = await setup({ kernel: "4.18", mode: 0 });
    expect(env.uffd.register({ start: REGION, len: PAGE, mode: WP })).toEqual({ errno: EINVAL, ioctls: 0n });
    // WAKE, COPY and ZEROPAGE are bits 2, 3 and 4.
    expect(env.uffd.register({ start: REGION, len: PAGE, mode: MISSING })).toEqual({ errno: 0, ioctls: 0x1cn });
    expect(env.uffd.writeprotect({ start: REGION, len: PAGE, mode: 1 })).toEqual({ errno: EINVAL });
  });

  it("5.15 write-protects", async () => {
    const env = await setup({ kernel: "5.15", mode: 0 });
    await populate(env, 0, 0x61);
    // WRITEPROTECT (bit 6) joins WAKE, COPY and ZEROPAGE.
    expect(env.uffd.register({ start: REGION, len: PAGE, mode: WP })).toEqual({ errno: 0, ioctls: 0x5cn });
    expect(env.uffd.writeprotect({ start: REGION, len: PAGE, mode: 1 })).toEqual({ errno: 0 });
    watch(env.target.write(at(0), Uint8Array.of(1)));
    expect(env.uffd.read()).toEqual({ errno: 0, event: UFFD_EVENT_PAGEFAULT, flags: 3, address: at(0), ptid: 0 });
  });
});

describe("MOVE and POISON by version", () => {
  /** Creates a target with unregistered pages at REGION and a source page of 's' bytes at SRC. */
  async function setupVersion(kernel: KernelVersion) {
    const env = await setup({ kernel, mode: 0 });
    expect(env.target.mmap(PAGE, { flags: FIXED, address: SRC })).toBe(SRC);
    await settledNow(env.target.write(SRC, pageOf(0x73)));
    return env;
  }

  it("6.8 has both", async () => {
    const env = await setupVersion("6.8");
    expect(env.uffd.register({ start: REGION, len: 2 * PAGE, mode: MISSING })).toEqual({ errno: 0, ioctls: 0x13cn });
    expect(env.own.move({ dst: at(0), src: SRC, len: PAGE, mode: 0 })).toEqual({ errno: 0, move: PAGE });
    expect(await settledNow(env.target.read(at(0), 1))).toEqual(Uint8Array.of(0x73));
    expect(env.uffd.poison({ start: at(1), len: PAGE, mode: 0 })).toEqual({ errno: 0, updated: PAGE });
  });

  it("5.15 rejects both", async () => {
    const env = await setupVersion("5.15");
    expect(env.uffd.register({ start: REGION, len: 2 * PAGE, mode: MISSING })).toEqual({ errno: 0, ioctls: 0x1cn });
    expect(env.own.move({ dst: at(0), src: SRC, len: PAGE, mode: 0, move: 99 })).toEqual({ errno: EINVAL, move: 99 });
    expect(env.uffd.poison({ start: at(1), len: PAGE, mode: 0, updated: 55 })).toEqual({ errno: EINVAL, updated: 55 });
    expect(env.kernel.core.exports.count_present(env.target.mm.pgd, REGION, 2)).toBe(0);
  });
});

describe("UFFDIO_API by version", () => {
  /** Returns the features mask UFFDIO_API reports on `kernel`. */
  async function reported(kernel: KernelVersion): Promise<number> {
    const uffd = (await createKernel({ kernel })).createProcess().userfaultfd();
    const result = uffd.api({ api: UFFD_API, features: 0 });
    expect(result.errno).toBe(0);
    return result.features;
  }

  it("reports each version's features", async () => {
    // 4.14 to 4.18: the four events, MISSING_HUGETLBFS/SHMEM, SIGBUS and
    // THREAD_ID. 5.15 adds PAGEFAULT_FLAG_WP and the two MINOR bits. 6.8
    // reports every bit up to MOVE (bit 16).
    const cases: Array<[KernelVersion, number]> = [
      ["4.17", 0x1fe], ["4.18", 0x1fe], ["5.15", 0x7ff], ["6.8", 0x1ffff], ["6.18", 0x1ffff],
    ];
    for (const [kernel, features] of cases) {
      expect(await reported(kernel), kernel).toBe(features);
    }
  });

  it("accepts EVENT_REMAP", async () => {
    for (const kernel of ["6.8", "6.18"] as const) {
      const uffd = (await createKernel({ kernel })).createProcess().userfaultfd();
      expect(uffd.api({ api: UFFD_API, features: 1 << 2 }).errno, kernel).toBe(0);
    }
  });

  it("rejects features a version lacks", async () => {
    // Linux reports FLAG_WP (bit 0) since 5.10, POISON (bit 14) since 6.6 and MOVE (bit 16) since 6.8.
    const cases: Array<[KernelVersion, number]> = [["4.18", 1], ["5.15", 1 << 14], ["5.15", 1 << 16]];
    for (const [kernel, feature] of cases) {
      const uffd = (await createKernel({ kernel })).createProcess().userfaultfd();
      const result = uffd.api({ api: UFFD_API, features: feature });
      expect(result, `${kernel} feature 0x${feature.toString(16)}`).toEqual({ errno: EINVAL, api: 0, features: 0, ioctls: 0n });
    }
  });

  it("reports the same API ioctls", async () => {
    // REGISTER, UNREGISTER and API: bits 0, 1 and 63.
    for (const kernel of KERNEL_VERSIONS) {
      const uffd = (await createKernel({ kernel })).createProcess().userfaultfd();
      expect(uffd.api({ api: UFFD_API, features: 0 }).ioctls, kernel).toBe(0x8000000000000003n);
    }
  });
});

describe("COPY by version", () => {
  it("fills a missing page on every version", async () => {
    for (const kernel of KERNEL_VERSIONS) {
      const env = await setup({ kernel });
      expect(copy(env, 0, 0), kernel).toEqual({ errno: 0, copy: PAGE });
      expect(await settledNow(env.target.read(at(0), 1)), kernel).toEqual(Uint8Array.of(srcByte(0)));
    }
  });
});
