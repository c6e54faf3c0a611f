// Raw access to the kernel model's state for the invariant checker's tests:
// the frame pool and page-table entries in the wasm core's linear memory,
// and the checker's findings as a list.

import { checkInvariants, InvariantViolation, type InvariantFinding, type InvariantRule, type Kernel } from "../src/index.js";

const PAGE = 4096;

// PTE bits and frame kinds of the wasm core, stated here so a change there fails these tests.
export const PTE_PRESENT = 1 << 0;
export const PTE_WRITE = 1 << 1;
export const PTE_FRAME_MASK = 0xfffff000;
export const FRAME_FREE = 0;

/** Returns the findings of checkInvariants, or [] when it passes. */
export function findingsOf(kernel: Kernel): readonly InvariantFinding[] {
  try {
    checkInvariants(kernel);
    return [];
  } catch (error) {
    if (!(error instanceof InvariantViolation)) throw error;
    return error.findings;
  }
}

/** Returns the findings of `rule`, for asserting one finding among the consequences of a corruption. */
export function findingsFor(kernel: Kernel, rule: InvariantRule): readonly InvariantFinding[] {
  return findingsOf(kernel).filter((finding) => finding.rule === rule);
}

/** Raw access to the frame pool in linear memory, as the frames_layout record describes it. */
export class RawPool {
  constructor(private readonly kernel: Kernel) {}

  private get words(): Uint32Array {
    return new Uint32Array(this.kernel.core.exports.memory.buffer);
  }

  private layoutWord(i: number): number {
    return this.words[(this.kernel.core.exports.frames_layout() >>> 0) / 4 + i]!;
  }

  get frameBase(): number {
    return this.layoutWord(3);
  }

  private index(frame: number): number {
    return (frame - this.frameBase) / PAGE;
  }

  refcount(frame: number): number {
    return this.words[this.layoutWord(0) / 4 + this.index(frame)]!;
  }

  setRefcount(frame: number, value: number): void {
    this.words[this.layoutWord(0) / 4 + this.index(frame)] = value;
  }

  setKind(frame: number, kind: number): void {
    new Uint8Array(this.kernel.core.exports.memory.buffer)[this.layoutWord(2) + this.index(frame)] = kind;
  }

  /** Returns the frame index in free-ring slot `slot`, and overwrites it with `index` when given. */
  freeRingSlot(slot: number, index?: number): number {
    const word = this.layoutWord(1) / 4 + slot;
    if (index !== undefined) this.words[word] = index;
    return this.words[word]!;
  }

  get freeHead(): number {
    return this.layoutWord(6);
  }

  /** Returns the address of the entry at `level` (0 PGD, 3 PTE) covering `va` in the tree at `root`. */
  entrySlot(root: number, va: number, level: number): number {
    let table = root;
    for (let l = 0; l <= level; l++) {
      const slot = table + (Math.floor(va / 2 ** (39 - 9 * l)) % 512) * 8;
      if (l === level) return slot;
      table = (this.entry(slot) & PTE_FRAME_MASK) >>> 0;
      if (table === 0) throw new Error(`no level-${l + 1} table for 0x${va.toString(16)}`);
    }
    throw new Error("unreachable");
  }

  /** Returns the low 32 bits of the entry at `slot` (the core keeps the high half 0). */
  entry(slot: number): number {
    return this.words[slot / 4]!;
  }

  setEntry(slot: number, low: number, high = 0): void {
    this.words[slot / 4] = low;
    this.words[slot / 4 + 1] = high;
  }
}
