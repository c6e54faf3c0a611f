// Scenarios 23-37 of the Linux 6.18 measurements: fork, mremap, madvise and
// munmap with and without their events, the mmap_changing gate while an
// event is unread, message order, and what a child inherits. Each describe
// is named after the measured scenario, and every expected value is what the
// real kernel returned.
//
// Retry counts: the model's producer (fork, mremap, madvise, munmap) lowers
// mmap_changing when it next runs, after the JavaScript microtask queue
// drains. A COPY issued right after read() therefore gets EAGAIN, and one
// issued after the producer ran succeeds. Where the kernel's first COPY after
// the read already succeeded, the woken producer happened to run before the
// monitor's next ioctl; that order is up to the scheduler, so those tests
// issue the COPY after the producer has run.

import { describe, expect, it } from "vitest";
import {
  EAGAIN, EEXIST, ENOENT, ESRCH, MADV_DONTNEED, MREMAP_FIXED, MREMAP_MAYMOVE, UFFD_EVENT_FORK, UFFD_EVENT_PAGEFAULT,
  UFFD_EVENT_REMAP, UFFD_EVENT_REMOVE, UFFD_EVENT_UNMAP, UFFD_FEATURE_EVENT_FORK, UFFD_FEATURE_EVENT_REMAP,
  UFFD_FEATURE_EVENT_REMOVE, UFFD_FEATURE_EVENT_UNMAP, UFFDIO_REGISTER_MODE_MISSING, UFFDIO_REGISTER_MODE_WP,
  UFFDIO_WRITEPROTECT_MODE_WP, type ForkMsg, type Process, type RangeMsg, type ReadResult, type RemapMsg, type UffdMsg,
} from "../src/index.js";
import { drain, pageOf, settled, settledNow, watch, type Watched } from "./helpers.js";
import { readUntilSettled } from "./event-helpers.js";
import {
  NEW, OTHER, PAGE, PLAIN, PRESET, REGION, SPARE, byte, byteAt, copyPage, copyWithRetries, createEnv, expectGated, mapAt,
  mapRegistered, present, readFault, secondUffd, sourcePages, vmflags, wpBit, type Env,
} from "./facts-helpers.js";

const MISSING = UFFDIO_REGISTER_MODE_MISSING;
const WP = UFFDIO_REGISTER_MODE_WP;
const MOVE_FIXED = MREMAP_MAYMOVE | MREMAP_FIXED;
const at = (page: number) => REGION + page * PAGE;

/** Returns the event code of a read() result, or its errno when no message was read. */
function eventOf(result: ReadResult): number {
  return "event" in result ? result.event : result.errno;
}

/**
 * Creates the gate scenario layout. REGION (8 pages, with `regionMode`) and
 * SPARE (4 pages, MISSING and WP) are registered to env.uffd, and OTHER
 * (2 pages) is registered MISSING to a second userfaultfd. The source pages
 * are filled with `sourceChars`, and the first is copied to REGION page 0.
 */
async function gateSetup(features: number, sourceChars = "A", regionMode = MISSING | WP) {
  const env = await createEnv(features);
  mapRegistered(env, REGION, 8, regionMode);
  mapRegistered(env, SPARE, 4, MISSING | WP);
  const otherUffd = secondUffd(env);
  mapRegistered(env, OTHER, 2, MISSING, otherUffd);
  const src = await sourcePages(env, sourceChars);
  expect(copyPage(env.uffd, at(0), src).errno, "COPY of page 0 in setup").toBe(0);
  return { env, src, otherUffd };
}

