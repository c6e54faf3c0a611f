// Kernel versions the model can behave as, and what changed between them.
// Each row states the behaviour of a mainline release as recorded in the
// kernel's history (fs/userfaultfd.c, mm/userfaultfd.c, kernel/fork.c).

import {
  UFFD_FEATURE_EVENT_FORK, UFFD_FEATURE_EVENT_REMAP, UFFD_FEATURE_EVENT_REMOVE, UFFD_FEATURE_EVENT_UNMAP,
  UFFD_FEATURE_EXACT_ADDRESS, UFFD_FEATURE_MISSING_HUGETLBFS, UFFD_FEATURE_MISSING_SHMEM, UFFD_FEATURE_MOVE,
  UFFD_FEATURE_PAGEFAULT_FLAG_WP, UFFD_FEATURE_POISON, UFFD_FEATURE_SIGBUS, UFFD_FEATURE_THREAD_ID,
  UFFD_FEATURE_WP_ASYNC, UFFD_FEATURE_WP_UNPOPULATED, UFFD_FEATURE_MINOR_HUGETLBFS, UFFD_FEATURE_MINOR_SHMEM,
  UFFD_FEATURE_WP_HUGETLBFS_SHMEM,
} from "../constants.js";
import type { GateMode } from "../uffd/context.js";

export type KernelVersion = "4.17" | "4.18" | "5.15" | "6.8" | "6.18";

export const KERNEL_VERSIONS: readonly KernelVersion[] = ["4.17", "4.18", "5.15", "6.8", "6.18"];

export interface KernelProfile {
  readonly version: KernelVersion;
  /** mmap_changing: absent before 4.18, a bool until 5.14, a counter since 5.15. */
  readonly gate: GateMode;
  /** Feature bits this model implements for the version (see FEATURES_MODELLED). */
  readonly features: number;
  /** UFFDIO_WRITEPROTECT and COPY's MODE_WP exist (5.7 and later). */
  readonly wp: boolean;
  /** MINOR registration and UFFDIO_CONTINUE exist (5.13/5.14 and later). */
  readonly minor: boolean;
  /** UFFDIO_POISON exists (6.6 and later). */
  readonly poison: boolean;
  /** UFFDIO_MOVE exists (6.8 and later). */
  readonly move: boolean;
  /** A gate EAGAIN writes -EAGAIN to the out-field (6.15 and later; untouched before). */
  readonly outFieldOnGate: boolean;
  /** UNREGISTER of a range registered to another context fails with EINVAL (6.17 and later). */
  readonly unregisterForeignEinval: boolean;
  /** A failed fork still delivers FORK events (before 6.12). */
  readonly forkEventOnFailure: boolean;
}

/**
 * The feature bits whose behaviour the model implements. Others that the
 * kernel reports (MINOR and hugetlbfs variants, WP on shmem) are not
 * offered yet: UFFDIO_API rejects them with EINVAL, as a
 * kernel without them would.
 */
const FEATURES_MODELLED =
  UFFD_FEATURE_PAGEFAULT_FLAG_WP | UFFD_FEATURE_EVENT_FORK | UFFD_FEATURE_EVENT_REMAP | UFFD_FEATURE_EVENT_REMOVE |
  UFFD_FEATURE_MISSING_HUGETLBFS | UFFD_FEATURE_MISSING_SHMEM | UFFD_FEATURE_EVENT_UNMAP |
  UFFD_FEATURE_MINOR_HUGETLBFS | UFFD_FEATURE_MINOR_SHMEM | UFFD_FEATURE_WP_HUGETLBFS_SHMEM |
  UFFD_FEATURE_SIGBUS | UFFD_FEATURE_THREAD_ID |
  UFFD_FEATURE_EXACT_ADDRESS | UFFD_FEATURE_WP_UNPOPULATED | UFFD_FEATURE_POISON | UFFD_FEATURE_WP_ASYNC |
  UFFD_FEATURE_MOVE;

/** Features of the 4.14 to 4.18 releases: the four events, SIGBUS and THREAD_ID. */
const FEATURES_4_14 =
  UFFD_FEATURE_EVENT_FORK | UFFD_FEATURE_EVENT_REMAP | UFFD_FEATURE_EVENT_REMOVE |
  UFFD_FEATURE_MISSING_HUGETLBFS | UFFD_FEATURE_MISSING_SHMEM | UFFD_FEATURE_EVENT_UNMAP |
  UFFD_FEATURE_SIGBUS | UFFD_FEATURE_THREAD_ID;
/** 5.15 adds PAGEFAULT_FLAG_WP (reported since 5.10) and the MINOR features (bits 9 and 10). */
const FEATURES_5_15 = FEATURES_4_14 | UFFD_FEATURE_PAGEFAULT_FLAG_WP | UFFD_FEATURE_MINOR_HUGETLBFS | UFFD_FEATURE_MINOR_SHMEM;
/** 6.8 reports every bit up to MOVE (bit 16): 0x1ffff. */
const FEATURES_6_8 = 0x1ffff;

const PROFILES: Record<KernelVersion, KernelProfile> = {
  "4.17": {
    version: "4.17", gate: "none", features: FEATURES_4_14 & FEATURES_MODELLED, wp: false, minor: false, poison: false,
    move: false, outFieldOnGate: false, unregisterForeignEinval: false, forkEventOnFailure: true,
  },
  "4.18": {
    version: "4.18", gate: "bool", features: FEATURES_4_14 & FEATURES_MODELLED, wp: false, minor: false, poison: false,
    move: false, outFieldOnGate: false, unregisterForeignEinval: false, forkEventOnFailure: true,
  },
  "5.15": {
    version: "5.15", gate: "counter", features: FEATURES_5_15 & FEATURES_MODELLED, wp: true, minor: true, poison: false,
    move: false, outFieldOnGate: false, unregisterForeignEinval: false, forkEventOnFailure: true,
  },
  "6.8": {
    version: "6.8", gate: "counter", features: FEATURES_6_8 & FEATURES_MODELLED, wp: true, minor: true, poison: true,
    move: true, outFieldOnGate: false, unregisterForeignEinval: false, forkEventOnFailure: true,
  },
  "6.18": {
    version: "6.18", gate: "counter", features: FEATURES_6_8 & FEATURES_MODELLED, wp: true, minor: true, poison: true,
    move: true, outFieldOnGate: true, unregisterForeignEinval: true, forkEventOnFailure: false,
  },
};

/**
 * Returns the profile of `version`; throws TypeError unless it is a string
 * and RangeError for a version not listed in KERNEL_VERSIONS.
 */
export function kernelProfile(version: string): KernelProfile {
  if (typeof version !== "string") throw new TypeError(`kernel must be a string such as "6.18", got ${typeof version}`);
  // Object.hasOwn keeps names such as "constructor" from reaching Object.prototype.
  const profile = Object.hasOwn(PROFILES, version) ? (PROFILES as Record<string, KernelProfile>)[version] : undefined;
  if (profile === undefined) {
    throw new RangeError(`kernel must be one of ${KERNEL_VERSIONS.join(", ")}, got ${JSON.stringify(version)}`);
  }
  return profile;
}
