// The cases of the kernel's userfaultfd selftest (uffd-unit-tests, Linux
// 6.16) run on the model, one test per case and memory type, scaled down to
// PAGES pages. The table and the monitor are in conformance-table.ts. Each
// scenario restates the selftest's steps, and the expected values are the
// kernel's, as the selftest asserts them. A comment marks each place where
// a scenario departs from the selftest.

import { describe, expect } from "vitest";
import {
  EAGAIN, EEXIST, EINVAL, MADV_DONTNEED, MADV_REMOVE, MAP_ANONYMOUS, MAP_FIXED, MAP_PRIVATE, MREMAP_FIXED,
  MREMAP_MAYMOVE, SIGBUS, UFFD_EVENT_FORK, UFFD_EVENT_REMAP, UFFD_EVENT_REMOVE, UFFD_PAGEFAULT_FLAG_MINOR,
  UFFDIO_COPY_MODE_DONTWAKE, UFFDIO_COPY_MODE_WP, UFFDIO_MOVE_MODE_ALLOW_SRC_HOLES, UFFDIO_REGISTER_MODE_MINOR,
  UFFDIO_REGISTER_MODE_MISSING, UFFDIO_REGISTER_MODE_WP, UFFDIO_WRITEPROTECT_MODE_WP, _UFFDIO_CONTINUE, _UFFDIO_COPY,
  _UFFDIO_POISON, _UFFDIO_WAKE, _UFFDIO_WRITEPROTECT, _UFFDIO_ZEROPAGE,
  type ForkMsg, type PagefaultMsg, type Process, type Userfaultfd,
} from "../src/index.js";
import { drain, pageOf, settled, settledNow, watch } from "./helpers.js";
import {
  AREA, Monitor, PAGE, PAGES, faultMsg, generateTests, isShared, rejection, releasePages, setupAreas, signalOf,
  srcByte, wpBit, type Areas, type ConformanceCase, type MemoryType, type Rejection,
} from "./conformance-table.js";

const MISSING = UFFDIO_REGISTER_MODE_MISSING;
const WP = UFFDIO_REGISTER_MODE_WP;
const MINOR = UFFDIO_REGISTER_MODE_MINOR;
const ZEROS = pageOf(0);
const NO_MESSAGE = { errno: EAGAIN };
const HALF = PAGES / 2;
/** Private anonymous areas for the MOVE rejections, a gap away from the others. */
const ANON_DST = 0x4000_0000;
const ANON_SRC = 0x5000_0000;

/** Returns the ioctls-mask bit of the ioctl numbered `nr`. */
const bit = (nr: number) => 1n << BigInt(nr);

/** Registers the whole of dst with `mode` and checks that it worked. */
function registerDst(areas: Areas, mode: number): bigint {
  const result = areas.uffd.register({ start: areas.dst, len: AREA, mode });
  expect(result.errno, `REGISTER of dst with mode ${mode}`).toBe(0);
  return result.ioctls;
}

/** Checks that the kernel rejects a case on a memory type the selftest leaves out. */
async function expectRejection(entry: ConformanceCase, type: MemoryType, rejection: Rejection): Promise<void> {
  const areas = await setupAreas(type, entry.features);
  const { process, uffd, dst, src } = areas;
  if (rejection.ioctl === "register") {
    const result = uffd.register({ start: dst, len: AREA, mode: rejection.mode! });
    expect(result).toEqual({ errno: rejection.errno, ioctls: 0n });
    return;
  }

  // MOVE works on private anonymous memory only: from and to shmem it fails.
  registerDst(areas, MISSING);
  const flags = MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED;
  expect(process.mmap(PAGE, { flags, address: ANON_DST })).toBe(ANON_DST);
  expect(process.mmap(PAGE, { flags, address: ANON_SRC })).toBe(ANON_SRC);
  expect(uffd.register({ start: ANON_DST, len: PAGE, mode: MISSING }).errno).toBe(0);
  await settledNow(process.write(ANON_SRC, pageOf(0x61)));
  const rejected = { errno: rejection.errno, move: -rejection.errno };
  expect(uffd.move({ dst, src, len: PAGE, mode: 0 }), "MOVE from shmem to shmem").toEqual(rejected);
  expect(uffd.move({ dst, src: ANON_SRC, len: PAGE, mode: 0 }), "MOVE from anon to shmem").toEqual(rejected);
  expect(uffd.move({ dst: ANON_DST, src, len: PAGE, mode: 0 }), "MOVE from shmem to anon").toEqual(rejected);
}

