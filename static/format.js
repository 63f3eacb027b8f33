// Number and step formatting, and searches in sorted step arrays. Pure.

export function formatNumber(x, digits = 3) {
  if (x === null || x === undefined || Number.isNaN(x)) return "—";
  if (!Number.isFinite(x)) return String(x);
  if (x === 0) return "0";
  const a = Math.abs(x);
  if (a >= 1e5 || a < 1e-3) return x.toExponential(Math.max(digits - 1, 0));
  return Number(x.toPrecision(digits)).toString();
}

export function formatPercent(x) {
  if (x === null || x === undefined || Number.isNaN(x)) return "—";
  const p = x * 100;
  return `${p < 10 && p > 0 ? p.toFixed(1) : Math.round(p)}%`;
}

export function formatStep(step) {
  return step === null || step === undefined ? "—" : String(step);
}

/** Index of the element of sorted `xs` nearest to `x` (-1 when empty). */
export function nearestIndex(xs, x) {
  if (!xs.length) return -1;
  const i = floorIndex(xs, x);
  if (i < 0) return 0;
  if (i + 1 < xs.length && Math.abs(xs[i + 1] - x) < Math.abs(xs[i] - x)) return i + 1;
  return i;
}

/** Index of the last element of sorted `xs` that is <= x (-1 if none). */
export function floorIndex(xs, x) {
  let lo = 0;
  let hi = xs.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (xs[mid] <= x) lo = mid + 1;
    else hi = mid;
  }
  return lo - 1;
}
