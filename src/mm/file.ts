// Files that can be mapped: shmem (memfd, shared anonymous memory) and
// regular files, each with a page cache kept in wasm memory.
// Linux counterparts: struct file and struct address_space; mm/shmem.c
// for shmem, and a regular file's page cache for the rest.

import { ENOMEM, PAGE_SIZE } from "../constants.js";
import { KernelError, requireNumber } from "../errors.js";
import { PTE_POISON } from "../wasm/core.js";
import type { Kernel } from "./kernel.js";

/** "shmem" files can be registered with userfaultfd; "regular" ones cannot. */
export type FileKind = "shmem" | "regular";

/** Returns whether `offset` is a whole number of bytes >= 0; throws TypeError unless it is a number. */
function isFileOffset(offset: unknown): boolean {
  return Number.isSafeInteger(requireNumber(offset, "offset")) && (offset as number) >= 0;
}

export class MappedFile {
  readonly kernel: Kernel;
  readonly kind: FileKind;
  readonly name: string;
  /** Size in bytes; an access at or past it gets SIGBUS. */
  readonly size: number;
  /** Opened read-only: a shared mapping of it cannot be made writable (no VM_MAYWRITE). */
  readonly readOnly: boolean;
  /** Root of the page-cache tree in wasm memory; 0 once the file is freed. */
  cache: number;
  /** The user's handle is closed; the file goes once no mapping is left. */
  closed = false;

  /** Use Kernel.memfdCreate() or Kernel.createFile(). */
  constructor(kernel: Kernel, kind: FileKind, name: string, size: number, readOnly: boolean, cache: number) {
    this.kernel = kernel;
    this.kind = kind;
    this.name = name;
    this.size = size;
    this.readOnly = readOnly;
    this.cache = cache;
  }

  private checkOffset(offset: number, length: number): void {
    this.kernel.core.checkUsable();
    requireNumber(offset, "offset");
    if (this.cache === 0) throw new Error(`file ${this.name}: already freed`);
    if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < 0 || length < 0 || offset + length > this.size) {
      throw new RangeError(`file ${this.name}: offset ${offset} and length ${length} reach outside its ${this.size} bytes`);
    }
  }

  /**
   * Writes `data` at `offset` through the page cache (pwrite(2)); holes get
   * zeroed pages. Returns the bytes written: all of `data`, or, when the
   * page cache cannot grow (no free frame), a short count that stops at the
   * first page it could not add, as pwrite's short write. Throws
   * KernelError(ENOMEM) when not even the first byte could be written.
   */
  write(offset: number, data: Uint8Array): number {
    if (!(data instanceof Uint8Array)) throw new TypeError("data must be a Uint8Array");
    this.checkOffset(offset, data.length);
    const core = this.kernel.core;
    let done = 0;
    while (done < data.length) {
      const at = offset + done;
      const page = at - (at % PAGE_SIZE);
      const frame = core.exports.cache_find_or_add_zero(this.cache, page) >>> 0;
      if (frame === 0) {
        if (done > 0) return done;
        throw new KernelError(ENOMEM, `file ${this.name}: no frame for the page cache at offset ${page}`);
      }
      const chunk = Math.min(data.length - done, page + PAGE_SIZE - at);
      core.bytes(frame + (at - page), chunk).set(data.subarray(done, done + chunk));
      done += chunk;
    }
    return done;
  }

  /** Reads `length` bytes at `offset` from the page cache (pread(2)); holes read as zeros. */
  read(offset: number, length: number): Uint8Array {
    requireNumber(length, "length");
    this.checkOffset(offset, length);
    const core = this.kernel.core;
    const out = new Uint8Array(length);
    let done = 0;
    while (done < length) {
      const at = offset + done;
      const page = at - (at % PAGE_SIZE);
      const chunk = Math.min(length - done, page + PAGE_SIZE - at);
      const frame = core.exports.cache_lookup(this.cache, page) >>> 0;
      if (frame !== 0) out.set(core.bytes(frame + (at - page), chunk), done);
      done += chunk;
    }
    return out;
  }

  /** Returns whether the page cache contains the page at `offset`; false for an offset that is no byte of a file. */
  hasPage(offset: number): boolean {
    this.kernel.core.checkUsable();
    if (!isFileOffset(offset)) return false;
    return this.cache !== 0 && (this.kernel.core.exports.cache_lookup(this.cache, offset - (offset % PAGE_SIZE)) >>> 0) !== 0;
  }

  /**
   * Marks the cached page at `offset` as hit by a memory error
   * (madvise(MADV_HWPOISON) on a mapping of it): UFFDIO_CONTINUE on it then
   * fails with EIO and a fault on it raises SIGBUS. Throws RangeError when
   * the cache has no page there.
   */
  hwpoison(offset: number): void {
    this.checkOffset(offset, 1);
    const page = offset - (offset % PAGE_SIZE);
    if (this.kernel.core.exports.cache_hwpoison(this.cache, page) !== 0) {
      throw new RangeError(`file ${this.name}: no cached page at offset ${page} to poison`);
    }
  }

  /** Returns whether the cached page at `offset` has a memory error; false for an offset that is no byte of a file. */
  isHwpoisoned(offset: number): boolean {
    this.kernel.core.checkUsable();
    if (!isFileOffset(offset)) return false;
    const entry = this.cache === 0 ? 0 : this.kernel.core.exports.cache_entry(this.cache, offset - (offset % PAGE_SIZE)) >>> 0;
    return (entry & PTE_POISON) !== 0;
  }

  /** Closes the user's handle; the page cache is freed once no mapping uses it. */
  close(): void {
    this.kernel.core.checkUsable();
    this.closed = true;
    this.kernel.releaseUnusedFiles();
  }
}
