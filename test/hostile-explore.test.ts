// Hostile arguments for the scheduler, its strategies, the exploration
// calls, traces, the lazy-restore monitor and the oracle. Misuse gets a
// TypeError (wrong type), RangeError (bad value) or TraceFormatError
// (malformed trace) naming what is wrong, before any schedule runs and
// without changing the object called.

import { describe, expect, it } from "vitest";
import {
  MAP_ANONYMOUS, MAP_FIXED, MAP_PRIVATE, Oracle, ReplayMismatch, Scheduler, SignalError, UFFD_API, exploreExhaustive, exploreRandom,
  exploreScenario, fifo, buildTrace, formatInterleaving, parseTrace, random, replay, replayTrace, runScenario, seededRandom,
  spawnLazyRestore, traceToJson, LazyRestoreMonitor,
  type LazyRestoreOptions, type RaceOptions, type ScenarioName, type Trace,
} from "../src/index.js";
import { TraceFormatError } from "../src/explore/trace.js";
import { createKernel } from "./helpers.js";
import {
  NOT_NUMBERS, NOT_NUMBERS_PRESENT, NOT_OBJECTS, NOT_U64, PAGE, numberRows, returns, row, runRows, throws, type Row,
} from "./hostile-helpers.js";

const REGION = 0x1000_0000;
const NOT_FUNCTIONS: readonly (readonly [string, unknown])[] = [
  ["null", null], ["undefined", undefined], ["number", 1], ["string", "fifo"], ["object", {}],
];
const NOT_STRINGS: readonly (readonly [string, unknown])[] = [
  ["number", 1], ["null", null], ["undefined", undefined], ["symbol", Symbol("name")], ["object", {}],
];
/** NOT_U64 less Infinity, which a preemption bound and a schedule limit accept as "no bound". */
const NOT_COUNTS = NOT_U64.filter(([name]) => name !== "Infinity");
/** NOT_U64 less the negative integers, which are valid seeds. */
const NOT_SEEDS = NOT_U64.filter(([name]) => name !== "negative" && name !== "-1");

describe("scheduler and strategies with hostile arguments", () => {
  it("Scheduler and spawn", async () => {
    const scheduler = new Scheduler(fifo());
    const threads = () => scheduler.threads.length;
    await runRows(threads, [
      ...NOT_FUNCTIONS.map(([name, value]) => row("Scheduler choose", name, () => new Scheduler(value as never), throws(TypeError, "choose"))),
      ...NOT_STRINGS.map(([name, value]) => row(
        "spawn name",
        name,
        () => scheduler.spawn(value as string, async () => {}),
        throws(TypeError, "name"),
      )),
      ...NOT_FUNCTIONS.map(([name, value]) => row("spawn body", name, () => scheduler.spawn("thread", value as never), throws(TypeError, "body"))),
    ]);
  });

  it("replay, random and seededRandom", async () => {
    const notArrays: [string, unknown][] = [["null", null], ["undefined", undefined], ["string", "0"], ["number", 0], ["object", {}]];
    const badChoices: [string, unknown[]][] = [
      ["-1", [-1]], ["fractional", [0.5]], ["NaN", [NaN]], ["Infinity", [Infinity]], ["string", ["0"]], ["second -1", [0, -1]],
    ];
    await runRows(() => null, [
      ...notArrays.map(([name, value]) => row("replay choices", name, () => replay(value as number[]), throws(TypeError, "choices"))),
      ...badChoices.map(([name, value]) => row("replay choices", name, () => replay(value as number[]), throws(RangeError, "choice"))),
      ...NOT_SEEDS.map(([name, value]) => row("random seed", name, () => random(value), throws(RangeError, "seed"))),
      ...NOT_NUMBERS.map(([name, value]) => row("random seed", name, () => random(value as number), throws(TypeError, "seed"))),
      ...NOT_SEEDS.map(([name, value]) => row("seededRandom seed", name, () => seededRandom(value), throws(RangeError, "seed"))),
      ...NOT_NUMBERS.map(([name, value]) => row("seededRandom seed", name, () => seededRandom(value as number), throws(TypeError, "seed"))),
    ]);
  });

  it("seeds taken modulo 2^32", () => {
    const draws = (seed: number) => {
      const next = seededRandom(seed);
      return [next(), next(), next()];
    };
    expect(draws(-1)).toEqual(draws(2 ** 32 - 1));
    expect(draws(2 ** 40 + 5)).toEqual(draws(5));
  });

  it("replay with choices the run cannot take", async () => {
    const run = async (choices: number[]) => {
      const scheduler = new Scheduler(replay(choices));
      for (const name of ["a", "b"]) scheduler.spawn(name, async (thread) => thread.yield(`${name} step`));
      return scheduler.run();
    };
    const beyond = await run([5]);
    expect(beyond.status).toBe("failed");
    expect(beyond.error).toBeInstanceOf(ReplayMismatch);
    expect((beyond.error as Error).message).toContain("chose thread index 5");
    const short = await run([]);
    expect(short.status).toBe("failed");
    expect(short.error).toBeInstanceOf(ReplayMismatch);
  });
});

