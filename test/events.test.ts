// Non-cooperative events of munmap, madvise(MADV_DONTNEED) and mremap
// (UNMAP, REMOVE, REMAP), their order against faults, and the
// mmap_changing gate that makes the fill ioctls return EAGAIN while such an
// event is unread. Expected values are those a Linux 6.18 kernel returned
// for the same calls. The 4.18 case follows the bool gate of Linux 4.18 to
// 5.14, and the cases no kernel run covered (a clobbered MREMAP_FIXED
// target, partial moves, in-place growth, two contexts, a range that
// vanishes under madvise) follow the event rules stated in each test.

import { describe, expect, it } from "vitest";
import {
  EAGAIN, EEXIST, ENOENT, ENOMEM, MADV_DONTNEED, MREMAP_FIXED, MREMAP_MAYMOVE, UFFD_EVENT_FORK, UFFD_EVENT_PAGEFAULT,
  UFFD_EVENT_REMAP, UFFD_EVENT_REMOVE, UFFD_EVENT_UNMAP, UFFD_FEATURE_EVENT_FORK, UFFD_FEATURE_EVENT_REMAP,
  UFFD_FEATURE_EVENT_REMOVE, UFFD_FEATURE_EVENT_UNMAP, UFFDIO_WRITEPROTECT_MODE_WP, SIGSEGV, SignalError, UFFD_API,
} from "../src/index.js";
import { drain, pageOf, settled, settledNow, watch } from "./helpers.js";
import {
  FIXED, GATE_EAGAIN, MISSING, NEW, PAGE, REGION, SPARE, WP, at, copyTo, expectGated, presentAt, readUntilSettled,
  setup, srcByte, vmaAt, type Env,
} from "./event-helpers.js";

const REMAP = UFFD_FEATURE_EVENT_REMAP;
const REMOVE = UFFD_FEATURE_EVENT_REMOVE;
const UNMAP = UFFD_FEATURE_EVENT_UNMAP;
const ALL_EVENTS = UFFD_FEATURE_EVENT_FORK | REMAP | REMOVE | UNMAP;
const MOVE_FIXED = MREMAP_MAYMOVE | MREMAP_FIXED;
const ZEROS = pageOf(0);
const unmapMsg = (start: number, end: number) => ({ errno: 0, event: UFFD_EVENT_UNMAP, start, end });
const removeMsg = (start: number, end: number) => ({ errno: 0, event: UFFD_EVENT_REMOVE, start, end });
const remapMsg = (from: number, to: number, len: number) => ({ errno: 0, event: UFFD_EVENT_REMAP, from, to, len });

