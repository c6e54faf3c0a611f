// The transparency oracle: what each target process's memory must read
// when a lazy-restore monitor does its job, whatever the interleaving.
//
// A restored process must not be able to tell that its pages arrive late.
// So each read it makes must return what an eagerly restored process would
// read: the snapshot, with the process's own later writes applied, zeros
// after its own MADV_DONTNEED or MADV_REMOVE, moved by its own mremap, gone
// (SIGSEGV) after its own munmap, and at fork a copy of the parent's view.
// The oracle keeps that reference page by page, per process id, and never
// looks at the simulated kernel.

import { PAGE_SIZE, SIGBUS, SIGSEGV } from "../constants.js";
import { SignalError } from "../errors.js";
import type { RunResult } from "../sched/scheduler.js";

/** The result of a read: the bytes, or the signal that ended it. */
export type ReadOutcome = Uint8Array | SignalError;

export class Oracle {
  /** Per process id: page address → the page's expected contents. A missing page is unmapped. */
  private readonly memory = new Map<number, Map<number, Uint8Array>>();
  /** Violations found so far, in the order the reads happened. */
  readonly violations: string[] = [];

  /** Starts tracking process `pid` with the snapshot `pages` (page address → contents). */
  addProcess(pid: number, pages: ReadonlyMap<number, Uint8Array>): void {
    checkWhole(pid, "pid");
    if (!(pages instanceof Map)) throw new TypeError("oracle: pages must be a Map of page address to contents");
    const copy = new Map<number, Uint8Array>();
    for (const [address, contents] of pages) {
      checkPage(address, contents);
      copy.set(address, contents.slice());
    }
    this.memory.set(pid, copy);
  }

  /** Applies a write of `data` at `address` by process `pid`. Throws RangeError for a write to unmapped memory. */
  write(pid: number, address: number, data: Uint8Array): void {
    checkWhole(address, "address");
    if (!(data instanceof Uint8Array)) throw new TypeError("oracle: data must be a Uint8Array");
    const pages = this.pages(pid);
    // Every page is checked before the first byte is written, so a failed write changes nothing.
    for (let page = pageStart(address); page < address + data.length; page += PAGE_SIZE) {
      if (!pages.has(page)) throw new RangeError(`oracle: process ${pid} writes unmapped memory at ${hex(Math.max(page, address))}`);
    }
    for (let done = 0; done < data.length; ) {
      const at = address + done;
      const page = pageStart(at);
      const contents = pages.get(page)!;
      const length = Math.min(data.length - done, page + PAGE_SIZE - at);
      contents.set(data.subarray(done, done + length), at - page);
      done += length;
    }
  }

  /** Zeroes the mapped pages of [start, end) of process `pid`, as MADV_DONTNEED on private anonymous memory does. */
  zero(pid: number, start: number, end: number): void {
    checkRange(start, end);
    const pages = this.pages(pid);
    for (let page = start; page < end; page += PAGE_SIZE) {
      if (pages.has(page)) pages.set(page, new Uint8Array(PAGE_SIZE));
    }
  }

  /** Moves the pages of [from, from + length) of process `pid` to `to` (mremap of a whole range). */
  move(pid: number, from: number, to: number, length: number): void {
    checkRange(from, from + checkWhole(length, "length"));
    checkRange(to, to + length);
    const pages = this.pages(pid);
    const moved: Array<[number, Uint8Array]> = [];
    for (let offset = 0; offset < length; offset += PAGE_SIZE) {
      const contents = pages.get(from + offset);
      if (contents !== undefined) moved.push([to + offset, contents]);
      pages.delete(from + offset);
    }
    this.unmap(pid, to, to + length);
    for (const [address, contents] of moved) pages.set(address, contents);
  }

  /** Forgets the pages of [start, end) of process `pid`: reads there must raise SIGSEGV. */
  unmap(pid: number, start: number, end: number): void {
    checkRange(start, end);
    const pages = this.pages(pid);
    for (let page = start; page < end; page += PAGE_SIZE) pages.delete(page);
  }

  /** Starts tracking `childPid` with a copy of `parentPid`'s current memory (fork). */
  fork(parentPid: number, childPid: number): void {
    this.addProcess(childPid, this.pages(parentPid));
  }

  /** Returns the bytes process `pid` must read at [address, address + length), or null when a page of it is unmapped. */
  expected(pid: number, address: number, length: number): Uint8Array | null {
    checkWhole(address, "address");
    checkWhole(length, "length");
    const pages = this.pages(pid);
    const out = new Uint8Array(length);
    for (let done = 0; done < length; ) {
      const at = address + done;
      const page = pageStart(at);
      const contents = pages.get(page);
      if (contents === undefined) return null;
      const count = Math.min(length - done, page + PAGE_SIZE - at);
      out.set(contents.subarray(at - page, at - page + count), done);
      done += count;
    }
    return out;
  }