describe("fork_gate", () => {
  /** Sets up the gate layout with REGION registered MISSING only and page 0 'A', then starts fork(). */
  async function startFork() {
    const { env, src, otherUffd } = await gateSetup(UFFD_FEATURE_EVENT_FORK, "AKC", MISSING);
    const fork = watch(env.target.fork());
    await drain();
    return { env, src, otherUffd, fork };
  }

  /** Reads FORK, lets fork() return, and returns the child and its userfaultfd. */
  async function finishFork(env: Env, fork: Watched<Process>) {
    const msg = env.uffd.read();
    expect(eventOf(msg), "FORK message").toBe(UFFD_EVENT_FORK);
    const child = await settled(fork);
    return { child, childUffd: (msg as ForkMsg).uffd };
  }

  it("blocks fork until FORK is read", async () => {
    const { env, fork } = await startFork();
    expect(fork.state).toBe("pending");
    await finishFork(env, fork);
  });

  it("gates ioctls while FORK is unread", async () => {
    const { env, src, otherUffd } = await startFork();
    expectGated(env, { affected: at(1), elsewhere: SPARE, otherPage: OTHER, otherUffd, src });
  });

  it("COPY in the region gets EAGAIN", async () => {
    const { env, src } = await startFork();
    expect(copyPage(env.uffd, at(1), src)).toEqual({ errno: EAGAIN, copy: -EAGAIN });
  });

  it("bad-len COPY gets EAGAIN", async () => {
    const { env, src } = await startFork();
    expect(copyPage(env.uffd, at(1), src, 100)).toEqual({ errno: EAGAIN, copy: -EAGAIN });
  });

  it("REGISTER goes through", async () => {
    const { env } = await startFork();
    mapAt(env, PLAIN, 1);
    expect(env.uffd.register({ start: PLAIN, len: PAGE, mode: MISSING }).errno).toBe(0);
  });

  it("COPY works once fork returns", async () => {
    const { env, src, fork } = await startFork();
    await finishFork(env, fork);
    // The kernel's COPY right after read() succeeded because the woken
    // fork() ran first; see the file header.
    const copy = await copyWithRetries(env.uffd, at(3), src);
    expect(copy.first, "first COPY").toEqual({ errno: 0, copy: PAGE });
    expect(copy.retries, "extra retries").toBe(0);
  });

  it("sends one FORK for two ranges", async () => {
    const { env, fork } = await startFork();
    await finishFork(env, fork);
    expect(env.uffd.read(), "second FORK").toEqual({ errno: EAGAIN });
  });

  it("child keeps MISSING registration", async () => {
    const { env, fork } = await startFork();
    const { child } = await finishFork(env, fork);
    expect(vmflags(child, REGION)).toBe("um");
  });

  it("child uffd fills the child", async () => {
    const { env, src, fork } = await startFork();
    const { childUffd } = await finishFork(env, fork);
    expect(copyPage(childUffd, at(0), src + PAGE), "present page").toEqual({ errno: EEXIST, copy: -EEXIST });
    expect(copyPage(childUffd, at(1), src + PAGE), "missing page").toEqual({ errno: 0, copy: PAGE });
  });

  it("child fault goes to the child uffd", async () => {
    const { env, src, fork } = await startFork();
    const { child, childUffd } = await finishFork(env, fork);
    expect(copyPage(childUffd, at(1), src + PAGE).errno, "COPY 'K' to page 1").toBe(0);
    const access = watch(child.read(at(2), 1));
    await drain();
    const msg = readFault(childUffd);
    expect(msg.address - REGION, "address_off").toBe(8192);

    expect(copyPage(childUffd, at(2), src + 2 * PAGE).errno, "COPY 'C' to page 2").toBe(0);
    expect((await settled(access))[0], "child page 2").toBe(byte("C"));
    expect(await byteAt(env, at(0), child), "child page 0").toBe(byte("A"));
    expect(await byteAt(env, at(1), child), "child page 1").toBe(byte("K"));
  });

  it("parent COPY after fork", async () => {
    const { env, src, fork } = await startFork();
    await finishFork(env, fork);
    await drain();
    expect(copyPage(env.uffd, at(1), src)).toEqual({ errno: 0, copy: PAGE });
  });

  it("child uffd after exit is ESRCH", async () => {
    const { env, src, fork } = await startFork();
    const { child, childUffd } = await finishFork(env, fork);
    child.exit();
    const result = childUffd.copy({ dst: at(1), src, len: PAGE, mode: 0, copy: PRESET });
    expect(result).toEqual({ errno: ESRCH, copy: PRESET });
  });
});

