// The compare view (two or more runs selected): one layer across runs, one
// line per run in TensorBoard's run colours on one step axis, each run's
// loss smoothed as the Scalars dashboard draws it, and the runs x layers
// table (dead share now, died-at distribution, hyperparameters), sortable.

import { runColor, smoothed } from "./colors.js";
import { DEFINITION_WORDS } from "./deadunits.js";
import { cssVar, h, replace, s } from "./dom.js";
import { formatNumber, formatPercent, nearestIndex } from "./format.js";
import { memo } from "./memo.js";
import { linePath, linear, niceTicks, shareTop, stepTicks } from "./scale.js";
import { compareLines, sharedTags, sortRows, sweepTable } from "./sweep.js";
import { entryStatus } from "./widgets.js";

const HEIGHT = 230;
const M = { top: 24, right: 58, bottom: 28, left: 48 };

/** Scales of the compare chart: steps of every line, shares up to the largest. */
function scales(lines, losses, width) {
  const steps = lines.flatMap((l) => [l.steps[0], l.steps[l.steps.length - 1]]);
  const x0 = Math.min(...steps);
  const x1 = Math.max(...steps, x0 + 1);
  const top = shareTop(Math.max(0, ...lines.flatMap((l) => l.shares)));
  const values = losses.flatMap((l) => l.values).filter((v) => Number.isFinite(v));
  const lo = values.length ? Math.min(...values) : 0;
  const hi = values.length ? Math.max(...values, lo + 1e-9) : 1;
  const bottom = HEIGHT - M.bottom;
  return {
    ...{ x0, x1, top, lo, hi, bottom, width },
    sx: linear(x0, x1, M.left, width - M.right),
    invertX: linear(M.left, width - M.right, x0, x1),
    sy: linear(0, top, bottom, M.top),
    ly: linear(lo, hi, bottom, M.top),
  };
}

function axes(sc, colors) {
  const nodes = [];
  const text = (attrs, label) => s("text", { fill: colors.fg, class: "tick", ...attrs }, label);
  for (const t of niceTicks(0, sc.top, 4)) {
    const y = sc.sy(t);
    nodes.push(
      s("line", { x1: M.left, x2: sc.width - M.right, y1: y, y2: y, stroke: colors.grid }),
    );
    nodes.push(text({ x: M.left - 6, y: y + 4, "text-anchor": "end" }, formatPercent(t)));
  }
  const count = Math.max(2, Math.floor((sc.width - M.left - M.right) / 90));
  for (const t of stepTicks(sc.x0, sc.x1, count)) {
    const x = sc.sx(t);
    nodes.push(s("line", { x1: x, x2: x, y1: sc.bottom, y2: sc.bottom + 4, stroke: colors.fg }));
    const attrs = { x, y: sc.bottom + 18, "text-anchor": "middle", class: "tick step-tick" };
    nodes.push(text(attrs, String(t)));
  }
  for (const t of niceTicks(sc.lo, sc.hi, 4)) {
    const attrs = { x: sc.width - M.right + 6, y: sc.ly(t) + 4, fill: colors.loss };
    if (sc.ly(t) >= M.top - 1 && sc.ly(t) <= sc.bottom + 1)
      nodes.push(text(attrs, formatNumber(t)));
  }
  const label = { x: 4, y: M.top - 12, fill: colors.fg, class: "axis-label" };
  nodes.push(s("text", label, "share of units"));
  const lossLabel = { ...label, x: sc.width - 4, "text-anchor": "end", fill: colors.loss };
  nodes.push(s("text", lossLabel, "loss (smoothed 0.6)"));
  return nodes;
}

function lineNodes(lines, losses, sc) {
  const nodes = [];
  for (const l of losses) {
    const common = { fill: "none", stroke: l.color, "data-run": l.run };
    const raw = linePath(l.steps, l.values, sc.sx, sc.ly);
    const smooth = linePath(l.steps, smoothed(l.values), sc.sx, sc.ly);
    nodes.push(s("path", { ...common, d: raw, opacity: 0.25, class: "compare-loss-raw" }));
    const dash = { "stroke-dasharray": "6 3", "stroke-width": 1.4 };
    nodes.push(s("path", { ...common, ...dash, d: smooth, class: "compare-loss" }));
  }
  for (const l of lines) {
    const attrs = { fill: "none", stroke: l.color, "stroke-width": 2.2, "data-run": l.run };
    nodes.push(
      s("path", { ...attrs, d: linePath(l.steps, l.shares, sc.sx, sc.sy), class: "compare-line" }),
    );
  }
  return nodes;
}