describe("exploration with hostile arguments", () => {
  it("exploreExhaustive and exploreRandom", async () => {
    let runs = 0;
    const runOnce = async () => {
      runs++;
      return [];
    };
    const onSchedule = () => {};
    const exhaustive = (options: unknown) => exploreExhaustive(runOnce, options as never, onSchedule);
    const drawn = (count: unknown, seed: unknown) => exploreRandom(runOnce, count as number, seed as number, onSchedule);
    await runRows(() => runs, [
      ...NOT_FUNCTIONS.map(([name, value]) => row(
        "exploreExhaustive runOnce",
        name,
        () => exploreExhaustive(value as never, { preemptionBound: 1 }, onSchedule),
        throws(TypeError, "runOnce"),
      )),
      ...NOT_FUNCTIONS.map(([name, value]) => row(
        "exploreExhaustive onSchedule",
        name,
        () => exploreExhaustive(runOnce, { preemptionBound: 1 }, value as never),
        throws(TypeError, "onSchedule"),
      )),
      ...NOT_OBJECTS.map(([name, value]) => row("exploreExhaustive options", name, () => exhaustive(value), throws(TypeError, "options"))),
      ...NOT_COUNTS.map(([name, value]) => row(
        "preemptionBound",
        name,
        () => exhaustive({ preemptionBound: value }),
        throws(RangeError, "preemptionBound"),
      )),
      ...NOT_NUMBERS.map(([name, value]) => row(
        "preemptionBound",
        name,
        () => exhaustive({ preemptionBound: value }),
        throws(TypeError, "preemptionBound"),
      )),
      ...[...NOT_COUNTS, ["0", 0] as const].map(([name, value]) => row(
        "maxSchedules",
        name,
        () => exhaustive({ preemptionBound: 1, maxSchedules: value }),
        throws(RangeError, "maxSchedules"),
      )),
      ...NOT_NUMBERS_PRESENT.map(([name, value]) => row(
        "maxSchedules",
        name,
        () => exhaustive({ preemptionBound: 1, maxSchedules: value }),
        throws(TypeError, "maxSchedules"),
      )),
      ...NOT_FUNCTIONS.map(([name, value]) => row(
        "exploreRandom runOnce",
        name,
        () => exploreRandom(value as never, 1, 1, onSchedule),
        throws(TypeError, "runOnce"),
      )),
      ...numberRows("count", (count) => drawn(count, 1), throws(RangeError, "count"), { call: "exploreRandom" }),
      ...NOT_SEEDS.map(([name, value]) => row("exploreRandom seed", name, () => drawn(1, value), throws(RangeError, "seed"))),
      ...NOT_NUMBERS.map(([name, value]) => row("exploreRandom seed", name, () => drawn(1, value), throws(TypeError, "seed"))),
    ]);
    expect(runs, "schedules run by the rejected calls").toBe(0);
  });

  it("exploreScenario and runScenario", async () => {
    const explore = (name: unknown, options: unknown) => exploreScenario(name as ScenarioName, options as RaceOptions);
    const options = { gate: true, preemptionBound: 1, build: "debug" as const };
    const badNames: [string, unknown, ErrorConstructor][] = [
      ["unknown", "nope", RangeError], ["constructor", "constructor", RangeError], ["empty", "", RangeError],
      ["number", 1, TypeError], ["null", null, TypeError], ["undefined", undefined, TypeError],
    ];
    await runRows(() => null, [
      ...badNames.map(([name, value, type]) => row("exploreScenario name", name, () => explore(value, options), throws(type, "scenario"))),
      ...NOT_OBJECTS.map(([name, value]) => row("exploreScenario options", name, () => explore("fork", value), throws(TypeError, "options"))),
      ...[["string", "yes"], ["number", 1], ["null", null], ["undefined", undefined]].map(([name, value]) =>
        row("exploreScenario gate", name as string, () => explore("fork", { ...options, gate: value }), throws(TypeError, "gate")),
      ),
      row("exploreScenario onProgress", "number", () => explore("fork", { ...options, onProgress: 1 }), throws(TypeError, "onProgress")),
      ...NOT_OBJECTS.map(([name, value]) => row(
        "exploreScenario random",
        name,
        () => explore("fork", { ...options, random: value }),
        throws(TypeError, "random"),
      )),
      row("exploreScenario random count", "-1", () => explore("fork", { ...options, random: { count: -1, seed: 1 } }), throws(RangeError, "count")),
      row(
        "exploreScenario random seed",
        "fractional",
        () => explore("fork", { ...options, random: { count: 1, seed: 0.5 } }),
        throws(RangeError, "seed"),
      ),
      row(
        "exploreScenario preemptionBound",
        "NaN",
        () => explore("fork", { ...options, preemptionBound: NaN }),
        throws(RangeError, "preemptionBound"),
      ),
      row("exploreScenario maxSchedules", "0", () => explore("fork", { ...options, maxSchedules: 0 }), throws(RangeError, "maxSchedules")),
      ...badNames.map(([name, value, type]) => row(
        "runScenario name",
        name,
        () => runScenario(value as ScenarioName, { gate: true, choose: fifo() }),
        throws(type, "scenario"),
      )),
      row("runScenario gate", "string", () => runScenario("fork", { gate: "yes" as never, choose: fifo() }), throws(TypeError, "gate")),
      ...NOT_FUNCTIONS.map(([name, value]) => row(
        "runScenario choose",
        name,
        () => runScenario("fork", { gate: true, choose: value as never }),
        throws(TypeError, "choose"),
      )),
    ]);
  });
});

