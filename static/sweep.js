// The compare view's data: one layer's lines across runs and the runs x
// layers table, from a ./compare response. Pure.

/** Tags that at least two of `runs` (names) log, most widely logged first. */
export function sharedTags(compare, runs) {
  const seen = new Map();
  for (const r of compare.runs) {
    if (!runs.includes(r.run)) continue;
    for (const l of r.layers) seen.set(l.tag, (seen.get(l.tag) || 0) + 1);
  }
  return [...seen]
    .filter(([, n]) => n >= 2)
    .sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]))
    .map(([tag]) => tag);
}

/** [{run, steps, shares, units, shareNow}] of `tag` for each of `runs` that logs it. */
export function compareLines(compare, tag, runs) {
  const lines = [];
  for (const r of compare.runs) {
    if (!runs.includes(r.run)) continue;
    const l = r.layers.find((x) => x.tag === tag);
    if (!l || !l.steps.length) continue;
    const shares = l.count.map((c) => c / l.units);
    lines.push({ run: r.run, steps: l.steps, shares, units: l.units, shareNow: l.share_now });
  }
  return lines;
}

/** The quartiles of the died-at steps: {n, q1, median, q3} (null values when none died). */
export function diedAtSummary(steps, counts) {
  const n = counts.reduce((a, b) => a + b, 0);
  const at = (q) => {
    if (!n) return null;
    const rank = Math.max(1, Math.ceil(q * n));
    let seen = 0;
    for (let i = 0; i < counts.length; i++) {
      seen += counts[i];
      if (seen >= rank) return steps[i];
    }
    return steps[steps.length - 1];
  };
  return { n, q1: at(0.25), median: at(0.5), q3: at(0.75) };
}

/**
 * The table's rows: one per run of `runs`, {run, hparams, cells: {tag:
 * {share, count, units, died}}}; `tags`: every layer tag, sorted.
 */
export function sweepTable(compare, runs) {
  const tags = new Set();
  const hparams = new Set();
  const rows = [];
  for (const r of compare.runs) {
    if (!runs.includes(r.run)) continue;
    const cells = {};
    for (const l of r.layers) {
      tags.add(l.tag);
      const died = diedAtSummary(l.steps, l.died_at_counts);
      cells[l.tag] = { share: l.share_now, count: l.count_now, units: l.units, died };
    }
    for (const name of Object.keys(r.hparams || {})) hparams.add(name);
    rows.push({ run: r.run, hparams: r.hparams || {}, cells });
  }
  return { tags: [...tags].sort(), hparams: [...hparams].sort(), rows };
}

/** The value a row sorts by under `column` ("run", "hp:<name>" or "layer:<tag>"). */
function sortValue(row, column) {
  if (column.startsWith("hp:")) return row.hparams[column.slice(3)] ?? null;
  if (column.startsWith("layer:")) {
    const cell = row.cells[column.slice(6)];
    return cell ? cell.share : null;
  }
  return row.run;
}

/** `rows` sorted by `sort` ({column, descending}); missing values last, then by run. */
export function sortRows(rows, { column, descending }) {
  const sign = descending ? -1 : 1;
  return [...rows].sort((a, b) => {
    const x = sortValue(a, column);
    const y = sortValue(b, column);
    if (x === null || y === null) return (x === null) - (y === null) || a.run.localeCompare(b.run);
    const c = typeof x === "number" && typeof y === "number" ? x - y : String(x).localeCompare(y);
    return sign * c || a.run.localeCompare(b.run);
  });
}
