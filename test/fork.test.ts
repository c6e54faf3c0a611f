// fork() of a process with a userfaultfd: copy-on-write sharing, the FORK
// event and the child's uffd, the mmap_changing gate that makes COPY return
// EAGAIN while FORK is unread, and the frame accounting around all of it.

import { describe, expect, it, vi } from "vitest";
import {
  EAGAIN, EEXIST, ENOMEM, ESRCH, KernelError, MAP_ANONYMOUS, MAP_FIXED, MAP_PRIVATE, UFFD_API, UFFD_EVENT_FORK,
  UFFD_EVENT_PAGEFAULT, UFFD_FEATURE_EVENT_FORK, UFFDIO_REGISTER_MODE_MISSING,
  type ForkMsg, type Kernel, type KernelVersion, type Process, type Userfaultfd,
} from "../src/index.js";
import { PTE_FRAME_MASK } from "../src/wasm/core.js";
import { createKernel, drain, pageOf, settled, settledNow, watch } from "./helpers.js";

const PAGE = 4096;
const REGION = 0x1000_0000;
const FIXED = MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED;
const MISSING = UFFDIO_REGISTER_MODE_MISSING;
const at = (page: number) => REGION + page * PAGE;
const srcByte = (i: number) => 0x41 + i;
const ZEROS = pageOf(0);

interface Env {
  kernel: Kernel;
  /** Frames in use before any process existed: the zero frame alone. */
  baseline: number;
  target: Process;
  monitor: Process;
  /** The target's own handle, closed unless `keepTargetHandle`. */
  own: Userfaultfd;
  /** The monitor's handle on the target's uffd. */
  uffd: Userfaultfd;
  /** The monitor's source pages, page i filled with srcByte(i). */
  src: number;
}

interface SetupOptions {
  gate?: boolean;
  features?: number;
  keepTargetHandle?: boolean;
  maxMemory?: number;
  srcPages?: number;
  kernel?: KernelVersion;
}

/** Creates a target with 8 registered pages at REGION and a monitor holding its uffd. */
async function setup(options: SetupOptions = {}): Promise<Env> {
  const { gate = true, features = UFFD_FEATURE_EVENT_FORK, keepTargetHandle = false, srcPages = 8 } = options;
  const kernel = await createKernel({
    mmapChangingGate: gate,
    ...(options.maxMemory ? { maxMemory: options.maxMemory } : {}),
    ...(options.kernel ? { kernel: options.kernel } : {}),
  });
  const baseline = kernel.framesUsed;
  const target = kernel.createProcess();
  const monitor = kernel.createProcess();
  expect(target.mmap(8 * PAGE, { flags: FIXED, address: REGION })).toBe(REGION);
  const own = target.userfaultfd();
  expect(own.api({ api: UFFD_API, features }).errno).toBe(0);
  const uffd = own.dupInto(monitor);
  if (!keepTargetHandle) own.close();
  expect(uffd.register({ start: REGION, len: 8 * PAGE, mode: MISSING }).errno).toBe(0);
  const src = monitor.mmap(srcPages * PAGE);
  for (let i = 0; i < srcPages; i++) await monitor.write(src + i * PAGE, pageOf(srcByte(i)));
  return { kernel, baseline, target, monitor, own, uffd, src };
}

/** Copies source page `from` to page `page` through `uffd` (the parent's by default). */
function copy(env: Env, page: number, from: number, uffd = env.uffd) {
  return uffd.copy({ dst: at(page), src: env.src + from * PAGE, len: PAGE, mode: 0 });
}

/** Forks the target, reads the FORK message and waits for fork to return. */
async function forkWithEvent(env: Env, parent = env.target, uffd = env.uffd) {
  const fork = parent.fork();
  const msg = uffd.read();
  expect(msg).toMatchObject({ errno: 0, event: UFFD_EVENT_FORK });
  const child = await settledNow(fork);
  return { child, childUffd: (msg as ForkMsg).uffd };
}

