// The CI output formats, checked field by field against the shapes the
// tools document: Bencher Metric Format (an object of benchmark name → an
// object of measure → { value, lower_value?, upper_value? }, numbers only)
// and github-action-benchmark's custom tools (an array of { name, unit,
// value, range?, extra? }, with range and extra as strings). Also the HTML
// report and the progress switch.
import { describe, expect, it } from "vitest";
import { createProgress, SILENT_PROGRESS, StderrProgress } from "../bench/progress.js";
import { OUTPUT_FORMATS, measureSlug, renderCiFormat, toBmf, toGithub } from "../bench/report/ci-formats.js";
import { renderHtml } from "../bench/report/html.js";
import { renderTable } from "../bench/report/table.js";
import { figure, fixtureReport } from "./bench-helpers.js";

/** Returns the problems of a Bencher Metric Format document; empty when it is valid. */
function bmfProblems(document: unknown): string[] {
  const problems: string[] = [];
  if (typeof document !== "object" || document === null || Array.isArray(document)) return ["the document is not a JSON object"];
  for (const [benchmark, measures] of Object.entries(document)) {
    if (benchmark.length === 0 || benchmark.length > 1024) problems.push(`benchmark name "${benchmark}" is empty or longer than 1024`);
    if (typeof measures !== "object" || measures === null || Array.isArray(measures)) {
      problems.push(`${benchmark}: measures are not an object`);
      continue;
    }
    if (Object.keys(measures).length === 0) problems.push(`${benchmark}: no measure`);
    for (const [measure, metric] of Object.entries(measures as Record<string, unknown>)) {
      if (!/^[a-z0-9][a-z0-9-]{0,63}$/.test(measure)) problems.push(`${benchmark}: measure "${measure}" is not a slug of at most 64 characters`);
      if (typeof metric !== "object" || metric === null || Array.isArray(metric)) {
        problems.push(`${benchmark}.${measure}: metric is not an object`);
        continue;
      }
      const fields = metric as Record<string, unknown>;
      if (typeof fields.value !== "number" || !Number.isFinite(fields.value)) problems.push(`${benchmark}.${measure}: value is not a finite number`);
      for (const key of Object.keys(fields)) {
        if (!["value", "lower_value", "upper_value"].includes(key)) problems.push(`${benchmark}.${measure}: unknown field ${key}`);
      }
      for (const bound of ["lower_value", "upper_value"]) {
        if (bound in fields && (typeof fields[bound] !== "number" || !Number.isFinite(fields[bound]))) problems.push(`${benchmark}.${measure}: ${bound} is not a finite number`);
      }
      if (typeof fields.lower_value === "number" && typeof fields.value === "number" && fields.lower_value > fields.value) problems.push(`${benchmark}.${measure}: lower_value above value`);
      if (typeof fields.upper_value === "number" && typeof fields.value === "number" && fields.upper_value < fields.value) problems.push(`${benchmark}.${measure}: upper_value below value`);
    }
  }
  return problems;
}

/** Returns the problems of one github-action-benchmark custom tool array; empty when it is valid. */
function githubProblems(entries: unknown): string[] {
  if (!Array.isArray(entries)) return ["the document is not a JSON array"];
  const problems: string[] = [];
  entries.forEach((entry: unknown, index) => {
    if (typeof entry !== "object" || entry === null) {
      problems.push(`entry ${index} is not an object`);
      return;
    }
    const fields = entry as Record<string, unknown>;
    if (typeof fields.name !== "string" || fields.name.length === 0) problems.push(`entry ${index}: name is not a non-empty string`);
    if (typeof fields.unit !== "string" || fields.unit.length === 0) problems.push(`entry ${index}: unit is not a non-empty string`);
    if (typeof fields.value !== "number" || !Number.isFinite(fields.value)) problems.push(`entry ${index}: value is not a finite number`);
    if ("range" in fields && typeof fields.range !== "string") problems.push(`entry ${index}: range is not a string`);
    if ("extra" in fields && typeof fields.extra !== "string") problems.push(`entry ${index}: extra is not a string`);
    for (const key of Object.keys(fields)) {
      if (!["name", "unit", "value", "range", "extra"].includes(key)) problems.push(`entry ${index}: unknown field ${key}`);
    }
  });
  const names = entries.map((entry) => (entry as { name?: unknown }).name);
  if (new Set(names).size !== names.length) problems.push("names are not unique");
  return problems;
}

describe("Bencher Metric Format", () => {
  it("validates field by field", () => {
    const document = JSON.parse(renderCiFormat(fixtureReport(), "bmf")) as unknown;
    expect(bmfProblems(document)).toEqual([]);
  });

  it("keys benchmarks by figure id and measures by unit", () => {
    const document = toBmf(fixtureReport());
    expect(document["uffdio.copy.per_call_64"]).toEqual({
      "gb-per-s": { value: 19.2, lower_value: 19.2 - 0.384, upper_value: 19.2 + 0.384 },
    });
    expect(Object.keys(document["fork.copy_page_range.present_16384"]!)).toEqual(["ns-per-pte"]);
  });

  it("omits bounds without spread and figures without value", () => {
    const document = toBmf(fixtureReport());
    expect(document["copy.first_touch"]).toEqual({ "us-per-page": { value: 2.7 } });
    expect(document["native.kernel.fork.present_16384"]).toBeUndefined();
  });

  it("makes slugs of every unit", () => {
    for (const unit of ["GB/s", "pages/s", "ns/PTE", "µs/fault", "×", "MiB", "walks/s", "schedules/s"]) {
      expect(measureSlug(unit)).toMatch(/^[a-z0-9][a-z0-9-]*$/);
    }
    expect(measureSlug("µs/fault")).toBe("us-per-fault");
    expect(measureSlug("×")).toBe("times");
  });
});

