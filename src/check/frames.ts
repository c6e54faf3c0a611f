// The frame-pool half of the invariant checker. It reads the pool's layout
// through the frames_layout export, walks every page-table and page-cache
// tree the kernel owns straight from linear memory, and compares the
// holders it counted with each frame's kind and refcount. It never writes
// memory and never calls an export that changes state.

import { PAGE_SIZE } from "../constants.js";
import type { Kernel } from "../mm/kernel.js";
import {
  PTE_DIRTY, PTE_EXCLUSIVE, PTE_FRAME_MASK, PTE_POISON, PTE_PRESENT, PTE_UFFD_WP, PTE_WRITE, PTE_ZERO, type WasmCore,
} from "../wasm/core.js";
import type { InvariantFinding, InvariantRule } from "./invariants.js";

// Frame kinds, as assembly/frames.ts stores them in its kind array.
const FRAME_FREE = 0;
const FRAME_PAGE = 1;
const FRAME_TABLE = 2;
const FRAME_ROOT = 3;
const FRAME_BENCH = 4;
const FRAME_ZERO = 5;
const KIND_NAMES = ["FREE", "PAGE", "TABLE", "ROOT", "BENCH", "ZERO"];

/** The bits a present PTE may carry besides the frame address. */
const PTE_KNOWN_BITS = PTE_PRESENT | PTE_WRITE | PTE_DIRTY | PTE_EXCLUSIVE | PTE_ZERO | PTE_UFFD_WP;
/** The bits a page-cache entry may carry besides the frame address. */
const CACHE_KNOWN_BITS = PTE_PRESENT | PTE_POISON;
/** Bytes of address space one entry covers at each level: PGD, PUD, PMD, PTE. */
const LEVEL_SPANS = [2 ** 39, 2 ** 30, 2 ** 21, 2 ** 12];
const ENTRY_NAMES = ["PGD entry", "PUD entry", "PMD entry", "PTE"];
/** Holders listed per frame in a refcount finding. */
const MAX_HOLDERS_SHOWN = 4;

const hex = (value: number) => `0x${value.toString(16)}`;
const kindName = (kind: number) => KIND_NAMES[kind] ?? `unknown kind ${kind}`;
const plural = (count: number, noun: string) => `${count} ${noun}${count === 1 ? "" : "s"}`;

/** The pool's layout and counters, as frames_layout writes them (ten u32 words). */
interface PoolLayout {
  readonly refcountBase: number;
  readonly freeRingBase: number;
  readonly kindBase: number;
  readonly frameBase: number;
  readonly capacity: number;
  /** Frames handed out at least once; frames from this index on were never used. */
  readonly frameNext: number;
  readonly freeHead: number;
  readonly freeCount: number;
  readonly framesUsed: number;
  readonly zeroFrame: number;
}

/** Read-only accessors for the frame pool in one core's linear memory. */
class Pool {
  readonly layout: PoolLayout;
  readonly words: Uint32Array;
  private readonly bytes: Uint8Array;
  readonly zeroIndex: number;

  constructor(core: WasmCore) {
    const buffer = core.exports.memory.buffer;
    const record = new Uint32Array(buffer, core.exports.frames_layout() >>> 0, 10);
    this.layout = {
      refcountBase: record[0]!,
      freeRingBase: record[1]!,
      kindBase: record[2]!,
      frameBase: record[3]!,
      capacity: record[4]!,
      frameNext: record[5]!,
      freeHead: record[6]!,
      freeCount: record[7]!,
      framesUsed: record[8]!,
      zeroFrame: record[9]!,
    };
    this.words = new Uint32Array(buffer);
    this.bytes = new Uint8Array(buffer);
    this.zeroIndex = this.indexOf(this.layout.zeroFrame);
  }

  /** Returns the index of the frame at `address`, or -1 when no frame handed out starts there. */
  indexOf(address: number): number {
    const { frameBase, frameNext } = this.layout;
    if (address < frameBase || address % PAGE_SIZE !== 0) return -1;
    const index = (address - frameBase) / PAGE_SIZE;
    return index < frameNext ? index : -1;
  }

  address(index: number): number {
    return this.layout.frameBase + index * PAGE_SIZE;
  }

  kind(index: number): number {
    return this.bytes[this.layout.kindBase + index]!;
  }

  refcount(index: number): number {
    return this.words[this.layout.refcountBase / 4 + index]!;
  }