function frameAt(kernel: Kernel, process: Process, page: number): number {
  return (kernel.core.exports.pte_read(process.mm.pgd, at(page)) & PTE_FRAME_MASK) >>> 0;
}

function present(kernel: Kernel, process: Process, page: number): number {
  return kernel.core.exports.count_present(process.mm.pgd, at(page), 1);
}

/** Returns [start, end, uffdFlags, registered to `uffd` (to none when null)] for each VMA of `process`. */
function layout(process: Process, uffd: Userfaultfd | null) {
  return process.mm.vmaList().map((vma) => [vma.start, vma.end, vma.uffdFlags, vma.uffdCtx === (uffd?.ctx ?? null)]);
}

describe("fork with EVENT_FORK", () => {
  it("shares a page copied before fork", async () => {
    const env = await setup();
    expect(copy(env, 0, 0).errno).toBe(0);
    const { child, childUffd } = await forkWithEvent(env);

    expect(await settledNow(child.read(at(0), PAGE))).toEqual(pageOf(srcByte(0)));
    expect(childUffd.read()).toEqual({ errno: EAGAIN });
    expect(frameAt(env.kernel, child, 0)).toBe(frameAt(env.kernel, env.target, 0));
    expect(env.kernel.core.exports.frame_refcount(frameAt(env.kernel, child, 0))).toBe(2);
  });

  it("keeps writes private to each side", async () => {
    const env = await setup();
    expect(copy(env, 0, 0).errno).toBe(0);
    expect(copy(env, 1, 1).errno).toBe(0);
    const { child } = await forkWithEvent(env);

    await settledNow(env.target.write(at(0), pageOf(0x70)));
    await settledNow(child.write(at(1), pageOf(0x71)));
    expect(await settledNow(child.read(at(0), PAGE))).toEqual(pageOf(srcByte(0)));
    expect(await settledNow(env.target.read(at(1), PAGE))).toEqual(pageOf(srcByte(1)));
    expect(await settledNow(env.target.read(at(0), PAGE))).toEqual(pageOf(0x70));
    expect(await settledNow(child.read(at(1), PAGE))).toEqual(pageOf(0x71));
  });

  it("gives the child uffd the same registration", async () => {
    const env = await setup();
    const { child, childUffd } = await forkWithEvent(env);

    expect(childUffd.ctx).not.toBe(env.uffd.ctx);
    expect(childUffd.owner).toBe(env.monitor);
    expect(childUffd.ctx.features).toBe(UFFD_FEATURE_EVENT_FORK);
    expect(childUffd.api({ api: UFFD_API, features: 0 }).errno).toBe(22);
    expect(childUffd.ctx.mmapChanging).toBe(0);
    expect(layout(child, childUffd)).toEqual([[at(0), at(8), MISSING, true]]);
  });

  it("serves the child on the child uffd", async () => {
    const env = await setup();
    expect(copy(env, 0, 0).errno).toBe(0);
    const { child, childUffd } = await forkWithEvent(env);

    const access = watch(child.read(at(2), PAGE));
    expect(childUffd.read()).toEqual({ errno: 0, event: UFFD_EVENT_PAGEFAULT, flags: 0, address: at(2), ptid: 0 });
    expect(env.uffd.read()).toEqual({ errno: EAGAIN });
    expect(copy(env, 2, 3, childUffd)).toEqual({ errno: 0, copy: PAGE });
    expect(await settled(access)).toEqual(pageOf(srcByte(3)));
    expect(copy(env, 0, 4, childUffd)).toEqual({ errno: EEXIST, copy: -EEXIST });
    expect(present(env.kernel, env.target, 2)).toBe(0);
  });

  it("sends one FORK per context", async () => {
    const env = await setup();
    expect(env.target.mmap(PAGE, { flags: FIXED, address: at(64) })).toBe(at(64));
    expect(env.uffd.register({ start: at(64), len: PAGE, mode: MISSING }).errno).toBe(0);
    const { child, childUffd } = await forkWithEvent(env);

    expect(env.uffd.read()).toEqual({ errno: EAGAIN });
    expect(layout(child, childUffd)).toEqual([[at(0), at(8), MISSING, true], [at(64), at(65), MISSING, true]]);
  });

  it("sends a grandchild's FORK to the child uffd", async () => {
    const env = await setup();
    const { child, childUffd } = await forkWithEvent(env);
    const { child: grandchild, childUffd: grandchildUffd } = await forkWithEvent(env, child, childUffd);

    expect(env.uffd.read()).toEqual({ errno: EAGAIN });
    expect(layout(grandchild, grandchildUffd)).toEqual([[at(0), at(8), MISSING, true]]);
  });
});

