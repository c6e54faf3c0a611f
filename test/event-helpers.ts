// Setup and checks shared by the tests of the non-cooperative events
// (REMAP, REMOVE, UNMAP, FORK) and the mmap_changing gate.

import { expect } from "vitest";
import {
  EAGAIN, MAP_ANONYMOUS, MAP_FIXED, MAP_PRIVATE, UFFD_API, UFFDIO_REGISTER_MODE_MISSING, UFFDIO_REGISTER_MODE_WP,
  UFFDIO_WRITEPROTECT_MODE_WP, type Kernel, type KernelVersion, type Process, type UffdMsg, type Userfaultfd,
} from "../src/index.js";
import { createKernel, drain, pageOf, type Watched } from "./helpers.js";

export const PAGE = 4096;
/** The target's main registered region, 8 pages. */
export const REGION = 0x1000_0000;
/** A second range of 4 pages registered to the same uffd, used by the gate checks as "elsewhere". */
export const SPARE = 0x3000_0000;
/** A free range, the destination of MREMAP_FIXED moves. */
export const NEW = 0x2000_0000;
export const FIXED = MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED;
export const MISSING = UFFDIO_REGISTER_MODE_MISSING;
export const WP = UFFDIO_REGISTER_MODE_WP;
export const at = (page: number) => REGION + page * PAGE;
/** The byte that fills source page `i` of the monitor: 'A', 'B', ... */
export const srcByte = (i: number) => 0x41 + i;
export const GATE_EAGAIN = { errno: EAGAIN };

export interface Env {
  kernel: Kernel;
  target: Process;
  monitor: Process;
  /** The monitor's handle on the target's uffd; the target closed its own. */
  uffd: Userfaultfd;
  /** A third process with its own uffd (no features), registered MISSING over 8 pages at REGION. */
  other: Process;
  /** The monitor's handle on the other process's uffd. */
  otherUffd: Userfaultfd;
  /** The monitor's 16 source pages, page i filled with srcByte(i). */
  src: number;
}

export interface SetupOptions {
  features?: number;
  /** Registration mode of REGION; SPARE is MISSING, plus WP where the kernel has it. */
  mode?: number;
  gate?: boolean;
  kernel?: KernelVersion;
}

/** Opens a uffd of `process` with `features`, hands it to `monitor` and closes the process's own handle. */
function monitorUffd(process: Process, monitor: Process, features: number): Userfaultfd {
  const own = process.userfaultfd();
  expect(own.api({ api: UFFD_API, features }).errno).toBe(0);
  const uffd = own.dupInto(monitor);
  own.close();
  return uffd;
}

/** Creates the target (REGION and SPARE registered), the monitor and another process with its own uffd. */
export async function setup(options: SetupOptions = {}): Promise<Env> {
  const { features = 0, mode = MISSING, gate = true, kernel: version = "6.18" } = options;
  const kernel = await createKernel({ kernel: version, ...(gate ? {} : { mmapChangingGate: false }) });
  const target = kernel.createProcess();
  const monitor = kernel.createProcess();
  const other = kernel.createProcess();
  expect(target.mmap(8 * PAGE, { flags: FIXED, address: REGION })).toBe(REGION);
  expect(target.mmap(4 * PAGE, { flags: FIXED, address: SPARE })).toBe(SPARE);
  expect(other.mmap(8 * PAGE, { flags: FIXED, address: REGION })).toBe(REGION);

  const uffd = monitorUffd(target, monitor, features);
  expect(uffd.register({ start: REGION, len: 8 * PAGE, mode }).errno).toBe(0);
  const spareMode = MISSING | (kernel.profile.wp ? WP : 0);
  expect(uffd.register({ start: SPARE, len: 4 * PAGE, mode: spareMode }).errno).toBe(0);
  const otherUffd = monitorUffd(other, monitor, 0);
  expect(otherUffd.register({ start: REGION, len: 8 * PAGE, mode: MISSING }).errno).toBe(0);

  const src = monitor.mmap(16 * PAGE);
  for (let i = 0; i < 16; i++) await monitor.write(src + i * PAGE, pageOf(srcByte(i)));
  return { kernel, target, monitor, uffd, other, otherUffd, src };
}

/** Copies source page `from` to `dst` through the target's uffd. */
export function copyTo(env: Env, dst: number, from = 0) {
  return env.uffd.copy({ dst, src: env.src + from * PAGE, len: PAGE, mode: 0 });
}

/** Returns 1 when the target has a present page at `address`, else 0. */
export function presentAt(env: Env, address: number): number {
  return env.kernel.core.exports.pte_read(env.target.mm.pgd, address) & 1;
}

/** Returns [start, end, uffdFlags, registered to env.uffd] of the target's VMA at `address`, or undefined. */
export function vmaAt(env: Env, address: number) {
  const vma = env.target.mm.vmaLookup(address);
  if (vma === undefined) return undefined;
  return [vma.start, vma.end, vma.uffdFlags, vma.uffdCtx === env.uffd.ctx];
}

/**
 * Checks the ioctls of the target's uffd while an event is pending. COPY,
 * ZEROPAGE, WRITEPROTECT and MOVE get EAGAIN, with -EAGAIN in the
 * out-fields that have one. WAKE, and a COPY on the other process's uffd,
 * go through. `inside` is a page of the changing range, `otherPage` a
 * missing page of the other process.
 */
export function expectGated(env: Env, inside: number, otherPage: number): void {
  const eagain = (field: string) => ({ errno: EAGAIN, [field]: -EAGAIN });
  expect(copyTo(env, inside), "COPY in the changing range").toEqual(eagain("copy"));
  expect(copyTo(env, SPARE), "COPY elsewhere in the uffd's ranges").toEqual(eagain("copy"));
  const zeropage = env.uffd.zeropage({ start: SPARE, len: PAGE, mode: 0 });
  expect(zeropage, "ZEROPAGE").toEqual(eagain("zeropage"));
  const writeprotect = env.uffd.writeprotect({ start: SPARE, len: PAGE, mode: UFFDIO_WRITEPROTECT_MODE_WP });
  expect(writeprotect, "WRITEPROTECT").toEqual(GATE_EAGAIN);
  const move = env.uffd.move({ dst: SPARE, src: SPARE + PAGE, len: PAGE, mode: 0 });
  expect(move, "MOVE").toEqual(eagain("move"));
  expect(env.uffd.wake({ start: SPARE, len: PAGE }), "WAKE").toEqual({ errno: 0 });
  const otherCopy = env.otherUffd.copy({ dst: REGION + otherPage * PAGE, src: env.src, len: PAGE, mode: 0 });
  expect(otherCopy, "COPY on another process's uffd").toEqual({ errno: 0, copy: PAGE });
  expect(presentAt(env, SPARE), "SPARE page after the gated ioctls").toBe(0);
}

/**
 * Reads messages from `uffd` and drains queued work until `producer`
 * settles, and returns the messages in read order. Throws when the
 * producer is still pending after 16 rounds, so a lost event fails fast.
 */
export async function readUntilSettled(uffd: Userfaultfd, producer: Watched<unknown>): Promise<UffdMsg[]> {
  const messages: UffdMsg[] = [];
  for (let round = 0; round < 16; round++) {
    for (let msg = uffd.read(); msg.errno !== EAGAIN; msg = uffd.read()) messages.push(msg as UffdMsg);
    await drain();
    if (producer.state !== "pending") return messages;
  }
  throw new Error(`producer still pending after 16 rounds of reads (${messages.length} messages read): an event was lost or never queued`);
}
