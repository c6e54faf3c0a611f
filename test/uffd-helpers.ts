// Setup shared by the uffd-wp, MOVE/POISON and kernel-version tests: a
// target process with a userfaultfd on a fixed region, a monitor process
// holding a second handle on the same context, and PTE probes.

import { expect } from "vitest";
import {
  MAP_ANONYMOUS, MAP_FIXED, MAP_PRIVATE, UFFD_API, UFFD_EVENT_FORK, UFFDIO_REGISTER_MODE_MISSING,
  type ForkMsg, type Kernel, type KernelVersion, type Process, type Userfaultfd,
} from "../src/index.js";
import { createKernel, pageOf, settledNow } from "./helpers.js";

export const PAGE = 4096;
/** The target's region: `pages` pages mapped there by setup(). */
export const REGION = 0x1000_0000;
export const FIXED = MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED;
export const at = (page: number) => REGION + page * PAGE;
/** The byte that fills source page `i` of the monitor: 'A', 'B', ... */
export const srcByte = (i: number) => 0x41 + i;
export const ZEROS = pageOf(0);

/** The uffd-wp bit of a PTE in the wasm core. */
export const PTE_UFFD_WP = 1 << 10;
/** The frame address bits of a PTE in the wasm core. */
export const PTE_FRAME_MASK = 0xfffff000;

export interface Env {
  kernel: Kernel;
  target: Process;
  monitor: Process;
  /** The target's own handle. MOVE must be called from the address space it serves. */
  own: Userfaultfd;
  /** The monitor's handle on the same context. */
  uffd: Userfaultfd;
  /** The monitor's source pages, page i filled with srcByte(i). */
  src: number;
}

export interface SetupOptions {
  kernel?: KernelVersion;
  /** The mmapChangingGate option, passed to Kernel.create only when set. */
  gate?: boolean;
  features?: number;
  /** UFFDIO_REGISTER mode for the whole region, or 0 to leave it unregistered. */
  mode?: number;
  pages?: number;
  srcPages?: number;
}

/** Creates a target with `pages` pages at REGION, registered with `mode`, and a monitor. */
export async function setup(options: SetupOptions = {}): Promise<Env> {
  const { features = 0, mode = UFFDIO_REGISTER_MODE_MISSING, pages = 8, srcPages = 4 } = options;
  const kernel = await createKernel({
    kernel: options.kernel ?? "6.18",
    ...(options.gate === undefined ? {} : { mmapChangingGate: options.gate }),
  });
  const target = kernel.createProcess();
  const monitor = kernel.createProcess();
  expect(target.mmap(pages * PAGE, { flags: FIXED, address: REGION })).toBe(REGION);
  const own = target.userfaultfd();
  expect(own.api({ api: UFFD_API, features }).errno).toBe(0);
  const uffd = own.dupInto(monitor);
  if (mode !== 0) expect(uffd.register({ start: REGION, len: pages * PAGE, mode }).errno).toBe(0);
  const src = monitor.mmap(srcPages * PAGE);
  for (let i = 0; i < srcPages; i++) await monitor.write(src + i * PAGE, pageOf(srcByte(i)));
  return { kernel, target, monitor, own, uffd, src };
}

/** Copies source page `from` to target page `page` through the monitor's handle. */
export function copy(env: Env, page: number, from: number, mode = 0) {
  return env.uffd.copy({ dst: at(page), src: env.src + from * PAGE, len: PAGE, mode });
}

/** Returns the PTE mapping `address` in `process` (the target by default), 0 when none. */
export function pteOf(env: Env, address: number, process = env.target): number {
  return env.kernel.core.exports.pte_read(process.mm.pgd, address) >>> 0;
}

/** Returns the frame mapped at `address`, 0 when none. */
export function frameOf(env: Env, address: number, process = env.target): number {
  return (pteOf(env, address, process) & PTE_FRAME_MASK) >>> 0;
}

/** Returns 1 when the PTE at `address` carries the uffd-wp bit, else 0. */
export function wpBit(env: Env, address: number, process = env.target): number {
  return (pteOf(env, address, process) & PTE_UFFD_WP) !== 0 ? 1 : 0;
}

/** Writes `value` over page `page` of the target, so that the page is present. */
export async function populate(env: Env, page: number, value: number): Promise<void> {
  await settledNow(env.target.write(at(page), pageOf(value)));
}

/** Forks `parent` (the target by default), reads FORK on `uffd` and returns the child and its handle. */
export async function forkWithEvent(env: Env, parent = env.target, uffd = env.uffd) {
  const fork = parent.fork();
  const msg = uffd.read();
  expect(msg).toMatchObject({ errno: 0, event: UFFD_EVENT_FORK });
  const child = await settledNow(fork);
  return { child, childUffd: (msg as ForkMsg).uffd };
}

/** Returns what `promise` rejects with after draining, or fails when it fulfils. */
export async function rejection(promise: Promise<unknown>): Promise<unknown> {
  try {
    await settledNow(promise);
  } catch (reason: unknown) {
    return reason;
  }
  throw new Error("expected the access to reject, but it completed");
}