/** A well-formed trace that no field check rejects. Each row breaks one field. */
const TRACE: Trace = {
  format: "uffd-wasm race trace",
  version: 1,
  scenario: "remove",
  gate: true,
  strategy: "replay",
  choices: [],
  packageVersion: "0.1.0",
  wasmSha256: "0".repeat(64),
  outcome: { status: "pass" },
  interleaving: [],
};

describe("traces with hostile input", () => {
  it("parseTrace", async () => {
    const broken = (field: string, value: unknown) => JSON.stringify({ ...TRACE, [field]: value });
    const without = (field: string) => JSON.stringify({ ...TRACE, [field]: undefined });
    const malformed: [string, string, string][] = [
      ["empty", "", "invalid JSON"],
      ["cut short", "{", "invalid JSON"],
      ["an array", "[]", "JSON object"],
      ["null", "null", "JSON object"],
      ["format", broken("format", "other"), "format"],
      ["version 2", broken("version", 2), "version"],
      ["unknown scenario", broken("scenario", "nope"), "scenario"],
      ["scenario constructor", broken("scenario", "constructor"), "scenario"],
      ["gate a string", broken("gate", "yes"), "gate"],
      ["strategy", broken("strategy", "dfs"), "strategy"],
      ["choices -1", broken("choices", [-1]), "choices"],
      ["choices fractional", broken("choices", [0.5]), "choices"],
      ["choices a string", broken("choices", "0"), "choices"],
      ["choices null", broken("choices", [null]), "choices"],
      ["packageVersion a number", broken("packageVersion", 5), "packageVersion"],
      ["wasmSha256 missing", without("wasmSha256"), "wasmSha256"],
      ["seed fractional", broken("seed", 0.5), "seed"],
      ["preemptionBound -1", broken("preemptionBound", -1), "preemptionBound"],
      ["outcome missing", without("outcome"), "outcome"],
      ["outcome status", broken("outcome", { status: "fail" }), "outcome"],
      ["violations not strings", broken("outcome", { status: "violation", violations: [1] }), "outcome"],
      ["interleaving missing", without("interleaving"), "interleaving"],
    ];
    await runRows(() => null, [
      ...NOT_STRINGS.map(([name, value]) => row("parseTrace text", name, () => parseTrace(value as string), throws(TypeError, "text"))),
      ...malformed.map(([name, text, naming]) => row("parseTrace", name, () => parseTrace(text), throws(TraceFormatError, naming))),
      row("parseTrace", "well formed", () => parseTrace(JSON.stringify(TRACE)), returns(TRACE)),
    ]);
  });

  it("buildTrace, traceToJson and formatInterleaving", async () => {
    const run = await runScenario("remove", { gate: true, choose: fifo(), build: "debug" });
    const source = { strategy: "replay" as const, packageVersion: "0.1.0" };
    await runRows(() => null, [
      ...NOT_OBJECTS.map(([name, value]) => row("buildTrace run", name, () => buildTrace(value as never, source), throws(TypeError, "run"))),
      row("buildTrace run", "empty object", () => buildTrace({} as never, source), throws(TypeError, "run")),
      ...NOT_OBJECTS.map(([name, value]) => row("buildTrace source", name, () => buildTrace(run, value as never), throws(TypeError, "source"))),
      row("buildTrace strategy", "unknown", () => buildTrace(run, { ...source, strategy: "dfs" as never }), throws(TypeError, "strategy")),
      ...NOT_STRINGS.map(([name, value]) =>
        row("buildTrace packageVersion", name, () => buildTrace(run, { ...source, packageVersion: value as string }), throws(TypeError, "packageVersion")),
      ),
      row("traceToJson trace", "null", () => traceToJson(null as never), throws(TraceFormatError, "JSON object")),
      row("traceToJson trace", "choices -1", () => traceToJson({ ...TRACE, choices: [-1] }), throws(TraceFormatError, "choices")),
      row("traceToJson trace", "well formed", () => traceToJson(TRACE), returns(JSON.stringify(TRACE, null, 2) + "\n")),
      ...[["null", null], ["string", "rows"], ["array of numbers", [1]], ["row without columns", [{ step: 1 }]]].map(([name, value]) =>
        row("formatInterleaving rows", name as string, () => formatInterleaving(value as never), throws(TypeError, "rows")),
      ),
    ]);
  });

  it("replayTrace", async () => {
    await runRows(() => null, [
      row("replayTrace trace", "null", () => replayTrace(null as never, "0.1.0"), throws(TraceFormatError, "JSON object")),
      row("replayTrace trace", "empty object", () => replayTrace({} as never, "0.1.0"), throws(TraceFormatError, "format")),
      row("replayTrace choices", "-1", () => replayTrace({ ...TRACE, choices: [-1] }, "0.1.0"), throws(TraceFormatError, "choices")),
      row(
        "replayTrace scenario",
        "unknown",
        () => replayTrace({ ...TRACE, scenario: "nope" as ScenarioName }, "0.1.0"),
        throws(TraceFormatError, "scenario"),
      ),
      ...NOT_STRINGS.map(([name, value]) => row(
        "replayTrace packageVersion",
        name,
        () => replayTrace(TRACE, value as string),
        throws(TypeError, "packageVersion"),
      )),
    ]);
  });
});