describe("mmap_changing gate on", () => {
  it("holds fork until FORK is read", async () => {
    const env = await setup();
    const fork = watch(env.target.fork());
    await drain();
    expect(fork.state).toBe("pending");
    expect(env.uffd.ctx.mmapChanging).toBe(1);

    expect(env.uffd.read()).toMatchObject({ event: UFFD_EVENT_FORK });
    // The gate opens when the forking task resumes, not at the read itself.
    expect(env.uffd.ctx.mmapChanging).toBe(1);
    await settled(fork);
    expect(env.uffd.ctx.mmapChanging).toBe(0);
  });

  it("returns EAGAIN from gated ioctls", async () => {
    const env = await setup();
    const fork = watch(env.target.fork());

    expect(copy(env, 0, 0), "COPY").toEqual({ errno: EAGAIN, copy: -EAGAIN });
    expect(copy(env, 5, 1), "COPY of another range").toEqual({ errno: EAGAIN, copy: -EAGAIN });
    const zeropage = env.uffd.zeropage({ start: at(0), len: PAGE, mode: 0 });
    expect(zeropage, "ZEROPAGE").toEqual({ errno: EAGAIN, zeropage: -EAGAIN });
    const badLength = env.uffd.copy({ dst: at(0), src: env.src, len: 100, mode: 0 });
    expect(badLength, "COPY with a bad length").toEqual({ errno: EAGAIN, copy: -EAGAIN });
    expect(env.kernel.core.exports.count_present(env.target.mm.pgd, REGION, 8)).toBe(0);

    expect(env.uffd.read()).toMatchObject({ event: UFFD_EVENT_FORK });
    await settled(fork);
  });

  it("lets ungated ioctls through", async () => {
    const env = await setup();
    const other = env.kernel.createProcess();
    expect(other.mmap(PAGE, { flags: FIXED, address: REGION })).toBe(REGION);
    const otherUffd = other.userfaultfd();
    expect(otherUffd.api({ api: UFFD_API, features: UFFD_FEATURE_EVENT_FORK }).errno).toBe(0);
    expect(otherUffd.register({ start: REGION, len: PAGE, mode: MISSING }).errno).toBe(0);
    const fromMonitor = otherUffd.dupInto(env.monitor);
    expect(env.target.mmap(PAGE, { flags: FIXED, address: at(64) })).toBe(at(64));
    const fork = watch(env.target.fork());

    expect(env.uffd.wake({ start: at(0), len: PAGE }).errno, "WAKE").toBe(0);
    expect(env.uffd.register({ start: at(64), len: PAGE, mode: MISSING }).errno, "REGISTER").toBe(0);
    const otherCopy = fromMonitor.copy({ dst: REGION, src: env.src, len: PAGE, mode: 0 });
    expect(otherCopy, "COPY on another process's uffd").toEqual({ errno: 0, copy: PAGE });

    expect(env.uffd.read()).toMatchObject({ event: UFFD_EVENT_FORK });
    await settled(fork);
  });

  it("fills the parent on retry and the child on its uffd", async () => {
    const env = await setup();
    const fork = env.target.fork();
    expect(copy(env, 0, 0).errno).toBe(EAGAIN);
    const msg = env.uffd.read() as ForkMsg;
    expect(msg.event).toBe(UFFD_EVENT_FORK);
    const child = await settledNow(fork);

    expect(copy(env, 0, 0)).toEqual({ errno: 0, copy: PAGE });
    expect(await settledNow(env.target.read(at(0), PAGE))).toEqual(pageOf(srcByte(0)));
    expect(env.uffd.read()).toEqual({ errno: EAGAIN });

    const access = watch(child.read(at(0), PAGE));
    expect(msg.uffd.read()).toMatchObject({ event: UFFD_EVENT_PAGEFAULT, address: at(0) });
    expect(copy(env, 0, 5, msg.uffd)).toEqual({ errno: 0, copy: PAGE });
    expect(await settled(access)).toEqual(pageOf(srcByte(5)));
  });
});