describe("github-action-benchmark format", () => {
  it("validates both arrays field by field", () => {
    const document = JSON.parse(renderCiFormat(fixtureReport(), "github")) as Record<string, unknown>;
    expect(Object.keys(document).sort()).toEqual(["customBiggerIsBetter", "customSmallerIsBetter"]);
    expect(githubProblems(document.customBiggerIsBetter)).toEqual([]);
    expect(githubProblems(document.customSmallerIsBetter)).toEqual([]);
  });

  it("puts each figure in the array of its direction", () => {
    const document = toGithub(fixtureReport());
    expect(document.customBiggerIsBetter.map((entry) => entry.name)).toEqual([
      "uffdio.copy.per_call_64", "uffdio.zeropage.per_call_64", "contention.fork.every_4096",
    ]);
    expect(document.customSmallerIsBetter.map((entry) => entry.name)).toEqual(["fork.copy_page_range.present_16384", "copy.first_touch"]);
  });

  it("writes range from the spread and counts in extra", () => {
    const entry = toGithub(fixtureReport()).customBiggerIsBetter[0]!;
    expect(entry).toMatchObject({ name: "uffdio.copy.per_call_64", unit: "GB/s", value: 19.2, range: "± 0.384" });
    expect(entry.extra).toContain("pagesCopied=16384");
    const firstTouch = toGithub(fixtureReport()).customSmallerIsBetter[1]!;
    expect(firstTouch.range).toBeUndefined();
  });

  it("writes one plain array for each tool", () => {
    const bigger = JSON.parse(renderCiFormat(fixtureReport(), "github-bigger")) as unknown;
    const smaller = JSON.parse(renderCiFormat(fixtureReport(), "github-smaller")) as unknown;
    expect(githubProblems(bigger)).toEqual([]);
    expect(githubProblems(smaller)).toEqual([]);
    expect((bigger as unknown[]).length).toBe(3);
    expect((smaller as unknown[]).length).toBe(2);
  });

  it("renders every format as JSON ending in a newline", () => {
    for (const format of OUTPUT_FORMATS) {
      const text = renderCiFormat(fixtureReport(), format);
      expect(text.endsWith("\n")).toBe(true);
      expect(() => JSON.parse(text)).not.toThrow();
    }
  });
});

describe("HTML report", () => {
  const report = fixtureReport([
    ...fixtureReport().figures,
    figure({ id: "contention.none", value: 8 }),
    figure({ id: "contention.fork.every_1024", value: 6, counts: { eagainRetries: 64, pagesCopied: 65536 } }),
    figure({ id: "copy.wasm_memory_copy.warm", value: 80 }),
    figure({ id: "copy.wasm_memory_copy.streaming", value: 20 }),
  ]);
  const html = renderHtml(report);

  it("is self-contained", () => {
    expect(html.startsWith("<!DOCTYPE html>")).toBe(true);
    expect(html).not.toMatch(/<script|<link|<img|src=|@import|url\(/i);
    expect(html).not.toMatch(/href="http/);
  });

  it("draws both charts as inline SVG", () => {
    expect(html).toContain("Throughput per copy variant");
    expect(html).toContain("Goodput against event rate");
    expect(html.match(/<svg /g)?.length).toBe(2);
    expect(html).toContain("<polyline");
  });

  it("escapes text from the report", () => {
    const tricky = fixtureReport([figure({ id: "uffdio.copy.per_call_1", name: "<b>&" })]);
    expect(renderHtml(tricky)).toContain("&lt;b&gt;&amp;");
  });
});

describe("table", () => {
  it("prints the goodput matrix when the contention suite ran", () => {
    const report = fixtureReport([figure({ id: "contention.none", value: 8 }), figure({ id: "contention.fork.every_4096", value: 7.2, counts: { eagainRetries: 16, pagesCopied: 65536 } })]);
    const text = renderTable(report);
    expect(text).toContain("goodput against event rate");
    expect(text).toContain("0.24 EAGAIN/1k");
  });
});

describe("progress", () => {
  it("is silent when stderr is not a terminal or with --quiet", () => {
    expect(createProgress(false, false)).toBe(SILENT_PROGRESS);
    expect(createProgress(true, true)).toBe(SILENT_PROGRESS);
    expect(createProgress(false, true)).toBeInstanceOf(StderrProgress);
  });

  it("names the suite, the task and the elapsed time", () => {
    const lines: string[] = [];
    const progress = new StderrProgress((text) => lines.push(text));
    progress.suite("fork");
    progress.task("writing 16 Ki pages");
    expect(lines[1]).toMatch(/^\[bench \d+\.\d s\] fork: writing 16 Ki pages\n$/);
  });
});
