// Ratios between figures and the performance targets they are checked
// against. A missed target is printed, never turned into a failed run.

import { NATIVE_STREAMING_ID, NATIVE_WARM_ID } from "./native.js";
import { nsPerPage, type Figure } from "./stats.js";
import { copyFigureId, modelCopyVariant, type CopyVariant } from "./suites/copy-kernels.js";
import { contentionId } from "./suites/contention.js";
import { FORK_ID, FORK_PREFIX } from "./suites/fork.js";
import { referenceId } from "./suites/reference.js";
import { UFFDIO_COPY_PREFIX, uffdioCopyId } from "./suites/uffdio-copy.js";

export type TargetStatus = "PASS" | "MISS" | "N/A";

export interface TargetResult {
  /** The figure whose ratio is checked. */
  figureId: string;
  description: string;
  /** The ratio must be at least this. */
  threshold: number;
  ratio: number | null;
  status: TargetStatus;
  /** Reason the ratio is missing, or a caveat. */
  note?: string;
}

function byId(figures: readonly Figure[]): Map<string, Figure> {
  return new Map(figures.map((figure) => [figure.id, figure]));
}

/** Sets `figure.ratio` to figure / reference, when both values exist. */
function setRatio(figures: Map<string, Figure>, id: string, referenceId: string, against: string): void {
  const figure = figures.get(id);
  const reference = figures.get(referenceId);
  if (figure?.value == null || reference?.value == null || reference.value === 0) return;
  figure.ratio = { value: figure.value / reference.value, against };
}

/** Sets the ratios of every figure that has a natural reference. */
export function applyRatios(figureList: readonly Figure[]): void {
  const figures = byId(figureList);
  const variants: CopyVariant[] = ["wasm_memory_copy", "wasm_simd", "js_set"];
  for (const variant of variants) {
    setRatio(figures, copyFigureId(variant, "warm"), NATIVE_WARM_ID, "native memcpy warm");
    setRatio(figures, copyFigureId(variant, "streaming"), NATIVE_STREAMING_ID, "native memcpy streaming");
  }

  // Each UFFDIO_COPY figure is compared with the copy kernel doing the same
  // copy: from one hot source page at 1 page per call, and from the same
  // 64-page source at 64 pages per call, because a 256 KiB source no longer
  // stays in cache while the destination streams and slows the copy itself.
  const uffdioReference = referenceId(UFFDIO_COPY_PREFIX, "streaming");
  const wideReference = referenceId(UFFDIO_COPY_PREFIX, "streaming_wide_source");
  setRatio(figures, uffdioCopyId(1, "gbps"), uffdioReference, "paired copy kernel streaming");
  setRatio(figures, uffdioCopyId(64, "gbps"), wideReference, "paired copy kernel streaming from the same 64-page source");
  noteNarrowSourceRatio(figures);
  setRatio(figures, contentionId("contended", "gbps"), contentionId("uncontended", "gbps"), "uncontended goodput");

  // copy_page_range: how many times faster one present PTE is copied than
  // one page of data (the model's kernel, streaming, timed alongside).
  const fork = figures.get(FORK_ID);
  const pageNs = nsPerPage(figures.get(referenceId(FORK_PREFIX, "streaming")));
  if (fork?.value != null && fork.value > 0 && pageNs !== null) {
    fork.ratio = { value: pageNs / fork.value, against: `faster than a paired streaming page copy (${pageNs.toFixed(0)} ns)` };
  }
}

/**
 * Notes the ratio of UFFDIO_COPY at 64 pages per call to the kernel pass
 * from one hot source page, the faster reference that the target does not use.
 */
function noteNarrowSourceRatio(figures: Map<string, Figure>): void {
  const figure = figures.get(uffdioCopyId(64, "gbps"));
  const reference = figures.get(referenceId(UFFDIO_COPY_PREFIX, "streaming"));
  if (figure?.value == null || reference?.value == null || reference.value === 0) return;
  const ratio = figure.value / reference.value;
  figure.note = `${ratio.toFixed(2)} × the paired copy kernel streaming from one hot source page`;
}

/** Checks the ratio of `figureId`, whose reference is `referenceId`, against `threshold`. */
function check(figures: Map<string, Figure>, figureId: string, referenceId: string, description: string, threshold: number): TargetResult {
  const figure = figures.get(figureId);
  const ratio = figure?.ratio?.value ?? null;
  if (ratio === null) {
    const reference = figures.get(referenceId);
    let reason = "figure not measured";
    if (figure?.value != null) reason = reference?.note ? `reference not measured: ${reference.note}` : "reference not measured";
    return { figureId, description, threshold, ratio: null, status: "N/A", note: reason };
  }
  const result: TargetResult = { figureId, description, threshold, ratio, status: ratio >= threshold ? "PASS" : "MISS" };
  if (figure?.note !== undefined) result.note = figure.note;
  return result;
}

/** Evaluates the performance targets on figures whose ratios are set. */
export function evaluateTargets(figureList: readonly Figure[], defaultKernel: number): TargetResult[] {
  const figures = byId(figureList);
  const variant = modelCopyVariant(defaultKernel);
  const kernelName = variant === "wasm_simd" ? "wasm SIMD" : "wasm memory.copy";
  const uffdioReference = referenceId(UFFDIO_COPY_PREFIX, "streaming");
  return [
    check(figures, copyFigureId(variant, "warm"), NATIVE_WARM_ID, `${kernelName} 4 KiB copy, warm, vs native memcpy`, 0.9),
    check(figures, copyFigureId(variant, "streaming"), NATIVE_STREAMING_ID, `${kernelName} 4 KiB copy, streaming, vs native memcpy`, 0.9),
    check(
      figures, uffdioCopyId(64, "gbps"), referenceId(UFFDIO_COPY_PREFIX, "streaming_wide_source"),
      `UFFDIO_COPY 64 pages/call vs ${kernelName} streaming from the same source`, 0.7,
    ),
    check(figures, uffdioCopyId(1, "gbps"), uffdioReference, `UFFDIO_COPY 1 page/call vs ${kernelName} streaming`, 0.5),
    check(figures, FORK_ID, referenceId(FORK_PREFIX, "streaming"), "copy_page_range per present page vs copying the page", 50),
    checkContention(figures),
  ];
}

/** Checks the contention target, which also requires that the contended run returned EAGAIN. */
function checkContention(figures: Map<string, Figure>): TargetResult {
  const id = contentionId("contended", "gbps");
  const result = check(figures, id, contentionId("uncontended", "gbps"), "goodput with fork events vs without", 0.8);
  if (result.status !== "N/A" && figures.get(id)?.counts?.eagain === 0) {
    return { ...result, status: "MISS", note: "the contended run returned no EAGAIN, so it measured no contention" };
  }
  return result;
}