describe("mmap_changing gate off", () => {
  it("fills the parent only during fork", async () => {
    const env = await setup({ gate: false });
    const fork = env.target.fork();
    expect(env.uffd.ctx.mmapChanging).toBe(0);
    expect(copy(env, 0, 0)).toEqual({ errno: 0, copy: PAGE });
    const msg = env.uffd.read() as ForkMsg;
    expect(msg.event).toBe(UFFD_EVENT_FORK);
    const child = await settledNow(fork);

    expect(await settledNow(env.target.read(at(0), PAGE))).toEqual(pageOf(srcByte(0)));
    expect(present(env.kernel, child, 0)).toBe(0);
    const access = watch(child.read(at(0), PAGE));
    expect(msg.uffd.read()).toMatchObject({ event: UFFD_EVENT_PAGEFAULT, address: at(0) });
    await drain();
    expect(access.state).toBe("pending");

    expect(copy(env, 0, 6, msg.uffd).errno).toBe(0);
    expect(await settled(access)).toEqual(pageOf(srcByte(6)));
  });
});

describe("fork without EVENT_FORK", () => {
  it("unregisters the child and does not block", async () => {
    const env = await setup({ features: 0 });
    expect(copy(env, 0, 0).errno).toBe(0);
    const child = await settledNow(env.target.fork());

    expect(env.uffd.read()).toEqual({ errno: EAGAIN });
    expect(layout(child, null)).toEqual([[at(0), at(8), 0, true]]);
    expect(await settledNow(child.read(at(0), PAGE))).toEqual(pageOf(srcByte(0)));
    expect(await settledNow(child.read(at(1), PAGE))).toEqual(ZEROS);
    expect(env.uffd.read()).toEqual({ errno: EAGAIN });
  });

  it("keeps the parent registered", async () => {
    const env = await setup({ features: 0 });
    await settledNow(env.target.fork());
    expect(layout(env.target, env.uffd)).toEqual([[at(0), at(8), MISSING, true]]);

    const access = watch(env.target.read(at(1), 1));
    expect(env.uffd.read()).toMatchObject({ event: UFFD_EVENT_PAGEFAULT, address: at(1) });
    expect(copy(env, 1, 1).errno).toBe(0);
    expect(await settled(access)).toEqual(Uint8Array.of(srcByte(1)));
  });
});