async function registerIoctls(entry: ConformanceCase, type: MemoryType): Promise<void> {
  const { uffd, dst } = await setupAreas(type, entry.features);
  for (let mode = 0; mode < 8; mode++) {
    const label = `mode ${mode}`;
    const result = uffd.register({ start: dst, len: PAGE, mode });
    if (mode === 0 || ((mode & MINOR) !== 0 && type === "anon")) {
      expect(result, label).toEqual({ errno: EINVAL, ioctls: 0n });
      continue;
    }
    expect(result.errno, label).toBe(0);
    let expected = bit(_UFFDIO_WAKE);
    if ((mode & MISSING) !== 0) expected |= bit(_UFFDIO_COPY);
    if ((mode & WP) !== 0) expected |= bit(_UFFDIO_WRITEPROTECT);
    if ((mode & MINOR) !== 0) expected |= bit(_UFFDIO_CONTINUE);
    expect(result.ioctls & expected, `ioctls of ${label}`).toBe(expected);
    expect(uffd.unregister({ start: dst, len: PAGE }), `UNREGISTER after ${label}`).toEqual({ errno: 0 });
  }
}

async function zeropage(entry: ConformanceCase, type: MemoryType): Promise<void> {
  const { process, uffd, dst, dstAlias } = await setupAreas(type, entry.features);
  const registered = uffd.register({ start: dst, len: PAGE, mode: MISSING });
  expect(registered.errno).toBe(0);
  expect(registered.ioctls & bit(_UFFDIO_ZEROPAGE), "ZEROPAGE in the ioctls").toBe(bit(_UFFDIO_ZEROPAGE));
  if (dstAlias !== null) expect(uffd.register({ start: dstAlias, len: PAGE, mode: MISSING }).errno).toBe(0);

  expect(uffd.zeropage({ start: dst, len: PAGE, mode: 0 })).toEqual({ errno: 0, zeropage: PAGE });
  expect(await settledNow(process.read(dst, PAGE))).toEqual(ZEROS);
  // The selftest retries on the alias, which shares the page cache with a
  // shared dst. A private dst's zero page never reaches the page cache, so
  // there the retry goes to dst itself, as it does on anon.
  const retryAt = isShared(type) ? dstAlias! : dst;
  const retry = uffd.zeropage({ start: retryAt, len: PAGE, mode: 0, zeropage: 1 });
  expect(retry, "ZEROPAGE retry").toEqual({ errno: EEXIST, zeropage: -EEXIST });
  if (type === "shmem-private") {
    const alias = uffd.zeropage({ start: dstAlias!, len: PAGE, mode: 0 });
    expect(alias, "ZEROPAGE of the alias's hole").toEqual({ errno: 0, zeropage: PAGE });
  }

  expect(uffd.unregister({ start: dst, len: PAGE })).toEqual({ errno: 0 });
  if (dstAlias !== null) expect(uffd.unregister({ start: dstAlias, len: PAGE })).toEqual({ errno: 0 });
}

async function wake(entry: ConformanceCase, type: MemoryType): Promise<void> {
  const areas = await setupAreas(type, entry.features);
  const { process, uffd, dst, src } = areas;
  registerDst(areas, MISSING);
  const access = watch(process.read(dst, PAGE));
  await drain();
  expect(uffd.read(), "first fault").toEqual(faultMsg(dst));

  // A wake without a fill lets the thread retry, and it faults again.
  expect(uffd.wake({ start: dst, len: PAGE })).toEqual({ errno: 0 });
  await drain();
  expect(access.state, "access after a bare WAKE").toBe("pending");
  expect(uffd.read(), "fault after the WAKE").toEqual(faultMsg(dst));

  // A DONTWAKE fill, then the handler's path: a COPY that fails with EEXIST
  // wakes no thread, so the handler wakes the page itself.
  const quiet = uffd.copy({ dst, src, len: PAGE, mode: UFFDIO_COPY_MODE_DONTWAKE });
  expect(quiet, "DONTWAKE COPY").toEqual({ errno: 0, copy: PAGE });
  await drain();
  expect(access.state, "access after the DONTWAKE COPY").toBe("pending");
  expect(uffd.copy({ dst, src, len: PAGE, mode: 0 }), "second COPY").toEqual({ errno: EEXIST, copy: -EEXIST });
  await drain();
  expect(access.state, "access after the failed COPY").toBe("pending");
  expect(uffd.wake({ start: dst, len: PAGE })).toEqual({ errno: 0 });
  expect(await settled(access)).toEqual(pageOf(srcByte(0)));
  expect(uffd.read(), "messages after the access").toEqual(NO_MESSAGE);
}