  /** Names a frame in messages: its address and kind. */
  describe(index: number): string {
    return `frame ${hex(this.address(index))} (${kindName(this.kind(index))})`;
  }
}

/** The root of one tree the kernel owns: a process's page table or a file's page cache. */
interface TreeOwner {
  /** A "process" tree is indexed by virtual address, a "file" tree by file offset. */
  readonly kind: "process" | "file";
  readonly root: number;
  /** Names the owner in messages, for example `pid 3` or `file "data"`. */
  readonly name: string;
}

/** The state of one walk over every tree. */
interface Walk {
  readonly pool: Pool;
  /** Entries and owners found pointing at each frame, by frame index. */
  readonly holders: Uint32Array;
  /** Tables already walked, so a table with two parents is counted once. */
  readonly walked: Uint8Array;
  /** The findings list; null in the tracing pass, which only records holders. */
  readonly findings: InvariantFinding[] | null;
  /** In the tracing pass: the frames whose holders to describe, with the descriptions so far. */
  readonly trace: Map<number, string[]> | null;
}

/**
 * Appends a finding about the entry at `level` covering `va` in `owner`'s
 * tree (level -1: the owner's root itself). The entry's name is built
 * here, so a walk that finds nothing builds no strings.
 */
function report(walk: Walk, rule: InvariantRule, owner: TreeOwner, level: number, va: number, text: string, frame?: number): void {
  if (walk.findings === null) return;
  const message = `${entryName(owner, level, va)}: ${text}`;
  walk.findings.push(frame === undefined ? { rule, message } : { rule, message, frame });
}

/** Names the entry at `level` that covers `va` in `owner`'s tree, or the owner's root at level -1. */
function entryName(owner: TreeOwner, level: number, va: number): string {
  if (level < 0) return `${owner.name} ${owner.kind === "process" ? "page-table root (pgd)" : "page-cache root"} ${hex(owner.root)}`;
  if (owner.kind === "process") return `${owner.name} ${ENTRY_NAMES[level]} for ${hex(va)}`;
  const entry = level === 3 ? "entry" : ENTRY_NAMES[level];
  return `${owner.name} page-cache ${entry} for offset ${hex(va)}`;
}

/** Formats a u64 entry given as two u32 halves. */
function entryHex(low: number, high: number): string {
  return hex(high * 2 ** 32 + low);
}

/** Counts the entry (or, at level -1, the owner) as a holder of frame `index`. */
function hold(walk: Walk, index: number, owner: TreeOwner, level: number, va: number): void {
  walk.holders[index]!++;
  const shown = walk.trace?.get(index);
  if (shown !== undefined && shown.length < MAX_HOLDERS_SHOWN) shown.push(level < 0 ? owner.name : entryName(owner, level, va));
}

/**
 * Returns the index of the frame an entry points at when `accepts` takes
 * its kind; otherwise reports why not and returns -1.
 */
function checkTarget(
  walk: Walk, owner: TreeOwner, level: number, va: number, target: number, expected: string, accepts: (kind: number) => boolean,
): number {
  const pool = walk.pool;
  const index = pool.indexOf(target);
  if (index < 0) {
    report(walk, "entry-target", owner, level, va, `points at ${hex(target)}, which is not a frame of the pool; expected ${expected}`);
    return -1;
  }
  const kind = pool.kind(index);
  if (kind === FRAME_FREE) {
    report(walk, "free-mapped", owner, level, va, `points at ${pool.describe(index)}, which is free`, target);
    return -1;
  }
  if (!accepts(kind)) {
    report(walk, "entry-target", owner, level, va, `points at ${pool.describe(index)}; expected ${expected}`, target);
    return -1;
  }
  return index;
}

const isTable = (kind: number) => kind === FRAME_TABLE;
const isPage = (kind: number) => kind === FRAME_PAGE;
const isPageOrZero = (kind: number) => kind === FRAME_PAGE || kind === FRAME_ZERO;
const isRoot = (kind: number) => kind === FRAME_ROOT;