describe("munmap with EVENT_UNMAP", () => {
  it("blocks until UNMAP is read", async () => {
    const env = await setup({ features: UNMAP });
    const unmap = watch(env.target.munmap(at(2), 2 * PAGE));
    await drain();
    expect(unmap.state).toBe("pending");

    expect(env.uffd.read()).toEqual(unmapMsg(at(2), at(4)));
    expect(await settled(unmap)).toBe(0);
    expect(env.uffd.read()).toEqual(GATE_EAGAIN);
  });

  it("removes the VMA before the event", async () => {
    const env = await setup({ features: UNMAP });
    const unmap = watch(env.target.munmap(at(2), 2 * PAGE));
    expect(vmaAt(env, at(2))).toBeUndefined();
    expect(vmaAt(env, at(3))).toBeUndefined();
    expect(env.uffd.ctx.mmapChanging).toBe(1);

    expect(env.uffd.read()).toEqual(unmapMsg(at(2), at(4)));
    await settled(unmap);
  });

  it("gates ioctls while UNMAP is pending", async () => {
    const env = await setup({ features: UNMAP });
    const unmap = watch(env.target.munmap(at(2), 2 * PAGE));
    expectGated(env, at(2), 0);

    expect(env.uffd.read()).toEqual(unmapMsg(at(2), at(4)));
    await settled(unmap);
  });

  it("opens the gate when munmap resumes", async () => {
    const env = await setup({ features: UNMAP });
    const unmap = watch(env.target.munmap(at(2), 2 * PAGE));
    expect(env.uffd.read()).toEqual(unmapMsg(at(2), at(4)));

    // The read only lets munmap resume, and munmap lowers the gate when it runs.
    expect(env.uffd.ctx.mmapChanging).toBe(1);
    expect(copyTo(env, at(0))).toEqual({ errno: EAGAIN, copy: -EAGAIN });
    await drain();
    expect(env.uffd.ctx.mmapChanging).toBe(0);
    expect(copyTo(env, at(0))).toEqual({ errno: 0, copy: PAGE });
    expect(await settled(unmap)).toBe(0);
  });

  it("leaves the rest registered", async () => {
    const env = await setup({ features: UNMAP });
    const unmap = watch(env.target.munmap(at(2), 2 * PAGE));
    await readUntilSettled(env.uffd, unmap);

    expect(copyTo(env, at(2)), "COPY into the unmapped range").toEqual({ errno: ENOENT, copy: -ENOENT });
    expect(vmaAt(env, at(0))).toEqual([at(0), at(2), MISSING, true]);
    expect(vmaAt(env, at(4))).toEqual([at(4), at(8), MISSING, true]);
    expect(copyTo(env, at(1)), "COPY below the hole").toEqual({ errno: 0, copy: PAGE });
    expect(copyTo(env, at(4)), "COPY above the hole").toEqual({ errno: 0, copy: PAGE });
  });

  it("sends one UNMAP for two VMAs", async () => {
    const env = await setup({ features: UNMAP });
    expect(env.uffd.register({ start: at(4), len: 4 * PAGE, mode: MISSING | WP }).errno).toBe(0);
    expect(vmaAt(env, at(0))).toEqual([at(0), at(4), MISSING, true]);
    const unmap = watch(env.target.munmap(at(2), 4 * PAGE));
    expect(env.uffd.ctx.mmapChanging).toBe(1);

    const messages = await readUntilSettled(env.uffd, unmap);
    expect(messages).toEqual([unmapMsg(at(2), at(6))]);
    expect(env.uffd.ctx.mmapChanging).toBe(0);
    expect(vmaAt(env, at(6))).toEqual([at(6), at(8), MISSING | WP, true]);
  });

  it("reports the requested range past the mapping", async () => {
    const env = await setup({ features: UNMAP });
    const unmap = watch(env.target.munmap(at(6), 6 * PAGE));
    expect(await readUntilSettled(env.uffd, unmap)).toEqual([unmapMsg(at(6), at(12))]);
  });

  it("rounds the UNMAP end up to a page", async () => {
    const env = await setup({ features: UNMAP });
    const unmap = watch(env.target.munmap(at(2), PAGE + 1));
    expect(await readUntilSettled(env.uffd, unmap)).toEqual([unmapMsg(at(2), at(4))]);
  });

  it("sends one UNMAP per context, in turn", async () => {
    const env = await setup({ features: UNMAP });
    const own = env.target.userfaultfd();
    expect(own.api({ api: UFFD_API, features: UNMAP }).errno).toBe(0);
    const second = own.dupInto(env.monitor);
    own.close();
    expect(env.target.mmap(2 * PAGE, { flags: FIXED, address: at(8) })).toBe(at(8));
    expect(second.register({ start: at(8), len: 2 * PAGE, mode: MISSING }).errno).toBe(0);
    const unmap = watch(env.target.munmap(at(6), 4 * PAGE));
    expect(second.ctx.mmapChanging, "second context at prep").toBe(1);
    expect(second.read(), "second context before the first UNMAP is read").toEqual(GATE_EAGAIN);

    expect(env.uffd.read()).toEqual(unmapMsg(at(6), at(10)));
    await drain();
    expect(unmap.state).toBe("pending");
    expect(second.read()).toEqual(unmapMsg(at(6), at(10)));
    expect(await settled(unmap)).toBe(0);
    expect(second.ctx.mmapChanging).toBe(0);
  });

  it("WAKE lets a fault in the range fail", async () => {
    const env = await setup({ features: UNMAP });
    const access = watch(env.target.read(at(2), 1));
    expect(env.uffd.read()).toMatchObject({ event: UFFD_EVENT_PAGEFAULT, address: at(2) });
    const unmap = watch(env.target.munmap(at(2), 2 * PAGE));
    expect(env.uffd.wake({ start: at(2), len: PAGE }).errno).toBe(0);

    const error = await settled(access).catch((reason: unknown) => reason);
    expect(error).toBeInstanceOf(SignalError);
    expect(error).toMatchObject({ signo: SIGSEGV, address: at(2) });
    expect(await readUntilSettled(env.uffd, unmap)).toEqual([unmapMsg(at(2), at(4))]);
  });
});

