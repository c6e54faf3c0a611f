// Counterexample traces: what they record, how they parse, and replays
// that reproduce the recorded outcome or raise ReplayMismatch.

import { describe, expect, it } from "vitest";
import { wasmSha256 } from "../src/index.js";
import { runScenario } from "../src/explore/scenarios.js";
import {
  TraceFormatError, buildTrace, formatInterleaving, parseTrace, replayTrace, traceToJson, type Trace,
} from "../src/explore/trace.js";
import { ReplayMismatch, replay } from "../src/sched/strategies.js";

const FORK_VIOLATION = "child read 4096 bytes at 0x10001000: expected 4096 × 0x42, read 4096 × 0x00";
const MREMAP_VIOLATION = "target read 4096 bytes at 0x20000000: expected 4096 × 0x41, read 4096 × 0x00";

/** The shortest fork counterexample without the gate, as `race fork --gate off` writes it, less the interleaving. */
const FORK_TRACE: Trace = {
  format: "uffd-wasm race trace",
  version: 1,
  scenario: "fork",
  gate: false,
  strategy: "exhaustive",
  preemptionBound: 2,
  choices: [0, 1, 1, 0, 0, 0],
  packageVersion: "0.1.0",
  wasmSha256: wasmSha256("debug"),
  outcome: { status: "violation", violations: [FORK_VIOLATION] },
  interleaving: [],
};

const MREMAP_TRACE: Trace = {
  ...FORK_TRACE,
  scenario: "mremap",
  choices: [1, 0, 0, 0, 0],
  outcome: { status: "violation", violations: [MREMAP_VIOLATION] },
};

describe("buildTrace", () => {
  it("records the run", async () => {
    const run = await runScenario("mremap", { gate: false, choose: replay([1, 0, 0, 0, 0]), build: "debug" });
    const trace = buildTrace(run, { strategy: "random", seed: 13, packageVersion: "9.9.9" });

    expect(trace.scenario).toBe("mremap");
    expect(trace.gate).toBe(false);
    expect(trace.strategy).toBe("random");
    expect(trace.seed).toBe(13);
    expect(trace.preemptionBound).toBeUndefined();
    expect(trace.choices).toEqual([1, 0, 0, 0, 0]);
    expect(trace.packageVersion).toBe("9.9.9");
    expect(trace.wasmSha256).toBe(wasmSha256("debug"));
    expect(trace.outcome).toEqual({ status: "violation", violations: [MREMAP_VIOLATION] });
    expect(trace.interleaving).toHaveLength(13);
  });

  it("puts the monitor in its own column", async () => {
    const run = await runScenario("mremap", { gate: false, choose: replay([1, 0, 0, 0, 0]), build: "debug" });
    const rows = buildTrace(run, { strategy: "replay", packageVersion: "0.1.0" }).interleaving;

    expect(rows[0]).toEqual({ step: 1, process: "", monitor: "start — preempted before COPY 0x10000000 for target (background)" });
    expect(rows[1]).toEqual({ step: 2, process: "target: start", monitor: "" });
  });

  it("formats two columns", () => {
    const text = formatInterleaving([
      { step: 1, process: "target: fork", monitor: "" },
      { step: 2, process: "", monitor: "COPY 0x10000000" },
    ]);

    expect(text).toBe(
      [
        "step  process      | monitor",
        "      ------------ | -------",
        "   1  target: fork |",
        "   2               | COPY 0x10000000",
        "",
      ].join("\n"),
    );
  });
});

describe("parseTrace", () => {
  it("reads what traceToJson writes", () => {
    expect(parseTrace(traceToJson(FORK_TRACE))).toEqual(FORK_TRACE);
  });

  it.each([
    ["not JSON", "{", "invalid JSON"],
    ["an array", "[]", "a trace must be a JSON object"],
    ["another format", JSON.stringify({ ...FORK_TRACE, format: "other" }), 'format must be "uffd-wasm race trace", got "other"'],
    ["another version", JSON.stringify({ ...FORK_TRACE, version: 2 }), "version 2 is not supported; this build reads version 1"],
    ["an unknown scenario", JSON.stringify({ ...FORK_TRACE, scenario: "exec" }), 'unknown scenario "exec"'],
    ["negative choices", JSON.stringify({ ...FORK_TRACE, choices: [0, -1] }), "choices must be an array of whole numbers >= 0"],
    ["no outcome", JSON.stringify({ ...FORK_TRACE, outcome: undefined }), "outcome must be an object"],
  ])("rejects %s", (_case, text, message) => {
    expect(() => parseTrace(text)).toThrow(TraceFormatError);
    expect(() => parseTrace(text)).toThrow(message);
  });
});

describe("replayTrace", () => {
  it("reproduces the fork counterexample", async () => {
    const result = await replayTrace(FORK_TRACE, "0.1.0");

    expect(result.trace.outcome).toEqual({ status: "violation", violations: [FORK_VIOLATION] });
    expect(result.warnings).toEqual([]);
  });

  it("reproduces the mremap counterexample", async () => {
    const result = await replayTrace(MREMAP_TRACE, "0.1.0");

    expect(result.trace.outcome).toEqual({ status: "violation", violations: [MREMAP_VIOLATION] });
  });

  it("reproduces a pass", async () => {
    const run = await runScenario("remove", { gate: true, choose: replay([1, 0, 0]), build: "debug" });
    const trace = buildTrace(run, { strategy: "replay", packageVersion: "0.1.0" });
    const result = await replayTrace(trace, "0.1.0");

    expect(result.trace.outcome).toEqual({ status: "pass" });
    expect(result.trace.choices).toEqual(trace.choices);
  });

  it("warns about another wasm binary", async () => {
    const result = await replayTrace({ ...FORK_TRACE, wasmSha256: "0".repeat(64) }, "0.1.0");

    expect(result.warnings).toHaveLength(1);
    expect(result.warnings[0]).toMatch(/^the trace ran on wasm 000000000000…, this build has [0-9a-f]{12}…; the schedule may not reproduce$/);
    expect(result.trace.outcome).toEqual({ status: "violation", violations: [FORK_VIOLATION] });
  });

  it("warns about another version", async () => {
    const result = await replayTrace(FORK_TRACE, "0.2.0");

    expect(result.warnings).toEqual(["the trace was written by version 0.1.0, this is 0.2.0"]);
  });

  it("rejects a missing decision", async () => {
    const replayed = replayTrace({ ...FORK_TRACE, choices: [0, 1, 1] }, "0.1.0");

    await expect(replayed).rejects.toThrow(new ReplayMismatch("the run needs 4 decisions, the trace records only 3"));
  });

  it("rejects an impossible choice", async () => {
    const replayed = replayTrace({ ...FORK_TRACE, choices: [0, 5, 1, 0, 0, 0] }, "0.1.0");

    await expect(replayed).rejects.toThrow(new ReplayMismatch("decision 1 chose thread index 5, but only 2 threads are ready"));
  });

  it("rejects an unused choice", async () => {
    const replayed = replayTrace({ ...FORK_TRACE, choices: [...FORK_TRACE.choices, 0] }, "0.1.0");

    await expect(replayed).rejects.toThrow(new ReplayMismatch("the run ended after 6 decisions, the trace records 7"));
  });

  it("rejects another outcome", async () => {
    const replayed = replayTrace({ ...FORK_TRACE, outcome: { status: "pass" } }, "0.1.0");

    await expect(replayed).rejects.toBeInstanceOf(ReplayMismatch);
    await expect(replayed).rejects.toThrow(`the replay ended with "violation: ${FORK_VIOLATION}", the trace records "pass: every read matched the oracle"`);
  });
});
