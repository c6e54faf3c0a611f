// The transparency oracle: the reference of what each process must read,
// kept from the process's own calls, and the text of its violations.

import { describe, expect, it } from "vitest";
import { SIGBUS, SIGSEGV, SignalError } from "../src/index.js";
import { Oracle, describeBytes, runViolations } from "../src/monitor/oracle.js";
import { pageOf } from "./helpers.js";

const PAGE = 4096;
const A = 0x1000_0000;
const B = 0x2000_0000;

/** Creates an oracle tracking process 1 with two snapshot pages at A: 0x41 and 0x42. */
function oracle(): Oracle {
  const reference = new Oracle();
  reference.addProcess(1, new Map([[A, pageOf(0x41)], [A + PAGE, pageOf(0x42)]]));
  return reference;
}

describe("Oracle", () => {
  it("starts from the snapshot", () => {
    expect(oracle().expected(1, A + PAGE, PAGE)).toEqual(pageOf(0x42));
  });

  it("applies writes across pages", () => {
    const reference = oracle();
    reference.write(1, A + PAGE - 2, new Uint8Array([1, 2, 3, 4]));

    expect(reference.expected(1, A + PAGE - 2, 4)).toEqual(new Uint8Array([1, 2, 3, 4]));
    expect(reference.expected(1, A + PAGE + 2, 1)).toEqual(new Uint8Array([0x42]));
  });

  it("zeroes after MADV_DONTNEED", () => {
    const reference = oracle();
    reference.zero(1, A, A + PAGE);

    expect(reference.expected(1, A, PAGE)).toEqual(pageOf(0));
    expect(reference.expected(1, A + PAGE, PAGE)).toEqual(pageOf(0x42));
  });

  it("moves pages with mremap", () => {
    const reference = oracle();
    reference.move(1, A, B, 2 * PAGE);

    expect(reference.expected(1, B + PAGE, PAGE)).toEqual(pageOf(0x42));
    expect(reference.expected(1, A, PAGE)).toBeNull();
  });

  it("forgets unmapped pages", () => {
    const reference = oracle();
    reference.unmap(1, A + PAGE, A + 2 * PAGE);

    expect(reference.expected(1, A + PAGE, PAGE)).toBeNull();
    expect(reference.expected(1, A, PAGE)).toEqual(pageOf(0x41));
  });

  it("copies memory at fork", () => {
    const reference = oracle();
    reference.fork(1, 2);
    reference.write(2, A, pageOf(0x70));

    expect(reference.expected(2, A, PAGE)).toEqual(pageOf(0x70));
    expect(reference.expected(1, A, PAGE)).toEqual(pageOf(0x41));
  });

  it("rejects a write to unmapped memory", () => {
    expect(() => oracle().write(1, B, pageOf(1))).toThrow("oracle: process 1 writes unmapped memory at 0x20000000");
  });

  it("rejects an unknown process", () => {
    expect(() => oracle().expected(9, A, 1)).toThrow("oracle: process 9 is not tracked");
  });
});

describe("checkRead", () => {
  it("accepts the expected bytes", () => {
    const reference = oracle();

    expect(reference.checkRead("target", 1, A, PAGE, pageOf(0x41))).toBeNull();
    expect(reference.violations).toEqual([]);
  });

  it("reports different bytes", () => {
    const reference = oracle();
    const text = "child read 4096 bytes at 0x10001000: expected 4096 × 0x42, read 4096 × 0x00";

    expect(reference.checkRead("child", 1, A + PAGE, PAGE, pageOf(0))).toBe(text);
    expect(reference.violations).toEqual([text]);
  });

  it("accepts SIGSEGV on unmapped memory", () => {
    const reference = oracle();
    reference.unmap(1, A, A + PAGE);

    expect(reference.checkRead("target", 1, A, PAGE, new SignalError(SIGSEGV, A, "no mapping"))).toBeNull();
  });

  it("reports data read from unmapped memory", () => {
    const reference = oracle();
    reference.unmap(1, A, A + PAGE);

    expect(reference.checkRead("target", 1, A, PAGE, pageOf(0x41))).toBe("target read 4096 bytes at 0x10000000: expected SIGSEGV, read 4096 × 0x41");
  });

  it("reports a signal where data belongs", () => {
    const text = "target read 4096 bytes at 0x10000000: expected 4096 × 0x41, read SIGBUS";

    expect(oracle().checkRead("target", 1, A, PAGE, new SignalError(SIGBUS, A, "poisoned page"))).toBe(text);
  });
});

describe("describeBytes", () => {
  it("names one run", () => {
    expect(describeBytes(pageOf(0x41))).toBe("4096 × 0x41");
  });

  it("names several runs", () => {
    expect(describeBytes(new Uint8Array([1, 1, 0, 7]))).toBe("2 × 0x01, 1 × 0x00, 1 × 0x07");
  });

  it("cuts after three runs", () => {
    expect(describeBytes(new Uint8Array([1, 2, 3, 4, 5]))).toBe("1 × 0x01, 1 × 0x02, 1 × 0x03, …");
  });

  it("names an empty read", () => {
    expect(describeBytes(new Uint8Array(0))).toBe("no bytes");
  });
});

describe("runViolations", () => {
  it("finds none in a finished run", () => {
    expect(runViolations({ status: "done", decisions: [], blocked: [] })).toEqual([]);
  });

  it("describes a deadlock", () => {
    const blocked = [{ thread: "monitor", waitsFor: "a read of event 0x16" }];

    expect(runViolations({ status: "deadlock", decisions: [], blocked })).toEqual(["deadlock: monitor waits for a read of event 0x16"]);
  });
});
