// A streaming page-copy reference that other suites time interleaved with
// their own tasks. On a shared VM the speed of memory can drift by tens of
// percent within a minute, so a ratio is only sound between samples taken
// together.

import { Kernel } from "../../src/index.js";
import { PAGE_SIZE, formatBytes, type BenchConfig } from "../config.js";
import type { TaskSpec } from "../measure.js";
import { throughputFigure, type Figure, type LatencySummary } from "../stats.js";
import { STAGING_PAGES, allocateFrames } from "./setup.js";

/** The two reference shapes: from one hot source page, or from a STAGING_PAGES-page source. */
export type ReferenceKind = "streaming" | "streaming_wide_source";

export const referenceId = (prefix: string, kind: ReferenceKind) => `${prefix}.reference.${kind}`;

/** The model's default copy kernel filling a large destination 4 KiB at a time. */
export class StreamingReference {
  private readonly kernel: Kernel;
  private readonly src: number;
  private readonly dst: number;
  readonly pages: number;
  /** The kernel id the core selects by default; the reference times that kernel. */
  readonly copyKernel: number;

  private constructor(kernel: Kernel, src: number, dst: number, pages: number) {
    this.kernel = kernel;
    this.src = src;
    this.dst = dst;
    this.pages = pages;
    this.copyKernel = kernel.core.exports.get_copy_kernel();
  }

  /** Creates the reference buffers and touches every page once, outside any timing. */
  static async create(config: BenchConfig): Promise<StreamingReference> {
    const pages = config.streamingPages;
    const kernel = await Kernel.create({ maxMemory: config.maxMemory });
    const src = allocateFrames(kernel, STAGING_PAGES, "reference source");
    const dst = allocateFrames(kernel, pages, "reference destination");
    kernel.core.bytes(src, STAGING_PAGES * PAGE_SIZE).fill(0x3c);
    const reference = new StreamingReference(kernel, src, dst, pages);
    reference.copy(STAGING_PAGES);
    return reference;
  }

  private copy(srcPages: number): void {
    const status = this.kernel.core.exports.copy_pages_bench(this.copyKernel, this.dst, this.pages, this.src, srcPages, this.pages, 1);
    if (status !== 0) throw new Error(`copy_pages_bench over ${formatBytes(this.pages * PAGE_SIZE)} returned status ${status}`);
  }

  /** Returns the tasks of `kinds`, named under `prefix`, to add to a suite's measurement. */
  tasks(prefix: string, kinds: readonly ReferenceKind[]): TaskSpec[] {
    return kinds.map((kind) => ({
      name: referenceId(prefix, kind),
      fn: () => this.copy(kind === "streaming" ? 1 : STAGING_PAGES),
      async: false,
    }));
  }

  /** Returns the figures of the reference tasks measured under `prefix`. */
  figures(prefix: string, group: string, suite: string, kinds: readonly ReferenceKind[], summaries: Map<string, LatencySummary>): Figure[] {
    return kinds.map((kind) => {
      const id = referenceId(prefix, kind);
      const summary = summaries.get(id);
      if (summary === undefined) throw new Error(`no result for benchmark task "${id}"`);
      const srcPages = kind === "streaming" ? 1 : STAGING_PAGES;
      const source = kind === "streaming" ? "1-page source" : `${STAGING_PAGES}-page source`;
      return throughputFigure(
        {
          id,
          name: `reference: copy kernel streaming, ${source}`,
          group,
          suite,
          counts: { pagesPerSample: this.pages, dstPages: this.pages, srcPages },
          note: "timed interleaved with this section's tasks; ratios above use it",
        },
        summary,
        this.pages * PAGE_SIZE,
      );
    });
  }
}
