// Scenarios 38-48 of the Linux 6.18 measurements: UFFDIO_MOVE, uffd-wp
// protection and its faults, and closing a userfaultfd while threads are
// blocked on it. Each describe is named after the measured scenario, and
// every expected value is what the real kernel returned. "Untouched" means
// the out-field keeps the preset passed in.

import { describe, expect, it } from "vitest";
import {
  EEXIST, EINVAL, ENOENT, MAP_ANONYMOUS, MAP_SHARED, PROT_READ, UFFD_FEATURE_MOVE,
  UFFD_FEATURE_PAGEFAULT_FLAG_WP, UFFDIO_MOVE_MODE_ALLOW_SRC_HOLES, UFFDIO_REGISTER_MODE_MISSING,
  UFFDIO_REGISTER_MODE_WP, UFFDIO_WRITEPROTECT_MODE_DONTWAKE, UFFDIO_WRITEPROTECT_MODE_WP, _UFFDIO_MOVE,
} from "../src/index.js";
import { drain, pageOf, settled, settledNow, watch } from "./helpers.js";
import {
  OTHER, PAGE, PLAIN, PRESET, REGION, SPARE, UNMAPPED, byte, byteAt, copyPage, createEnv, frameAt, mapAt,
  mapRegistered, present, readFault, secondUffd, sourcePages, vmflags, wpBit, type Env,
} from "./facts-helpers.js";

const MISSING = UFFDIO_REGISTER_MODE_MISSING;
const WP = UFFDIO_REGISTER_MODE_WP;
const PROTECT = UFFDIO_WRITEPROTECT_MODE_WP;
/** UFFD_PAGEFAULT_FLAG_WRITE | UFFD_PAGEFAULT_FLAG_WP: what a write to a protected page reports. */
const WP_FAULT_FLAGS = 3;
const at = (page: number) => REGION + page * PAGE;
/** Source pages for MOVE: private anonymous, unregistered. */
const SRC = PLAIN;
const srcAt = (page: number) => SRC + page * PAGE;

/** Maps SRC (4 pages) and fills its page 0 with 's'. */
async function mapMoveSource(env: Env): Promise<void> {
  mapAt(env, SRC, 4);
  await settledNow(env.target.write(SRC, pageOf(byte("s"))));
}

describe("move_basic", () => {
  it("API and REGISTER report MOVE", async () => {
    const env = await createEnv(UFFD_FEATURE_MOVE);
    expect(env.api.features & UFFD_FEATURE_MOVE, "API features").toBe(UFFD_FEATURE_MOVE);
    mapAt(env, REGION, 4);
    const register = env.uffd.register({ start: REGION, len: 4 * PAGE, mode: MISSING });
    expect(register.ioctls & (1n << BigInt(_UFFDIO_MOVE)), "REGISTER ioctls").toBe(1n << BigInt(_UFFDIO_MOVE));
  });

  it("moves the physical page", async () => {
    const env = await createEnv(UFFD_FEATURE_MOVE);
    mapRegistered(env, REGION, 4, MISSING);
    await mapMoveSource(env);
    const frame = frameAt(env, SRC);

    expect(env.uffd.move({ dst: REGION, src: SRC, len: PAGE, mode: 0 })).toEqual({ errno: 0, move: PAGE });
    expect(await byteAt(env, REGION), "dst byte").toBe(byte("s"));
    expect(frameAt(env, REGION), "same physical page").toBe(frame);
    expect(present(env, SRC), "src present").toBe(0);
    expect(await byteAt(env, SRC), "src after move").toBe(0);
  });
});