describe("munmap without EVENT_UNMAP", () => {
  it("returns at once without an event", async () => {
    const env = await setup({ features: REMOVE | REMAP });
    const unmap = watch(env.target.munmap(at(2), 2 * PAGE));
    expect(env.uffd.ctx.mmapChanging).toBe(0);
    expect(await settled(unmap)).toBe(0);
    expect(env.uffd.read()).toEqual(GATE_EAGAIN);
    expect(copyTo(env, at(0))).toEqual({ errno: 0, copy: PAGE });
  });
});

describe("madvise DONTNEED with EVENT_REMOVE", () => {
  /** Fills page 0 with source page 0 and starts madvise(DONTNEED) over pages 0 to 3. */
  async function startRemove(env: Env) {
    expect(copyTo(env, at(0), 0).errno).toBe(0);
    return watch(env.target.madvise(at(0), 4 * PAGE, MADV_DONTNEED));
  }

  it("blocks until REMOVE is read", async () => {
    const env = await setup({ features: REMOVE });
    const advice = await startRemove(env);
    await drain();
    expect(advice.state).toBe("pending");

    expect(env.uffd.read()).toEqual(removeMsg(at(0), at(4)));
    expect(await settled(advice)).toBe(0);
    expect(env.uffd.read()).toEqual(GATE_EAGAIN);
  });

  it("keeps the page until REMOVE is read", async () => {
    const env = await setup({ features: REMOVE });
    const advice = await startRemove(env);
    expect(presentAt(env, at(0)), "present while pending").toBe(1);
    expect(await settledNow(env.target.read(at(0), PAGE))).toEqual(pageOf(srcByte(0)));

    expect(env.uffd.read()).toEqual(removeMsg(at(0), at(4)));
    // The zap runs when madvise resumes, not inside read().
    expect(presentAt(env, at(0)), "present right after read").toBe(1);
    await settled(advice);
    expect(presentAt(env, at(0)), "present after madvise").toBe(0);
    expect(copyTo(env, at(0), 3)).toEqual({ errno: 0, copy: PAGE });
  });

  it("gates ioctls while REMOVE is pending", async () => {
    const env = await setup({ features: REMOVE });
    const advice = await startRemove(env);
    expectGated(env, at(1), 0);

    expect(env.uffd.read()).toEqual(removeMsg(at(0), at(4)));
    await settled(advice);
  });

  it("opens the gate when madvise resumes", async () => {
    const env = await setup({ features: REMOVE });
    const advice = await startRemove(env);
    expect(env.uffd.read()).toEqual(removeMsg(at(0), at(4)));

    expect(copyTo(env, at(5))).toEqual({ errno: EAGAIN, copy: -EAGAIN });
    await drain();
    expect(env.uffd.ctx.mmapChanging).toBe(0);
    expect(copyTo(env, at(5))).toEqual({ errno: 0, copy: PAGE });
    expect(await settled(advice)).toBe(0);
  });

  it("sends one REMOVE per VMA", async () => {
    const env = await setup({ features: REMOVE });
    expect(env.uffd.register({ start: at(4), len: 4 * PAGE, mode: MISSING | WP }).errno).toBe(0);
    const advice = watch(env.target.madvise(at(2), 4 * PAGE, MADV_DONTNEED));

    expect(env.uffd.read()).toEqual(removeMsg(at(2), at(4)));
    // The second chunk's event follows only after madvise resumes.
    expect(env.uffd.read()).toEqual(GATE_EAGAIN);
    await drain();
    expect(advice.state).toBe("pending");
    expect(env.uffd.read()).toEqual(removeMsg(at(4), at(6)));
    expect(await settled(advice)).toBe(0);
    expect(env.uffd.ctx.mmapChanging).toBe(0);
  });

  it("returns ENOMEM when the range vanished", async () => {
    const env = await setup({ features: REMOVE | UNMAP });
    const advice = watch(env.target.madvise(at(0), 4 * PAGE, MADV_DONTNEED));
    const unmap = watch(env.target.munmap(at(0), 8 * PAGE));

    expect(env.uffd.read()).toEqual(removeMsg(at(0), at(4)));
    expect(await settled(advice)).toBe(-ENOMEM);
    expect(env.uffd.read()).toEqual(unmapMsg(at(0), at(8)));
    expect(await settled(unmap)).toBe(0);
    expect(env.uffd.ctx.mmapChanging).toBe(0);
  });
});