/** The move case's handler: it resolves a MISSING read fault by moving the src page. */
function moveFault(monitor: Monitor, msg: PagefaultMsg): void {
  expect(msg.flags, `flags of the fault at 0x${msg.address.toString(16)}`).toBe(0);
  const offset = msg.address - monitor.dst;
  const mode = UFFDIO_MOVE_MODE_ALLOW_SRC_HOLES;
  const result = monitor.uffd.move({ dst: msg.address, src: monitor.areas.src + offset, len: PAGE, mode });
  expect(result, `MOVE to 0x${msg.address.toString(16)}`).toEqual({ errno: 0, move: PAGE });
  monitor.counts.missing++;
}

async function move(entry: ConformanceCase, type: MemoryType): Promise<void> {
  const areas = await setupAreas(type, entry.features);
  const { process, src, dst } = areas;
  // The selftest sets MADV_DONTFORK on src so that no fork shares its
  // pages. This process never forks.
  registerDst(areas, MISSING);
  const monitor = new Monitor(areas, { handler: moveFault });
  for (let page = 0; page < PAGES; page++) {
    const offset = page * PAGE;
    expect(await settledNow(process.read(src + offset, PAGE)), `src page ${page}`).toEqual(pageOf(srcByte(page)));
    expect(await monitor.serve(process.read(dst + offset, PAGE)), `dst page ${page}`).toEqual(pageOf(srcByte(page)));
    expect(await settledNow(process.read(src + offset, PAGE)), `src page ${page} after MOVE`).toEqual(ZEROS);
  }
  expect(monitor.counts.missing).toBe(PAGES);
}

/** Forks, reads the FORK event when there is one, and returns the child's WP bit of dst page 0. */
async function childWpBit(areas: Areas, withEvent: boolean): Promise<number> {
  const fork = watch(areas.process.fork());
  let childUffd: Userfaultfd | null = null;
  if (withEvent) {
    const msg = areas.uffd.read();
    expect(msg, "FORK event").toMatchObject({ errno: 0, event: UFFD_EVENT_FORK });
    childUffd = (msg as ForkMsg).uffd;
  }
  const child = await settled(fork);
  const wp = wpBit(child, areas.dst);
  child.exit();
  childUffd?.close();
  return wp;
}

async function wpFork(entry: ConformanceCase, type: MemoryType, withEvent: boolean): Promise<void> {
  const areas = await setupAreas(type, entry.features);
  const { process, uffd, dst } = areas;
  const protect = (mode: number) => uffd.writeprotect({ start: dst, len: PAGE, mode });
  const inherited = withEvent ? 1 : 0;
  registerDst(areas, WP);
  await settledNow(process.write(dst, Uint8Array.of(1)));
  expect(protect(UFFDIO_WRITEPROTECT_MODE_WP)).toEqual({ errno: 0 });
  expect(wpBit(process, dst), "WP bit of the present page").toBe(1);
  expect(await childWpBit(areas, withEvent), "child's WP bit of the present page").toBe(inherited);

  // NOTE: on private memory the selftest swaps the page out with
  // MADV_PAGEOUT, and the swap entry keeps the bit. The model has no swap,
  // so the private types check the present page only.
  if (isShared(type)) {
    expect(await settledNow(process.madvise(dst, PAGE, MADV_DONTNEED))).toBe(0);
    expect(wpBit(process, dst), "WP bit of the zapped page").toBe(1);
    expect(await childWpBit(areas, withEvent), "child's WP bit of the zapped page").toBe(inherited);
  }

  expect(protect(0)).toEqual({ errno: 0 });
  expect(wpBit(process, dst), "WP bit after un-protect").toBe(0);
  await settledNow(process.write(dst, Uint8Array.of(2)));
  expect(wpBit(process, dst), "WP bit after the write").toBe(0);
  expect(uffd.read(), "messages").toEqual(NO_MESSAGE);
  expect(uffd.unregister({ start: dst, len: AREA })).toEqual({ errno: 0 });
}