describe("move_errors", () => {
  /** Registers REGION (4 pages) MISSING, maps SRC with page 0 's', and returns a MOVE call with PRESET in the out-field. */
  async function setup() {
    const env = await createEnv(UFFD_FEATURE_MOVE);
    mapRegistered(env, REGION, 4, MISSING);
    await mapMoveSource(env);
    const move = (dst: number, src: number, len = PAGE, mode = 0) => env.uffd.move({ dst, src, len, mode, move: PRESET });
    return { env, move };
  }

  it("dst present is EEXIST", async () => {
    const { env, move } = await setup();
    const src = await sourcePages(env, "a");
    expect(copyPage(env.uffd, at(0), src).errno, "COPY of dst").toBe(0);
    expect(move(at(0), srcAt(0))).toEqual({ errno: EEXIST, move: -EEXIST });
  });

  it("src none is ENOENT", async () => {
    const { move } = await setup();
    expect(move(at(1), srcAt(1))).toEqual({ errno: ENOENT, move: -ENOENT });
  });

  it("ALLOW_SRC_HOLES skips a hole", async () => {
    const { env, move } = await setup();
    expect(move(at(1), srcAt(1), PAGE, UFFDIO_MOVE_MODE_ALLOW_SRC_HOLES)).toEqual({ errno: 0, move: PAGE });
    expect(present(env, at(1)), "dst stays missing").toBe(0);
  });

  it("dst unregistered is EINVAL", async () => {
    const { env, move } = await setup();
    mapAt(env, SPARE, 1);
    expect(move(SPARE, srcAt(0))).toEqual({ errno: EINVAL, move: -EINVAL });
  });

  it("dst of another uffd is EINVAL", async () => {
    const { env, move } = await setup();
    mapRegistered(env, OTHER, 1, MISSING, secondUffd(env));
    expect(move(OTHER, srcAt(0))).toEqual({ errno: EINVAL, move: -EINVAL });
  });

  // Each case is name, dst, src and mode. The out-field stays at PRESET.
  const untouched: Array<[string, number, number, number]> = [
    ["dst unaligned", REGION + 1, SRC, 0],
    ["src unaligned", REGION, SRC + 1, 0],
    ["bad mode", REGION, SRC, 1 << 2],
  ];
  for (const [name, dst, src, mode] of untouched) {
    it(`${name} is EINVAL, untouched`, async () => {
      const { move } = await setup();
      expect(move(dst, src, PAGE, mode)).toEqual({ errno: EINVAL, move: PRESET });
    });
  }

  it("PROT_READ src is EINVAL", async () => {
    const { env, move } = await setup();
    mapAt(env, SPARE, 1, { prot: PROT_READ });
    expect(await byteAt(env, SPARE), "read maps the zero page").toBe(0);
    expect(move(at(1), SPARE)).toEqual({ errno: EINVAL, move: -EINVAL });
  });

  it("shared src is EINVAL", async () => {
    const { env, move } = await setup();
    const shared = env.target.mmap(PAGE, { flags: MAP_SHARED | MAP_ANONYMOUS });
    await settledNow(env.target.write(shared, pageOf(byte("h"))));
    expect(move(at(1), shared)).toEqual({ errno: EINVAL, move: -EINVAL });
  });

  it("moves the zero page", async () => {
    const { env, move } = await setup();
    expect(await byteAt(env, srcAt(2)), "read maps the zero page").toBe(0);
    expect(move(at(2), srcAt(2))).toEqual({ errno: 0, move: PAGE });
  });

  it("crossing the VMA end is EINVAL", async () => {
    const { move } = await setup();
    expect(move(at(3), srcAt(0), 2 * PAGE)).toEqual({ errno: EINVAL, move: -EINVAL });
  });

  it("dst equal to src is EEXIST", async () => {
    const { env, move } = await setup();
    const src = await sourcePages(env, "a");
    expect(copyPage(env.uffd, at(0), src).errno, "COPY of page 0").toBe(0);
    expect(move(at(0), at(0))).toEqual({ errno: EEXIST, move: -EEXIST });
  });
});

describe("move_without_feature_and_registered_src", () => {
  it("moves without FEATURE_MOVE", async () => {
    const env = await createEnv();
    mapRegistered(env, REGION, 4, MISSING);
    await mapMoveSource(env);
    expect(env.uffd.move({ dst: REGION, src: SRC, len: PAGE, mode: 0 })).toEqual({ errno: 0, move: PAGE });
  });

  it("moves out of a registered src", async () => {
    const env = await createEnv();
    mapRegistered(env, REGION, 4, MISSING);
    mapRegistered(env, SPARE, 4, MISSING);
    const src = await sourcePages(env, "a");
    expect(copyPage(env.uffd, SPARE, src).errno, "COPY of the src page").toBe(0);

    expect(env.uffd.move({ dst: REGION, src: SPARE, len: PAGE, mode: 0 })).toEqual({ errno: 0, move: PAGE });
    const access = watch(env.target.read(SPARE, 1));
    await drain();
    const msg = readFault(env.uffd);
    expect(msg.address, "MISSING fault on the old src page").toBe(SPARE);
    expect(access.state).toBe("pending");
  });
});