/** Checks an upper-level entry and walks the table it points at, once. */
function visitTableEntry(walk: Walk, owner: TreeOwner, level: number, va: number, low: number, high: number): void {
  if (high !== 0 || (low & (PAGE_SIZE - 1)) !== PTE_PRESENT) {
    report(walk, "entry-bits", owner, level, va, `holds ${entryHex(low, high)}; an upper-level entry is a table address | PRESENT`);
  }
  if ((low & PTE_PRESENT) === 0) return;
  const target = (low & PTE_FRAME_MASK) >>> 0;
  const index = checkTarget(walk, owner, level, va, target, "a TABLE frame", isTable);
  if (index < 0) return;
  hold(walk, index, owner, level, va);
  if (walk.walked[index] !== 0) return;
  walk.walked[index] = 1;
  walkTable(walk, owner, target, level + 1, va);
}

/** Checks a leaf entry of a process's page table and counts the frame it maps. */
function visitPte(walk: Walk, owner: TreeOwner, va: number, low: number, high: number): void {
  if (high !== 0) report(walk, "entry-bits", owner, 3, va, `holds ${entryHex(low, high)}, with bits above 32 set`);
  const flags = low & (PAGE_SIZE - 1);
  if ((flags & PTE_PRESENT) === 0) {
    if (low !== PTE_UFFD_WP && low !== PTE_POISON) {
      const text = `holds ${entryHex(low, high)}; a non-present PTE is none, a uffd-wp marker (0x400) or a poison marker (0x800)`;
      report(walk, "entry-bits", owner, 3, va, text);
    }
    return;
  }
  const unknown = flags & ~PTE_KNOWN_BITS;
  if (unknown !== 0) report(walk, "entry-bits", owner, 3, va, `holds ${entryHex(low, high)}, with unknown bits ${hex(unknown)}`);
  const target = (low & PTE_FRAME_MASK) >>> 0;
  const index = checkTarget(walk, owner, 3, va, target, "a PAGE frame or the zero frame", isPageOrZero);
  if (index < 0) return;
  const pool = walk.pool;
  if (index === pool.zeroIndex) {
    if ((flags & PTE_ZERO) === 0) report(walk, "entry-bits", owner, 3, va, `maps the zero frame without the ZERO bit (entry ${entryHex(low, high)})`, target);
    if ((flags & (PTE_WRITE | PTE_EXCLUSIVE)) !== 0) {
      report(walk, "entry-bits", owner, 3, va, `maps the zero frame writable or exclusive (entry ${entryHex(low, high)})`, target);
    }
  } else {
    if ((flags & PTE_ZERO) !== 0) report(walk, "entry-bits", owner, 3, va, `has the ZERO bit but maps ${pool.describe(index)}`, target);
    if ((flags & PTE_EXCLUSIVE) !== 0 && pool.refcount(index) !== 1) {
      report(walk, "exclusive", owner, 3, va, `maps ${pool.describe(index)} as exclusive, but its refcount is ${pool.refcount(index)}`, target);
    }
  }
  hold(walk, index, owner, 3, va);
}

/** Checks a leaf entry of a page cache and counts the frame it holds. */
function visitCacheEntry(walk: Walk, owner: TreeOwner, offset: number, low: number, high: number): void {
  if (high !== 0 || (low & PTE_PRESENT) === 0 || (low & (PAGE_SIZE - 1) & ~CACHE_KNOWN_BITS) !== 0) {
    const text = `holds ${entryHex(low, high)}; a page-cache entry is a frame address | PRESENT, plus POISON after a memory error`;
    report(walk, "entry-bits", owner, 3, offset, text);
  }
  if ((low & PTE_PRESENT) === 0) return;
  const target = (low & PTE_FRAME_MASK) >>> 0;
  const index = checkTarget(walk, owner, 3, offset, target, "a PAGE frame", isPage);
  if (index >= 0) hold(walk, index, owner, 3, offset);
}

/** Visits every non-zero entry of the table at `table`, which sits at `level` (0 for the root). */
function walkTable(walk: Walk, owner: TreeOwner, table: number, level: number, base: number): void {
  const words = walk.pool.words;
  const first = table / 4;
  // Spans come from a table because computing `2 ** shift` here made the
  // walk over ten times slower on Node 20.
  const span = LEVEL_SPANS[level]!;
  for (let i = 0; i < 512; i++) {
    const low = words[first + 2 * i]!;
    const high = words[first + 2 * i + 1]!;
    if (low === 0 && high === 0) continue;
    const va = base + i * span;
    if (level < 3) visitTableEntry(walk, owner, level, va, low, high);
    else if (owner.kind === "process") visitPte(walk, owner, va, low, high);
    else visitCacheEntry(walk, owner, va, low, high);
  }
}

