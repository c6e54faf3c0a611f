// Hostile argument values and a table runner for the hostile-argument
// tests: each row makes one call with one bad argument, checks what it
// returned or threw, and checks that the kernel state did not change.

import { expect } from "vitest";
import { KernelError, type Kernel, type KernelStats } from "../src/index.js";
import { drain, watch } from "./helpers.js";
import { expectUnchanged, snapshot } from "./state-snapshot.js";

export const PAGE = 4096;
export const TASK_SIZE = 2 ** 47;

/**
 * Numbers that no u64 argument can be. The library maps each to a u64 the
 * kernel rejects: an address that is not page aligned, a length that
 * wraps past 2^64.
 */
export const NOT_U64: readonly (readonly [string, number])[] = [
  ["negative", -PAGE],
  ["-1", -1],
  ["fractional", PAGE + 0.5],
  ["NaN", NaN],
  ["Infinity", Infinity],
  ["-Infinity", -Infinity],
  ["2^53", 2 ** 53],
  ["2^64 - 4096", 2 ** 64 - PAGE],
  ["2^64", 2 ** 64],
];

/** Values of the wrong JavaScript type for a number argument. */
export const NOT_NUMBERS: readonly (readonly [string, unknown])[] = [
  ["string", "4096"],
  ["bigint", 4096n],
  ["object", { valueOf: () => PAGE }],
  ["array", [PAGE]],
  ["null", null],
  ["undefined", undefined],
  ["symbol", Symbol("hostile")],
  ["boolean", true],
];

/** NOT_NUMBERS without undefined, for arguments where undefined means "use the default". */
export const NOT_NUMBERS_PRESENT = NOT_NUMBERS.filter(([name]) => name !== "undefined");

/** Values that are not objects, for arguments that take an options or argument object. */
export const NOT_OBJECTS: readonly (readonly [string, unknown])[] = [
  ["null", null],
  ["string", "options"],
  ["number", 1],
  ["bigint", 1n],
  ["symbol", Symbol("hostile")],
  ["boolean", true],
];

type ErrorClass = abstract new (...args: never[]) => Error;

/**
 * What a row expects: a value (resolved, for a promise), or an error of a
 * class whose message contains `naming`, and for a KernelError its errno.
 */
export type Expected =
  | { readonly returns: unknown }
  | { readonly throws: ErrorClass; readonly naming: string; readonly errno?: number };

export const returns = (value: unknown): Expected => ({ returns: value });
export const throws = (type: ErrorClass, naming: string): Expected => ({ throws: type, naming });
/** Expects a KernelError with `errno` whose message contains `naming`. */
export const throwsErrno = (errno: number, naming: string): Expected => ({ throws: KernelError, naming, errno });

export interface Row {
  readonly label: string;
  readonly call: () => unknown;
  readonly expected: Expected;
  /** Stats counters the call may raise, by how much; see expectUnchanged. */
  readonly counted?: Partial<KernelStats>;
}

type Outcome = { readonly returned: unknown } | { readonly threw: unknown };

/**
 * Runs `call` and returns what it returned or threw. A returned promise is
 * awaited after draining queued work, and one still pending then fails the
 * test: a rejected call must not block.
 */
async function outcomeOf(call: () => unknown, label: string): Promise<Outcome> {
  let value: unknown;
  try {
    value = call();
  } catch (error) {
    return { threw: error };
  }
  if (!(value instanceof Promise)) return { returned: value };
  const watched = watch(value);
  await drain();
  if (watched.state === "pending") throw new Error(`${label}: the call is still pending after draining`);
  return watched.state === "fulfilled" ? { returned: watched.value } : { threw: watched.reason };
}

function describeValue(value: unknown): string {
  if (value instanceof Error) return `${value.name}: ${value.message}`;
  return typeof value === "bigint" ? `${value}n` : String(value);
}

/**
 * Runs each row, checking its outcome and that the state did not change:
 * the whole state of `target` when it is a Kernel, else what the function
 * `target` returns (for objects outside a kernel, such as an Oracle).
 */
export async function runRows(target: Kernel | (() => unknown), rows: readonly Row[]): Promise<void> {
  expect(rows.length, "rows in the table").toBeGreaterThan(0);
  for (const row of rows) {
    if (typeof target === "function") {
      const before = target();
      await expectOutcome(row);
      expect(target(), `state after ${row.label}`).toEqual(before);
      continue;
    }
    const before = snapshot(target);
    await expectOutcome(row);
    expectUnchanged(target, before, row.label, row.counted);
  }
}

/** Runs the call of `row` and checks what it returned or threw. */
async function expectOutcome(row: Row): Promise<void> {
  const outcome = await outcomeOf(row.call, row.label);
  const expected = row.expected;
  if ("returns" in expected) {
    if ("threw" in outcome) expect.fail(`${row.label}: expected a result, but it threw ${describeValue(outcome.threw)}`);
    expect(outcome.returned, row.label).toEqual(expected.returns);
    return;
  }
  if ("returned" in outcome) expect.fail(`${row.label}: expected ${expected.throws.name}, but it returned ${describeValue(outcome.returned)}`);
  expect(outcome.threw, row.label).toBeInstanceOf(expected.throws);
  expect((outcome.threw as Error).message, `${row.label}: message`).toContain(expected.naming);
  if (expected.errno !== undefined) expect((outcome.threw as KernelError).errno, `${row.label}: errno`).toBe(expected.errno);
}

export interface NumberRowOptions {
  /** Undefined selects a default, so it is no wrong type. */
  readonly optional?: boolean;
  /** Stats counters a call that returns may raise; see expectUnchanged. */
  readonly counted?: Partial<KernelStats>;
  /** The call's name, put before the argument's in labels. */
  readonly call?: string;
}

/**
 * Builds the rows for one number argument `name`: each NOT_U64 value
 * expecting `notU64`, and each wrong type expecting a TypeError that names
 * the argument. `call` makes the call with the argument set to the value.
 */
export function numberRows(name: string, call: (value: unknown) => unknown, notU64: Expected, options: NumberRowOptions = {}): Row[] {
  const counted = options.counted ?? {};
  const prefix = options.call === undefined ? name : `${options.call} ${name}`;
  const wrongTypes = options.optional === true ? NOT_NUMBERS_PRESENT : NOT_NUMBERS;
  return [
    ...NOT_U64.map(([valueName, value]) => ({ label: `${prefix} ${valueName}`, call: () => call(value), expected: notU64, counted })),
    ...wrongTypes.map(([valueName, value]) => ({ label: `${prefix} ${valueName}`, call: () => call(value), expected: throws(TypeError, name) })),
  ];
}

/** Returns `row` for a call made with `value` in place of the argument, labelled "<name> <valueName>". */
export function row(name: string, valueName: string, call: () => unknown, expected: Expected, counted?: Partial<KernelStats>): Row {
  return { label: `${name} ${valueName}`, call, expected, ...(counted ? { counted } : {}) };
}
