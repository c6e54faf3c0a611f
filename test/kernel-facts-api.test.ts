// Scenarios 1-6 of the Linux 6.18 measurements: the UFFDIO_API handshake,
// UFFDIO_REGISTER arguments, modes, conflicts and memory kinds, and
// UFFDIO_UNREGISTER. Each describe is named after the measured scenario, and
// every expected value is what the real kernel returned.

import { describe, expect, it } from "vitest";
import {
  EAGAIN, EBUSY, EINVAL, ENOENT, EPERM, KernelError, MAP_PRIVATE, MAP_SHARED, MAP_ANONYMOUS, O_NONBLOCK, PROT_NONE,
  PROT_READ, TASK_SIZE, UFFD_API, UFFDIO_REGISTER_MODE_MINOR, UFFDIO_REGISTER_MODE_MISSING, UFFDIO_REGISTER_MODE_WP,
  readBytes,
} from "../src/index.js";
import { createKernel } from "./helpers.js";
import {
  PAGE, PLAIN, REGION, UNMAPPED, createEnv, mapAt, mapRegistered, secondUffd, sourcePages, vmflags, type Env,
} from "./facts-helpers.js";

const MISSING = UFFDIO_REGISTER_MODE_MISSING;
const WP = UFFDIO_REGISTER_MODE_WP;
const MINOR = UFFDIO_REGISTER_MODE_MINOR;
/** Every feature bit Linux 6.18 reports, PAGEFAULT_FLAG_WP (bit 0) to MOVE (bit 16). */
const ALL_FEATURES = 0x1ffff;
/** The ioctls mask UFFDIO_API reports: API (bit 63), REGISTER and UNREGISTER. */
const API_IOCTLS = 0x8000000000000003n;

/** Returns a fresh userfaultfd, before UFFDIO_API, of a new process. */
async function freshUffd() {
  return (await createKernel()).createProcess().userfaultfd(O_NONBLOCK);
}

describe("api_handshake", () => {
  it("reports features and ioctls", async () => {
    const uffd = await freshUffd();
    const result = uffd.api({ api: UFFD_API, features: 0 });
    expect(result.features).toBe(ALL_FEATURES);
    expect(result.ioctls).toBe(API_IOCTLS);
  });

  it("rejects read before API", async () => {
    const uffd = await freshUffd();
    expect(readBytes(uffd, new Uint8Array(32)).errno).toBe(EINVAL);
  });

  it("rejects REGISTER before API", async () => {
    const kernel = await createKernel();
    const target = kernel.createProcess();
    const address = target.mmap(PAGE);
    const uffd = target.userfaultfd(O_NONBLOCK);
    expect(uffd.register({ start: address, len: PAGE, mode: MISSING }).errno).toBe(EINVAL);
  });

  it("accepts the first API only", async () => {
    const uffd = await freshUffd();
    expect(uffd.api({ api: UFFD_API, features: 0 }).errno, "first API").toBe(0);
    expect(uffd.api({ api: UFFD_API, features: 0 }).errno, "second API").toBe(EINVAL);
  });

  it("rejects api 0xAB", async () => {
    const uffd = await freshUffd();
    expect(uffd.api({ api: 0xab, features: 0 }).errno).toBe(EINVAL);
  });

  it("rejects feature bit 17, then retries", async () => {
    const uffd = await freshUffd();
    const rejected = uffd.api({ api: UFFD_API, features: 1 << 17 });
    expect(rejected.errno).toBe(EINVAL);
    expect(rejected.features, "features_out").toBe(0);
    expect(uffd.api({ api: UFFD_API, features: 0 }).errno, "retry").toBe(0);
  });

  it("rejects feature bit 63", async () => {
    const uffd = await freshUffd();
    expect(uffd.api({ api: UFFD_API, features: 1n << 63n }).errno).toBe(EINVAL);
  });

  it("accepts all features", async () => {
    const uffd = await freshUffd();
    expect(uffd.api({ api: UFFD_API, features: ALL_FEATURES }).errno).toBe(0);
  });

  it("read with no events is EAGAIN", async () => {
    const { uffd } = await createEnv();
    expect(readBytes(uffd, new Uint8Array(32)).errno).toBe(EAGAIN);
  });

  it("rejects an 8-byte read", async () => {
    const { uffd } = await createEnv();
    expect(readBytes(uffd, new Uint8Array(8)).errno).toBe(EINVAL);
  });

  it("accepts API via /dev/userfaultfd", async () => {
    const uffd = (await createKernel()).createProcess().userfaultfdFromDevice(O_NONBLOCK);
    expect(uffd.api({ api: UFFD_API, features: 0 }).errno).toBe(0);
  });

  it("rejects an invalid syscall flag", async () => {
    const target = (await createKernel()).createProcess();
    // Bit 1 is not one of the valid flags O_CLOEXEC, O_NONBLOCK and UFFD_USER_MODE_ONLY.
    let error: unknown;
    try {
      target.userfaultfd(1 << 1);
    } catch (caught) {
      error = caught;
    }
    expect(error).toBeInstanceOf(KernelError);
    expect((error as KernelError).errno).toBe(EINVAL);
  });
});

