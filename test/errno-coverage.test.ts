// One test per row of the errno table of the userfaultfd ioctls on Linux
// 6.x. Each test provokes that errno from every ioctl the row names,
// wherever the public API offers a way. It also checks the out-field that
// the kernel writes, or leaves alone, with the errno.

import { describe, expect, it } from "vitest";
import {
  EAGAIN, EBUSY, EEXIST, EFAULT, EINVAL, EIO, ENOENT, ENOMEM, EPERM, ESRCH, KernelError, MADV_DONTNEED,
  MAP_ANONYMOUS, MAP_FIXED, MAP_PRIVATE, MAP_SHARED, PROT_READ, UFFD_API, UFFD_EVENT_REMOVE, UFFD_FEATURE_EVENT_FORK,
  UFFD_FEATURE_EVENT_REMOVE, UFFD_FEATURE_MOVE, UFFD_FEATURE_POISON, UFFD_USER_MODE_ONLY, UFFDIO_API, UFFDIO_CONTINUE,
  UFFDIO_COPY, UFFDIO_COPY_MODE_WP, UFFDIO_MOVE, UFFDIO_POISON, UFFDIO_REGISTER, UFFDIO_REGISTER_MODE_MINOR,
  UFFDIO_REGISTER_MODE_MISSING, UFFDIO_REGISTER_MODE_WP, UFFDIO_UNREGISTER, UFFDIO_WAKE, UFFDIO_WRITEPROTECT,
  UFFDIO_WRITEPROTECT_MODE_DONTWAKE, UFFDIO_WRITEPROTECT_MODE_WP, UFFDIO_ZEROPAGE, ioctl,
  type Kernel, type MappedFile, type Process, type Userfaultfd,
} from "../src/index.js";
import { createKernel, drain, pageOf, settled, settledNow, watch } from "./helpers.js";

const PAGE = 4096;
const MISSING = UFFDIO_REGISTER_MODE_MISSING;
const WP = UFFDIO_REGISTER_MODE_WP;
const MINOR = UFFDIO_REGISTER_MODE_MINOR;
const ANON_FIXED = MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED;
/** An out-field preset that the kernel's writes never produce, to tell "untouched" from "written". */
const PRESET = 7;

/** 8 anonymous pages registered MISSING. */
const REGION = 0x1000_0000;
/** 4 anonymous pages, not registered. Pages 0-2 contain 0x41, 0x42 and 0x43, and page 3 is empty. */
const SRC = 0x2000_0000;
/** 4 pages of the memfd, MAP_SHARED and registered MINOR. The page cache starts empty. */
const SHMEM = 0x3000_0000;
/** One anonymous page registered WP. */
const WP_PAGE = 0x4000_0000;
/** One anonymous page registered with no userfaultfd. */
const UNREGISTERED = 0x5000_0000;
/** Nothing is mapped here. */
const HOLE = 0x6000_0000;
/** Free ranges far from the others, so that no page table covers them yet. */
const FAR = 0x40_0000_0000;
const FAR_SHMEM = 0x50_0000_0000;

const at = (page: number) => REGION + page * PAGE;
const srcAt = (page: number) => SRC + page * PAGE;

interface Env {
  kernel: Kernel;
  process: Process;
  /** The process's own userfaultfd, so MOVE comes from the address space it serves. */
  uffd: Userfaultfd;
  /** The memfd behind SHMEM, 4 pages long. */
  file: MappedFile;
}

/** Creates the process with the areas above and a userfaultfd with `features`. */
async function setup(features = 0, maxMemory?: number): Promise<Env> {
  const kernel = await createKernel(maxMemory === undefined ? {} : { maxMemory });
  const process = kernel.createProcess();
  expect(process.mmap(8 * PAGE, { flags: ANON_FIXED, address: REGION })).toBe(REGION);
  expect(process.mmap(4 * PAGE, { flags: ANON_FIXED, address: SRC })).toBe(SRC);
  expect(process.mmap(PAGE, { flags: ANON_FIXED, address: WP_PAGE })).toBe(WP_PAGE);
  expect(process.mmap(PAGE, { flags: ANON_FIXED, address: UNREGISTERED })).toBe(UNREGISTERED);
  const file = kernel.memfdCreate("errno", 4 * PAGE);
  expect(process.mmap(4 * PAGE, { file, flags: MAP_SHARED | MAP_FIXED, address: SHMEM })).toBe(SHMEM);
  for (let page = 0; page < 3; page++) await settledNow(process.write(srcAt(page), pageOf(0x41 + page)));

  const uffd = process.userfaultfd();
  expect(uffd.api({ api: UFFD_API, features }).errno).toBe(0);
  expect(uffd.register({ start: REGION, len: 8 * PAGE, mode: MISSING }).errno).toBe(0);
  expect(uffd.register({ start: WP_PAGE, len: PAGE, mode: WP }).errno).toBe(0);
  expect(uffd.register({ start: SHMEM, len: 4 * PAGE, mode: MINOR }).errno).toBe(0);
  return { kernel, process, uffd, file };
}