describe("gate_remap", () => {
  /** Sets up the gate layout with page 0 'A', then moves REGION to NEW. */
  async function startMove() {
    const { env, src, otherUffd } = await gateSetup(UFFD_FEATURE_EVENT_REMAP | UFFD_FEATURE_EVENT_UNMAP);
    const move = watch(env.target.mremap(REGION, 8 * PAGE, 8 * PAGE, MOVE_FIXED, NEW));
    await drain();
    return { env, src, otherUffd, move };
  }

  it("blocks mremap", async () => {
    const { move } = await startMove();
    expect(move.state).toBe("pending");
  });

  it("sends REMAP first", async () => {
    const { env } = await startMove();
    const msg = env.uffd.read();
    expect(eventOf(msg), "event").toBe(UFFD_EVENT_REMAP);
    const remap = msg as RemapMsg;
    expect(remap.from - REGION, "from_off").toBe(0);
    expect(remap.to - NEW, "to_off").toBe(0);
    expect(remap.len, "len").toBe(32768);
  });

  it("moves before the event is read", async () => {
    const { env } = await startMove();
    expect(vmflags(env.target, REGION), "old range").toBe("novma");
    expect(present(env, NEW), "NEW+0").toBe(1);
  });

  it("gates ioctls while REMAP is unread", async () => {
    const { env, src, otherUffd } = await startMove();
    expectGated(env, { affected: NEW + 2 * PAGE, elsewhere: SPARE, otherPage: OTHER, otherUffd, src });
  });

  it("stays blocked after REMAP is read", async () => {
    const { env, src, move } = await startMove();
    expect(eventOf(env.uffd.read()), "REMAP").toBe(UFFD_EVENT_REMAP);
    await drain();
    expect(move.state, "mremap").toBe("pending");
    expect(copyPage(env.uffd, SPARE, src).errno, "COPY").toBe(EAGAIN);
  });

  it("sends UNMAP of the old range second", async () => {
    const { env } = await startMove();
    expect(eventOf(env.uffd.read()), "REMAP").toBe(UFFD_EVENT_REMAP);
    await drain();
    const msg = env.uffd.read();
    expect(eventOf(msg), "event").toBe(UFFD_EVENT_UNMAP);
    expect((msg as RangeMsg).start - REGION, "start_off").toBe(0);
    expect((msg as RangeMsg).end - REGION, "end_off").toBe(32768);
  });

  it("COPY works once mremap returns", async () => {
    const { env, src, move } = await startMove();
    await readUntilSettled(env.uffd, move);
    // The kernel's first COPY after the read succeeded because the woken
    // mremap() ran first; see the file header.
    const copy = await copyWithRetries(env.uffd, NEW + PAGE, src);
    expect(copy.first.errno, "first COPY").toBe(0);
    expect(copy.final.errno, "final COPY").toBe(0);
    expect(copy.retries, "retries").toBe(0);
  });

  it("keeps NEW registered", async () => {
    const { env, src, move } = await startMove();
    expect(await readUntilSettled(env.uffd, move)).toHaveLength(2);
    expect(vmflags(env.target, NEW), "NEW").toBe("um uw");
    expect(copyPage(env.uffd, NEW, src).errno, "COPY NEW+0").toBe(EEXIST);
    expect(copyPage(env.uffd, NEW + 2 * PAGE, src).errno, "COPY NEW+2").toBe(0);
    expect(copyPage(env.uffd, at(2), src).errno, "COPY old R+2").toBe(ENOENT);
  });
});

describe("remap_without_feature", () => {
  it("drops the registration silently", async () => {
    const env = await createEnv();
    mapRegistered(env, REGION, 8, MISSING | WP);
    const src = await sourcePages(env, "A");
    const move = watch(env.target.mremap(REGION, 8 * PAGE, 8 * PAGE, MOVE_FIXED, NEW));
    expect(await settled(move), "mremap returned without blocking").toBe(NEW);

    expect(env.uffd.read(), "event").toEqual({ errno: EAGAIN });
    expect(vmflags(env.target, NEW), "NEW").toBe("none");
    expect(await byteAt(env, NEW + 3 * PAGE), "touch of missing NEW+3").toBe(0);
    expect(copyPage(env.uffd, NEW + 4 * PAGE, src).errno, "COPY NEW+4").toBe(ENOENT);
  });
});

describe("remap_event_count", () => {
  it("EVENT_REMAP alone sends one event", async () => {
    const env = await createEnv(UFFD_FEATURE_EVENT_REMAP);
    mapRegistered(env, REGION, 8, MISSING | WP);
    const move = watch(env.target.mremap(REGION, 8 * PAGE, 8 * PAGE, MOVE_FIXED, NEW));

    const messages = await readUntilSettled(env.uffd, move);
    expect(messages.map((msg) => msg.event), "events").toEqual([UFFD_EVENT_REMAP]);
    expect(move.state, "mremap returned").toBe("fulfilled");
    expect(vmflags(env.target, NEW), "NEW").toBe("um uw");
  });
});

