// Ratios between figures and the performance targets they are checked
// against. A missed target is printed, never turned into a failed run: the
// regression check (bench/compare.ts) is what fails a CI job.

import { KERNEL_FAULT_ID, kernelCopyId, kernelForkId, kernelZeropageId } from "./native-kernel.js";
import { NATIVE_STREAMING_ID, NATIVE_WARM_ID } from "./native.js";
import { nsPerPage, speedRatio, type Figure } from "./stats.js";
import { COPY_VARIANTS, copyFigureId, modelCopyVariant } from "./suites/copy-kernels.js";
import { EVENT_KINDS, UNCONTENDED_ID, contentionId } from "./suites/contention.js";
import { EXPLORE_ID } from "./suites/explore.js";
import { FAULT_ID } from "./suites/fault.js";
import { FORK_PREFIX, FORK_REFERENCE_PAGES, forkId } from "./suites/fork.js";
import { MEMORY_GROWTH_ID, MEMORY_RATIO_ID } from "./suites/memory.js";
import { referenceId } from "./suites/reference.js";
import { UFFDIO_PREFIX, uffdioId } from "./suites/uffdio.js";

export type TargetStatus = "PASS" | "MISS" | "N/A";

export interface TargetResult {
  /** The figure the target is about. */
  figureId: string;
  /** The figure it is compared with, or null when the figure's own value is checked. */
  referenceId: string | null;
  description: string;
  /** The ratio (or the value) must be at least, or at most, this. */
  threshold: number;
  comparison: "at least" | "at most";
  ratio: number | null;
  status: TargetStatus;
  /** Reason the ratio is missing, or a caveat. */
  note?: string;
}

interface TargetSpec {
  figureId: string;
  referenceId: string | null;
  description: string;
  threshold: number;
  comparison?: "at least" | "at most";
}

function byId(figures: readonly Figure[]): Map<string, Figure> {
  return new Map(figures.map((figure) => [figure.id, figure]));
}

/**
 * Returns how many times better `figure` is than `reference`. A fork figure
 * (PTEs/s) against a page-copy reference (GB/s) gives how many present PTEs
 * fork copies in the time one page is copied.
 */
function pairRatio(figure: Figure | undefined, reference: Figure | undefined): number | null {
  if (figure?.unit === "PTEs/s" && reference?.unit === "GB/s") {
    const pageNs = nsPerPage(reference);
    return pageNs === null || figure.value == null || figure.value <= 0 ? null : (figure.value * pageNs) / 1e9;
  }
  return speedRatio(figure, reference);
}

/** Appends the ratio of figure `id` to `referenceId`, when both values exist. */
function addRatio(figures: Map<string, Figure>, id: string, refId: string, against: string): void {
  const figure = figures.get(id);
  const ratio = pairRatio(figure, figures.get(refId));
  if (figure === undefined || ratio === null) return;
  (figure.ratios ??= []).push({ value: ratio, against, referenceId: refId });
}

/** Sets the ratios of every figure that has a native counterpart or a natural reference. */
export function applyRatios(figureList: readonly Figure[]): void {
  const figures = byId(figureList);
  for (const variant of COPY_VARIANTS) {
    addRatio(figures, copyFigureId(variant, "warm"), NATIVE_WARM_ID, "native memcpy warm");
    addRatio(figures, copyFigureId(variant, "streaming"), NATIVE_STREAMING_ID, "native memcpy streaming");
  }
  for (const figure of figureList) {
    const copy = /^uffdio\.copy\.per_call_(\d+)$/.exec(figure.id);
    if (copy) addRatio(figures, figure.id, kernelCopyId(Number(copy[1])), "the kernel's UFFDIO_COPY");
    const zero = /^uffdio\.zeropage\.per_call_(\d+)$/.exec(figure.id);
    if (zero) addRatio(figures, figure.id, kernelZeropageId(Number(zero[1])), "the kernel's UFFDIO_ZEROPAGE");
    const fork = /^fork\.copy_page_range\.present_(\d+)$/.exec(figure.id);
    if (fork) addRatio(figures, figure.id, kernelForkId(Number(fork[1])), "the kernel's fork()");
    if (/^contention\.[a-z]+\.every_\d+$/.test(figure.id)) addRatio(figures, figure.id, UNCONTENDED_ID, "uncontended goodput");
  }
  // UFFDIO_COPY against the copy kernel timed beside it, from the same hot source page.
  const paired = referenceId(UFFDIO_PREFIX, "streaming");
  addRatio(figures, uffdioId("copy", 1), paired, "paired copy kernel streaming");
  addRatio(figures, uffdioId("copy", 64), paired, "paired copy kernel streaming");
  addRatio(figures, uffdioId("copy", 64), NATIVE_STREAMING_ID, "native memcpy streaming");
  addRatio(figures, forkId(FORK_REFERENCE_PAGES), referenceId(FORK_PREFIX, "streaming"), "PTEs per paired streaming page copy");
  addRatio(figures, FAULT_ID, KERNEL_FAULT_ID, "the kernel's fault round trip");
}