/** COPY of `pages` pages from SRC to `dst`, with the out-field preset. */
function copyTo(env: Env, dst: number, pages = 1, src = SRC) {
  return env.uffd.copy({ dst, src, len: pages * PAGE, mode: 0, copy: PRESET });
}

/** Fills REGION page `page` with COPY from SRC page 0. */
function populate(env: Env, page: number): void {
  expect(copyTo(env, at(page)), `COPY populating page ${page}`).toEqual({ errno: 0, copy: PAGE });
}

/** Returns the result of a fill ioctl that failed with `errno` and wrote -errno to its out-field `field`. */
const failed = (errno: number, field: string) => ({ errno, [field]: -errno });
/** Returns the result of an ioctl that failed with `errno` and left its out-field `field` untouched. */
const untouched = (errno: number, field: string) => ({ errno, [field]: PRESET });

/**
 * Writes one byte to each page of a fresh anonymous area until the kernel
 * has no frame left, so that the next allocation fails.
 */
async function exhaustFrames(process: Process): Promise<void> {
  const pages = process.kernel.framesCapacity;
  const filler = process.mmap(pages * PAGE);
  for (let page = 0; page < pages; page++) {
    try {
      await settledNow(process.write(filler + page * PAGE, Uint8Array.of(1)));
    } catch (error: unknown) {
      if (error instanceof KernelError && error.errno === ENOMEM) return;
      throw error;
    }
  }
  throw new Error(`frames did not run out after ${pages} page writes`);
}