describe("gate_remove_dontneed", () => {
  /** Sets up the gate layout with page 0 'P' (byte 80), then starts madvise(DONTNEED) of pages 0-3. */
  async function startAdvice() {
    const { env, src, otherUffd } = await gateSetup(UFFD_FEATURE_EVENT_REMOVE, "P");
    const advice = watch(env.target.madvise(REGION, 4 * PAGE, MADV_DONTNEED));
    await drain();
    return { env, src, otherUffd, advice };
  }

  it("blocks madvise", async () => {
    const { advice } = await startAdvice();
    expect(advice.state).toBe("pending");
  });

  it("sends REMOVE of the range", async () => {
    const { env } = await startAdvice();
    const msg = env.uffd.read();
    expect(eventOf(msg), "event").toBe(UFFD_EVENT_REMOVE);
    expect((msg as RangeMsg).start - REGION, "start_off").toBe(0);
    expect((msg as RangeMsg).end - REGION, "end_off").toBe(16384);
  });

  it("keeps the page while REMOVE is unread", async () => {
    const { env } = await startAdvice();
    expect(present(env, REGION), "present").toBe(1);
    expect(await byteAt(env, REGION), "old data").toBe(80);
  });

  it("keeps the page right after read", async () => {
    const { env } = await startAdvice();
    expect(eventOf(env.uffd.read()), "REMOVE").toBe(UFFD_EVENT_REMOVE);
    expect(present(env, REGION)).toBe(1);
  });

  it("gates ioctls while REMOVE is unread", async () => {
    const { env, src, otherUffd } = await startAdvice();
    expectGated(env, { affected: at(1), elsewhere: SPARE, otherPage: OTHER, otherUffd, src });
  });

  it("first COPY after read retries once", async () => {
    const { env, src } = await startAdvice();
    expect(eventOf(env.uffd.read()), "REMOVE").toBe(UFFD_EVENT_REMOVE);
    const copy = await copyWithRetries(env.uffd, at(5), src);
    expect(copy.first.errno, "first COPY").toBe(EAGAIN);
    expect(copy.final.errno, "final COPY").toBe(0);
    expect(copy.retries, "retries").toBe(1);
  });

  it("zaps the page after madvise", async () => {
    const { env, src, advice } = await startAdvice();
    expect(eventOf(env.uffd.read()), "REMOVE").toBe(UFFD_EVENT_REMOVE);
    expect(await settled(advice), "madvise").toBe(0);
    expect(present(env, REGION), "R+0 present").toBe(0);
    expect(copyPage(env.uffd, REGION, src).errno, "COPY R+0").toBe(0);
  });
});

describe("gate_unmap", () => {
  /** Sets up the gate layout, then starts munmap of pages 2-3. */
  async function startUnmap() {
    const { env, src, otherUffd } = await gateSetup(UFFD_FEATURE_EVENT_UNMAP);
    const unmap = watch(env.target.munmap(at(2), 2 * PAGE));
    await drain();
    return { env, src, otherUffd, unmap };
  }

  it("blocks munmap", async () => {
    const { unmap } = await startUnmap();
    expect(unmap.state).toBe("pending");
  });

  it("sends UNMAP of the range", async () => {
    const { env } = await startUnmap();
    const msg = env.uffd.read();
    expect(eventOf(msg), "event").toBe(UFFD_EVENT_UNMAP);
    expect((msg as RangeMsg).start - REGION, "start_off").toBe(8192);
    expect((msg as RangeMsg).end - REGION, "end_off").toBe(16384);
  });

  it("removes the VMA before the read", async () => {
    const { env } = await startUnmap();
    expect(vmflags(env.target, at(2))).toBe("novma");
  });

  it("gates ioctls while UNMAP is unread", async () => {
    const { env, src, otherUffd } = await startUnmap();
    expectGated(env, { affected: at(2), elsewhere: SPARE, otherPage: OTHER, otherUffd, src });
  });

  it("first COPY after read retries once", async () => {
    const { env, src } = await startUnmap();
    expect(eventOf(env.uffd.read()), "UNMAP").toBe(UFFD_EVENT_UNMAP);
    const copy = await copyWithRetries(env.uffd, at(1), src);
    expect(copy.first.errno, "first COPY").toBe(EAGAIN);
    expect(copy.final.errno, "final COPY").toBe(0);
    expect(copy.retries, "retries").toBe(1);
  });

  it("keeps the rest registered", async () => {
    const { env, src, unmap } = await startUnmap();
    expect(eventOf(env.uffd.read()), "UNMAP").toBe(UFFD_EVENT_UNMAP);
    expect(await settled(unmap), "munmap").toBe(0);
    expect(copyPage(env.uffd, at(2), src).errno, "COPY unmapped").toBe(ENOENT);
    expect(copyPage(env.uffd, at(4), src).errno, "COPY remaining").toBe(0);
    expect(vmflags(env.target, at(0)), "R+0").toBe("um uw");
    expect(vmflags(env.target, at(4)), "R+4").toBe("um uw");
  });
});

