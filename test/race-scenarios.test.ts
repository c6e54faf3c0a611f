// Race scenarios: a lazy-restore monitor copying pages in the background
// while the target forks, moves, drops or unmaps them. The counts of
// schedules are pinned, so that a change in the model's semantics or yield
// points shows up here. Without the mmap_changing gate, fork and mremap
// have schedules where the target or its child reads zeros instead of its
// snapshot. With the gate, no schedule breaks the oracle.

import { describe, expect, it } from "vitest";
import { exploreScenario } from "../src/explore/race.js";
import { runScenario, type ScenarioName } from "../src/explore/scenarios.js";
import { interleavingRows } from "../src/explore/trace.js";
import { ReplayMismatch, fifo, replay } from "../src/sched/strategies.js";

interface CountCase {
  scenario: ScenarioName;
  gate: boolean;
  schedules: number;
  violating: number;
}

/** Every schedule with at most 2 preemptions, the race command's default. */
const BOUND_2: CountCase[] = [
  { scenario: "fork", gate: false, schedules: 162, violating: 24 },
  { scenario: "fork", gate: true, schedules: 537, violating: 0 },
  { scenario: "mremap", gate: false, schedules: 16, violating: 5 },
  { scenario: "mremap", gate: true, schedules: 23, violating: 0 },
  { scenario: "remove", gate: false, schedules: 11, violating: 0 },
  { scenario: "remove", gate: true, schedules: 14, violating: 0 },
  { scenario: "unmap", gate: false, schedules: 21, violating: 0 },
  { scenario: "unmap", gate: true, schedules: 32, violating: 0 },
];

/** Every schedule, without a preemption bound. */
const UNBOUNDED: CountCase[] = [
  { scenario: "mremap", gate: false, schedules: 23, violating: 9 },
  { scenario: "mremap", gate: true, schedules: 76, violating: 0 },
  { scenario: "remove", gate: false, schedules: 12, violating: 0 },
  { scenario: "remove", gate: true, schedules: 20, violating: 0 },
  { scenario: "unmap", gate: false, schedules: 47, violating: 0 },
  { scenario: "unmap", gate: true, schedules: 163, violating: 0 },
];

const FORK_CHOICES = [0, 1, 1, 0, 0, 0];
const MREMAP_CHOICES = [1, 0, 0, 0, 0];

/** Returns the interleaving of a run as "P <process column>" or "M <monitor column>" lines. */
function columns(steps: Parameters<typeof interleavingRows>[0]): string[] {
  return interleavingRows(steps).map((row) => (row.process !== "" ? `P ${row.process}` : `M ${row.monitor}`));
}

describe("schedules up to 2 preemptions", () => {
  it.each(BOUND_2)("$scenario, gate $gate", async ({ scenario, gate, schedules, violating }) => {
    const report = await exploreScenario(scenario, { gate, preemptionBound: 2, build: "debug" });

    expect(report.complete).toBe(true);
    expect(report.schedules, "schedules").toBe(schedules);
    expect(report.violating, "violating schedules").toBe(violating);
  });
});

describe("every schedule", () => {
  it.each(UNBOUNDED)("$scenario, gate $gate", async ({ scenario, gate, schedules, violating }) => {
    const report = await exploreScenario(scenario, { gate, preemptionBound: Infinity, build: "debug" });

    expect(report.complete).toBe(true);
    expect(report.schedules, "schedules").toBe(schedules);
    expect(report.violating, "violating schedules").toBe(violating);
  });
});

describe("FIFO schedule", () => {
  it.each(["fork", "mremap", "remove", "unmap"] as const)("%s passes either way", async (scenario) => {
    const off = await runScenario(scenario, { gate: false, choose: fifo(), build: "debug" });
    const on = await runScenario(scenario, { gate: true, choose: fifo(), build: "debug" });

    expect(off.violations, "gate off").toEqual([]);
    expect(on.violations, "gate on").toEqual([]);
  });
});

