// The per-unit statistics the dashboard shows, with their labels: one table
// for the heat map's tooltip and the unit view (docs/format.md names them).

export const STAT_LABELS = [
  ["active_fraction", "active share"],
  ["mean_abs", "mean |a|"],
  ["std", "std"],
  ["max_abs", "max |a|"],
  ["grad_mean_abs", "mean |dL/da|"],
];

/** [label, values] of the statistics `stats` holds, in table order, then the dormant score. */
export function statSeries(stats, dormantScore) {
  const rows = STAT_LABELS.filter(([name]) => Array.isArray(stats && stats[name]));
  const series = rows.map(([name, label]) => [label, stats[name]]);
  if (Array.isArray(dormantScore)) series.push(["dormant score", dormantScore]);
  return series;
}