  /**
   * Checks one read by thread `reader` of process `pid` of `length` bytes at
   * `address` against the reference, and records a violation when they
   * differ. Returns the violation text, or null when the read is right.
   */
  checkRead(reader: string, pid: number, address: number, length: number, outcome: ReadOutcome): string | null {
    if (typeof reader !== "string") throw new TypeError("oracle: reader must be a string");
    if (!(outcome instanceof Uint8Array) && !(outcome instanceof SignalError)) {
      throw new TypeError("oracle: outcome must be a Uint8Array or a SignalError");
    }
    const expected = this.expected(pid, address, length);
    const isSegv = outcome instanceof SignalError && outcome.signo === SIGSEGV;
    const same = expected === null ? isSegv : !(outcome instanceof SignalError) && equalBytes(expected, outcome);
    if (same) return null;
    // The descriptions are built only for a violation: they cost more than the comparison.
    const want = expected === null ? "SIGSEGV" : describeBytes(expected);
    const got = outcome instanceof SignalError ? signalName(outcome) : describeBytes(outcome);
    const text = `${reader} read ${length} bytes at ${hex(address)}: expected ${want}, read ${got}`;
    this.violations.push(text);
    return text;
  }

  private pages(pid: number): Map<number, Uint8Array> {
    checkWhole(pid, "pid");
    const pages = this.memory.get(pid);
    if (pages === undefined) throw new RangeError(`oracle: process ${pid} is not tracked`);
    return pages;
  }
}

/**
 * Returns the violations a run's end reveals: a deadlock, with what each
 * thread waits for, or the error a thread threw. A run that finished has
 * none.
 */
export function runViolations(result: RunResult): string[] {
  if (result.status === "deadlock") {
    const waits = result.blocked.map((entry) => `${entry.thread} waits for ${entry.waitsFor}`);
    return [`deadlock: ${waits.join("; ")}`];
  }
  if (result.status === "failed") {
    const error = result.error instanceof Error ? `${result.error.name}: ${result.error.message}` : String(result.error);
    return [`thread ${result.failedThread ?? "(none)"} failed: ${error}`];
  }
  return [];
}

/** Formats `value` as a hexadecimal address. */
export function hex(value: number): string {
  return `0x${value.toString(16)}`;
}

/**
 * Describes bytes as runs of equal values, such as "4096 × 0x41" or
 * "100 × 0x41, 3996 × 0x00"; more than three runs are cut with "…".
 */
export function describeBytes(bytes: Uint8Array): string {
  if (bytes.length === 0) return "no bytes";
  const runs: string[] = [];
  let start = 0;
  for (let i = 1; i <= bytes.length; i++) {
    if (i < bytes.length && bytes[i] === bytes[start]) continue;
    if (runs.length === 3) {
      runs.push("…");
      break;
    }
    runs.push(`${i - start} × 0x${bytes[start]!.toString(16).padStart(2, "0")}`);
    start = i;
  }
  return runs.join(", ");
}

function signalName(error: SignalError): string {
  if (error.signo === SIGSEGV) return "SIGSEGV";
  return error.signo === SIGBUS ? "SIGBUS" : `signal ${error.signo}`;
}

function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  // Whole pages compare four bytes at a time when both views are aligned.
  if (a.length % 4 === 0 && a.byteOffset % 4 === 0 && b.byteOffset % 4 === 0) {
    const wordsA = new Uint32Array(a.buffer, a.byteOffset, a.length / 4);
    const wordsB = new Uint32Array(b.buffer, b.byteOffset, b.length / 4);
    for (let i = 0; i < wordsA.length; i++) if (wordsA[i] !== wordsB[i]) return false;
    return true;
  }
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

function pageStart(address: number): number {
  return address - (address % PAGE_SIZE);
}

/** Returns `value`; throws TypeError unless it is a number and RangeError unless it is a whole number >= 0. */
function checkWhole(value: number, name: string): number {
  if (typeof value !== "number") throw new TypeError(`oracle: ${name} must be a number, got ${value === null ? "null" : typeof value}`);
  if (!Number.isSafeInteger(value) || value < 0) throw new RangeError(`oracle: ${name} must be a whole number >= 0, got ${value}`);
  return value;
}

/** Throws unless `start` and `end` are whole numbers, `start` is page aligned and `end` is not below it. */
function checkRange(start: number, end: number): void {
  checkWhole(start, "start");
  checkWhole(end, "end");
  if (start % PAGE_SIZE !== 0) throw new RangeError(`oracle: range start ${hex(start)} is not page aligned`);
  if (end < start) throw new RangeError(`oracle: range end ${hex(end)} is below its start ${hex(start)}`);
}

function checkPage(address: number, contents: Uint8Array): void {
  checkWhole(address, "page address");
  if (!(contents instanceof Uint8Array)) throw new TypeError(`oracle: contents of page ${hex(address)} must be a Uint8Array`);
  if (address % PAGE_SIZE !== 0) throw new RangeError(`oracle: page address ${hex(address)} is not page aligned`);
  if (contents.length !== PAGE_SIZE) throw new RangeError(`oracle: page ${hex(address)} has ${contents.length} bytes, not ${PAGE_SIZE}`);
}
