// Status codes returned by every export of the wasm core.
//
// Zero is success. Values below 1000 are Linux errno numbers, so the host can
// hand them to a caller unchanged. Values from 1000 up are not errors but
// requests to the host: the page-table walk met an entry that only the host
// (the TypeScript kernel model) can resolve, such as a missing page that may
// belong to a userfaultfd-registered range.

export const OK: i32 = 0;
export const EIO: i32 = 5;
export const EFAULT: i32 = 14;
export const ENOMEM: i32 = 12;
export const EEXIST: i32 = 17;
export const EINVAL: i32 = 22;
export const EBUSY: i32 = 16;
export const ENOENT: i32 = 2;

/** The source page of a copy is not mapped in the caller's page table. */
export const SRC_FAULT: i32 = 1001;
/** The accessed page has no present entry (empty, or a uffd-wp marker). */
export const FAULT_MISSING: i32 = 1002;
/** A write hit a present entry whose uffd-wp bit is set. */
export const FAULT_WP: i32 = 1003;
/** A write hit a read-only page in a mapping that does not allow writes. */
export const FAULT_ACCESS: i32 = 1004;
/** The accessed entry is a poison marker: the access gets SIGBUS. */
export const FAULT_POISON: i32 = 1005;