describe("lazy-restore monitor with hostile options", () => {
  it("LazyRestoreMonitor and spawnLazyRestore", async () => {
    const kernel = await createKernel();
    const process = kernel.createProcess();
    expect(process.mmap(PAGE, { flags: MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, address: REGION })).toBe(REGION);
    const uffd = process.userfaultfd();
    expect(uffd.api({ api: UFFD_API, features: 0 }).errno).toBe(0);
    const valid: LazyRestoreOptions = { uffd, snapshot: new Map([[REGION, REGION]]), targetDone: () => true };
    const create = (options: unknown) => new LazyRestoreMonitor(options as LazyRestoreOptions);
    const scheduler = new Scheduler(fifo());
    const rows: Row[] = [
      ...NOT_OBJECTS.map(([name, value]) => row("LazyRestoreMonitor options", name, () => create(value), throws(TypeError, "options"))),
      ...[["null", null], ["object", {}], ["process", process]].map(([name, value]) =>
        row("LazyRestoreMonitor uffd", name as string, () => create({ ...valid, uffd: value }), throws(TypeError, "uffd")),
      ),
      ...[["null", null], ["object", {}], ["array", [[REGION, REGION]]]].map(([name, value]) =>
        row("LazyRestoreMonitor snapshot", name as string, () => create({ ...valid, snapshot: value }), throws(TypeError, "snapshot")),
      ),
      row(
        "LazyRestoreMonitor snapshot",
        "string key",
        () => create({ ...valid, snapshot: new Map([["0x10000000", REGION]]) }),
        throws(TypeError, "numbers"),
      ),
      row(
        "LazyRestoreMonitor snapshot",
        "unaligned page",
        () => create({ ...valid, snapshot: new Map([[REGION + 1, REGION]]) }),
        throws(RangeError, "page address"),
      ),
      ...NOT_U64.map(([name, value]) =>
        row(
          "LazyRestoreMonitor snapshot page",
          name,
          () => create({ ...valid, snapshot: new Map([[value, REGION]]) }),
          throws(RangeError, "page address"),
        ),
      ),
      ...NOT_U64.map(([name, value]) =>
        row(
          "LazyRestoreMonitor snapshot source",
          name,
          () => create({ ...valid, snapshot: new Map([[REGION, value]]) }),
          throws(RangeError, "source address"),
        ),
      ),
      ...NOT_FUNCTIONS.map(([name, value]) => row(
        "LazyRestoreMonitor targetDone",
        name,
        () => create({ ...valid, targetDone: value }),
        throws(TypeError, "targetDone"),
      )),
      row("LazyRestoreMonitor threadName", "number", () => create({ ...valid, threadName: 1 }), throws(TypeError, "threadName")),
      ...[["null", null], ["object", {}], ["function", fifo()]].map(([name, value]) =>
        row("spawnLazyRestore scheduler", name as string, () => spawnLazyRestore(value as Scheduler, valid), throws(TypeError, "scheduler")),
      ),
      row("spawnLazyRestore options", "null", () => spawnLazyRestore(scheduler, null as never), throws(TypeError, "options")),
    ];
    await runRows(kernel, rows);
    expect(scheduler.threads, "threads spawned by the rejected calls").toHaveLength(0);
  });
});

