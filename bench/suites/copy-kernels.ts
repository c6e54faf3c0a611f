// Page copy kernels on their own, in GB/s: the wasm memory.copy and SIMD
// kernels (through the core's copy_pages_bench export, one host call per
// sample) and two JS baselines on kept views of the same wasm memory,
// Uint8Array.prototype.set and Node's Buffer.prototype.copy. Each runs warm (a few destination pages reused, in
// cache) and streaming (a large destination filled 4 KiB at a time), both
// fed from one hot source page.

import { Kernel } from "../../src/index.js";
// NOTE: the kernel ids are not re-exported by src/index.ts yet.
import { COPY_KERNEL_MEMORY_COPY, COPY_KERNEL_SIMD } from "../../src/wasm/core.js";
import { PAGE_SIZE, formatBytes, type SuiteContext } from "../config.js";
import { measureTasks, summaryOf } from "../measure.js";
import { throughputFigure, type Figure } from "../stats.js";
import { allocateFrames } from "./setup.js";

export const COPY_SUITE = "copy-kernels";
export const COPY_GROUP = "copy kernels (4 KiB pages)";
/** Destination pages the warm figures cycle through; the native anchor uses the same. */
export const WARM_DST_PAGES = 4;
/** Rounds of the interleaved measurement; the native anchor runs between each two. */
const COPY_ROUNDS = 8;

export const copyFigureId = (variant: CopyVariant, shape: "warm" | "streaming") => `copy.${variant}.${shape}`;
export const FIRST_TOUCH_ID = "copy.first_touch";

export type CopyVariant = "wasm_memory_copy" | "wasm_simd" | "js_set" | "js_buffer_copy";

export const COPY_VARIANTS: readonly CopyVariant[] = ["wasm_memory_copy", "wasm_simd", "js_set", "js_buffer_copy"];

export const VARIANT_NAMES: Record<CopyVariant, string> = {
  wasm_memory_copy: "wasm memory.copy",
  wasm_simd: "wasm SIMD v128",
  js_set: "JS Uint8Array.set",
  js_buffer_copy: "Node Buffer.copy",
};

/** The wasm kernel id of each wasm variant. */
const KERNEL_IDS: Partial<Record<CopyVariant, number>> = {
  wasm_memory_copy: COPY_KERNEL_MEMORY_COPY,
  wasm_simd: COPY_KERNEL_SIMD,
};

/** Returns the variant of the kernel the model's page copies use. */
export function modelCopyVariant(kernelId: number): CopyVariant {
  return kernelId === COPY_KERNEL_SIMD ? "wasm_simd" : "wasm_memory_copy";
}

export interface CopyKernelsResult {
  figures: Figure[];
  /** The kernel id the core selects by default (get_copy_kernel at start). */
  defaultKernel: number;
  wasmSha256: string;
}

/**
 * Times the copy kernels. `betweenRounds` runs between the rounds of the
 * interleaved measurement; the runner times the native anchor there.
 */