/** Returns the targets of this benchmark, for a core whose default copy kernel is `defaultKernel`. */
function targetSpecs(defaultKernel: number, forkSizes: readonly number[]): TargetSpec[] {
  const variant = modelCopyVariant(defaultKernel);
  const kernelName = variant === "wasm_simd" ? "wasm SIMD" : "wasm memory.copy";
  const specs: TargetSpec[] = [
    { figureId: copyFigureId(variant, "warm"), referenceId: NATIVE_WARM_ID, description: `${kernelName} 4 KiB copy, warm, vs native memcpy`, threshold: 0.95 },
    { figureId: copyFigureId(variant, "streaming"), referenceId: NATIVE_STREAMING_ID, description: `${kernelName} 4 KiB copy, streaming, vs native memcpy`, threshold: 0.95 },
    { figureId: uffdioId("copy", 64), referenceId: NATIVE_STREAMING_ID, description: "UFFDIO_COPY 64 pages/call (API) vs native memcpy streaming", threshold: 0.8 },
    { figureId: uffdioId("copy", 1), referenceId: kernelCopyId(1), description: "UFFDIO_COPY 1 page/call: times faster than the kernel's", threshold: 6 },
    { figureId: uffdioId("zeropage", 64), referenceId: kernelZeropageId(64), description: "UFFDIO_ZEROPAGE 64 pages/call: times faster than the kernel's", threshold: 5 },
    ...forkSizes.map((pages) => ({
      figureId: forkId(pages),
      referenceId: kernelForkId(pages),
      description: `copy_page_range, ${pages / 1024} Ki present pages: times faster per PTE than the kernel's fork()`,
      threshold: 20,
    })),
    { figureId: FAULT_ID, referenceId: KERNEL_FAULT_ID, description: "fault round trip: times faster than the kernel's", threshold: 10 },
    ...EVENT_KINDS.map((kind) => ({
      figureId: contentionId(kind, 4096),
      referenceId: UNCONTENDED_ID,
      description: `goodput with a ${kind} event every 4096 pages vs without events`,
      threshold: 0.9,
    })),
    { figureId: EXPLORE_ID, referenceId: null, description: "schedules explored per second, fork scenario", threshold: 5000 },
    { figureId: MEMORY_RATIO_ID, referenceId: null, description: "peak RSS of a 256 MiB streaming run / simulated memory", threshold: 1.15, comparison: "at most" },
    // The same bound on what the run adds to the Node process it starts in.
    // Node alone uses about 40 MiB, so the whole-process ratio stays above
    // 1.15 at 256 MiB whatever the model does; the figure's note gives the floor.
    { figureId: MEMORY_GROWTH_ID, referenceId: null, description: "RSS the 256 MiB streaming run adds / simulated memory", threshold: 1.15, comparison: "at most" },
  ];
  // The targets of the first version of this benchmark, kept so their history continues.
  specs.push(
    { figureId: copyFigureId(variant, "warm"), referenceId: NATIVE_WARM_ID, description: `${kernelName} 4 KiB copy, warm, vs native memcpy (earlier, looser floor)`, threshold: 0.9 },
    { figureId: copyFigureId(variant, "streaming"), referenceId: NATIVE_STREAMING_ID, description: `${kernelName} 4 KiB copy, streaming, vs native memcpy (earlier, looser floor)`, threshold: 0.9 },
    { figureId: uffdioId("copy", 64), referenceId: referenceId(UFFDIO_PREFIX, "streaming"), description: `UFFDIO_COPY 64 pages/call vs ${kernelName} streaming from the same source`, threshold: 0.7 },
    { figureId: uffdioId("copy", 1), referenceId: referenceId(UFFDIO_PREFIX, "streaming"), description: `UFFDIO_COPY 1 page/call vs ${kernelName} streaming`, threshold: 0.5 },
    { figureId: forkId(FORK_REFERENCE_PAGES), referenceId: referenceId(FORK_PREFIX, "streaming"), description: "copy_page_range per present page vs copying the page", threshold: 50 },
    { figureId: contentionId("fork", 4096), referenceId: UNCONTENDED_ID, description: "goodput with fork events vs without", threshold: 0.8 },
  );
  return specs;
}

function check(figures: Map<string, Figure>, spec: TargetSpec): TargetResult {
  const comparison = spec.comparison ?? "at least";
  const base = { figureId: spec.figureId, referenceId: spec.referenceId, description: spec.description, threshold: spec.threshold, comparison };
  const figure = figures.get(spec.figureId);
  const reference = spec.referenceId === null ? undefined : figures.get(spec.referenceId);
  const ratio = spec.referenceId === null ? figure?.value ?? null : pairRatio(figure, reference);
  if (ratio === null) {
    let reason = "reference not measured";
    if (figure === undefined) reason = "figure not found";
    else if (figure.value === null) reason = `figure not measured: ${figure.note ?? "unknown reason"}`;
    else if (reference?.note) reason = `reference not measured: ${reference.note}`;
    else if (reference === undefined) reason = "reference not run";
    return { ...base, ratio: null, status: "N/A", note: reason };
  }
  const passed = comparison === "at least" ? ratio >= spec.threshold : ratio <= spec.threshold;
  const result: TargetResult = { ...base, ratio, status: passed ? "PASS" : "MISS" };
  if (figure?.note !== undefined) result.note = figure.note;
  if (result.status !== "N/A" && spec.referenceId === UNCONTENDED_ID && figure?.counts?.eagainRetries === 0) {
    return { ...result, status: "MISS", note: "the contended run returned no EAGAIN, so it measured no contention" };
  }
  return result;
}

/** Evaluates the performance targets whose figure this run measured, or tried to. */
export function evaluateTargets(figureList: readonly Figure[], defaultKernel: number, forkSizes: readonly number[]): TargetResult[] {
  const figures = byId(figureList);
  return targetSpecs(defaultKernel, forkSizes)
    .filter((spec) => figures.has(spec.figureId))
    .map((spec) => check(figures, spec));
}