describe("concurrent madvise", () => {
  it("counter holds the gate for both", async () => {
    const env = await setup({ features: REMOVE });
    const first = watch(env.target.madvise(at(0), 2 * PAGE, MADV_DONTNEED));
    const second = watch(env.target.madvise(at(1), 2 * PAGE, MADV_DONTNEED));
    expect(env.uffd.ctx.mmapChanging).toBe(2);

    expect(env.uffd.read()).toEqual(removeMsg(at(0), at(2)));
    await settled(first);
    expect(second.state).toBe("pending");
    expect(env.uffd.ctx.mmapChanging).toBe(1);
    expect(copyTo(env, at(5))).toEqual({ errno: EAGAIN, copy: -EAGAIN });

    expect(env.uffd.read()).toEqual(removeMsg(at(1), at(3)));
    await settled(second);
    expect(env.uffd.ctx.mmapChanging).toBe(0);
    expect(copyTo(env, at(5))).toEqual({ errno: 0, copy: PAGE });
  });

  it("4.18 bool gate opens after the first", async () => {
    const env = await setup({ features: REMOVE, kernel: "4.18" });
    const first = watch(env.target.madvise(at(0), 2 * PAGE, MADV_DONTNEED));
    const second = watch(env.target.madvise(at(1), 2 * PAGE, MADV_DONTNEED));
    expect(env.uffd.ctx.mmapChanging).toBe(1);
    expect(copyTo(env, at(5)).errno).toBe(EAGAIN);

    expect(env.uffd.read()).toEqual(removeMsg(at(0), at(2)));
    await settled(first);
    expect(second.state).toBe("pending");
    expect(env.uffd.ctx.mmapChanging).toBe(0);
    // The bug the 5.15 counter fixed: a fill goes through while REMOVE is unread.
    expect(copyTo(env, at(5))).toEqual({ errno: 0, copy: PAGE });

    expect(env.uffd.read()).toEqual(removeMsg(at(1), at(3)));
    await settled(second);
    expect(env.uffd.ctx.mmapChanging).toBe(0);
  });
});