async function wpUnpopulated(entry: ConformanceCase, type: MemoryType): Promise<void> {
  const areas = await setupAreas(type, entry.features);
  const { process, uffd, dst } = areas;
  const protect = (mode: number) => uffd.writeprotect({ start: dst, len: PAGE, mode });
  const dontneed = async () => expect(await settledNow(process.madvise(dst, PAGE, MADV_DONTNEED))).toBe(0);
  registerDst(areas, WP);

  expect(protect(UFFDIO_WRITEPROTECT_MODE_WP)).toEqual({ errno: 0 });
  expect(wpBit(process, dst), "WP bit of the empty page").toBe(1);
  expect(protect(0)).toEqual({ errno: 0 });
  expect(wpBit(process, dst), "WP bit after un-protect").toBe(0);

  expect(protect(UFFDIO_WRITEPROTECT_MODE_WP)).toEqual({ errno: 0 });
  await dontneed();
  expect(wpBit(process, dst), "WP bit after MADV_DONTNEED").toBe(0);
  await settledNow(process.write(dst, Uint8Array.of(1)));
  expect(wpBit(process, dst), "WP bit after the write").toBe(0);
  await dontneed();

  expect(protect(UFFDIO_WRITEPROTECT_MODE_WP)).toEqual({ errno: 0 });
  expect(await settledNow(process.read(dst, 1)), "read of the protected empty page").toEqual(Uint8Array.of(0));
  await dontneed();
  expect(uffd.read(), "messages").toEqual(NO_MESSAGE);
}

async function minor(entry: ConformanceCase, type: MemoryType, withWp: boolean): Promise<void> {
  const areas = await setupAreas(type, entry.features);
  const { process, uffd, dst } = areas;
  const alias = areas.dstAlias!;
  expect(uffd.register({ start: alias, len: AREA, mode: MINOR | (withWp ? WP : 0) }).errno).toBe(0);
  // Filling through dst, which is not registered, raises no fault.
  for (let page = 0; page < PAGES; page++) await settledNow(process.write(dst + page * PAGE, pageOf(page % 255)));
  expect(uffd.read(), "messages after the fill").toEqual(NO_MESSAGE);

  const monitor = new Monitor(areas, { applyWp: withWp });
  for (let page = 0; page < PAGES; page++) {
    const flipped = pageOf(~(page % 255) & 0xff);
    expect(await monitor.serve(process.read(alias + page * PAGE, PAGE)), `alias page ${page}`).toEqual(flipped);
  }
  const minorFaults = Array.from({ length: PAGES }, (_, page) => faultMsg(alias + page * PAGE, UFFD_PAGEFAULT_FLAG_MINOR));
  expect(monitor.messages).toEqual(minorFaults);
  expect(monitor.counts.missing).toBe(0);
  expect(monitor.counts.minor).toBe(PAGES);
  if (withWp) {
    for (let page = 0; page < PAGES; page++) expect(wpBit(process, alias + page * PAGE), `WP bit of alias page ${page}`).toBe(1);
  }
}