/** Returns the trees the kernel owns: each live process's page table and each file's page cache. */
function treeOwners(kernel: Kernel): TreeOwner[] {
  const owners: TreeOwner[] = [];
  for (const process of kernel.processes.values()) {
    owners.push({ kind: "process", root: process.mm.pgd, name: `pid ${process.pid}` });
  }
  for (const file of kernel.files) owners.push({ kind: "file", root: file.cache, name: `file ${JSON.stringify(file.name)}` });
  return owners;
}

/** Counts every holder of every frame, reporting malformed entries unless this is the tracing pass. */
function walkAll(walk: Walk, owners: readonly TreeOwner[]): void {
  const pool = walk.pool;
  for (const owner of owners) {
    const index = pool.indexOf(owner.root);
    if (index < 0) {
      report(walk, "root-owner", owner, -1, 0, "is not a frame of the pool");
      continue;
    }
    const kind = pool.kind(index);
    if (!isRoot(kind)) {
      report(walk, kind === FRAME_FREE ? "free-mapped" : "root-owner", owner, -1, 0, `is a ${kindName(kind)} frame, not a ROOT frame`, owner.root);
      continue;
    }
    hold(walk, index, owner, -1, 0);
    if (walk.walked[index] !== 0) continue;
    walk.walked[index] = 1;
    walkTable(walk, owner, owner.root, 0, 0);
  }
}

/** Counts how often the free ring lists each frame, reporting slots that name no frame handed out. */
function countFreeRing(pool: Pool, findings: InvariantFinding[]): Uint8Array {
  const { freeRingBase, capacity, frameNext, freeHead, freeCount } = pool.layout;
  const listed = new Uint8Array(frameNext);
  if (freeCount > capacity || freeHead >= capacity) {
    findings.push({ rule: "free-ring", message: `free ring: head ${freeHead} and length ${freeCount} do not fit its ${capacity} slots` });
    return listed;
  }
  for (let i = 0; i < freeCount; i++) {
    const slot = (freeHead + i) % capacity;
    const index = pool.words[freeRingBase / 4 + slot]!;
    if (index >= frameNext) {
      findings.push({ rule: "free-ring", message: `free ring slot ${slot}: names frame index ${index}, but only ${frameNext} frames were handed out` });
    } else if (listed[index]! < 255) {
      listed[index]!++;
    }
  }
  return listed;
}

/** A finding about one frame whose message ends with the frame's holders. */
interface HolderFinding {
  readonly rule: InvariantRule;
  readonly index: number;
  readonly text: string;
}

/** Builds a finding about frame `index`, naming it first. */
function frameFinding(pool: Pool, index: number, rule: InvariantRule, text: string): InvariantFinding {
  return { rule, message: `${pool.describe(index)}: ${text}`, frame: pool.address(index) };
}

/**
 * Checks one frame in use against `count`, the holders the walk found.
 * Findings that need the holders listed go to `needHolders` for the
 * tracing pass.
 */
function checkUsedFrame(pool: Pool, index: number, count: number, findings: InvariantFinding[], needHolders: HolderFinding[]): void {
  const kind = pool.kind(index);
  const refcount = pool.refcount(index);
  const name = () => pool.describe(index);
  if (refcount === 0) findings.push(frameFinding(pool, index, "refcount", "in use with refcount 0"));
  switch (kind) {
    case FRAME_PAGE:
      if (refcount !== count) {
        needHolders.push({ rule: "refcount", index, text: `${name()}: refcount ${refcount}, but the page tables and page caches hold ${plural(count, "reference")}` });
      }
      break;
    case FRAME_ZERO:
      if (index !== pool.zeroIndex) {
        findings.push(frameFinding(pool, index, "frame-kind", `kind ZERO, but the zero frame is ${hex(pool.layout.zeroFrame)}`));
      } else if (refcount !== count + 1) {
        const text = `${name()}: refcount ${refcount}, but ${plural(count, "PTE")} map it (expected ${count + 1}: one pinned reference plus one per PTE)`;
        needHolders.push({ rule: "refcount", index, text });
      }
      break;
    case FRAME_TABLE:
      if (count !== 1) needHolders.push({ rule: "table-parents", index, text: `${name()}: referenced by ${count} parent entries instead of 1` });
      if (refcount !== 1) findings.push(frameFinding(pool, index, "refcount", `refcount ${refcount}, but a page table holds 1`));
      break;
    case FRAME_ROOT:
      if (count !== 1) needHolders.push({ rule: "root-owner", index, text: `${name()}: owned by ${count} live processes and files instead of 1` });
      if (refcount !== 1) findings.push(frameFinding(pool, index, "refcount", `refcount ${refcount}, but a root table holds 1`));
      break;
    case FRAME_BENCH:
      break;
    default:
      findings.push(frameFinding(pool, index, "frame-kind", "the kind byte is not a known FRAME_* value"));
  }
}