describe("mremap with EVENT_REMAP", () => {
  /** Fills page 0 with source page 0 and moves all 8 pages of REGION to NEW. */
  function startMove(env: Env) {
    expect(copyTo(env, at(0), 0).errno).toBe(0);
    return watch(env.target.mremap(REGION, 8 * PAGE, 8 * PAGE, MOVE_FIXED, NEW));
  }

  it("sends REMAP, then UNMAP of the old range", async () => {
    const env = await setup({ features: REMAP | UNMAP });
    const move = startMove(env);
    await drain();
    expect(move.state).toBe("pending");

    expect(env.uffd.read()).toEqual(remapMsg(REGION, NEW, 8 * PAGE));
    await drain();
    expect(move.state, "mremap after REMAP is read").toBe("pending");
    expect(copyTo(env, NEW + 2 * PAGE)).toEqual({ errno: EAGAIN, copy: -EAGAIN });

    expect(env.uffd.read()).toEqual(unmapMsg(at(0), at(8)));
    expect(await settled(move)).toBe(NEW);
    expect(env.uffd.read()).toEqual(GATE_EAGAIN);
    expect(env.uffd.ctx.mmapChanging).toBe(0);
  });

  it("moves the page before the event", async () => {
    const env = await setup({ features: REMAP | UNMAP });
    const move = startMove(env);
    expect(vmaAt(env, at(0))).toBeUndefined();
    expect(presentAt(env, NEW)).toBe(1);
    expect(presentAt(env, at(0))).toBe(0);

    await readUntilSettled(env.uffd, move);
  });

  it("gates ioctls while REMAP is pending", async () => {
    const env = await setup({ features: REMAP | UNMAP });
    const move = startMove(env);
    expectGated(env, NEW + 2 * PAGE, 0);

    await readUntilSettled(env.uffd, move);
  });

  it("keeps the new range registered", async () => {
    const env = await setup({ features: REMAP | UNMAP });
    const move = startMove(env);
    await readUntilSettled(env.uffd, move);

    expect(vmaAt(env, NEW)).toEqual([NEW, NEW + 8 * PAGE, MISSING, true]);
    expect(copyTo(env, NEW, 1), "COPY on the moved page").toEqual({ errno: EEXIST, copy: -EEXIST });
    expect(copyTo(env, NEW + 2 * PAGE, 2), "COPY on a missing new page").toEqual({ errno: 0, copy: PAGE });
    expect(copyTo(env, at(2), 3), "COPY on the old range").toEqual({ errno: ENOENT, copy: -ENOENT });
    expect(await settledNow(env.target.read(NEW, PAGE))).toEqual(pageOf(srcByte(0)));
  });

  it("sends only REMAP without EVENT_UNMAP", async () => {
    const env = await setup({ features: REMAP });
    const move = startMove(env);
    expect(await readUntilSettled(env.uffd, move)).toEqual([remapMsg(REGION, NEW, 8 * PAGE)]);
    expect(move.value).toBe(NEW);
    expect(vmaAt(env, NEW)).toEqual([NEW, NEW + 8 * PAGE, MISSING, true]);
  });

  it("reports the new address of a plain move", async () => {
    const env = await setup({ features: REMAP | UNMAP });
    expect(env.target.mmap(PAGE, { flags: FIXED, address: at(8) })).toBe(at(8));
    const move = watch(env.target.mremap(REGION, 8 * PAGE, 12 * PAGE, MREMAP_MAYMOVE));

    const messages = await readUntilSettled(env.uffd, move);
    const to = move.value as number;
    expect(to).not.toBe(REGION);
    expect(messages).toEqual([remapMsg(REGION, to, 8 * PAGE), unmapMsg(at(0), at(8))]);
    expect(vmaAt(env, to)).toEqual([to, to + 12 * PAGE, MISSING, true]);
  });

  it("sends UNMAP of a clobbered target first", async () => {
    const env = await setup({ features: REMAP | UNMAP });
    const move = watch(env.target.mremap(REGION, 4 * PAGE, 4 * PAGE, MOVE_FIXED, SPARE));
    expect(await readUntilSettled(env.uffd, move)).toEqual([
      unmapMsg(SPARE, SPARE + 4 * PAGE), remapMsg(REGION, SPARE, 4 * PAGE), unmapMsg(at(0), at(4)),
    ]);
    expect(move.value).toBe(SPARE);
    expect(vmaAt(env, SPARE)).toEqual([SPARE, SPARE + 4 * PAGE, MISSING, true]);
    expect(env.uffd.ctx.mmapChanging).toBe(0);
  });

  it("moves part of a VMA", async () => {
    const env = await setup({ features: REMAP | UNMAP });
    const move = watch(env.target.mremap(at(2), 2 * PAGE, 2 * PAGE, MOVE_FIXED, NEW));
    expect(await readUntilSettled(env.uffd, move)).toEqual([remapMsg(at(2), NEW, 2 * PAGE), unmapMsg(at(2), at(4))]);
    expect(vmaAt(env, at(0))).toEqual([at(0), at(2), MISSING, true]);
    expect(vmaAt(env, at(4))).toEqual([at(4), at(8), MISSING, true]);
    expect(vmaAt(env, NEW)).toEqual([NEW, NEW + 2 * PAGE, MISSING, true]);
  });

  it("grows in place without an event", async () => {
    const env = await setup({ features: REMAP | UNMAP });
    const grow = watch(env.target.mremap(REGION, 8 * PAGE, 10 * PAGE, MREMAP_MAYMOVE));
    expect(env.uffd.ctx.mmapChanging).toBe(0);
    expect(await settled(grow)).toBe(REGION);
    expect(env.uffd.read()).toEqual(GATE_EAGAIN);
    expect(vmaAt(env, at(9))).toEqual([at(0), at(10), MISSING, true]);
  });

  it("sends UNMAP of the tail on a shrink", async () => {
    const env = await setup({ features: REMAP | UNMAP });
    const shrink = watch(env.target.mremap(REGION, 8 * PAGE, 4 * PAGE, 0));
    expect(await readUntilSettled(env.uffd, shrink)).toEqual([unmapMsg(at(4), at(8))]);
    expect(shrink.value).toBe(REGION);
    expect(vmaAt(env, at(0))).toEqual([at(0), at(4), MISSING, true]);
  });
});