async function sigbus(entry: ConformanceCase, type: MemoryType, withWp: boolean): Promise<void> {
  const areas = await setupAreas(type, entry.features);
  const { process, uffd, dst, src } = areas;
  registerDst(areas, MISSING | (withWp ? WP : 0));

  // Each first touch raises SIGBUS. The signal handler fills the page and
  // the access is retried, which must not raise a second SIGBUS.
  let copied = 0;
  for (let page = 0; page < HALF; page++) {
    const at = dst + page * PAGE;
    expect(signalOf(await rejection(process.read(at, PAGE))), `first read of page ${page}`).toBe(SIGBUS);
    const mode = withWp ? UFFDIO_COPY_MODE_WP : 0;
    const filled = uffd.copy({ dst: at, src: src + page * PAGE, len: PAGE, mode });
    expect(filled, `COPY in the handler for page ${page}`).toEqual({ errno: 0, copy: PAGE });
    copied++;
    expect(await settledNow(process.read(at, PAGE)), `retried read of page ${page}`).toEqual(pageOf(srcByte(page)));
    const sameByte = Uint8Array.of(srcByte(page));
    if (withWp) {
      expect(signalOf(await rejection(process.write(at, sameByte))), `write to page ${page}`).toBe(SIGBUS);
      expect(uffd.writeprotect({ start: at, len: PAGE, mode: 0 }), `un-protect page ${page}`).toEqual({ errno: 0 });
    }
    await settledNow(process.write(at, sameByte));
  }
  expect(copied).toBe(HALF);
  expect(await settledNow(releasePages(process, type, dst, AREA)), "release").toBe(0);

  // The child inherits the registration with the SIGBUS feature: every
  // touch is a SIGBUS and no fault message reaches any monitor.
  const fork = watch(process.fork());
  const forkMsg = uffd.read();
  expect(forkMsg, "FORK event").toMatchObject({ errno: 0, event: UFFD_EVENT_FORK });
  const child = await settled(fork);
  let signals = 0;
  for (let page = 0; page < HALF; page++) {
    expect(signalOf(await rejection(child.read(dst + page * PAGE, PAGE))), `child's read of page ${page}`).toBe(SIGBUS);
    signals++;
  }
  expect(signals).toBe(HALF);
  expect((forkMsg as ForkMsg).uffd.read(), "messages on the child's userfaultfd").toEqual(NO_MESSAGE);
  expect(uffd.read(), "messages on the parent's userfaultfd").toEqual(NO_MESSAGE);
}

/** Reads page `page` at `base` in `process` and writes its first byte back, serving the faults. */
async function touchPage(monitor: Monitor, process: Process, base: number, page: number): Promise<void> {
  const at = base + page * PAGE;
  expect(await monitor.serve(process.read(at, PAGE)), `page ${page}`).toEqual(pageOf(srcByte(page)));
  await monitor.serve(process.write(at, Uint8Array.of(srcByte(page))));
}

async function events(entry: ConformanceCase, type: MemoryType, withWp: boolean): Promise<void> {
  const areas = await setupAreas(type, entry.features);
  const { process, uffd, dst, src } = areas;
  registerDst(areas, MISSING | (withWp ? WP : 0));
  const monitor = new Monitor(areas, { applyWp: withWp });

  const child = await monitor.serve(process.fork());
  expect(monitor.uffd, "monitor's userfaultfd after FORK").not.toBe(uffd);
  for (let page = 0; page < HALF; page++) await touchPage(monitor, child, dst, page);
  const moved = await monitor.serve(child.mremap(dst, AREA, AREA, MREMAP_MAYMOVE | MREMAP_FIXED, src));
  expect(moved, "mremap result").toBe(src);
  expect(monitor.dst, "monitor's dst after REMAP").toBe(src);
  for (let page = HALF; page < PAGES; page++) await touchPage(monitor, child, src, page);
  expect(await monitor.serve(releasePages(child, type, src, AREA)), "release").toBe(0);
  expect(await settledNow(child.read(src, AREA)), "area after release").toEqual(new Uint8Array(AREA));

  expect(monitor.counts.missing).toBe(PAGES);
  expect(monitor.counts.wp).toBe(withWp ? PAGES : 0);
  const layoutEvents = monitor.messages.filter((msg) => msg.event === UFFD_EVENT_REMAP || msg.event === UFFD_EVENT_REMOVE);
  expect(layoutEvents).toEqual([
    { errno: 0, event: UFFD_EVENT_REMAP, from: dst, to: src, len: AREA },
    { errno: 0, event: UFFD_EVENT_REMOVE, start: src, end: src + AREA },
  ]);
}