describe("event_order", () => {
  it("reads the fault before older events", async () => {
    const env = await createEnv(UFFD_FEATURE_EVENT_REMOVE | UFFD_FEATURE_EVENT_UNMAP);
    mapRegistered(env, REGION, 8, MISSING);
    // Generation order: REMOVE, UNMAP, PAGEFAULT.
    watch(env.target.madvise(at(0), 2 * PAGE, MADV_DONTNEED));
    watch(env.target.munmap(at(4), 2 * PAGE));
    watch(env.target.read(at(2), 1));
    await drain();

    const order: number[] = [];
    for (let result = env.uffd.read(); "event" in result; result = env.uffd.read()) order.push((result as UffdMsg).event);
    expect(order).toEqual([UFFD_EVENT_PAGEFAULT, UFFD_EVENT_REMOVE, UFFD_EVENT_UNMAP]);
  });
});

describe("fork_without_event_fork", () => {
  /** Registers REGION MISSING with page 0 'A' and SPARE WP-only with page 0 protected, then forks. */
  async function forkUnregistered() {
    const env = await createEnv();
    mapRegistered(env, REGION, 4, MISSING);
    mapRegistered(env, SPARE, 4, WP);
    const src = await sourcePages(env, "A");
    expect(copyPage(env.uffd, REGION, src).errno, "COPY of R+0").toBe(0);
    await settledNow(env.target.write(SPARE, pageOf(byte("w"))));
    expect(env.uffd.writeprotect({ start: SPARE, len: PAGE, mode: UFFDIO_WRITEPROTECT_MODE_WP }).errno, "protect W+0").toBe(0);
    const fork = watch(env.target.fork());
    return { env, fork };
  }

  it("returns without blocking", async () => {
    const { fork } = await forkUnregistered();
    await drain();
    expect(fork.state).toBe("fulfilled");
  });

  it("drops the child's registration", async () => {
    const { env, fork } = await forkUnregistered();
    const child = await settled(fork);
    expect(vmflags(child, REGION), "child R").toBe("none");
    expect(vmflags(child, SPARE), "child W").toBe("none");
    expect(present(env, REGION, child), "child R+0 present").toBe(1);
    expect(wpBit(env, SPARE, child), "child W+0 uffd-wp").toBe(0);
  });

  it("child runs without faults", async () => {
    const { env, fork } = await forkUnregistered();
    const child = await settled(fork);
    expect(await byteAt(env, REGION, child), "R0").toBe(byte("A"));
    expect(await byteAt(env, REGION + PAGE, child), "R1").toBe(0);
    await settledNow(child.write(SPARE, new Uint8Array([byte("c")])));
    expect(await byteAt(env, SPARE, child), "W0 after write").toBe(byte("c"));
    expect(env.uffd.read(), "events on the parent uffd").toEqual({ errno: EAGAIN });
  });

  it("parent keeps its registration", async () => {
    const { env, fork } = await forkUnregistered();
    await settled(fork);
    expect(vmflags(env.target, REGION), "parent R").toBe("um");
    expect(wpBit(env, SPARE), "parent W+0 uffd-wp").toBe(1);
  });
});

describe("fork_with_event_fork_wp_state", () => {
  it("child keeps uffd-wp bits", async () => {
    const env = await createEnv(UFFD_FEATURE_EVENT_FORK);
    mapRegistered(env, REGION, 4, MISSING | WP);
    const src = await sourcePages(env, "AB");
    expect(copyPage(env.uffd, at(0), src).errno, "COPY of W2+0").toBe(0);
    expect(copyPage(env.uffd, at(1), src + PAGE).errno, "COPY of W2+1").toBe(0);
    expect(env.uffd.writeprotect({ start: at(0), len: PAGE, mode: UFFDIO_WRITEPROTECT_MODE_WP }).errno, "protect W2+0").toBe(0);

    const fork = watch(env.target.fork());
    expect(eventOf(env.uffd.read()), "FORK").toBe(UFFD_EVENT_FORK);
    const child = await settled(fork);
    expect(vmflags(child, REGION), "child vmflags").toBe("um uw");
    expect(wpBit(env, at(0), child), "W2+0").toBe(1);
    expect(wpBit(env, at(1), child), "W2+1").toBe(0);
  });
});