describe("mremap without EVENT_REMAP", () => {
  it("unregisters the new range without an event", async () => {
    const env = await setup();
    expect(copyTo(env, at(0), 0).errno).toBe(0);
    const move = watch(env.target.mremap(REGION, 8 * PAGE, 8 * PAGE, MOVE_FIXED, NEW));
    expect(env.uffd.ctx.mmapChanging).toBe(0);
    expect(await settled(move)).toBe(NEW);

    expect(env.uffd.read()).toEqual(GATE_EAGAIN);
    expect(vmaAt(env, NEW)).toEqual([NEW, NEW + 8 * PAGE, 0, false]);
    expect(await settledNow(env.target.read(NEW + 3 * PAGE, PAGE))).toEqual(ZEROS);
    expect(env.uffd.read()).toEqual(GATE_EAGAIN);
    expect(copyTo(env, NEW + 4 * PAGE)).toEqual({ errno: ENOENT, copy: -ENOENT });
    expect(await settledNow(env.target.read(NEW, PAGE))).toEqual(pageOf(srcByte(0)));
  });

  it("still sends UNMAP of the old range", async () => {
    const env = await setup({ features: UNMAP });
    const move = watch(env.target.mremap(REGION, 8 * PAGE, 8 * PAGE, MOVE_FIXED, NEW));
    expect(await readUntilSettled(env.uffd, move)).toEqual([unmapMsg(at(0), at(8))]);
    expect(move.value).toBe(NEW);
    expect(vmaAt(env, NEW)).toEqual([NEW, NEW + 8 * PAGE, 0, false]);
  });
});

describe("event order", () => {
  it("reads the fault before older events", async () => {
    const env = await setup({ features: REMOVE | UNMAP });
    const advice = watch(env.target.madvise(at(0), 2 * PAGE, MADV_DONTNEED));
    const unmap = watch(env.target.munmap(at(4), 2 * PAGE));
    const access = watch(env.target.read(at(2), PAGE));

    expect(env.uffd.read()).toMatchObject({ event: UFFD_EVENT_PAGEFAULT, address: at(2) });
    expect(env.uffd.read()).toEqual(removeMsg(at(0), at(2)));
    expect(env.uffd.read()).toEqual(unmapMsg(at(4), at(6)));
    expect(env.uffd.read()).toEqual(GATE_EAGAIN);

    expect(await settled(advice)).toBe(0);
    expect(await settled(unmap)).toBe(0);
    expect(copyTo(env, at(2), 2)).toEqual({ errno: 0, copy: PAGE });
    expect(await settled(access)).toEqual(pageOf(srcByte(2)));
  });
});