/** The runs' losses logged per step, with their colours. */
function lossLines(state, lines) {
  const out = [];
  for (const l of lines) {
    const data = state.losses[l.run] && state.losses[l.run].data;
    if (!data || !data.tag || !data.steps.length || data.step_unit === "epoch") continue;
    out.push({ run: l.run, color: l.color, steps: data.steps, values: data.values, tag: data.tag });
  }
  return out;
}

function readoutText(line, step) {
  const i = nearestIndex(line.steps, step);
  const n = Math.round(line.shares[i] * line.units);
  return `${line.run}: ${formatPercent(line.shares[i])} (${n} / ${line.units}) @${line.steps[i]}`;
}

export class CompareView {
  /** on: setCompareTag(tag), sortCompare(column) */
  constructor(on) {
    this.on = on;
    this.tagSelect = h("select", { className: "control", dataset: { testid: "compare-tag" } });
    this.tagSelect.addEventListener("change", () => on.setCompareTag(this.tagSelect.value));
    this.title = h("span", { className: "muted small" });
    this.status = h("div", {});
    this.readout = h("div", { className: "readout", dataset: { testid: "compare-readout" } });
    this.svg = s("svg", { class: "timeline-svg", height: HEIGHT, "data-testid": "compare-chart" });
    this.legend = h("div", { className: "chart-legend" });
    this.table = h("div", { className: "table-scroll" });
    const head = h(
      "div",
      { className: "layer-head" },
      h("h2", {}, "Compare runs"),
      this.tagSelect,
      this.title,
    );
    this.root = h(
      "section",
      { className: "compare-view", dataset: { testid: "compare-view" }, hidden: true },
      ...[head, this.status, this.readout, this.svg, this.legend, this.table],
    );
    this.svg.addEventListener("mousemove", (e) => this.hover(e));
    this.svg.addEventListener("mouseleave", () => this.showReadout(null));
    this.draw = memo((...args) => this.show(...args));
  }

  update(state, theme) {
    const runs = state.selectedRuns.filter((r) => (state.runs || []).some((x) => x.run === r));
    this.root.hidden = runs.length < 2;
    if (this.root.hidden) return;
    const entry = state.compare.all;
    replace(this.status, entryStatus(entry, "compare"));
    if (!entry || !entry.data) return;
    const width = Math.max(Math.floor(this.root.clientWidth - 2), 320);
    const tb = state.tbRuns.all && state.tbRuns.all.data;
    this.draw(
      entry.data,
      runs.join("\u0000"),
      state.compareTag,
      state.losses,
      tb,
      state.compareSort,
      width,
      theme,
    );
  }

  show(compare, joined, chosen, losses, tbRuns, sort, width, theme) {
    const runs = joined.split("\u0000");
    const tags = sharedTags(compare, runs);
    const tag = tags.includes(chosen) ? chosen : tags[0];
    replace(
      this.tagSelect,
      tags.map((t) => h("option", { value: t }, t)),
    );
    this.tagSelect.value = tag || "";
    this.tagSelect.hidden = !tag;
    const definition = compare.thresholds.definition;
    const word = DEFINITION_WORDS[definition] || definition;
    const tau = definition === "dead" ? "" : ` (τ = ${compare.thresholds.tau})`;
    this.title.textContent = tag
      ? `${word} share of ${tag} per run${tau}`
      : "no layer that two runs log";
    const color = (run) =>
      runColor(
        run,
        tbRuns,
        compare.runs.map((r) => r.run),
        theme,
      );
    const lines = tag
      ? compareLines(compare, tag, runs).map((l) => ({ ...l, color: color(l.run) }))
      : [];
    this.drawChart(lines, lossLines({ losses }, lines), width);
    this.showTable(compare, runs, sort, color);
  }