export async function runCopyKernels(context: SuiteContext, betweenRounds?: () => void): Promise<CopyKernelsResult> {
  const { config, progress } = context;
  const kernel = await Kernel.create({ maxMemory: config.maxMemory });
  const core = kernel.core;
  const exports = core.exports;
  const defaultKernel = exports.get_copy_kernel();
  const streamingPages = config.streamingPages;
  const warmPages = config.warmPagesPerSample;

  // Every allocation happens before the views below: growing memory would detach them.
  const src = allocateFrames(kernel, 1, "source page");
  const warmDst = allocateFrames(kernel, WARM_DST_PAGES, "warm destination");
  const streamingDst = allocateFrames(kernel, streamingPages, "streaming destination");

  const copyWasm = (kernelId: number, dst: number, dstPages: number, count: number) => {
    const status = exports.copy_pages_bench(kernelId, dst, dstPages, src, 1, count, 1);
    if (status !== 0) throw new Error(`copy_pages_bench(kernel ${kernelId}, ${count} pages) returned status ${status}`);
  };

  core.bytes(src, PAGE_SIZE).fill(0x5a);
  core.bytes(warmDst, WARM_DST_PAGES * PAGE_SIZE).fill(1);
  // The first pass over the streaming destination touches every page for
  // the first time. It is timed on its own and kept out of the samples.
  progress.task(`first touch of ${formatBytes(streamingPages * PAGE_SIZE)}`);
  const touchStart = performance.now();
  copyWasm(COPY_KERNEL_MEMORY_COPY, streamingDst, streamingPages, streamingPages);
  const firstTouchMs = performance.now() - touchStart;

  const srcView = core.bytes(src, PAGE_SIZE);
  const warmView = core.bytes(warmDst, WARM_DST_PAGES * PAGE_SIZE);
  const streamingView = core.bytes(streamingDst, streamingPages * PAGE_SIZE);
  const copyJs = (dst: Uint8Array, dstPages: number, count: number) => {
    let page = 0;
    for (let i = 0; i < count; i++) {
      dst.set(srcView, page * PAGE_SIZE);
      if (++page === dstPages) page = 0;
    }
  };
  const srcBuffer = Buffer.from(srcView.buffer, srcView.byteOffset, PAGE_SIZE);
  const warmBuffer = Buffer.from(warmView.buffer, warmView.byteOffset, warmView.byteLength);
  const streamingBuffer = Buffer.from(streamingView.buffer, streamingView.byteOffset, streamingView.byteLength);
  const copyBuffer = (dst: Buffer, dstPages: number, count: number) => {
    let page = 0;
    for (let i = 0; i < count; i++) {
      srcBuffer.copy(dst, page * PAGE_SIZE);
      if (++page === dstPages) page = 0;
    }
  };

  const shapes = {
    js_set: { warm: () => copyJs(warmView, WARM_DST_PAGES, warmPages), streaming: () => copyJs(streamingView, streamingPages, streamingPages) },
    js_buffer_copy: {
      warm: () => copyBuffer(warmBuffer, WARM_DST_PAGES, warmPages),
      streaming: () => copyBuffer(streamingBuffer, streamingPages, streamingPages),
    },
  };
  const variants = COPY_VARIANTS;
  const tasks = variants.flatMap((variant) => {
    const kernelId = KERNEL_IDS[variant];
    const js = variant === "js_set" || variant === "js_buffer_copy" ? shapes[variant] : null;
    const warm = js !== null ? js.warm : () => copyWasm(kernelId!, warmDst, WARM_DST_PAGES, warmPages);
    const streaming = js !== null ? js.streaming : () => copyWasm(kernelId!, streamingDst, streamingPages, streamingPages);
    return [
      { name: copyFigureId(variant, "warm"), fn: warm, async: false },
      { name: copyFigureId(variant, "streaming"), fn: streaming, async: false },
    ];
  });
  progress.task(`timing ${tasks.length} tasks`);
  // Eight rounds, with the native anchor timed between them: the VM's memory
  // speed drifts within seconds, so the ratios compare samples taken together.
  const summaries = await measureTasks(config.timing, tasks, { rounds: COPY_ROUNDS, ...(betweenRounds ? { betweenRounds } : {}) });

  const figures: Figure[] = [];
  for (const variant of variants) {
    for (const shape of ["warm", "streaming"] as const) {
      const id = copyFigureId(variant, shape);
      const pages = shape === "warm" ? warmPages : streamingPages;
      const dstPages = shape === "warm" ? WARM_DST_PAGES : streamingPages;
      figures.push(throughputFigure(
        { id, name: `${VARIANT_NAMES[variant]} ${shape}`, group: COPY_GROUP, suite: COPY_SUITE, counts: { pagesPerSample: pages, dstPages, srcPages: 1 } },
        summaryOf(summaries, id),
        pages * PAGE_SIZE,
      ));
    }
  }
  figures.push({
    id: FIRST_TOUCH_ID,
    name: "first touch of a page (memory.copy)",
    group: COPY_GROUP,
    suite: COPY_SUITE,
    value: (firstTouchMs * 1000) / streamingPages,
    unit: "µs/page",
    better: "lower",
    spread: null,
    samples: 1,
    counts: { pages: streamingPages },
    note: "one pass over never-touched memory, copy included; kept out of every other figure",
  });
  return { figures, defaultKernel, wasmSha256: kernel.wasmSha256 };
}