describe("wp_basic", () => {
  /** Registers REGION WP-only, makes page 0 present with 'a' bytes and returns the REGISTER result. */
  async function setup(features = UFFD_FEATURE_PAGEFAULT_FLAG_WP) {
    const env = await createEnv(features);
    mapAt(env, REGION, 4);
    const register = env.uffd.register({ start: REGION, len: 4 * PAGE, mode: WP });
    await settledNow(env.target.write(REGION, pageOf(byte("a"))));
    return { env, register };
  }

  it("WP-only register ioctls", async () => {
    const { register } = await setup();
    expect(register).toEqual({ errno: 0, ioctls: 0x17cn });
  });

  it("protect sets the uffd-wp bit", async () => {
    const { env } = await setup();
    expect(env.uffd.writeprotect({ start: REGION, len: PAGE, mode: PROTECT }).errno).toBe(0);
    expect(wpBit(env, REGION), "uffd-wp bit").toBe(1);
  });

  it("read of a protected page completes", async () => {
    const { env } = await setup();
    expect(env.uffd.writeprotect({ start: REGION, len: PAGE, mode: PROTECT }).errno, "protect").toBe(0);
    expect(await byteAt(env, REGION)).toBe(byte("a"));
  });

  it("write faults, un-protect wakes it", async () => {
    const { env } = await setup();
    expect(env.uffd.writeprotect({ start: REGION, len: PAGE, mode: PROTECT }).errno, "protect").toBe(0);
    const write = watch(env.target.write(REGION, new Uint8Array([byte("X")])));
    await drain();
    expect(write.state, "write completed without fault").toBe("pending");
    const msg = readFault(env.uffd);
    expect(msg.flags, "flags").toBe(WP_FAULT_FLAGS);
    expect(msg.address - REGION, "address_off").toBe(0);

    expect(env.uffd.writeprotect({ start: REGION, len: PAGE, mode: 0 }).errno, "un-protect").toBe(0);
    await settled(write);
    expect(await byteAt(env, REGION), "byte").toBe(byte("X"));
    expect(wpBit(env, REGION), "uffd-wp bit").toBe(0);
  });
});

describe("wp_args", () => {
  /** Registers REGION page 0 WP-only and page 1 MISSING-only, both present, and maps PLAIN unregistered. */
  async function setup() {
    const env = await createEnv();
    mapAt(env, REGION, 2);
    await settledNow(env.target.write(REGION, pageOf(byte("a"))));
    await settledNow(env.target.write(at(1), pageOf(byte("b"))));
    expect(env.uffd.register({ start: at(0), len: PAGE, mode: WP }).errno, "WP page 0").toBe(0);
    expect(env.uffd.register({ start: at(1), len: PAGE, mode: MISSING }).errno, "MISSING page 1").toBe(0);
    mapAt(env, PLAIN, 1);
    return env;
  }

  const cases: Array<[string, number, number, number, number]> = [
    ["WP with DONTWAKE", REGION, PAGE, PROTECT | UFFDIO_WRITEPROTECT_MODE_DONTWAKE, EINVAL],
    ["unaligned", REGION + 1, PAGE, PROTECT, EINVAL],
    ["len 0", REGION, 0, PROTECT, EINVAL],
    ["bad mode", REGION, PAGE, 1 << 2, EINVAL],
    ["MISSING-only range", at(1), PAGE, PROTECT, ENOENT],
    ["unregistered", PLAIN, PAGE, PROTECT, ENOENT],
    ["unmapped", UNMAPPED, PAGE, PROTECT, ENOENT],
    ["never-protected un-protect", REGION, PAGE, 0, 0],
  ];
  for (const [name, start, len, mode, errno] of cases) {
    it(`${name} gives errno ${errno}`, async () => {
      const env = await setup();
      expect(env.uffd.writeprotect({ start, len, mode }).errno).toBe(errno);
    });
  }

  it("protects the WP VMA before ENOENT", async () => {
    const env = await setup();
    expect(env.uffd.writeprotect({ start: REGION, len: 2 * PAGE, mode: PROTECT }).errno).toBe(ENOENT);
    expect(wpBit(env, REGION), "first VMA protected anyway").toBe(1);
  });

  it("protects across a hole", async () => {
    const env = await createEnv();
    mapRegistered(env, SPARE, 3, WP);
    await settledNow(env.target.write(SPARE, pageOf(byte("a"))));
    await settledNow(env.target.write(SPARE + 2 * PAGE, pageOf(byte("c"))));
    expect(await settledNow(env.target.munmap(SPARE + PAGE, PAGE)), "munmap of T+1").toBe(0);

    expect(env.uffd.writeprotect({ start: SPARE, len: 3 * PAGE, mode: PROTECT }).errno).toBe(0);
    expect(wpBit(env, SPARE), "T+0").toBe(1);
    expect(wpBit(env, SPARE + 2 * PAGE), "T+2").toBe(1);
  });
});

