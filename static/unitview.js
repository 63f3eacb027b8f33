// One unit's statistics over time (./unit): small multiples, one per
// statistic, with the snapshots where the unit was dead shaded.

import { cssVar, formatNumber, h, s } from "./dom.js";
import { cssColor, DEAD_RGB } from "./heatmap.js";

const ROWS = [
  ["active_fraction", "active share"],
  ["mean_abs", "mean |a|"],
  ["std", "std"],
  ["max_abs", "max |a|"],
  ["grad_mean_abs", "mean |dL/da|"],
];

function sparkline(steps, values, dead, width, color) {
  const height = 54;
  const pad = { l: 4, r: 4, t: 6, b: 6 };
  const finite = values.filter((v) => Number.isFinite(v));
  const lo = Math.min(0, ...finite);
  const hi = Math.max(...finite, lo + 1e-12);
  const x0 = steps[0];
  const x1 = steps.length > 1 ? steps[steps.length - 1] : x0 + 1;
  const sx = (x) => pad.l + ((x - x0) / (x1 - x0 || 1)) * (width - pad.l - pad.r);
  const sy = (v) => pad.t + (1 - (v - lo) / (hi - lo || 1)) * (height - pad.t - pad.b);
  const nodes = [];
  if (dead) {
    const band = cssColor(DEAD_RGB);
    for (let i = 0; i < steps.length; i++) {
      if (!dead[i]) continue;
      const a = i > 0 ? (sx(steps[i - 1]) + sx(steps[i])) / 2 : sx(steps[i]);
      const b = i + 1 < steps.length ? (sx(steps[i]) + sx(steps[i + 1])) / 2 : sx(steps[i]) + 2;
      nodes.push(s("rect", { x: a, y: 0, width: Math.max(b - a, 1), height, fill: band, opacity: 0.18 }));
    }
  }
  let d = "";
  values.forEach((v, i) => {
    if (Number.isFinite(v)) d += `${d ? "L" : "M"}${sx(steps[i]).toFixed(1)},${sy(v).toFixed(1)}`;
  });
  nodes.push(s("path", { d, fill: "none", stroke: color, "stroke-width": 1.6 }));
  if (steps.length === 1 && Number.isFinite(values[0])) {
    nodes.push(s("circle", { cx: sx(steps[0]), cy: sy(values[0]), r: 2.5, fill: color }));
  }
  return s("svg", { width, height, viewBox: `0 0 ${width} ${height}`, class: "spark" }, ...nodes);
}

/** The detail view of one unit; `data` is a ./unit response. */
export function unitDetail(data, width, onClose) {
  const color = cssVar("--accent", "#3f88c5");
  const stats = data.stats || {};
  const rows = [];
  for (const [name, label] of ROWS) {
    if (!Array.isArray(stats[name])) continue;
    const values = stats[name];
    rows.push(
      h(
        "div",
        { className: "spark-row" },
        h("span", { className: "spark-label" }, label, h("b", {}, formatNumber(values[values.length - 1]))),
        sparkline(data.steps, values, data.dead, Math.max(width - 150, 120), color),
      ),
    );
  }
  if (Array.isArray(data.dormant_score)) {
    const v = data.dormant_score;
    rows.push(
      h(
        "div",
        { className: "spark-row" },
        h("span", { className: "spark-label" }, "dormant score", h("b", {}, formatNumber(v[v.length - 1]))),
        sparkline(data.steps, v, data.dead, Math.max(width - 150, 120), color),
      ),
    );
  }
  const first = data.steps.length ? data.steps[0] : "—";
  const last = data.steps.length ? data.steps[data.steps.length - 1] : "—";
  return h(
    "div",
    { className: "unit-detail", dataset: { testid: "unit-chart", unit: String(data.unit) } },
    h(
      "div",
      { className: "unit-head" },
      h("strong", {}, `unit ${data.unit}`),
      h(
        "span",
        { className: "muted" },
        ` · died at ${data.died_at === null || data.died_at === undefined ? "never" : data.died_at}` +
          `${data.revived ? " · revived" : ""} · steps ${first}–${last} · shaded: dead`,
      ),
      h("button", { className: "link", type: "button", textContent: "close", onclick: onClose }),
    ),
    rows,
  );
}
