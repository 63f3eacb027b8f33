// One unit's statistics over time (./unit): small multiples, one per
// statistic, with the snapshots where the unit was dead shaded.

import { cssVar, h, s } from "./dom.js";
import { formatNumber, nearestIndex } from "./format.js";
import { cssColor, DEAD_RGB } from "./heatmap.js";
import { linePath, linear } from "./scale.js";
import { statSeries } from "./stats.js";

const HEIGHT = 54;
const PAD = { l: 4, r: 4, t: 6, b: 6 };

function deadBands(steps, dead, sx) {
  const bands = [];
  for (let i = 0; i < steps.length; i++) {
    if (!dead[i]) continue;
    const a = i > 0 ? (sx(steps[i - 1]) + sx(steps[i])) / 2 : sx(steps[i]);
    const b = i + 1 < steps.length ? (sx(steps[i]) + sx(steps[i + 1])) / 2 : sx(steps[i]) + 2;
    const attrs = { x: a, y: 0, width: Math.max(b - a, 1), height: HEIGHT };
    bands.push(s("rect", { ...attrs, fill: cssColor(DEAD_RGB), opacity: 0.18 }));
  }
  return bands;
}

/** The y range of a sparkline: from 0 (or the lowest value) to the highest. */
function sparkRange(values) {
  const finite = values.filter((v) => Number.isFinite(v));
  const lo = Math.min(0, ...finite);
  return [lo, Math.max(...finite, lo + 1e-12)];
}

function sparkline(steps, values, dead, width, color) {
  const [lo, hi] = sparkRange(values);
  const x0 = steps[0];
  const x1 = steps.length > 1 ? steps[steps.length - 1] : x0 + 1;
  const sx = linear(x0, x1, PAD.l, width - PAD.r);
  const sy = linear(lo, hi, HEIGHT - PAD.b, PAD.t);
  const nodes = dead ? deadBands(steps, dead, sx) : [];
  nodes.push(
    s("path", {
      d: linePath(steps, values, sx, sy),
      fill: "none",
      stroke: color,
      "stroke-width": 1.6,
    }),
  );
  if (steps.length === 1 && Number.isFinite(values[0])) {
    nodes.push(s("circle", { cx: sx(steps[0]), cy: sy(values[0]), r: 2.5, fill: color }));
  }
  const rule = s("line", { y1: 0, y2: HEIGHT, stroke: color, opacity: 0.6, visibility: "hidden" });
  nodes.push(rule);
  const svg = s(
    "svg",
    { width, height: HEIGHT, viewBox: `0 0 ${width} ${HEIGHT}`, class: "spark" },
    ...nodes,
  );
  return { svg, sx, rule };
}

/**
 * One statistic's row: label, the value at the hovered snapshot (else the
 * last, named), the sparkline and its y range (min at the bottom, max on top).
 */
function sparkRow(label, steps, values, dead, width, color) {
  const { svg, sx, rule } = sparkline(steps, values, dead, width, color);
  const [lo, hi] = sparkRange(values);
  const value = h("b", { dataset: { testid: "spark-value" } });
  const show = (i, hovered) => {
    value.textContent = `${formatNumber(values[i])} @${steps[i]}${hovered ? "" : " (last)"}`;
    rule.setAttribute("x1", sx(steps[i]));
    rule.setAttribute("x2", sx(steps[i]));
    rule.setAttribute("visibility", hovered ? "visible" : "hidden");
  };
  svg.addEventListener("mousemove", (e) => {
    const rect = svg.getBoundingClientRect();
    const step = linear(
      PAD.l,
      width - PAD.r,
      steps[0],
      steps[steps.length - 1],
    )(e.clientX - rect.left);
    show(Math.max(nearestIndex(steps, step), 0), true);
  });
  svg.addEventListener("mouseleave", () => show(steps.length - 1, false));
  if (steps.length) show(steps.length - 1, false);
  const range = h(
    "span",
    { className: "spark-range", dataset: { testid: "spark-range" } },
    h("span", {}, formatNumber(hi)),
    h("span", {}, formatNumber(lo)),
  );
  return h(
    "div",
    { className: "spark-row" },
    h("span", { className: "spark-label" }, label, value),
    range,
    svg,
  );
}

/** The detail view of one unit; `data` is a ./unit response. */
export function unitDetail(data, width, onClose) {
  const color = cssVar("--accent", "#3f88c5");
  const rows = statSeries(data.stats, data.dormant_score).map(([label, values]) =>
    sparkRow(label, data.steps, values, data.dead, Math.max(width - 210, 120), color),
  );
  const first = data.steps.length ? data.steps[0] : "—";
  const last = data.steps.length ? data.steps[data.steps.length - 1] : "—";
  const about = ` · died at ${data.died_at ?? "never"}${data.revived ? " · revived" : ""}`;
  return h(
    "div",
    { className: "unit-detail", dataset: { testid: "unit-chart", unit: String(data.unit) } },
    h(
      "div",
      { className: "unit-head" },
      h("strong", {}, `unit ${data.unit}`),
      h("span", { className: "muted" }, `${about} · steps ${first}–${last} · shaded: dead`),
      h("button", { className: "link", type: "button", textContent: "close", onclick: onClose }),
    ),
    rows,
  );
}
