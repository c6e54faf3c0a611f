import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    // Checks the invariants of every kernel a test creates, after each test.
    setupFiles: ["./test/invariant-setup.ts"],
  },
});