/** The poison case's handler: odd pages get zeros with COPY, even pages a poison marker. */
function poisonFault(monitor: Monitor, msg: PagefaultMsg): void {
  expect(msg.flags, `flags of the fault at 0x${msg.address.toString(16)}`).toBe(0);
  const page = (msg.address - monitor.dst) / PAGE;
  if (page % 2 === 1) {
    if (monitor.copyPage(page)) monitor.counts.missing++;
    return;
  }
  const result = monitor.uffd.poison({ start: msg.address, len: PAGE, mode: 0 });
  expect(result, `POISON of page ${page}`).toEqual({ errno: 0, updated: PAGE });
}

async function poison(entry: ConformanceCase, type: MemoryType): Promise<void> {
  const areas = await setupAreas(type, entry.features);
  const { process, src } = areas;
  const ioctls = registerDst(areas, MISSING);
  const needed = bit(_UFFDIO_COPY) | bit(_UFFDIO_POISON);
  expect(ioctls & needed, "COPY and POISON in the ioctls").toBe(needed);
  for (let page = 0; page < PAGES; page++) await settledNow(process.write(src + page * PAGE, ZEROS));

  const monitor = new Monitor(areas, { handler: poisonFault });
  const signalled: number[] = [];
  for (let page = 0; page < PAGES; page++) {
    const outcome = await monitor.serve(process.read(areas.dst + page * PAGE, PAGE)).catch((reason: unknown) => reason);
    if (outcome instanceof Uint8Array) {
      expect(outcome, `page ${page}`).toEqual(ZEROS);
    } else {
      expect(signalOf(outcome), `signal of page ${page}`).toBe(SIGBUS);
      signalled.push(page);
    }
  }
  expect(signalled, "pages that raised SIGBUS").toEqual([0, 2]);
}

async function mmapChanging(entry: ConformanceCase, type: MemoryType): Promise<void> {
  const areas = await setupAreas(type, entry.features);
  const { process, uffd, dst } = areas;
  registerDst(areas, MISSING);
  // MADV_REMOVE needs a shared mapping, and MADV_DONTNEED sends the same event.
  const advice = isShared(type) ? MADV_REMOVE : MADV_DONTNEED;
  const remove = watch(process.madvise(dst, PAGE, advice));
  await drain();
  expect(remove.state, "madvise before the event is read").toBe("pending");

  // Every other argument is zero: the gate comes before any check of them.
  const eagain = (field: string) => ({ errno: EAGAIN, [field]: -EAGAIN });
  expect(uffd.copy({ dst: 0, src: 0, len: 0, mode: 0, copy: 1 }), "COPY").toEqual(eagain("copy"));
  expect(uffd.zeropage({ start: 0, len: 0, mode: 0, zeropage: 1 }), "ZEROPAGE").toEqual(eagain("zeropage"));
  expect(uffd.move({ dst: 0, src: 0, len: 0, mode: 0, move: 1 }), "MOVE").toEqual(eagain("move"));
  expect(uffd.poison({ start: 0, len: 0, mode: 0, updated: 1 }), "POISON").toEqual(eagain("updated"));
  expect(uffd.continue({ start: 0, len: 0, mode: 0, mapped: 1 }), "CONTINUE").toEqual(eagain("mapped"));

  expect(uffd.read()).toEqual({ errno: 0, event: UFFD_EVENT_REMOVE, start: dst, end: dst + PAGE });
  expect(await settled(remove)).toBe(0);
}

describe("uffd-unit-tests", () => {
  generateTests(
    {
      "register-ioctls": registerIoctls,
      zeropage,
      wake,
      move,
      "wp-fork": (entry, type) => wpFork(entry, type, false),
      "wp-fork-with-event": (entry, type) => wpFork(entry, type, true),
      "wp-unpopulated": wpUnpopulated,
      minor: (entry, type) => minor(entry, type, false),
      "minor-wp": (entry, type) => minor(entry, type, true),
      sigbus: (entry, type) => sigbus(entry, type, false),
      "sigbus-wp": (entry, type) => sigbus(entry, type, true),
      events: (entry, type) => events(entry, type, false),
      "events-wp": (entry, type) => events(entry, type, true),
      poison,
      "mmap-changing": mmapChanging,
    },
    expectRejection,
  );
});
