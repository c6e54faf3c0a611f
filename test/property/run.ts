// Runs the property: random command sequences on one reused kernel, each
// compared with the reference model after every step, then wound down
// (every userfaultfd closed, every process exited) until only the zero
// frame is left. Seed, run count and a failure's replay path come from
// the environment, so a printed failure can be run again:
//
//   UFFD_PROPERTY_SEED=<seed> UFFD_PROPERTY_PATH=<path> \
//   UFFD_PROPERTY_REPLAY=<replayPath> npx vitest run test/property/<file>.test.ts
//
// fast-check prints the seed and path with the failure, and the replay
// path in a /*replayPath="..."*/ comment after the shrunk sequence.
// UFFD_PROPERTY_RUNS sets the number of sequences of every property.

import fc from "fast-check";
import { commandArbitraries, monitorSetups } from "./commands.js";
import type { Step } from "./process-steps.js";
import type { Reference } from "./reference.js";
import { System } from "./system.js";

export interface PropertyOptions {
  /** Include userfaultfds, registration, the ioctls and the monitor's reads. */
  withMonitor: boolean;
  /** Event features of the first userfaultfd of a run with a monitor; random when absent. */
  features?: number;
  /** Sequences to run unless UFFD_PROPERTY_RUNS is set. */
  runs: number;
  /** The seed unless UFFD_PROPERTY_SEED is set. */
  seed: number;
  maxCommands: number;
}

function envInteger(name: string): number | undefined {
  const text = process.env[name];
  if (text === undefined || text === "") return undefined;
  const value = Number(text);
  if (!Number.isSafeInteger(value)) throw new Error(`${name} must be a whole number, got "${text}"`);
  return value;
}

/** Returns the seed, run count and replay path a property runs with, after the environment's overrides. */
export function propertyParameters(options: PropertyOptions): fc.Parameters<[Sequence]> {
  const path = process.env.UFFD_PROPERTY_PATH;
  const parameters: fc.Parameters<[Sequence]> = {
    seed: envInteger("UFFD_PROPERTY_SEED") ?? options.seed,
    numRuns: envInteger("UFFD_PROPERTY_RUNS") ?? options.runs,
  };
  if (path !== undefined && path !== "") {
    parameters.path = path;
    parameters.endOnFailure = true;
  }
  return parameters;
}

type Commands = Iterable<fc.AsyncCommand<Reference, System>>;

/** A run: its fixed first steps (none without a monitor), then the random commands. */
export type Sequence = [Step[], Commands];

/** Returns the arbitrary of runs for `options`. */
export function sequences(options: PropertyOptions): fc.Arbitrary<Sequence> {
  const replayPath = process.env.UFFD_PROPERTY_REPLAY;
  const commands = fc.commands(commandArbitraries(options.withMonitor), {
    maxCommands: options.maxCommands,
    size: "max",
    ...(replayPath === undefined || replayPath === "" ? {} : { replayPath }),
  });
  return fc.tuple(options.withMonitor ? monitorSetups(options.features) : fc.constant([]), commands);
}

/**
 * Closes every open userfaultfd, which lets every blocked call finish,
 * then exits every process and checks that only the zero frame is left.
 */
async function windDown(ref: Reference, sys: System): Promise<void> {
  for (const ctx of ref.contexts) {
    if (!ctx.handleOpen) continue;
    ctx.close();
    sys.handle(ctx).close();
  }
  await sys.settle(ref);
  for (const process of ref.processes) {
    if (process.call !== null) throw new Error(`pid ${process.pid}: ${process.call.name} is still blocked after every userfaultfd was closed`);
  }
  for (const process of ref.runnableProcesses()) {
    ref.exit(process);
    sys.process(process.pid).exit();
  }
  sys.monitor.exit();
  await sys.settle(ref);
  const frames = sys.kernel.framesUsed;
  if (frames !== 1) throw new Error(`${frames} frames in use after every process exited, expected 1 (the zero frame)`);
}

function* chain(setup: readonly Step[], commands: Commands): Generator<fc.AsyncCommand<Reference, System>> {
  yield* setup;
  yield* commands;
}

/** Runs one sequence from a fresh start, winding down at the end. */
export async function runSequence(sys: System, [setup, commands]: Sequence): Promise<void> {
  const { ref } = await sys.start();
  try {
    await fc.asyncModelRun(() => ({ model: ref, real: sys }), chain(setup, commands));
    sys.log.push("wind down: close every userfaultfd, exit every process");
    await windDown(ref, sys);
  } catch (error) {
    const steps = sys.log.map((line, i) => `  ${i + 1}. ${line}`).join("\n");
    throw new Error(`${error instanceof Error ? error.message : String(error)}\nsteps of this run, the last one failed:\n${steps}`, { cause: error });
  }
}

/** Checks the property for `options`; fast-check throws with the shrunk sequence, its seed and path on failure. */
export async function checkProperty(sys: System, options: PropertyOptions): Promise<void> {
  const property = fc.asyncProperty(sequences(options), (sequence) => runSequence(sys, sequence));
  await fc.assert(property, propertyParameters(options));
}