describe("oracle with hostile arguments", () => {
  it("every method", async () => {
    const oracle = new Oracle();
    oracle.addProcess(1, new Map([[REGION, new Uint8Array(PAGE).fill(0x41)], [REGION + PAGE, new Uint8Array(PAGE).fill(0x42)]]));
    const tracked = (pid: number) => {
      try {
        oracle.expected(pid, REGION, 1);
        return true;
      } catch {
        return false;
      }
    };
    // The pages as base64: toEqual on a string is much faster than on 8 KiB of typed array.
    const state = () => ({
      memory: Buffer.from(oracle.expected(1, REGION, 2 * PAGE)!).toString("base64"),
      violations: [...oracle.violations],
      tracked: [tracked(1), tracked(2)],
    });
    const pages = (address: number, contents: unknown = new Uint8Array(PAGE)) => new Map([[address, contents as Uint8Array]]);
    await runRows(state, [
      ...numberRows("pid", (pid) => oracle.addProcess(pid as number, new Map()), throws(RangeError, "pid"), { call: "addProcess" }),
      ...NOT_OBJECTS.map(([name, value]) => row("addProcess pages", name, () => oracle.addProcess(2, value as never), throws(TypeError, "pages"))),
      row("addProcess pages", "unaligned address", () => oracle.addProcess(2, pages(REGION + 1)), throws(RangeError, "page aligned")),
      row("addProcess pages", "negative address", () => oracle.addProcess(2, pages(-PAGE)), throws(RangeError, "page address")),
      row("addProcess pages", "short contents", () => oracle.addProcess(2, pages(REGION, new Uint8Array(100))), throws(RangeError, "100 bytes")),
      row(
        "addProcess pages",
        "contents an array",
        () => oracle.addProcess(2, pages(REGION, new Array(PAGE).fill(0))),
        throws(TypeError, "Uint8Array"),
      ),
      row("write pid", "not tracked", () => oracle.write(99, REGION, Uint8Array.of(1)), throws(RangeError, "not tracked")),
      ...numberRows("address", (address) => oracle.write(1, address as number, Uint8Array.of(1)), throws(RangeError, "address"), { call: "write" }),
      row("write data", "array", () => oracle.write(1, REGION, [1] as never), throws(TypeError, "data")),
      row("write", "across into unmapped memory", () => oracle.write(1, REGION + 2 * PAGE - 1, Uint8Array.of(1, 2)), throws(RangeError, "unmapped")),
      ...numberRows("start", (start) => oracle.zero(1, start as number, REGION + PAGE), throws(RangeError, "start"), { call: "zero" }),
      row("zero start", "unaligned", () => oracle.zero(1, REGION + 1, REGION + PAGE), throws(RangeError, "page aligned")),
      row("zero end", "below start", () => oracle.zero(1, REGION + PAGE, REGION), throws(RangeError, "below its start")),
      ...numberRows("end", (end) => oracle.unmap(1, REGION, end as number), throws(RangeError, "end"), { call: "unmap" }),
      ...numberRows(
        "length",
        (length) => oracle.move(1, REGION, REGION + 4 * PAGE, length as number),
        throws(RangeError, "length"),
        { call: "move" },
      ),
      row("move to", "unaligned", () => oracle.move(1, REGION, REGION + 1, PAGE), throws(RangeError, "page aligned")),
      row("fork parent", "not tracked", () => oracle.fork(99, 2), throws(RangeError, "not tracked")),
      ...numberRows("pid", (pid) => oracle.fork(1, pid as number), throws(RangeError, "pid"), { call: "fork" }),
      ...numberRows("length", (length) => oracle.expected(1, REGION, length as number), throws(RangeError, "length"), { call: "expected" }),
      ...NOT_STRINGS.map(([name, value]) => row(
        "checkRead reader",
        name,
        () => oracle.checkRead(value as string, 1, REGION, 1, Uint8Array.of(0x41)),
        throws(TypeError, "reader"),
      )),
      row("checkRead outcome", "string", () => oracle.checkRead("target", 1, REGION, 1, "A" as never), throws(TypeError, "outcome")),
      row(
        "checkRead outcome",
        "plain Error",
        () => oracle.checkRead("target", 1, REGION, 1, new Error("x") as SignalError),
        throws(TypeError, "outcome"),
      ),
    ]);
  });
});