describe("several forks", () => {
  it("holds the gate until both FORKs are read", async () => {
    const env = await setup();
    const first = watch(env.target.fork());
    const second = watch(env.target.fork());
    expect(env.uffd.ctx.mmapChanging).toBe(2);

    const firstMsg = env.uffd.read() as ForkMsg;
    expect(firstMsg.event).toBe(UFFD_EVENT_FORK);
    const firstChild = await settled(first);
    expect(second.state).toBe("pending");
    expect(env.uffd.ctx.mmapChanging).toBe(1);
    expect(copy(env, 0, 0).errno).toBe(EAGAIN);

    const secondMsg = env.uffd.read() as ForkMsg;
    expect(secondMsg.event).toBe(UFFD_EVENT_FORK);
    const secondChild = await settled(second);
    expect(env.uffd.ctx.mmapChanging).toBe(0);
    expect(copy(env, 0, 0)).toEqual({ errno: 0, copy: PAGE });
    expect(layout(firstChild, firstMsg.uffd)).toEqual([[at(0), at(8), MISSING, true]]);
    expect(layout(secondChild, secondMsg.uffd)).toEqual([[at(0), at(8), MISSING, true]]);
  });

  it("closes the gate again for a second fork", async () => {
    const env = await setup();
    const { childUffd: firstUffd } = await forkWithEvent(env);
    const fork = watch(env.target.fork());

    expect(copy(env, 0, 0).errno).toBe(EAGAIN);
    const msg = env.uffd.read() as ForkMsg;
    expect(msg.event).toBe(UFFD_EVENT_FORK);
    expect(msg.uffd.ctx).not.toBe(firstUffd.ctx);
    await settled(fork);
    expect(copy(env, 0, 0)).toEqual({ errno: 0, copy: PAGE });
  });
});

describe("release during fork", () => {
  it("lets fork finish when the uffd is released", async () => {
    const env = await setup();
    const fork = watch(env.target.fork());
    env.uffd.close();
    const child = await settled(fork);

    expect(env.uffd.ctx.released).toBe(true);
    expect(env.uffd.ctx.mmapChanging).toBe(0);
    expect(layout(child, null)).toEqual([[at(0), at(8), 0, true]]);
    expect(await settledNow(child.read(at(0), PAGE))).toEqual(ZEROS);
  });

  it("keeps fork blocked while the child holds the fd", async () => {
    // fork copies the file table before the address space, so the
    // half-built child holds a reference to the parent's uffd.
    const env = await setup({ keepTargetHandle: true });
    const fork = watch(env.target.fork());
    const halfBuilt = [...env.kernel.processes.values()].find((p) => p !== env.target && p !== env.monitor);
    expect(halfBuilt?.files.size).toBe(1);
    env.uffd.close();
    env.own.close();
    await drain();
    expect(fork.state).toBe("pending");
    expect(env.uffd.ctx.released).toBe(false);

    for (const file of [...halfBuilt!.files.values()]) file.close();
    const child = await settled(fork);
    expect(child).toBe(halfBuilt);
    expect(env.uffd.ctx.mmapChanging).toBe(0);
    expect(layout(child, null)).toEqual([[at(0), at(8), 0, true]]);
  });
});

/** A target whose next fork runs out of frames in its last page-table copy. */
async function setupFailingFork(kernelVersion?: KernelVersion) {
  // 64 frames. Fork needs a root and three tables for REGION, then a PTE
  // table for the filler mapping, so four free frames make that last one fail.
  const env = await setup({ maxMemory: 64 * PAGE, srcPages: 2, ...(kernelVersion ? { kernel: kernelVersion } : {}) });
  expect(copy(env, 0, 0).errno).toBe(0);
  const filler = 0x2000_0000;
  expect(env.target.mmap(64 * PAGE, { flags: FIXED, address: filler })).toBe(filler);
  const kernel = env.kernel;
  for (let page = 0; kernel.framesCapacity - kernel.framesUsed > 4; page++) {
    await settledNow(env.target.write(filler + page * PAGE, pageOf(page)));
  }
  return { env, kernel, filler };
}