describe("register_args", () => {
  async function envWithRegion(): Promise<Env> {
    const env = await createEnv();
    mapAt(env, REGION, 4);
    return env;
  }

  const cases: Array<[string, number, number, number]> = [
    ["unaligned start", REGION + 1, PAGE, MISSING],
    ["unaligned len", REGION, PAGE + 1, MISSING],
    ["len 0", REGION, 0, MISSING],
    ["mode 0", REGION, PAGE, 0],
    ["unknown mode", REGION, PAGE, 1 << 3],
    ["MINOR on anon", REGION, PAGE, MINOR],
    ["start at TASK_SIZE", TASK_SIZE, PAGE, MISSING],
  ];
  for (const [name, start, len, mode] of cases) {
    it(`rejects ${name}`, async () => {
      const env = await envWithRegion();
      expect(env.uffd.register({ start, len, mode }).errno).toBe(EINVAL);
    });
  }
});

describe("register_modes_ioctls", () => {
  // Bits 2-5 and 8 are WAKE, COPY, ZEROPAGE, MOVE and POISON; bit 6 is WRITEPROTECT.
  const cases: Array<[string, number, bigint]> = [
    ["MISSING", MISSING, 0x13cn],
    ["WP", WP, 0x17cn],
    ["MISSING|WP", MISSING | WP, 0x17cn],
  ];
  for (const [name, mode, ioctls] of cases) {
    it(`${name} reports its ioctls`, async () => {
      const env = await createEnv();
      mapAt(env, REGION, 1);
      const result = env.uffd.register({ start: REGION, len: PAGE, mode });
      expect(result.errno).toBe(0);
      expect(result.ioctls).toBe(ioctls);
    });
  }

  it("re-registers with a new mode", async () => {
    const env = await createEnv();
    mapRegistered(env, REGION, 2, MISSING);
    expect(env.uffd.register({ start: REGION, len: 2 * PAGE, mode: WP }).errno).toBe(0);
  });

  it("registers across three VMAs", async () => {
    const env = await createEnv();
    mapAt(env, REGION, 3);
    const modes = [MISSING, WP, MISSING | WP];
    modes.forEach((mode, page) => {
      expect(env.uffd.register({ start: REGION + page * PAGE, len: PAGE, mode }).errno, `page ${page}`).toBe(0);
    });
    expect(env.target.mm.vmasIn(REGION, REGION + 3 * PAGE).length, "VMAs before").toBe(3);

    expect(env.uffd.register({ start: REGION, len: 3 * PAGE, mode: MISSING }).errno).toBe(0);
  });
});

describe("register_conflicts", () => {
  it("other uffd gets EBUSY", async () => {
    const env = await createEnv();
    mapRegistered(env, REGION, 2, MISSING);
    const other = secondUffd(env);
    expect(other.register({ start: REGION, len: 2 * PAGE, mode: MISSING }).errno).toBe(EBUSY);
  });

  it("partial overlap gets EBUSY", async () => {
    const env = await createEnv();
    mapAt(env, REGION, 4);
    expect(env.uffd.register({ start: REGION, len: 2 * PAGE, mode: MISSING }).errno).toBe(0);
    const other = secondUffd(env);
    expect(other.register({ start: REGION + PAGE, len: 2 * PAGE, mode: MISSING }).errno).toBe(EBUSY);
  });

  it("fully unmapped gets EINVAL", async () => {
    const env = await createEnv();
    expect(env.uffd.register({ start: UNMAPPED, len: 2 * PAGE, mode: MISSING }).errno).toBe(EINVAL);
  });

  it("accepts a hole in the middle", async () => {
    const env = await createEnv();
    mapAt(env, REGION, 1);
    mapAt(env, REGION + 2 * PAGE, 1);
    expect(env.uffd.register({ start: REGION, len: 3 * PAGE, mode: MISSING }).errno).toBe(0);
  });

  it("accepts an unmapped tail", async () => {
    const env = await createEnv();
    mapAt(env, REGION, 2);
    expect(env.uffd.register({ start: REGION, len: 4 * PAGE, mode: MISSING }).errno).toBe(0);
  });

  it("accepts an unmapped head", async () => {
    const env = await createEnv();
    mapAt(env, REGION + 2 * PAGE, 2);
    expect(env.uffd.register({ start: REGION, len: 4 * PAGE, mode: MISSING }).errno).toBe(0);
  });
});