describe("errno of the userfaultfd ioctls", () => {
  it("EAGAIN", async () => {
    const env = await setup(UFFD_FEATURE_EVENT_REMOVE | UFFD_FEATURE_MOVE | UFFD_FEATURE_POISON);
    const { process, uffd, file } = env;
    file.write(0, pageOf(1));
    file.write(PAGE, pageOf(2));

    // An unread REMOVE event closes the gate for every ioctl with valid arguments.
    const removal = watch(process.madvise(at(7), PAGE, MADV_DONTNEED));
    await drain();
    expect(copyTo(env, at(0)), "COPY").toEqual(failed(EAGAIN, "copy"));
    expect(uffd.zeropage({ start: at(0), len: PAGE, mode: 0 }), "ZEROPAGE").toEqual(failed(EAGAIN, "zeropage"));
    expect(uffd.continue({ start: SHMEM, len: PAGE, mode: 0 }), "CONTINUE").toEqual(failed(EAGAIN, "mapped"));
    expect(uffd.poison({ start: at(0), len: PAGE, mode: 0 }), "POISON").toEqual(failed(EAGAIN, "updated"));
    expect(uffd.move({ dst: at(0), src: SRC, len: PAGE, mode: 0 }), "MOVE").toEqual(failed(EAGAIN, "move"));
    const writeprotect = uffd.writeprotect({ start: WP_PAGE, len: PAGE, mode: UFFDIO_WRITEPROTECT_MODE_WP });
    expect(writeprotect, "WRITEPROTECT").toEqual({ errno: EAGAIN });
    expect(uffd.read()).toEqual({ errno: 0, event: UFFD_EVENT_REMOVE, start: at(7), end: at(8) });
    expect(await settled(removal)).toBe(0);

    // Partial progress: the first page is filled, the second is populated
    // already, so each call returns EAGAIN with one page done.
    for (const page of [1, 3, 5, 7]) populate(env, page);
    expect(uffd.continue({ start: SHMEM + PAGE, len: PAGE, mode: 0 }).errno).toBe(0);
    expect(copyTo(env, at(0), 2), "partial COPY").toEqual({ errno: EAGAIN, copy: PAGE });
    const zeropage = uffd.zeropage({ start: at(2), len: 2 * PAGE, mode: 0 });
    expect(zeropage, "partial ZEROPAGE").toEqual({ errno: EAGAIN, zeropage: PAGE });
    const poison = uffd.poison({ start: at(4), len: 2 * PAGE, mode: 0 });
    expect(poison, "partial POISON").toEqual({ errno: EAGAIN, updated: PAGE });
    const move = uffd.move({ dst: at(6), src: SRC, len: 2 * PAGE, mode: 0 });
    expect(move, "partial MOVE").toEqual({ errno: EAGAIN, move: PAGE });
    const resumed = uffd.continue({ start: SHMEM, len: 2 * PAGE, mode: 0 });
    expect(resumed, "partial CONTINUE").toEqual({ errno: EAGAIN, mapped: PAGE });
  });

  it("EEXIST", async () => {
    const env = await setup(UFFD_FEATURE_MOVE | UFFD_FEATURE_POISON);
    const { uffd, file } = env;
    populate(env, 0);
    file.write(0, pageOf(1));

    expect(copyTo(env, at(0)), "COPY").toEqual(failed(EEXIST, "copy"));
    expect(uffd.zeropage({ start: at(0), len: PAGE, mode: 0 }), "ZEROPAGE").toEqual(failed(EEXIST, "zeropage"));
    expect(uffd.continue({ start: SHMEM, len: PAGE, mode: 0 }), "first CONTINUE").toEqual({ errno: 0, mapped: PAGE });
    expect(uffd.continue({ start: SHMEM, len: PAGE, mode: 0 }), "CONTINUE").toEqual(failed(EEXIST, "mapped"));
    expect(uffd.poison({ start: at(0), len: PAGE, mode: 0 }), "POISON").toEqual(failed(EEXIST, "updated"));
    expect(uffd.move({ dst: at(0), src: SRC, len: PAGE, mode: 0 }), "MOVE").toEqual(failed(EEXIST, "move"));
  });

  it("ENOENT", async () => {
    const env = await setup(UFFD_FEATURE_MOVE | UFFD_FEATURE_POISON);
    const { process, uffd, file } = env;
    const unregisteredShmem = process.mmap(PAGE, { file, flags: MAP_SHARED });
    file.write(0, pageOf(1));

    expect(copyTo(env, HOLE), "COPY to no mapping").toEqual(failed(ENOENT, "copy"));
    const zeropage = uffd.zeropage({ start: UNREGISTERED, len: PAGE, mode: 0 });
    expect(zeropage, "ZEROPAGE of an unregistered mapping").toEqual(failed(ENOENT, "zeropage"));
    const resumed = uffd.continue({ start: unregisteredShmem, len: PAGE, mode: 0 });
    expect(resumed, "CONTINUE of an unregistered mapping").toEqual(failed(ENOENT, "mapped"));
    const poison = uffd.poison({ start: at(7), len: 2 * PAGE, mode: 0 });
    expect(poison, "POISON past the end of the mapping").toEqual(failed(ENOENT, "updated"));
    const move = uffd.move({ dst: at(0), src: srcAt(3), len: PAGE, mode: 0 });
    expect(move, "MOVE from an empty page").toEqual(failed(ENOENT, "move"));
    const notWp = uffd.writeprotect({ start: REGION, len: PAGE, mode: UFFDIO_WRITEPROTECT_MODE_WP });
    expect(notWp, "WRITEPROTECT of a range not registered WP").toEqual({ errno: ENOENT });
    const nothing = uffd.writeprotect({ start: HOLE, len: PAGE, mode: UFFDIO_WRITEPROTECT_MODE_WP });
    expect(nothing, "WRITEPROTECT of no mapping").toEqual({ errno: ENOENT });
  });

  it("EFAULT", async () => {
    const env = await setup(UFFD_FEATURE_MOVE | UFFD_FEATURE_POISON);
    const { kernel, process, uffd } = env;

    // A struct shorter than the fields the kernel reads: copy_from_user faults.
    const fresh = process.userfaultfd();
    expect(ioctl(fresh, UFFDIO_API, new Uint8Array(16)), "API").toBe(-EFAULT);
    const truncated: Array<[string, number, number]> = [
      ["REGISTER", UFFDIO_REGISTER, 16],
      ["UNREGISTER", UFFDIO_UNREGISTER, 8],
      ["WAKE", UFFDIO_WAKE, 8],
      ["COPY", UFFDIO_COPY, 24],
      ["ZEROPAGE", UFFDIO_ZEROPAGE, 16],
      ["WRITEPROTECT", UFFDIO_WRITEPROTECT, 16],
      ["CONTINUE", UFFDIO_CONTINUE, 16],
      ["POISON", UFFDIO_POISON, 16],
      ["MOVE", UFFDIO_MOVE, 24],
    ];
    for (const [name, request, size] of truncated) expect(ioctl(uffd, request, new Uint8Array(size)), name).toBe(-EFAULT);

    expect(copyTo(env, at(0), 1, HOLE), "COPY from no mapping").toEqual(failed(EFAULT, "copy"));
    const resumed = uffd.continue({ start: SHMEM, len: PAGE, mode: 0 });
    expect(resumed, "CONTINUE of a page the cache lacks").toEqual(failed(EFAULT, "mapped"));

    // A source entry that is neither empty nor a page: a poison marker.
    expect(uffd.poison({ start: at(5), len: PAGE, mode: 0 }).errno).toBe(0);
    const move = uffd.move({ dst: at(4), src: at(5), len: PAGE, mode: 0 });
    expect(move, "MOVE from a poison marker").toEqual(failed(EFAULT, "move"));

    // A shmem mapping longer than its one-page file: the second page is past EOF.
    const short = kernel.memfdCreate("short", PAGE);
    const shortMap = process.mmap(2 * PAGE, { file: short, flags: MAP_SHARED });
    expect(uffd.register({ start: shortMap, len: 2 * PAGE, mode: MISSING }).errno).toBe(0);
    const pastEof = shortMap + PAGE;
    const zeropage = uffd.zeropage({ start: pastEof, len: PAGE, mode: 0 });
    expect(zeropage, "ZEROPAGE past EOF").toEqual(failed(EFAULT, "zeropage"));
    expect(copyTo(env, pastEof), "COPY past EOF").toEqual(failed(EFAULT, "copy"));
  });

  it("EINVAL", async () => {
    const env = await setup(UFFD_FEATURE_MOVE | UFFD_FEATURE_POISON);
    const { kernel, process, uffd } = env;
    const zeroedApi = { errno: EINVAL, api: 0, features: 0, ioctls: 0n };
    const rejected = { errno: EINVAL, ioctls: 0n };

    const fresh = process.userfaultfd();
    expect(fresh.api({ api: 0xab, features: 0 }), "API with a wrong api").toEqual(zeroedApi);
    expect(fresh.register({ start: REGION, len: PAGE, mode: MISSING }), "REGISTER before API").toEqual(rejected);
    expect(uffd.api({ api: UFFD_API, features: 0 }), "second API").toEqual(zeroedApi);

    expect(uffd.register({ start: REGION, len: PAGE, mode: 0 }), "REGISTER with mode 0").toEqual(rejected);
    expect(uffd.register({ start: UNREGISTERED, len: PAGE, mode: MINOR }), "REGISTER MINOR on anon").toEqual(rejected);
    const plain = process.mmap(PAGE, { file: kernel.createFile("plain", PAGE), flags: MAP_SHARED });
    expect(uffd.register({ start: plain, len: PAGE, mode: MISSING }), "REGISTER of a regular file").toEqual(rejected);
    expect(uffd.unregister({ start: REGION + 1, len: PAGE }), "UNREGISTER unaligned").toEqual({ errno: EINVAL });
    expect(uffd.wake({ start: REGION, len: 0 }), "WAKE of zero bytes").toEqual({ errno: EINVAL });

    expect(copyTo(env, at(0) + 1), "COPY unaligned").toEqual(untouched(EINVAL, "copy"));
    const wpCopy = uffd.copy({ dst: at(0), src: SRC, len: PAGE, mode: UFFDIO_COPY_MODE_WP, copy: PRESET });
    expect(wpCopy, "COPY MODE_WP without WP registration").toEqual(failed(EINVAL, "copy"));
    const zeropage = uffd.zeropage({ start: at(0), len: PAGE, mode: 4, zeropage: PRESET });
    expect(zeropage, "ZEROPAGE with an unknown mode bit").toEqual(untouched(EINVAL, "zeropage"));
    const bothModes = UFFDIO_WRITEPROTECT_MODE_WP | UFFDIO_WRITEPROTECT_MODE_DONTWAKE;
    const writeprotect = uffd.writeprotect({ start: WP_PAGE, len: PAGE, mode: bothModes });
    expect(writeprotect, "WRITEPROTECT with WP and DONTWAKE").toEqual({ errno: EINVAL });
    const resumed = uffd.continue({ start: at(0), len: PAGE, mode: 0, mapped: PRESET });
    expect(resumed, "CONTINUE of anonymous memory").toEqual(failed(EINVAL, "mapped"));
    const poison = uffd.poison({ start: at(0), len: PAGE + 1, mode: 0, updated: PRESET });
    expect(poison, "POISON of an unaligned length").toEqual(untouched(EINVAL, "updated"));
    const fromShmem = uffd.move({ dst: at(0), src: SHMEM, len: PAGE, mode: 0, move: PRESET });
    expect(fromShmem, "MOVE from shmem").toEqual(failed(EINVAL, "move"));
    const other = kernel.createProcess();
    const crossProcess = uffd.dupInto(other).move({ dst: at(0), src: SRC, len: PAGE, mode: 0, move: PRESET });
    expect(crossProcess, "MOVE from another process").toEqual(untouched(EINVAL, "move"));
  });

  it("ENOMEM", async () => {
    const env = await setup(UFFD_FEATURE_MOVE | UFFD_FEATURE_POISON, 128 * PAGE);
    const { kernel, process, uffd, file } = env;
    // Before the frames run out: REGION's page table, the cache page, and
    // registered ranges that no page table covers yet.
    populate(env, 1);
    file.write(0, pageOf(1));
    const target = kernel.createProcess();
    expect(process.mmap(PAGE, { flags: ANON_FIXED, address: FAR })).toBe(FAR);
    expect(uffd.register({ start: FAR, len: PAGE, mode: MISSING }).errno).toBe(0);
    expect(process.mmap(PAGE, { file, flags: MAP_SHARED | MAP_FIXED, address: FAR_SHMEM })).toBe(FAR_SHMEM);
    expect(uffd.register({ start: FAR_SHMEM, len: PAGE, mode: MINOR }).errno).toBe(0);
    await exhaustFrames(process);

    expect(copyTo(env, at(0)), "COPY").toEqual(failed(ENOMEM, "copy"));
    expect(uffd.zeropage({ start: FAR, len: PAGE, mode: 0 }), "ZEROPAGE").toEqual(failed(ENOMEM, "zeropage"));
    expect(uffd.continue({ start: FAR_SHMEM, len: PAGE, mode: 0 }), "CONTINUE").toEqual(failed(ENOMEM, "mapped"));
    expect(uffd.poison({ start: FAR, len: PAGE, mode: 0 }), "POISON").toEqual(failed(ENOMEM, "updated"));
    expect(uffd.move({ dst: FAR, src: SRC, len: PAGE, mode: 0 }), "MOVE").toEqual(failed(ENOMEM, "move"));

    // REGISTER and UNREGISTER report a target whose address space is gone as ENOMEM.
    expect(target.mmap(PAGE, { flags: ANON_FIXED, address: REGION })).toBe(REGION);
    const own = target.userfaultfd();
    expect(own.api({ api: UFFD_API, features: 0 }).errno).toBe(0);
    const monitorHandle = own.dupInto(process);
    target.exit();
    const register = monitorHandle.register({ start: REGION, len: PAGE, mode: MISSING });
    expect(register, "REGISTER after exit").toEqual({ errno: ENOMEM, ioctls: 0n });
    expect(monitorHandle.unregister({ start: REGION, len: PAGE }), "UNREGISTER after exit").toEqual({ errno: ENOMEM });
  });

  it("ESRCH", async () => {
    const env = await setup(UFFD_FEATURE_MOVE | UFFD_FEATURE_POISON);
    const { kernel, process, uffd } = env;
    const monitor = kernel.createProcess();
    expect(monitor.mmap(PAGE, { flags: ANON_FIXED, address: SRC })).toBe(SRC);
    const handle = uffd.dupInto(monitor);
    process.exit();

    const copy = handle.copy({ dst: at(0), src: SRC, len: PAGE, mode: 0, copy: PRESET });
    expect(copy, "COPY").toEqual(untouched(ESRCH, "copy"));
    const zeropage = handle.zeropage({ start: at(0), len: PAGE, mode: 0, zeropage: PRESET });
    expect(zeropage, "ZEROPAGE").toEqual(untouched(ESRCH, "zeropage"));
    const resumed = handle.continue({ start: SHMEM, len: PAGE, mode: 0, mapped: PRESET });
    expect(resumed, "CONTINUE").toEqual(untouched(ESRCH, "mapped"));
    const poison = handle.poison({ start: at(0), len: PAGE, mode: 0, updated: PRESET });
    expect(poison, "POISON").toEqual(untouched(ESRCH, "updated"));
    const writeprotect = handle.writeprotect({ start: WP_PAGE, len: PAGE, mode: UFFDIO_WRITEPROTECT_MODE_WP });
    expect(writeprotect, "WRITEPROTECT").toEqual({ errno: ESRCH });
    // MOVE must come from the address space it serves, and no caller is left
    // in an exited one: the cross-process check fails before the liveness check.
    const move = handle.move({ dst: at(0), src: SRC, len: PAGE, mode: 0, move: PRESET });
    expect(move, "MOVE from the monitor").toEqual(untouched(EINVAL, "move"));
  });

  it("EBUSY", async () => {
    const env = await setup(UFFD_FEATURE_MOVE);
    const { process, uffd } = env;
    const second = process.userfaultfd();
    expect(second.api({ api: UFFD_API, features: 0 }).errno).toBe(0);
    const register = second.register({ start: REGION, len: PAGE, mode: MISSING });
    expect(register, "REGISTER of another userfaultfd's range").toEqual({ errno: EBUSY, ioctls: 0n });

    // Without EVENT_FORK the fork sends no event, and SRC page 0 is then shared with the child.
    const child = await settledNow(process.fork());
    const move = uffd.move({ dst: at(0), src: SRC, len: PAGE, mode: 0 });
    expect(move, "MOVE of a page shared with a child").toEqual(failed(EBUSY, "move"));
    child.exit();
  });

  it("EPERM", async () => {
    const env = await setup();
    const { kernel, process, uffd } = env;
    const user = kernel.createProcess({ privileged: false });
    let creation: unknown;
    try {
      user.userfaultfd();
    } catch (error: unknown) {
      creation = error;
    }
    expect(creation, "userfaultfd() without privilege").toBeInstanceOf(KernelError);
    expect((creation as KernelError).errno, "errno of userfaultfd()").toBe(EPERM);

    const userOnly = user.userfaultfd(UFFD_USER_MODE_ONLY);
    const api = userOnly.api({ api: UFFD_API, features: UFFD_FEATURE_EVENT_FORK });
    expect(api, "API with EVENT_FORK without privilege").toEqual({ errno: EPERM, api: 0, features: 0, ioctls: 0n });

    const readOnly = kernel.memfdCreate("read-only", PAGE, { readOnly: true });
    const mapping = process.mmap(PAGE, { file: readOnly, flags: MAP_SHARED, prot: PROT_READ });
    const register = uffd.register({ start: mapping, len: PAGE, mode: MISSING });
    expect(register, "REGISTER of a read-only shared mapping").toEqual({ errno: EPERM, ioctls: 0n });
  });

  it("EIO", async () => {
    const env = await setup();
    env.file.write(0, pageOf(1));
    env.file.hwpoison(0);
    const resumed = env.uffd.continue({ start: SHMEM, len: PAGE, mode: 0 });
    expect(resumed, "CONTINUE of a poisoned cache page").toEqual(failed(EIO, "mapped"));
  });

  // EINTR has no test: the kernel returns it only from an ioctl that made no
  // progress while a fatal signal is pending on the caller. A fill checks
  // for the signal only after a page is done, which reports as partial
  // progress (EAGAIN), and MOVE only after an internal retry that the
  // model's atomic page moves never need; the caller dies in any case.
});
