// A small benchmark report for the bench-* tests, built in memory so the
// tests do not depend on timings.
import { benchConfig } from "../bench/config.js";
import type { BenchReport } from "../bench/report/json.js";
import type { Figure } from "../bench/stats.js";

export function figure(fields: Partial<Figure> & Pick<Figure, "id">): Figure {
  return {
    name: fields.id,
    group: "fixture group",
    suite: fields.id.split(".")[0]!,
    value: 10,
    unit: "GB/s",
    better: "higher",
    spread: 2,
    samples: 20,
    ...fields,
  };
}

export function fixtureReport(figures: Figure[] = defaultFigures()): BenchReport {
  return {
    schema: 2,
    metadata: {
      package: { name: "uffd-wasm", version: "0.0.0-test" },
      node: "v20.0.0",
      v8: "11",
      machine: { os: "linux", release: "6.18", arch: "x64", cpuModel: "test CPU", cores: 2, memoryBytes: 1 << 30 },
      wasmSha256: "ab".repeat(32),
      defaultCopyKernel: 0,
      native: { compiler: null, compilerVersion: null, failure: "not built in tests" },
      mode: "quick",
      suites: ["uffdio", "fork", "contention"],
      config: benchConfig(true),
      date: "2026-01-01T00:00:00.000Z",
      durationSeconds: 1,
    },
    figures,
    targets: [],
    errors: [],
    skipped: [],
  };
}

export function defaultFigures(): Figure[] {
  return [
    figure({ id: "uffdio.copy.per_call_64", value: 19.2, counts: { pagesPerCall: 64, ioctls: 256, pagesCopied: 16384, eagainRetries: 0 } }),
    figure({ id: "uffdio.zeropage.per_call_64", value: 2e8, unit: "pages/s", counts: { pagesPerCall: 64, ioctls: 256, pagesZeroed: 16384, eagainRetries: 0 } }),
    figure({ id: "fork.copy_page_range.present_16384", value: 4.7, unit: "ns/PTE", better: "lower", spread: 1.5, counts: { presentPages: 16384, ptesCopied: 16384, forks: 1 } }),
    figure({ id: "contention.fork.every_4096", value: 7.9, spread: 3, counts: { events: 15, eagainRetries: 15, pagesCopied: 65536 } }),
    figure({ id: "copy.first_touch", value: 2.7, unit: "µs/page", better: "lower", spread: null, samples: 1 }),
    figure({ id: "native.kernel.fork.present_16384", value: null, unit: "ns/PTE", better: "lower", spread: null, samples: 0, note: "no C compiler" }),
  ];
}

/** Returns a deep copy, to edit one run without touching the other. */
export function cloneReport(report: BenchReport): BenchReport {
  return JSON.parse(JSON.stringify(report)) as BenchReport;
}