describe("fork counterexample", () => {
  it("is the shortest found", async () => {
    const report = await exploreScenario("fork", { gate: false, preemptionBound: 2, build: "debug" });

    expect(report.shortest?.choices).toEqual(FORK_CHOICES);
    expect(report.shortest?.length).toBe(17);
  });

  it("leaves the child reading zeros", async () => {
    const run = await runScenario("fork", { gate: false, choose: replay(FORK_CHOICES), build: "debug" });

    expect(run.violations).toEqual(["child read 4096 bytes at 0x10001000: expected 4096 × 0x42, read 4096 × 0x00"]);
    expect(run.result.decisions.map((decision) => decision.chosen)).toEqual(FORK_CHOICES);
  });

  it("copies after fork copied the tables", async () => {
    const run = await runScenario("fork", { gate: false, choose: replay(FORK_CHOICES), build: "debug" });

    expect(columns(run.steps)).toEqual([
      "P target: start — preempted before fork",
      "M start",
      "M COPY 0x10000000 for target (background) — done; preempted before COPY 0x10001000 for target (background)",
      "P target: fork — sleeps until a read of event 0x13",
      "M COPY 0x10001000 for target (background) — done",
      "M read target's uffd — FORK: serving child on uffd 4; poll: sleeps until a message or the end of the target",
      "P target: fork (continued) — returns child pid 3",
      "P target: read 0x10000000 — 4096 × 0x41",
      "P target: read 0x10001000 — 4096 × 0x42",
      "P child: start",
      "P child: read 0x10000000 — 4096 × 0x41",
      "P child: read 0x10001000 — sleeps until a wake of the fault at 0x10001000",
      "M poll (continued)",
      "M read child's uffd — PAGEFAULT at 0x10001000",
      "M ZEROPAGE 0x10001000 for child's fault — done; poll: sleeps until a message or the end of the target",
      "P child: read 0x10001000 (continued) — 4096 × 0x00; VIOLATION: child read 4096 bytes at 0x10001000: expected 4096 × 0x42, read 4096 × 0x00",
      "M poll (continued)",
    ]);
  });

  it("does not exist with the gate", async () => {
    // The COPY after fork gets EAGAIN, so the monitor reads FORK first and
    // the run needs more decisions than the recorded schedule has.
    const run = runScenario("fork", { gate: true, choose: replay(FORK_CHOICES), build: "debug" });

    await expect(run).rejects.toBeInstanceOf(ReplayMismatch);
  });
});

describe("mremap counterexample", () => {
  it("is the shortest found", async () => {
    const report = await exploreScenario("mremap", { gate: false, preemptionBound: 2, build: "debug" });

    expect(report.shortest?.choices).toEqual(MREMAP_CHOICES);
    expect(report.shortest?.length).toBe(13);
  });

  it("leaves the target reading zeros", async () => {
    const run = await runScenario("mremap", { gate: false, choose: replay(MREMAP_CHOICES), build: "debug" });

    expect(run.violations).toEqual(["target read 4096 bytes at 0x20000000: expected 4096 × 0x41, read 4096 × 0x00"]);
  });

  it("copies to the old address after the move", async () => {
    const run = await runScenario("mremap", { gate: false, choose: replay(MREMAP_CHOICES), build: "debug" });

    expect(columns(run.steps)).toEqual([
      "M start — preempted before COPY 0x10000000 for target (background)",
      "P target: start",
      "P target: mremap 0x10000000 → 0x20000000, 8192 bytes — sleeps until a read of event 0x14",
      "M COPY 0x10000000 for target (background) — ENOENT",
      "M read target's uffd — REMAP 0x10000000 → 0x20000000, 8192 bytes; preempted before COPY 0x20001000 for target (background)",
      "P target: mremap 0x10000000 → 0x20000000, 8192 bytes (continued) — returns 0x20000000",
      "P target: read 0x20000000 — sleeps until a wake of the fault at 0x20000000",
      "M COPY 0x20001000 for target (background) — done",
      "M read target's uffd — PAGEFAULT at 0x20000000",
      "M ZEROPAGE 0x20000000 for target's fault — done; poll: sleeps until a message or the end of the target",
      "P target: read 0x20000000 (continued) — 4096 × 0x00; VIOLATION: target read 4096 bytes at 0x20000000: expected 4096 × 0x41, read 4096 × 0x00",
      "P target: read 0x20001000 — 4096 × 0x42",
      "M poll (continued)",
    ]);
  });

  it("does not exist with the gate", async () => {
    const run = runScenario("mremap", { gate: true, choose: replay(MREMAP_CHOICES), build: "debug" });

    await expect(run).rejects.toBeInstanceOf(ReplayMismatch);
  });
});

describe("random sample", () => {
  it("draws the same schedules from a seed", async () => {
    const first = await exploreScenario("fork", { gate: false, preemptionBound: 2, random: { count: 40, seed: 7 }, build: "debug" });
    const second = await exploreScenario("fork", { gate: false, preemptionBound: 2, random: { count: 40, seed: 7 }, build: "debug" });

    expect(first.violating, "violating schedules").toBe(18);
    expect(second.violating, "violating schedules again").toBe(18);
    expect(first.shortest?.seed, "seed of the shortest").toBe(16);
    expect(second.shortest?.choices, "choices of the shortest again").toEqual(first.shortest?.choices);
  });
});
