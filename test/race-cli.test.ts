// The race and replay commands, called through their exported functions
// with an in-memory I/O object: output, exit statuses, trace files and
// usage errors.

import { describe, expect, it } from "vitest";
import { CommandUsageError, raceCommand, replayCommand, type CommandIo, type RaceArguments } from "../src/explore/commands.js";
import { parseTrace } from "../src/explore/trace.js";

interface FakeIo {
  io: CommandIo;
  out: () => string;
  err: () => string;
  files: Map<string, string>;
}

/** Creates an I/O object over in-memory files, with `directories` existing and progress lines when `progress`. */
function fakeIo(options: { directories?: string[]; files?: Map<string, string>; progress?: boolean } = {}): FakeIo {
  const out: string[] = [];
  const err: string[] = [];
  const files = options.files ?? new Map<string, string>();
  const directories = new Set(options.directories ?? []);
  const io: CommandIo = {
    out: (text) => out.push(text),
    err: (text) => err.push(text),
    progress: options.progress === true,
    isDirectory: (path) => directories.has(path),
    readFile(path) {
      const text = files.get(path);
      if (text === undefined) throw new Error(`ENOENT: no such file or directory, open '${path}'`);
      return text;
    },
    writeFile: (path, text) => files.set(path, text),
    packageVersion: "0.1.0",
  };
  return { io, out: () => out.join(""), err: () => err.join(""), files };
}

describe("race", () => {
  it("prints counts per gate", async () => {
    const fake = fakeIo();

    expect(await raceCommand({ scenario: "mremap" }, fake.io)).toBe(0);
    expect(fake.out()).toContain("Exploring every schedule with at most 2 preemptions.\n");
    expect(fake.out()).toContain("scenario  gate  schedules  violating\nmremap    off          16          5\nmremap    on           23          0\n");
  });

  it("prints the shortest counterexample", async () => {
    const fake = fakeIo();
    await raceCommand({ scenario: "mremap", gate: "off" }, fake.io);

    expect(fake.out()).toContain("mremap, gate off: the shortest violating schedule has 13 steps (choices 1,0,0,0,0):\n");
    // The process column is 64 characters wide at most.
    expect(fake.out()).toContain(`   4  ${" ".repeat(64)} | COPY 0x10000000 for target (background) — ENOENT\n`);
    expect(fake.out()).toContain("violation: target read 4096 bytes at 0x20000000: expected 4096 × 0x41, read 4096 × 0x00\n");
    expect(fake.out()).toContain("Run again with --trace-dir DIR to write its trace");
  });

  it("prints no counterexample with the gate", async () => {
    const fake = fakeIo();
    await raceCommand({ scenario: "unmap", gate: "on" }, fake.io);

    expect(fake.out()).toContain("unmap     on           32          0\n");
    expect(fake.out()).not.toContain("shortest violating schedule");
  });

  it("applies the preemption bound", async () => {
    const fake = fakeIo();
    await raceCommand({ scenario: "remove", gate: "off", preemptionBound: "0" }, fake.io);

    expect(fake.out()).toContain("Exploring every schedule with at most 0 preemptions.\n");
    expect(fake.out()).toContain("remove    off           2          0\n");
  });

  it("draws random schedules", async () => {
    const fake = fakeIo();
    await raceCommand({ scenario: "mremap", gate: "off", random: "10", seed: "5" }, fake.io);

    expect(fake.out()).toContain("Drawing 10 random schedules per scenario and gate, seeds 5 to 14.\n");
    expect(fake.out()).toContain("mremap    off          10          4\n");
    expect(fake.out()).toContain("(choices 1,0,0,0,0, drawn with seed 13):\n");
  });

  it("writes the trace", async () => {
    const fake = fakeIo({ directories: ["out"] });
    await raceCommand({ scenario: "fork", gate: "off", traceDir: "out" }, fake.io);
    const trace = parseTrace(fake.files.get("out/fork-gate-off.json")!);

    expect(fake.out()).toContain("trace written to out/fork-gate-off.json; replay it with: uffd-wasm replay out/fork-gate-off.json\n");
    expect(trace.choices).toEqual([0, 1, 1, 0, 0, 0]);
    expect(trace.strategy).toBe("exhaustive");
    expect(trace.preemptionBound).toBe(2);
    expect(trace.packageVersion).toBe("0.1.0");
  });

  it("shows progress on a terminal", async () => {
    const fake = fakeIo({ progress: true });
    await raceCommand({ scenario: "fork", gate: "off" }, fake.io);

    expect(fake.err()).toBe("\rfork, gate off: 100 schedules\r\x1b[K");
  });

  it("stays quiet elsewhere", async () => {
    const fake = fakeIo();
    await raceCommand({ scenario: "fork", gate: "off" }, fake.io);

    expect(fake.err()).toBe("");
  });

  it.each<[string, RaceArguments, string]>([
    ["an unknown scenario", { scenario: "exec" }, 'unknown scenario "exec": expected fork, mremap, remove, unmap or all'],
    ["an unknown gate", { gate: "maybe" }, 'invalid --gate "maybe": expected on or off'],
    ["a seed alone", { seed: "3" }, "--seed requires --random N"],
    ["random with a bound", { random: "5", preemptionBound: "2" }, "--preemption-bound applies to the exhaustive search; drop it or --random"],
    ["zero schedules", { random: "0" }, 'invalid --random "0": expected a whole number >= 1'],
    ["a fractional bound", { preemptionBound: "1.5" }, 'invalid --preemption-bound "1.5": expected a whole number >= 0'],
    ["a missing directory", { traceDir: "nowhere" }, "invalid --trace-dir nowhere: not a directory and cannot be created"],
  ])("rejects %s", async (_case, args, message) => {
    const run = raceCommand(args, fakeIo().io);

    await expect(run).rejects.toBeInstanceOf(CommandUsageError);
    await expect(run).rejects.toThrow(message);
  });
});

