// Setup and probes shared by the kernel-facts tests, which replay scenarios
// measured on a Linux 6.18 kernel. One process both faults and runs the
// monitor, as a monitor thread inside the target does: its userfaultfd reads
// COPY sources and MOVE pages in its own address space, and it is the reader
// that receives a FORK child's userfaultfd.

import { expect } from "vitest";
import {
  EAGAIN, MAP_ANONYMOUS, MAP_FIXED, MAP_PRIVATE, O_NONBLOCK, UFFD_API, UFFD_EVENT_PAGEFAULT,
  UFFDIO_WRITEPROTECT_MODE_WP, type ApiResult, type CopyResult, type Kernel, type MmapOptions, type PagefaultMsg,
  type Process, type Userfaultfd,
} from "../src/index.js";
import { createKernel, drain, pageOf, settledNow } from "./helpers.js";

export const PAGE = 4096;
/** The main region of each scenario ("R" in the measurements). */
export const REGION = 0x1000_0000;
/** A second range of the same userfaultfd, away from the range an event changes. */
export const SPARE = 0x2000_0000;
/** The destination of mremap moves ("NEW"). */
export const NEW = 0x3000_0000;
/** A range registered to another userfaultfd of the same process. */
export const OTHER = 0x4000_0000;
/** A mapping registered to no userfaultfd. */
export const PLAIN = 0x5000_0000;
/** An address range that no scenario maps. */
export const UNMAPPED = 0x6000_0000;
export const FIXED = MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED;
/** An out-field preset that no kernel result equals, so an untouched field is visible. */
export const PRESET = 12345;

/** Returns the character code of a one-character string: the byte values in the measurements are letters. */
export const byte = (char: string) => char.charCodeAt(0);

export interface Env {
  kernel: Kernel;
  /** The process that faults and also issues the monitor's ioctls. */
  target: Process;
  /** Its userfaultfd, opened with O_NONBLOCK so that read and poll behave as on a non-blocking fd. */
  uffd: Userfaultfd;
  /** The result of the UFFDIO_API handshake. */
  api: ApiResult;
}

/** Creates a 6.18 kernel, a process and a userfaultfd with `features`, opened with `flags`. */
export async function createEnv(features = 0, flags = O_NONBLOCK): Promise<Env> {
  const kernel = await createKernel();
  const target = kernel.createProcess();
  const uffd = target.userfaultfd(flags);
  const api = uffd.api({ api: UFFD_API, features });
  expect(api.errno, "UFFDIO_API in setup").toBe(0);
  return { kernel, target, uffd, api };
}

/** Opens a second userfaultfd of the target, with `features`. */
export function secondUffd(env: Env, features = 0): Userfaultfd {
  const uffd = env.target.userfaultfd(O_NONBLOCK);
  expect(uffd.api({ api: UFFD_API, features }).errno, "UFFDIO_API of the second userfaultfd").toBe(0);
  return uffd;
}

/** Maps `pages` private anonymous pages at `address` (MAP_FIXED), with extra mmap `options`. */
export function mapAt(env: Env, address: number, pages: number, options: MmapOptions = {}): number {
  expect(env.target.mmap(pages * PAGE, { flags: FIXED, address, ...options }), "mmap in setup").toBe(address);
  return address;
}

/** Maps `pages` pages at `address` and registers them to `uffd` with `mode`. */
export function mapRegistered(env: Env, address: number, pages: number, mode: number, uffd = env.uffd): number {
  mapAt(env, address, pages);
  expect(uffd.register({ start: address, len: pages * PAGE, mode }).errno, "UFFDIO_REGISTER in setup").toBe(0);
  return address;
}

/** Maps one unregistered page per character of `chars`, each filled with it, and returns the first page's address. */
export async function sourcePages(env: Env, chars: string): Promise<number> {
  const address = env.target.mmap(chars.length * PAGE);
  expect(address, "mmap of the source pages").toBeGreaterThan(0);
  for (let i = 0; i < chars.length; i++) await settledNow(env.target.write(address + i * PAGE, pageOf(byte(chars[i]!))));
  return address;
}

/** Calls UFFDIO_COPY of one page (or `len` bytes) from `src` to `dst`. */
export function copyPage(uffd: Userfaultfd, dst: number, src: number, len = PAGE, mode = 0): CopyResult {
  return uffd.copy({ dst, src, len, mode });
}

/** Returns 1 when `process` has a present PTE at `address`, else 0. */
export function present(env: Env, address: number, process = env.target): number {
  return env.kernel.core.exports.pte_read(process.mm.pgd, address) & 1;
}

