// Number formatting shared by the report writers.

/** Formats a measured value with about three significant digits and an SI suffix above 10^4. */
export function formatValue(value: number | null): string {
  if (value === null) return "-";
  if (!Number.isFinite(value)) return String(value);
  const abs = Math.abs(value);
  if (abs >= 1e9) return `${(value / 1e9).toFixed(2)} G`;
  if (abs >= 1e6) return `${(value / 1e6).toFixed(2)} M`;
  if (abs >= 1e4) return `${(value / 1e3).toFixed(1)} k`;
  if (abs >= 100) return value.toFixed(0);
  if (abs >= 10) return value.toFixed(1);
  return value.toFixed(2);
}

export function formatRatio(ratio: number): string {
  return ratio >= 10 ? ratio.toFixed(0) : ratio.toFixed(2);
}

export function formatSpread(rme: number | null): string {
  if (rme === null) return "-";
  if (!Number.isFinite(rme)) return "n/a";
  return `±${rme.toFixed(rme < 10 ? 1 : 0)}%`;
}