  drawChart(lines, losses, width) {
    this.lines = lines;
    this.svg.hidden = !lines.length;
    if (!lines.length) return replace(this.legend);
    const colors = {
      fg: cssVar("--muted", "#888"),
      grid: cssVar("--grid", "#8883"),
      loss: cssVar("--loss", "#888"),
    };
    const sc = scales(lines, losses, width);
    this.scales = sc;
    this.svg.setAttribute("width", width);
    this.svg.setAttribute("viewBox", `0 0 ${width} ${HEIGHT}`);
    replace(this.svg, axes(sc, colors), lineNodes(lines, losses, sc));
    const swatch = (c) => h("i", { className: "swatch line", style: { background: c } });
    replace(
      this.legend,
      lines.map((l) =>
        h("span", { className: "key", dataset: { run: l.run } }, swatch(l.color), l.run),
      ),
      losses.length
        ? h(
            "span",
            { className: "key muted" },
            "dashed: loss, smoothed as the Scalars dashboard does",
          )
        : null,
    );
    this.showReadout(null);
  }

  hover(event) {
    if (!this.scales) return;
    const rect = this.svg.getBoundingClientRect();
    this.showReadout(this.scales.invertX(event.clientX - rect.left));
  }

  showReadout(step) {
    const lines = this.lines || [];
    const at = step === null ? Math.max(...lines.map((l) => l.steps[l.steps.length - 1])) : step;
    replace(
      this.readout,
      h("span", { className: "readout-step" }, step === null ? "latest" : `step ${Math.round(at)}`),
      lines.map((l) =>
        h("span", { className: "readout-item", dataset: { run: l.run } }, readoutText(l, at)),
      ),
    );
  }

  showTable(compare, runs, sort, color) {
    const { tags, hparams, rows } = sweepTable(compare, runs);
    const column = sort.column || (tags.length ? `layer:${tags[0]}` : "run");
    const shown = { column, descending: sort.column ? sort.descending : true };
    const sorted = sortRows(rows, shown);
    const th = (key, text) => {
      const mark = key === column ? (shown.descending ? " ▼" : " ▲") : "";
      const b = h(
        "button",
        { type: "button", className: "link", dataset: { column: key } },
        text + mark,
      );
      b.addEventListener("click", () => this.on.sortCompare(key, shown));
      return h("th", { scope: "col" }, b);
    };
    const head = h(
      "tr",
      {},
      th("run", "run"),
      hparams.map((p) => th(`hp:${p}`, p)),
      tags.map((t) => th(`layer:${t}`, t)),
    );
    const body = sorted.map((r) =>
      h(
        "tr",
        { dataset: { run: r.run } },
        runCell(r.run, color),
        hparams.map((p) => h("td", {}, hpText(r.hparams[p]))),
        tags.map((t) => layerCell(r.cells[t])),
      ),
    );
    const table = h(
      "table",
      { className: "dead-table", dataset: { testid: "runs-table" } },
      h("thead", {}, head),
      h("tbody", {}, body),
    );
    replace(this.table, table);
  }
}

function runCell(run, color) {
  const swatch = h("i", { className: "swatch line", style: { background: color(run) } });
  const inner = h(
    "span",
    { className: "run-cell" },
    swatch,
    h("span", { className: "run-name" }, run),
  );
  return h("td", { title: run }, inner);
}

function hpText(value) {
  return value === undefined || value === null
    ? "—"
    : typeof value === "number"
      ? formatNumber(value, 4)
      : String(value);
}

/** A runs-table cell: dead share now, count, and the died-at quartiles. */
function layerCell(cell) {
  if (!cell) return h("td", { className: "muted" }, "—");
  const died = cell.died.n
    ? `died ${cell.died.q1}–${cell.died.q3} (median ${cell.died.median})`
    : "none died";
  return h(
    "td",
    { dataset: { share: String(cell.share) } },
    h("strong", {}, formatPercent(cell.share)),
    ` ${cell.count} / ${cell.units}`,
    h("div", { className: "muted small" }, died),
  );
}