/** The uffd-wp bit of a PTE in the wasm core. */
const PTE_UFFD_WP = 1 << 10;
/** The frame address bits of a PTE in the wasm core. */
const PTE_FRAME_MASK = 0xfffff000;

/** Returns 1 when the PTE at `address` in `process` carries the uffd-wp bit, else 0. */
export function wpBit(env: Env, address: number, process = env.target): number {
  return (env.kernel.core.exports.pte_read(process.mm.pgd, address) & PTE_UFFD_WP) !== 0 ? 1 : 0;
}

/** Returns the frame mapped at `address` in `process`, 0 when none. */
export function frameAt(env: Env, address: number, process = env.target): number {
  return (env.kernel.core.exports.pte_read(process.mm.pgd, address) & PTE_FRAME_MASK) >>> 0;
}

/**
 * Returns the userfaultfd flags of the VMA at `address` in the words of the
 * measurements: "um" (missing), "uw" (write-protect) and "ui" (minor)
 * joined by spaces, "none" when unregistered, "novma" when nothing is mapped.
 */
export function vmflags(process: Process, address: number): string {
  const vma = process.mm.vmaLookup(address);
  if (vma === undefined) return "novma";
  const names = (["um", "uw", "ui"] as const).filter((_, bit) => (vma.uffdFlags & (1 << bit)) !== 0);
  return names.length === 0 ? "none" : names.join(" ");
}

/** Reads one byte at `address` in `process`, failing when the access blocks. */
export async function byteAt(env: Env, address: number, process = env.target): Promise<number> {
  const data = await settledNow(process.read(address, 1));
  return data[0]!;
}

/** Reads the next message of `uffd`, checks that it is a page fault and returns it. */
export function readFault(uffd: Userfaultfd): PagefaultMsg {
  const msg = uffd.read();
  expect("event" in msg ? msg.event : msg.errno, "next message is a PAGEFAULT").toBe(UFFD_EVENT_PAGEFAULT);
  return msg as PagefaultMsg;
}

/** The addresses the gate checks use while an event is pending. */
export interface GateTargets {
  /** A missing page in the range the event changes. */
  affected: number;
  /** Two missing pages elsewhere in the same userfaultfd's ranges, registered MISSING and WP. */
  elsewhere: number;
  /** A missing page registered to `otherUffd`. */
  otherPage: number;
  otherUffd: Userfaultfd;
  /** A source page for the COPYs. */
  src: number;
}

/**
 * Checks the ioctls of env.uffd while a non-cooperative event is unread, as
 * measured: the fills, WRITEPROTECT and MOVE return EAGAIN (with -EAGAIN in
 * their out-fields), WAKE succeeds, and another userfaultfd is not gated.
 */
export function expectGated(env: Env, targets: GateTargets): void {
  const { affected, elsewhere, src } = targets;
  expect(copyPage(env.uffd, elsewhere, src), "COPY").toEqual({ errno: EAGAIN, copy: -EAGAIN });
  expect(copyPage(env.uffd, affected, src).errno, "COPY in the changing range").toBe(EAGAIN);
  expect(env.uffd.zeropage({ start: elsewhere, len: PAGE, mode: 0 }), "ZEROPAGE").toEqual({ errno: EAGAIN, zeropage: -EAGAIN });
  const writeprotect = env.uffd.writeprotect({ start: elsewhere, len: PAGE, mode: UFFDIO_WRITEPROTECT_MODE_WP });
  expect(writeprotect, "WRITEPROTECT").toEqual({ errno: EAGAIN });
  const move = env.uffd.move({ dst: elsewhere, src: elsewhere + PAGE, len: PAGE, mode: 0 });
  expect(move, "MOVE").toEqual({ errno: EAGAIN, move: -EAGAIN });
  expect(env.uffd.wake({ start: elsewhere, len: PAGE }), "WAKE").toEqual({ errno: 0 });
  expect(copyPage(targets.otherUffd, targets.otherPage, src), "COPY on another userfaultfd").toEqual({ errno: 0, copy: PAGE });
}

/** What copyWithRetries saw: the first result, the last one, and the EAGAIN retries between. */
export interface RetriedCopy {
  first: CopyResult;
  final: CopyResult;
  retries: number;
}

/**
 * Calls UFFDIO_COPY of one page and, while it returns EAGAIN, lets queued
 * work run (drain) and calls it again, as a monitor's retry loop does.
 * Gives up after 16 retries.
 */
export async function copyWithRetries(uffd: Userfaultfd, dst: number, src: number): Promise<RetriedCopy> {
  const first = copyPage(uffd, dst, src);
  let final = first;
  let retries = 0;
  while (final.errno === EAGAIN && retries < 16) {
    await drain();
    retries++;
    final = copyPage(uffd, dst, src);
  }
  return { first, final, retries };
}