describe("wp_flag_feature_not_requested", () => {
  it("reports WP faults anyway", async () => {
    const env = await createEnv(0);
    mapRegistered(env, REGION, 2, WP);
    await settledNow(env.target.write(REGION, pageOf(byte("a"))));
    expect(env.uffd.writeprotect({ start: REGION, len: PAGE, mode: PROTECT }).errno, "protect").toBe(0);
    const write = watch(env.target.write(REGION, new Uint8Array([byte("X")])));
    await drain();

    expect(write.state, "write").toBe("pending");
    expect(readFault(env.uffd).flags, "flags").toBe(WP_FAULT_FLAGS);
  });
});

describe("close_while_fault_blocked", () => {
  /** Registers REGION (4 pages) MISSING with page 0 'C', then blocks a reader on page 1 (event read) and a writer on page 2 (event unread). */
  async function setup() {
    const env = await createEnv();
    mapRegistered(env, REGION, 4, MISSING);
    const src = await sourcePages(env, "C");
    expect(copyPage(env.uffd, at(0), src).errno, "COPY of page 0").toBe(0);
    const reader = watch(env.target.read(at(1), 1));
    await drain();
    expect(readFault(env.uffd).address, "reader's fault").toBe(at(1));
    const writer = watch(env.target.write(at(2), new Uint8Array([byte("w")])));
    await drain();
    return { env, reader, writer };
  }

  it("resumes the reader with zeros", async () => {
    // The kernel's reader resumed 163us after close(); the model checks
    // only that it resumed once queued work ran.
    const { env, reader } = await setup();
    env.uffd.close();
    expect(env.uffd.closed, "closed").toBe(true);
    expect((await settled(reader))[0], "value").toBe(0);
  });

  it("resumes the writer with an unread event", async () => {
    const { env, writer } = await setup();
    env.uffd.close();
    await settled(writer);
    expect(await byteAt(env, at(2)), "written byte").toBe(byte("w"));
  });

  it("drops the registration", async () => {
    const { env } = await setup();
    env.uffd.close();
    expect(vmflags(env.target, REGION)).toBe("none");
  });

  it("keeps a copied page", async () => {
    const { env } = await setup();
    env.uffd.close();
    await drain();
    expect(await byteAt(env, at(0))).toBe(byte("C"));
  });
});

describe("close_dup_fd", () => {
  it("wakes only on the last close", async () => {
    const env = await createEnv();
    mapRegistered(env, REGION, 4, MISSING);
    const dup = env.uffd.dupInto(env.target);
    const reader = watch(env.target.read(REGION, 1));
    await drain();
    expect(readFault(env.uffd).address, "reader's fault").toBe(REGION);

    env.uffd.close();
    await drain();
    expect(reader.state, "after closing one fd").toBe("pending");
    dup.close();
    expect((await settled(reader))[0], "value after the last close").toBe(0);
  });
});
