// Snapshots of everything a call can change in a simulated kernel, for
// tests that check that a rejected call left the kernel as it was. A
// snapshot covers every process's VMAs, PTEs, page contents and file
// table, every userfaultfd context with its queues, every file's page
// cache, the frames in use and the stats counters.

import { expect } from "vitest";
import { PAGE_SIZE, type Kernel, type KernelStats, type MappedFile, type Process, type Userfaultfd } from "../src/index.js";
import type { UffdContext } from "../src/uffd/context.js";
import { PTE_FRAME_MASK, PTE_PRESENT } from "../src/wasm/core.js";

/**
 * The maximum number of pages the snapshot reads per VMA or file. Test
 * layouts are a few pages, and a bigger one would make every snapshot
 * slow, so the snapshot fails instead.
 */
const MAX_PAGES = 4096;

export interface VmaState {
  readonly start: number;
  readonly end: number;
  readonly prot: number;
  readonly flags: number;
  /** The mapped file's name, or null for private anonymous memory. */
  readonly file: string | null;
  readonly pgoff: number;
  readonly mayWrite: boolean;
  /** Index of the owning context in StateSnapshot.contexts, or -1. */
  readonly uffdCtx: number;
  readonly uffdFlags: number;
}

/** One non-empty entry: its address or offset, the raw entry, and a digest of the page when a frame is mapped. */
export type EntryState = readonly [address: number, entry: number, digest: number | null];

export interface ProcessState {
  readonly pid: number;
  readonly exited: boolean;
  readonly vmas: readonly VmaState[];
  readonly ptes: readonly EntryState[];
  /** Open userfaultfd handles by descriptor. */
  readonly files: readonly { readonly fd: number; readonly ctx: number; readonly nonblocking: boolean; readonly closed: boolean }[];
}

export interface ContextState {
  readonly flags: number;
  readonly features: number;
  readonly apiDone: boolean;
  readonly released: boolean;
  readonly mmapChanging: number;
  readonly files: number;
  /** Addresses of the faults not yet read, then of those read but still asleep. */
  readonly faultPending: readonly number[];
  readonly faultRead: readonly number[];
  /** Event numbers of the unread events. */
  readonly events: readonly number[];
}

export interface FileState {
  readonly name: string;
  readonly kind: string;
  readonly size: number;
  readonly readOnly: boolean;
  readonly closed: boolean;
  readonly freed: boolean;
  /** Page-cache entries: offset, raw entry, digest of the page. */
  readonly pages: readonly EntryState[];
}

export interface StateSnapshot {
  readonly framesUsed: number;
  readonly stats: KernelStats;
  readonly processes: readonly ProcessState[];
  readonly contexts: readonly ContextState[];
  readonly files: readonly FileState[];
}

/** Returns an FNV-1a hash of the 4 KiB page at linear-memory address `frame`, word by word. */
function pageDigest(kernel: Kernel, frame: number): number {
  const words = new Uint32Array(kernel.core.exports.memory.buffer, frame, PAGE_SIZE / 4);
  let hash = 0x811c9dc5;
  for (let i = 0; i < words.length; i++) hash = Math.imul(hash ^ words[i]!, 0x01000193) >>> 0;
  return hash;
}

/** Returns the entry with a digest of its frame, when the entry maps one. */
function entryState(kernel: Kernel, address: number, entry: number): EntryState {
  const present = (entry & PTE_PRESENT) !== 0;
  return [address, entry, present ? pageDigest(kernel, (entry & PTE_FRAME_MASK) >>> 0) : null];
}

function checkSize(pages: number, subject: string): void {
  if (pages > MAX_PAGES) throw new Error(`state snapshot: ${subject} has ${pages} pages, more than ${MAX_PAGES}; keep test layouts small`);
}

function processState(kernel: Kernel, process: Process, contexts: readonly UffdContext[]): ProcessState {
  const core = kernel.core.exports;
  const mm = process.mm;
  const vmas: VmaState[] = [];
  const ptes: EntryState[] = [];
  for (const vma of mm.vmaList()) {
    vmas.push({
      start: vma.start, end: vma.end, prot: vma.prot, flags: vma.flags, file: vma.file?.name ?? null, pgoff: vma.pgoff,
      mayWrite: vma.mayWrite, uffdCtx: vma.uffdCtx === null ? -1 : contexts.indexOf(vma.uffdCtx), uffdFlags: vma.uffdFlags,
    });
    if (mm.pgd === 0) continue;
    checkSize(vma.length / PAGE_SIZE, `the VMA at 0x${vma.start.toString(16)} of process ${process.pid}`);
    for (let address = vma.start; address < vma.end; address += PAGE_SIZE) {
      const pte = core.pte_read(mm.pgd, address) >>> 0;
      if (pte !== 0) ptes.push(entryState(kernel, address, pte));
    }
  }
  const files = [...process.files.entries()]
    .sort(([a], [b]) => a - b)
    .map(([fd, file]: [number, Userfaultfd]) => ({ fd, ctx: contexts.indexOf(file.ctx), nonblocking: file.nonblocking, closed: file.closed }));
  return { pid: process.pid, exited: process.exited, vmas, ptes, files };
}

function contextState(ctx: UffdContext): ContextState {
  return {
    flags: ctx.flags, features: ctx.features, apiDone: ctx.apiDone, released: ctx.released, mmapChanging: ctx.mmapChanging,
    files: ctx.files, faultPending: ctx.faultPending.map((waiter) => waiter.address),
    faultRead: [...ctx.faultRead].map((waiter) => waiter.address), events: ctx.eventQueue.map((event) => event.event),
  };
}

function fileState(kernel: Kernel, file: MappedFile): FileState {
  const pages: EntryState[] = [];
  const count = Math.ceil(file.size / PAGE_SIZE);
  checkSize(count, `file ${file.name}`);
  for (let page = 0; file.cache !== 0 && page < count; page++) {
    const entry = kernel.core.exports.cache_entry(file.cache, page * PAGE_SIZE) >>> 0;
    if (entry !== 0) pages.push(entryState(kernel, page * PAGE_SIZE, entry));
  }
  return { name: file.name, kind: file.kind, size: file.size, readOnly: file.readOnly, closed: file.closed, freed: file.cache === 0, pages };
}

/**
 * Returns the state of `kernel` as plain data, equal for two calls exactly
 * when nothing a call can change has changed in between.
 */
export function snapshot(kernel: Kernel): StateSnapshot {
  const contexts = [...kernel.contexts];
  const processes = [...kernel.processes.values()].sort((a, b) => a.pid - b.pid);
  return {
    framesUsed: kernel.framesUsed,
    stats: { ...kernel.stats },
    processes: processes.map((process) => processState(kernel, process, contexts)),
    contexts: contexts.map(contextState),
    files: [...kernel.files].map((file) => fileState(kernel, file)),
  };
}

/**
 * Asserts that `kernel` is in state `before`, except that the stats
 * counters named in `counted` went up by the given amounts (a rejected
 * ioctl still counts as a call in `ioctls`).
 */
export function expectUnchanged(kernel: Kernel, before: StateSnapshot, label: string, counted: Partial<KernelStats> = {}): void {
  const stats = { ...before.stats };
  for (const [key, delta] of Object.entries(counted) as [keyof KernelStats, number][]) stats[key] += delta;
  expect(snapshot(kernel), `state after ${label}`).toEqual({ ...before, stats });
}