/**
 * Checks each frame handed out against the holders counted by the walk
 * and the free ring, then the pool's counters. Returns the findings that
 * need the holders listed, for the tracing pass.
 */
function checkEachFrame(pool: Pool, holders: Uint32Array, listed: Uint8Array, findings: InvariantFinding[]): HolderFinding[] {
  const needHolders: HolderFinding[] = [];
  const { frameNext, framesUsed, freeCount } = pool.layout;
  let used = 0;
  for (let index = 0; index < frameNext; index++) {
    if (pool.kind(index) === FRAME_FREE) {
      const refcount = pool.refcount(index);
      if (refcount !== 0) findings.push(frameFinding(pool, index, "free-refcount", `refcount ${refcount}, but a free frame has 0`));
      if (listed[index] !== 1) findings.push(frameFinding(pool, index, "free-ring", `listed ${listed[index]} times in the free ring instead of once`));
      continue;
    }
    used++;
    if (listed[index] !== 0) findings.push(frameFinding(pool, index, "free-ring", "in use, but listed in the free ring"));
    checkUsedFrame(pool, index, holders[index]!, findings, needHolders);
  }
  const zeroFrame = pool.layout.zeroFrame;
  if (pool.zeroIndex < 0 || pool.kind(pool.zeroIndex) !== FRAME_ZERO) {
    findings.push({ rule: "frame-kind", message: `the zero frame ${hex(zeroFrame)} is not a frame of kind ZERO`, frame: zeroFrame });
  }
  if (used !== framesUsed) {
    findings.push({ rule: "frames-used", message: `frames_used is ${framesUsed}, but ${used} frames have a kind other than FREE` });
  }
  if (framesUsed + freeCount !== frameNext) {
    findings.push({ rule: "frames-used", message: `frames_used ${framesUsed} plus ${freeCount} free frames is not the ${frameNext} frames handed out` });
  }
  return needHolders;
}

/** Counts the frames of benchmark buffers, which nothing in the kernel model owns. */
function countBenchFrames(pool: Pool): number {
  let count = 0;
  for (let index = 0; index < pool.layout.frameNext; index++) if (pool.kind(index) === FRAME_BENCH) count++;
  return count;
}

/** Checks the frame pool and every tree of `kernel`, appending what is wrong to `findings`. */
export function checkFrames(kernel: Kernel, findings: InvariantFinding[]): void {
  const pool = new Pool(kernel.core);
  const frameNext = pool.layout.frameNext;
  const owners = treeOwners(kernel);
  const walk: Walk = { pool, holders: new Uint32Array(frameNext), walked: new Uint8Array(frameNext), findings, trace: null };
  walkAll(walk, owners);
  const listed = countFreeRing(pool, findings);
  const needHolders = checkEachFrame(pool, walk.holders, listed, findings);

  if (needHolders.length > 0) {
    // A second walk lists the holders of the frames found wrong.
    const trace = new Map<number, string[]>(needHolders.map((finding) => [finding.index, []]));
    const tracing: Walk = { pool, holders: new Uint32Array(frameNext), walked: new Uint8Array(frameNext), findings: null, trace };
    walkAll(tracing, owners);
    for (const finding of needHolders) {
      const shown = trace.get(finding.index)!;
      const more = tracing.holders[finding.index]! > shown.length ? ", ..." : "";
      const list = shown.length === 0 ? "no holder" : `held by ${shown.join(", ")}${more}`;
      findings.push({ rule: finding.rule, message: `${finding.text}; ${list}`, frame: pool.address(finding.index) });
    }
  }

  if (kernel.processes.size === 0 && kernel.files.size === 0) {
    const expected = 1 + countBenchFrames(pool);
    if (pool.layout.framesUsed !== expected) {
      findings.push({
        rule: "leak",
        message: `no process and no file is left, but ${pool.layout.framesUsed} frames are in use instead of ${expected} (the zero frame plus benchmark buffers)`,
      });
    }
  }
}