describe("replay", () => {
  /** Runs `race fork --gate off --trace-dir out` and returns the I/O holding its trace. */
  async function recorded(): Promise<FakeIo> {
    const fake = fakeIo({ directories: ["out"] });
    await raceCommand({ scenario: "fork", gate: "off", traceDir: "out" }, fake.io);
    return fakeIo({ files: fake.files });
  }

  it("reproduces a written trace", async () => {
    const fake = await recorded();

    expect(await replayCommand({ trace: "out/fork-gate-off.json" }, fake.io)).toBe(0);
    expect(fake.out()).toContain("Replaying fork, gate off: 6 recorded choices (exhaustive, preemption bound 2).\n");
    expect(fake.out()).toContain("violation: child read 4096 bytes at 0x10001000: expected 4096 × 0x42, read 4096 × 0x00\n");
    expect(fake.out()).toContain("The replay reproduces the recorded outcome.\n");
    expect(fake.err()).toBe("");
  });

  it("prints each step", async () => {
    const fake = await recorded();
    await replayCommand({ trace: "out/fork-gate-off.json" }, fake.io);

    expect(fake.out()).toContain("   5  ");
    expect(fake.out()).toContain("| COPY 0x10001000 for target (background) — done\n");
  });

  it("reports a mismatch with status 1", async () => {
    const fake = await recorded();
    const trace = JSON.parse(fake.files.get("out/fork-gate-off.json")!) as { outcome: unknown };
    trace.outcome = { status: "pass" };
    fake.files.set("out/fork-gate-off.json", JSON.stringify(trace));

    expect(await replayCommand({ trace: "out/fork-gate-off.json" }, fake.io)).toBe(1);
    expect(fake.out()).toContain('replay mismatch: the replay ended with "violation: child read');
  });

  it("warns about another wasm binary", async () => {
    const fake = await recorded();
    const trace = JSON.parse(fake.files.get("out/fork-gate-off.json")!) as { wasmSha256: string };
    trace.wasmSha256 = "f".repeat(64);
    fake.files.set("out/fork-gate-off.json", JSON.stringify(trace));

    expect(await replayCommand({ trace: "out/fork-gate-off.json" }, fake.io)).toBe(0);
    expect(fake.err()).toMatch(/^warning: the trace ran on wasm ffffffffffff…, this build has [0-9a-f]{12}…; the schedule may not reproduce\n$/);
  });

  it.each<[string, { trace?: string }, Map<string, string>, string]>([
    ["a missing argument", {}, new Map(), "missing TRACE: the path of a trace file written by uffd-wasm race --trace-dir"],
    ["a missing file", { trace: "gone.json" }, new Map(), "cannot read trace gone.json: ENOENT: no such file or directory, open 'gone.json'"],
    ["invalid JSON", { trace: "bad.json" }, new Map([["bad.json", "{"]]), "invalid trace bad.json: invalid JSON"],
    ["another format", { trace: "other.json" }, new Map([["other.json", '{"format":"x"}']]), 'invalid trace other.json: format must be "uffd-wasm race trace", got "x"'],
  ])("rejects %s", async (_case, args, files, message) => {
    const run = replayCommand(args, fakeIo({ files }).io);

    await expect(run).rejects.toBeInstanceOf(CommandUsageError);
    await expect(run).rejects.toThrow(message);
  });
});
