// Vitest setup file, registered in vitest.config.ts: records every Kernel a
// test file creates and runs checkInvariants on each after every test, so
// each test also shows that the model's state stayed consistent. Only the
// test run loads this file; the library and the benchmarks never run the
// checker unless they call it.
//
// A kernel created inside a test (or its beforeEach) is checked after that
// test and then forgotten. One created in beforeAll or at module level is
// checked after every test of the file. A failed test skips the check, so
// its own error is the one reported.

import { afterEach, beforeEach } from "vitest";
import { InvariantViolation, checkInvariants, type InvariantFinding } from "../src/check/invariants.js";
import { Kernel, type KernelOptions } from "../src/mm/kernel.js";

interface RecordedKernel {
  /** Created while a test ran, so it is forgotten after that test. */
  readonly perTest: boolean;
  /** Why the kernel is not checked, or null when it is. */
  exemption: string | null;
}

const recorded = new Map<Kernel, RecordedKernel>();
let inTest = false;

const createKernel = Kernel.create.bind(Kernel);
Kernel.create = async (options?: KernelOptions): Promise<Kernel> => {
  const perTest = inTest;
  const kernel = await createKernel(options);
  recorded.set(kernel, { perTest, exemption: null });
  return kernel;
};

/**
 * Leaves `kernel` out of the invariant check after each test, for a test
 * that corrupts its state on purpose. `reason` explains the exemption to
 * readers and must not be empty.
 */
export function exemptFromInvariantCheck(kernel: Kernel, reason: string): void {
  if (reason.trim() === "") throw new TypeError("exemptFromInvariantCheck: give the reason the kernel is exempt");
  const entry = recorded.get(kernel);
  if (entry === undefined) throw new Error("exemptFromInvariantCheck: the kernel was not created through Kernel.create in this test file");
  entry.exemption = reason;
}

beforeEach(() => {
  inTest = true;
});

afterEach((context) => {
  inTest = false;
  const failed = context.task.result?.state === "fail";
  const violations: InvariantViolation[] = [];
  for (const [kernel, entry] of recorded) {
    if (entry.perTest) recorded.delete(kernel);
    if (failed || entry.exemption !== null) continue;
    // A failed core may be half changed, and the test that failed it checks that.
    if (kernel.core.failure !== null) continue;
    try {
      checkInvariants(kernel);
    } catch (error) {
      if (!(error instanceof InvariantViolation)) throw error;
      violations.push(error);
    }
  }
  if (violations.length === 1) throw violations[0];
  if (violations.length > 1) {
    const findings: InvariantFinding[] = violations.flatMap((violation, i) =>
      violation.findings.map((finding) => ({ ...finding, message: `kernel ${i + 1} of ${violations.length}: ${finding.message}` })),
    );
    throw new InvariantViolation(findings);
  }
});