describe("gate matrix", () => {
  const producers: Array<[string, number, (env: Env) => Promise<unknown>]> = [
    ["FORK", UFFD_EVENT_FORK, (env) => env.target.fork()],
    ["REMAP", UFFD_EVENT_REMAP, (env) => env.target.mremap(REGION, 8 * PAGE, 8 * PAGE, MOVE_FIXED, NEW)],
    ["REMOVE", UFFD_EVENT_REMOVE, (env) => env.target.madvise(at(0), 2 * PAGE, MADV_DONTNEED)],
    ["UNMAP", UFFD_EVENT_UNMAP, (env) => env.target.munmap(at(0), 2 * PAGE)],
  ];

  for (const [name, event, start] of producers) {
    it(`${name} pending gates fills only`, async () => {
      const env = await setup({ features: ALL_EVENTS });
      const extra = env.target.mmap(PAGE);
      const producer = watch(start(env));
      const eagain = (field: string) => ({ errno: EAGAIN, [field]: -EAGAIN });

      expect(copyTo(env, SPARE), "COPY").toEqual(eagain("copy"));
      expect(env.uffd.zeropage({ start: SPARE, len: PAGE, mode: 0 }), "ZEROPAGE").toEqual(eagain("zeropage"));
      const writeprotect = env.uffd.writeprotect({ start: SPARE, len: PAGE, mode: UFFDIO_WRITEPROTECT_MODE_WP });
      expect(writeprotect, "WRITEPROTECT").toEqual(GATE_EAGAIN);
      const move = env.uffd.move({ dst: SPARE, src: SPARE + PAGE, len: PAGE, mode: 0 });
      expect(move, "MOVE").toEqual(eagain("move"));
      expect(env.uffd.poison({ start: SPARE, len: PAGE, mode: 0 }), "POISON").toEqual(eagain("updated"));
      expect(env.uffd.wake({ start: SPARE, len: PAGE }).errno, "WAKE").toBe(0);
      expect(env.uffd.register({ start: extra, len: PAGE, mode: MISSING }).errno, "REGISTER").toBe(0);
      expect(env.uffd.unregister({ start: extra, len: PAGE }).errno, "UNREGISTER").toBe(0);

      const messages = await readUntilSettled(env.uffd, producer);
      expect(messages[0]?.event).toBe(event);
      expect(env.uffd.ctx.mmapChanging).toBe(0);
      expect(copyTo(env, SPARE), "COPY after the producer resumed").toEqual({ errno: 0, copy: PAGE });
    });
  }
});

describe("release with events pending", () => {
  it("lets every producer finish", async () => {
    const env = await setup({ features: ALL_EVENTS });
    expect(copyTo(env, at(0), 0).errno).toBe(0);
    const fork = watch(env.target.fork());
    const advice = watch(env.target.madvise(at(0), 2 * PAGE, MADV_DONTNEED));
    const unmap = watch(env.target.munmap(at(4), 2 * PAGE));
    const move = watch(env.target.mremap(at(6), 2 * PAGE, 2 * PAGE, MOVE_FIXED, NEW));
    // FORK 1, REMOVE 1, UNMAP 1, REMAP and the old range's UNMAP 2.
    expect(env.uffd.ctx.mmapChanging).toBe(5);

    env.uffd.close();
    await settled(fork);
    expect(await settled(advice)).toBe(0);
    expect(await settled(unmap)).toBe(0);
    expect(await settled(move)).toBe(NEW);
    expect(env.uffd.ctx.mmapChanging).toBe(0);
    expect(presentAt(env, at(0)), "page 0 after madvise").toBe(0);
  });
});

describe("mmap_changing gate off", () => {
  it("lets a fill land before the zap", async () => {
    const env = await setup({ features: REMOVE, gate: false });
    const advice = watch(env.target.madvise(at(0), 4 * PAGE, MADV_DONTNEED));
    expect(env.uffd.ctx.mmapChanging).toBe(0);
    expect(copyTo(env, at(1), 1)).toEqual({ errno: 0, copy: PAGE });
    expect(presentAt(env, at(1)), "filled page while REMOVE is pending").toBe(1);

    expect(env.uffd.read()).toEqual(removeMsg(at(0), at(4)));
    expect(await settled(advice)).toBe(0);
    // The zap after the read discards the fill that the gate would have rejected.
    expect(presentAt(env, at(1)), "filled page after madvise").toBe(0);
  });

  it("returns ENOENT during a pending UNMAP", async () => {
    const env = await setup({ features: UNMAP, gate: false });
    const unmap = watch(env.target.munmap(at(2), 2 * PAGE));
    expect(copyTo(env, at(2))).toEqual({ errno: ENOENT, copy: -ENOENT });
    expect(copyTo(env, at(0))).toEqual({ errno: 0, copy: PAGE });

    expect(env.uffd.read()).toEqual(unmapMsg(at(2), at(4)));
    expect(await settled(unmap)).toBe(0);
  });
});