describe("register_vma_kinds", () => {
  it("memfd shared MISSING", async () => {
    const env = await createEnv();
    const file = env.kernel.memfdCreate("facts", 4 * PAGE);
    const address = env.target.mmap(4 * PAGE, { file });
    expect(env.uffd.register({ start: address, len: 4 * PAGE, mode: MISSING }).errno).toBe(0);
  });

  it("memfd MINOR reports CONTINUE", async () => {
    const env = await createEnv();
    const file = env.kernel.memfdCreate("facts", 4 * PAGE);
    const address = env.target.mmap(4 * PAGE, { file });
    const result = env.uffd.register({ start: address, len: 4 * PAGE, mode: MINOR });
    expect(result.errno).toBe(0);
    // MISSING's 0x13c plus CONTINUE (bit 7).
    expect(result.ioctls).toBe(0x1bcn);
  });

  it("shared anonymous MISSING", async () => {
    const env = await createEnv();
    const address = env.target.mmap(4 * PAGE, { flags: MAP_SHARED | MAP_ANONYMOUS });
    expect(env.uffd.register({ start: address, len: 4 * PAGE, mode: MISSING }).errno).toBe(0);
  });

  it("read-only shared gets EPERM", async () => {
    const env = await createEnv();
    const file = env.kernel.memfdCreate("facts", 4 * PAGE, { readOnly: true });
    const address = env.target.mmap(4 * PAGE, { file, prot: PROT_READ });
    expect(address).toBeGreaterThan(0);
    expect(env.uffd.register({ start: address, len: 4 * PAGE, mode: MISSING }).errno).toBe(EPERM);
  });

  it("regular file private gets EINVAL", async () => {
    const env = await createEnv();
    const file = env.kernel.createFile("facts", 4 * PAGE);
    const address = env.target.mmap(4 * PAGE, { file, flags: MAP_PRIVATE });
    expect(address).toBeGreaterThan(0);
    expect(env.uffd.register({ start: address, len: 4 * PAGE, mode: MISSING }).errno, "MISSING").toBe(EINVAL);
    expect(env.uffd.register({ start: address, len: 4 * PAGE, mode: WP }).errno, "WP").toBe(EINVAL);
  });

  it("PROT_NONE anonymous", async () => {
    const env = await createEnv();
    mapAt(env, REGION, 2, { prot: PROT_NONE });
    expect(env.uffd.register({ start: REGION, len: 2 * PAGE, mode: MISSING }).errno).toBe(0);
  });

  it("PROT_READ anonymous", async () => {
    const env = await createEnv();
    mapAt(env, REGION, 2, { prot: PROT_READ });
    expect(env.uffd.register({ start: REGION, len: 2 * PAGE, mode: MISSING }).errno).toBe(0);
  });
});

describe("unregister", () => {
  it("rejects an unaligned start", async () => {
    const env = await createEnv();
    mapRegistered(env, REGION, 2, MISSING);
    expect(env.uffd.unregister({ start: REGION + 1, len: PAGE }).errno).toBe(EINVAL);
  });

  it("rejects len 0", async () => {
    const env = await createEnv();
    mapRegistered(env, REGION, 2, MISSING);
    expect(env.uffd.unregister({ start: REGION, len: 0 }).errno).toBe(EINVAL);
  });

  it("rejects another uffd's range", async () => {
    const env = await createEnv();
    mapRegistered(env, REGION, 2, MISSING);
    const other = secondUffd(env);
    expect(other.unregister({ start: REGION, len: 2 * PAGE }).errno).toBe(EINVAL);
    expect(vmflags(env.target, REGION), "page 0 flags after").toBe("um");
  });

  it("accepts a never-registered range", async () => {
    const env = await createEnv();
    mapAt(env, PLAIN, 2);
    expect(env.uffd.unregister({ start: PLAIN, len: 2 * PAGE }).errno).toBe(0);
  });

  it("rejects an unmapped range", async () => {
    const env = await createEnv();
    expect(env.uffd.unregister({ start: UNMAPPED, len: 2 * PAGE }).errno).toBe(EINVAL);
  });

  it("unregisters part of a range", async () => {
    const env = await createEnv();
    mapRegistered(env, REGION, 2, MISSING);
    expect(env.uffd.unregister({ start: REGION + PAGE, len: PAGE }).errno).toBe(0);
    expect(vmflags(env.target, REGION), "page 0").toBe("um");
    expect(vmflags(env.target, REGION + PAGE), "page 1").toBe("none");
  });

  it("COPY afterwards gets ENOENT", async () => {
    const env = await createEnv();
    mapRegistered(env, REGION, 2, MISSING);
    const src = await sourcePages(env, "a");
    expect(env.uffd.unregister({ start: REGION, len: 2 * PAGE }).errno).toBe(0);
    expect(env.uffd.copy({ dst: REGION, src, len: PAGE, mode: 0 })).toEqual({ errno: ENOENT, copy: -ENOENT });
  });
});
