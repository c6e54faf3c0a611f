// The kernel anchor: bench/native/uffd.c times this machine's own kernel
// doing UFFDIO_COPY, UFFDIO_ZEROPAGE, fork and the fault round trip. Its
// samples become figures in the units of the model's counterparts, so each
// model figure can be given as a ratio to the real kernel.

import { PAGE_SIZE, formatPages, type BenchConfig } from "./config.js";
import { runNativeProgram, sampleMs, type NativeAnchors } from "./native.js";
import { missingFigure, rateFigure, summarizeSamples, throughputFigure, type Figure } from "./stats.js";

export const KERNEL_GROUP = "native anchor (this machine's kernel, bench/native/uffd.c)";
export const kernelCopyId = (pagesPerCall: number) => `native.kernel.uffdio_copy.per_call_${pagesPerCall}`;
export const kernelZeropageId = (pagesPerCall: number) => `native.kernel.uffdio_zeropage.per_call_${pagesPerCall}`;
export const kernelForkId = (presentPages: number) => `native.kernel.fork.present_${presentPages}`;
export const KERNEL_FAULT_ID = "native.kernel.fault_round_trip";

interface KernelOutput {
  regionPages: number;
  faultBatch: number;
  /** Whether userfaultfd() needed UFFD_USER_MODE_ONLY because the process has no privilege. */
  userModeOnly: boolean;
  /** ns per page of each sample, by pages per call. */
  copy: Record<string, number[]>;
  zeropage: Record<string, number[]>;
  /** ns per present PTE of each sample, by present pages. */
  fork: Record<string, number[]>;
  /** ns per fault of each sample (a batch of faultBatch faults). */
  fault: number[];
  /** One-line reasons of the parts that could not run: "fill", "fork", "fault". */
  errors: Record<string, string>;
}

/** What the kernel anchor measures; the sizes come from the selected suites. */
export interface KernelAnchorRequest {
  pagesPerCall: readonly number[];
  forkPresentPages: readonly number[];
}

/** Runs bench/native/uffd.c once and returns its figures; every figure of a part that failed carries the reason. */
export function runKernelAnchor(anchors: NativeAnchors, config: BenchConfig, request: KernelAnchorRequest): Figure[] {
  let output: KernelOutput | string;
  if (anchors.kernel.binary === null) {
    output = anchors.kernel.failure ?? "not built";
  } else {
    const regionMiB = (config.uffdioPages * PAGE_SIZE) / (1 << 20);
    const args = [regionMiB, config.nativeKernelSamples, config.nativeFaultSamples, ...request.forkPresentPages].map(String);
    output = runNativeProgram<KernelOutput>(anchors.kernel.binary, args);
  }
  if (typeof output === "string" && anchors.info.kernelFailure == null) anchors.info.kernelFailure = output;
  return kernelFigures(output, request);
}

const common = { group: KERNEL_GROUP, suite: "native" };

/** Formats the median time per item of a sample of `items` items, in ns. */
export function nsPerItem(p50Ms: number, items: number): string {
  return ((p50Ms * 1e6) / items).toFixed(2);
}

/** Builds the anchor's figures from its output, or marks them all missing with `output` as the reason. */
export function kernelFigures(output: KernelOutput | string, request: KernelAnchorRequest): Figure[] {
  const failure = (part: string) => (typeof output === "string" ? output : output.errors[part] ?? null);
  const mode = typeof output !== "string" && output.userModeOnly ? "; userfaultfd opened with UFFD_USER_MODE_ONLY (no privilege)" : "";
  const figures: Figure[] = [];
  for (const size of request.pagesPerCall) {
    const name = `${size} page${size === 1 ? "" : "s"} per ioctl`;
    const copyBase = { ...common, id: kernelCopyId(size), name: `UFFDIO_COPY ${name}`, unit: "GB/s", better: "higher" as const };
    const zeroBase = { ...common, id: kernelZeropageId(size), name: `UFFDIO_ZEROPAGE ${name}`, unit: "pages/s", better: "higher" as const };
    const samples = typeof output === "string" ? undefined : output.copy[String(size)];
    const zeroSamples = typeof output === "string" ? undefined : output.zeropage[String(size)];
    const reason = failure("fill");
    if (typeof output === "string" || reason !== null || samples === undefined || zeroSamples === undefined) {
      const missingReason = reason ?? `no samples for ${size} pages per ioctl`;
      figures.push(missingFigure(copyBase, missingReason), missingFigure(zeroBase, missingReason));
      continue;
    }
    const pages = output.regionPages;
    const counts = { pagesPerCall: size, ioctls: pages / size, pagesPerSample: pages };
    figures.push(throughputFigure(
      { ...copyBase, counts, note: `one memfd page mapped at every source address, as hot as the memcpy anchor's source${mode}` },
      summarizeSamples(sampleMs(samples, pages)),
      pages * PAGE_SIZE,
    ));
    figures.push(rateFigure({ ...zeroBase, counts }, summarizeSamples(sampleMs(zeroSamples, pages)), pages, "pages/s"));
  }
  for (const present of request.forkPresentPages) {
    const base = { ...common, id: kernelForkId(present), name: `fork() with ${formatPages(present)} present pages`, unit: "PTEs/s", better: "higher" as const };
    const samples = typeof output === "string" ? undefined : output.fork[String(present)];
    const reason = failure("fork");
    if (reason !== null || samples === undefined) {
      figures.push(missingFigure(base, reason ?? `no samples for ${present} present pages`));
      continue;
    }
    const latency = summarizeSamples(sampleMs(samples, present));
    const note = `${nsPerItem(latency.p50Ms, present)} ns per PTE: the parent's time in fork(); every page is written again before each fork`;
    figures.push(rateFigure({ ...base, counts: { presentPages: present }, note }, latency, present, "PTEs/s"));
  }
  const faultBase = { ...common, id: KERNEL_FAULT_ID, name: "fault round trips (poll, read, UFFDIO_COPY, wake)", unit: "faults/s", better: "higher" as const };
  const reason = failure("fault");
  if (typeof output === "string" || reason !== null || output.fault.length === 0) {
    figures.push(missingFigure(faultBase, reason ?? "no fault samples"));
  } else {
    const latency = summarizeSamples(sampleMs(output.fault, output.faultBatch));
    const note = `${(Number(nsPerItem(latency.p50Ms, output.faultBatch)) / 1000).toFixed(2)} µs per fault; a second thread faults, this thread polls the userfaultfd and resolves each fault, both pinned to one CPU${mode}`;
    figures.push(rateFigure({ ...faultBase, counts: { faultsPerSample: output.faultBatch }, note }, latency, output.faultBatch, "faults/s"));
  }
  return figures;
}