describe("fork out of memory", () => {
  it("fails cleanly without a FORK event", async () => {
    const { env, kernel, filler } = await setupFailingFork();
    const used = kernel.framesUsed;
    const processes = kernel.processes.size;
    const raise = vi.spyOn(env.uffd.ctx, "raiseMmapChanging");
    const lower = vi.spyOn(env.uffd.ctx, "lowerMmapChanging");

    const error = await settledNow(env.target.fork()).catch((reason: unknown) => reason);
    expect(error).toBeInstanceOf(KernelError);
    expect(error).toMatchObject({ errno: ENOMEM });
    expect(env.uffd.read()).toEqual({ errno: EAGAIN });
    // The gate was closed for the copy that failed, and opened again.
    expect(raise).toHaveBeenCalledTimes(1);
    expect(lower).toHaveBeenCalledTimes(1);
    expect(env.uffd.ctx.mmapChanging).toBe(0);
    expect(kernel.framesUsed).toBe(used);
    expect(kernel.processes.size).toBe(processes);
    expect(copy(env, 1, 1)).toEqual({ errno: 0, copy: PAGE });
    expect(await settledNow(env.target.read(filler + PAGE, PAGE))).toEqual(pageOf(1));
  });

  it("sends a FORK before 6.12 all the same", async () => {
    const { env, kernel } = await setupFailingFork("6.8");
    const used = kernel.framesUsed;
    const outcome = watch(env.target.fork());
    await drain();
    expect(outcome.state).toBe("pending");
    const msg = env.uffd.read() as ForkMsg;
    expect(msg.event).toBe(UFFD_EVENT_FORK);
    const error = await settled(outcome).catch((reason: unknown) => reason);
    expect(error).toMatchObject({ errno: ENOMEM });
    expect(env.uffd.ctx.mmapChanging).toBe(0);
    // The stale child context's address space is gone.
    expect(copy(env, 2, 2, msg.uffd)).toEqual({ errno: ESRCH, copy: 0 });
    msg.uffd.close();
    expect(kernel.framesUsed).toBe(used);
  });
});


describe("frame accounting", () => {
  it("fork copies page tables, not pages", async () => {
    const env = await setup();
    for (let i = 0; i < 4; i++) expect(copy(env, i, i).errno).toBe(0);
    const used = env.kernel.framesUsed;
    const { child } = await forkWithEvent(env);

    // The child's root and its three tables over REGION.
    expect(env.kernel.framesUsed).toBe(used + 4);
    await settledNow(child.write(at(0), Uint8Array.of(1)));
    expect(env.kernel.framesUsed).toBe(used + 5);
    await settledNow(env.target.write(at(0), Uint8Array.of(2)));
    expect(env.kernel.framesUsed).toBe(used + 5);
  });

  it("returns every frame after exit", async () => {
    const env = await setup();
    for (let i = 0; i < 4; i++) expect(copy(env, i, i).errno).toBe(0);
    expect(env.uffd.zeropage({ start: at(4), len: 2 * PAGE, mode: 0 }).errno).toBe(0);
    const { child, childUffd } = await forkWithEvent(env);
    const { child: grandchild } = await forkWithEvent(env, child, childUffd);

    await settledNow(child.write(at(0), pageOf(0x61)));
    await settledNow(env.target.write(at(1), pageOf(0x62)));
    await settledNow(grandchild.write(at(4), pageOf(0x63)));
    const access = child.read(at(6), PAGE);
    expect(childUffd.read()).toMatchObject({ address: at(6) });
    expect(copy(env, 6, 6, childUffd).errno).toBe(0);
    await settledNow(access);
    expect(env.kernel.framesUsed).toBeGreaterThan(env.baseline);

    for (const process of [grandchild, child, env.target, env.monitor]) process.exit();
    expect(env.kernel.framesUsed).toBe(env.baseline);
    expect(env.kernel.core.exports.frame_refcount(env.kernel.core.exports.zero_frame())).toBe(1);
    expect(env.kernel.processes.size).toBe(0);
    expect(env.kernel.contexts.size).toBe(0);
  });

  it("returns every frame without EVENT_FORK", async () => {
    const env = await setup({ features: 0 });
    for (let i = 0; i < 2; i++) expect(copy(env, i, i).errno).toBe(0);
    const child = await settledNow(env.target.fork());
    await settledNow(child.write(at(0), pageOf(0x61)));
    await settledNow(child.write(at(5), pageOf(0x62)));

    for (const process of [env.target, child, env.monitor]) process.exit();
    expect(env.kernel.framesUsed).toBe(env.baseline);
    expect(env.kernel.contexts.size).toBe(0);
  });
});
