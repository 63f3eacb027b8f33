// The timeline chart of one run: its loss and the dead (solid) and dormant
// (dashed) share of each selected layer on one step axis, optionally each
// layer's mean |a| (dotted), revivals marked, and one readout that shows the
// values at the hovered step.

import { cssVar, h, replace, s } from "./dom.js";
import { floorIndex, formatNumber, formatPercent, nearestIndex } from "./format.js";
import { linePath, linear, logTicks, niceTicks, stepTicks, tickLabels } from "./scale.js";

const SHARE_HEIGHT = 220;
// With mean |a| on, its lines get a band of their own below the shares.
const MEAN_ABS_BAND = 70;
const M = { top: 24, right: 58, bottom: 28, left: 48 };

function hasSteps(series) {
  return Boolean(series && series.steps && series.steps.length);
}

/** The largest dead or dormant share the chart layers hold (0..1). */
export function layersMaxShare(layers) {
  let max = 0;
  for (const layer of layers) {
    for (let i = 0; i < layer.steps.length; i++) {
      max = Math.max(max, layer.dead[i] / layer.units, layer.dormant[i] / layer.units);
    }
  }
  return max;
}

/** The loss axis: log when the loss spans more than 50x, else linear with 5% padding. */
function lossScale(loss, y0, y1) {
  const finite = loss.values.filter((v) => Number.isFinite(v));
  let lo = Math.min(...finite);
  let hi = Math.max(...finite);
  if (lo > 0 && hi / lo > 50) {
    const ly = linear(Math.log10(lo), Math.log10(hi), y0, y1);
    return { ly: (v) => (v > 0 ? ly(Math.log10(v)) : null), ticks: logTicks(lo, hi) };
  }
  if (hi === lo) [lo, hi] = [lo - 1, hi + 1];
  const pad = (hi - lo) * 0.05;
  return { ly: linear(lo - pad, hi + pad, y0, y1), ticks: niceTicks(lo - pad, hi + pad, 4) };
}

/** The chart's height: the share chart, and the mean |a| band when shown. */
function chartHeight(model) {
  return SHARE_HEIGHT + (model.showMeanAbs ? MEAN_ABS_BAND : 0);
}

/** Scales of a chart model at `width` pixels; `model.top` is the share axis' top (0..1). */
export function chartScales(model, width) {
  const [x0, x1] =
    model.domain[1] > model.domain[0] ? model.domain : [model.domain[0], model.domain[0] + 1];
  const iw = width - M.left - M.right;
  const ih = SHARE_HEIGHT - M.top - M.bottom;
  const bottom = M.top + ih;
  const top = model.top;
  const loss = hasSteps(model.loss) ? lossScale(model.loss, bottom, M.top) : null;
  return {
    width,
    height: chartHeight(model),
    iw,
    ih,
    bottom,
    top,
    x0,
    x1,
    sx: linear(x0, x1, M.left, M.left + iw),
    invertX: linear(M.left, M.left + iw, x0, x1),
    sy: linear(0, top, bottom, M.top),
    loss,
  };
}

function axisNodes(sc, colors) {
  const { sx, sy, iw, ih, bottom } = sc;
  const nodes = [];
  for (const t of niceTicks(0, sc.top, 4)) {
    nodes.push(
      s("line", { x1: M.left, x2: M.left + iw, y1: sy(t), y2: sy(t), stroke: colors.grid }),
      s(
        "text",
        { x: M.left - 6, y: sy(t) + 4, "text-anchor": "end", fill: colors.fg, class: "tick" },
        formatPercent(t),
      ),
    );
  }
  for (const t of stepTicks(sc.x0, sc.x1, Math.max(2, Math.floor(iw / 90)))) {
    const x = sx(t);
    nodes.push(
      s("line", { x1: x, x2: x, y1: bottom, y2: bottom + 4, stroke: colors.fg }),
      s(
        "text",
        { x, y: bottom + 18, "text-anchor": "middle", fill: colors.fg, class: "tick step-tick" },
        String(t),
      ),
    );
  }
  // Above the top tick label (at M.top + 4), never over it.
  const title = { x: 4, y: M.top - 12, fill: colors.fg, class: "axis-label" };
  nodes.push(s("text", title, "share of units"));
  if (sc.loss) nodes.push(...lossAxisNodes(sc, colors));
  nodes.push(
    s("rect", { x: M.left, y: M.top, width: iw, height: ih, fill: "none", stroke: colors.grid }),
  );
  return nodes;
}

function lossAxisNodes(sc, colors) {
  const { ly, ticks } = sc.loss;
  const inside = ticks.filter(
    (t) => ly(t) !== null && ly(t) >= M.top - 1 && ly(t) <= sc.bottom + 1,
  );
  const labels = tickLabels(inside);
  const x = M.left + sc.iw + 6;
  const attrs = { fill: colors.loss, class: "tick" };
  const nodes = inside.map((t, i) => s("text", { x, y: ly(t) + 4, ...attrs }, labels[i]));
  const label = { x: sc.width - 4, y: M.top - 12, "text-anchor": "end", fill: colors.loss };
  nodes.push(s("text", { ...label, class: "axis-label" }, "loss"));
  return nodes;
}

function revivalNodes(revivals, sc, color) {
  return revivals.map((rev) => {
    const x = sc.sx(rev.step);
    return s(
      "g",
      { class: "revival", "data-step": rev.step },
      s("line", {
        x1: x,
        x2: x,
        y1: M.top,
        y2: sc.bottom,
        stroke: color,
        "stroke-dasharray": "2 3",
      }),
      s("path", { d: `M${x - 5},${M.top}L${x + 5},${M.top}L${x},${M.top + 7}Z`, fill: color }),
      s("title", {}, `step ${rev.step}: ${rev.units.length} units of ${rev.tag} re-initialised`),
    );
  });
}

/** The band below the share chart where mean |a| is drawn: [top, bottom] in pixels. */
function meanAbsBand(sc) {
  return [SHARE_HEIGHT + 4, sc.height - 8];
}

/** The layer's mean |a| in its band, scaled to its own maximum (the readout shows values). */
function meanAbsPath(layer, sc) {
  const finite = layer.meanAbs.filter((v) => Number.isFinite(v));
  const max = Math.max(...finite, 0);
  const [top, bottom] = meanAbsBand(sc);
  const sy = linear(0, max || 1, bottom, top);
  return linePath(layer.steps, layer.meanAbs, sc.sx, sy);
}

function meanAbsFrame(sc, colors) {
  const [top, bottom] = meanAbsBand(sc);
  const frame = { x: M.left, y: top, width: sc.iw, height: bottom - top };
  const label = { x: 4, y: top + 12, fill: colors.fg, class: "axis-label" };
  return [
    s("rect", { ...frame, fill: "none", stroke: colors.grid, class: "mean-abs-band" }),
    s("text", label, "mean |a|"),
  ];
}

function seriesNodes(model, sc, colors) {
  const nodes = [];
  const line = (d, stroke, width, extra) =>
    s("path", { d, fill: "none", stroke, "stroke-width": width, ...extra });
  if (sc.loss) {
    const d = linePath(model.loss.steps, model.loss.values, sc.sx, sc.loss.ly);
    nodes.push(line(d, colors.loss, 1.5, { class: "loss-line", opacity: 0.85 }));
  }
  if (model.showMeanAbs && model.layers.some((l) => l.meanAbs)) {
    nodes.push(...meanAbsFrame(sc, colors));
  }
  for (const layer of model.layers) {
    const shares = (counts) => counts.map((c) => c / layer.units);
    const dormant = linePath(layer.steps, shares(layer.dormant), sc.sx, sc.sy);
    const dead = linePath(layer.steps, shares(layer.dead), sc.sx, sc.sy);
    nodes.push(
      line(dormant, layer.color, 1.5, { "stroke-dasharray": "5 3", class: "dormant-line" }),
    );
    nodes.push(line(dead, layer.color, 2.2, { class: "dead-line" }));
    if (model.showMeanAbs && layer.meanAbs) {
      const extra = { "stroke-dasharray": "1 3", class: "mean-abs-line", "data-tag": layer.tag };
      nodes.push(line(meanAbsPath(layer, sc), layer.color, 1.5, extra));
    }
  }
  return nodes;
}

function key(swatch, ...text) {
  return h("span", { className: "key" }, swatch, ...text);
}

function legendNodes(model, colors) {
  const line = (color) => h("i", { className: "swatch line", style: { background: color } });
  const dashed = (color, cls = "dashed") =>
    h("i", { className: `swatch ${cls}`, style: { borderColor: color } });
  const loss = model.loss;
  return [
    hasSteps(loss)
      ? key(line(colors.loss), `loss (${loss.tag}, per ${loss.step_unit || "step"})`)
      : null,
    model.layers.map((layer) =>
      key(
        line(layer.color),
        `${layer.tag}: dead`,
        dashed(layer.color),
        "dormant",
        model.showMeanAbs && layer.meanAbs
          ? [dashed(layer.color, "dotted"), "mean |a| (to its max)"]
          : null,
      ),
    ),
    model.revivals.length ? key(h("i", { className: "swatch revival" }), "revival") : null,
  ];
}

function readoutLayer(layer, at, showMeanAbs) {
  const i = Math.max(floorIndex(layer.steps, at), 0);
  const meanAbs =
    showMeanAbs && layer.meanAbs ? ` · mean |a| ${formatNumber(layer.meanAbs[i])}` : "";
  const counts = `${layer.dead[i]} dead · ${layer.dormant[i]} dormant / ${layer.units}`;
  const text = `${layer.tag}: ${counts}`;
  return h(
    "span",
    { className: "readout-item", dataset: { testid: "readout-layer", tag: layer.tag } },
    h("i", { className: "swatch line", style: { background: layer.color } }),
    `${text}${meanAbs} @${layer.steps[i]}`,
  );
}

export class TimelineChart {
  constructor() {
    this.readout = h("div", { className: "readout", dataset: { testid: "readout" } });
    this.note = h("div", { className: "chart-note" });
    this.svg = s("svg", { class: "timeline-svg", height: SHARE_HEIGHT, "data-testid": "timeline" });
    this.legend = h("div", { className: "chart-legend" });
    this.root = h("div", { className: "timeline" }, this.readout, this.svg, this.legend, this.note);
    this.model = null;
    this.hoverStep = null;
    this.svg.addEventListener("mousemove", (e) => this.hover(e));
    this.svg.addEventListener("mouseleave", () => this.showReadout(null));
  }

  /**
   * model: {width, domain: [x0, x1], loss: ./loss response or null,
   *   lossNote: string, showMeanAbs: boolean,
   *   layers: [{tag, color, units, steps, dead, dormant, meanAbs (or null)}],
   *   revivals: [{step, units, tag}]}
   */
  draw(model) {
    const width = Math.max(model.width, 240);
    const colors = {
      fg: cssVar("--muted", "#888"),
      grid: cssVar("--grid", "#8883"),
      loss: cssVar("--loss", "#888"),
      revival: cssVar("--revival", "#2a9d8f"),
    };
    const sc = chartScales(model, width);
    this.model = model;
    this.scales = sc;
    this.rule = s("line", {
      x1: 0,
      x2: 0,
      y1: M.top,
      y2: sc.bottom,
      stroke: colors.fg,
      visibility: "hidden",
    });
    this.svg.setAttribute("width", width);
    this.svg.setAttribute("height", sc.height);
    this.svg.setAttribute("viewBox", `0 0 ${width} ${sc.height}`);
    replace(
      this.svg,
      axisNodes(sc, colors),
      revivalNodes(model.revivals, sc, colors.revival),
      seriesNodes(model, sc, colors),
      this.rule,
      s("rect", {
        x: M.left,
        y: M.top,
        width: sc.iw,
        height: sc.ih,
        fill: "transparent",
        class: "hover-target",
      }),
    );
    replace(this.legend, legendNodes(model, colors));
    const note =
      model.lossNote &&
      h("span", { className: "note", dataset: { testid: "loss-note" } }, model.lossNote);
    replace(this.note, note || null);
    this.showReadout(this.hoverStep);
  }

  hover(event) {
    if (!this.model) return;
    const rect = this.svg.getBoundingClientRect();
    const px = ((event.clientX - rect.left) / rect.width) * Number(this.svg.getAttribute("width"));
    this.showReadout(this.scales.invertX(px));
  }

  /** Loss and per-layer values at `step` (the latest snapshot when null). */
  showReadout(step) {
    const model = this.model;
    if (!model) return;
    this.hoverStep = step;
    const lasts = model.layers.flatMap((l) =>
      l.steps.length ? [l.steps[l.steps.length - 1]] : [],
    );
    const at = step === null ? Math.max(...lasts, model.domain[0]) : step;
    this.rule.setAttribute("x1", this.scales.sx(at));
    this.rule.setAttribute("x2", this.scales.sx(at));
    this.rule.setAttribute("visibility", step === null ? "hidden" : "visible");
    const where = step === null ? `latest (step ${Math.round(at)})` : `step ${Math.round(at)}`;
    const loss = model.loss;
    let lossItem = h("span", { className: "readout-item muted" }, "no loss");
    if (hasSteps(loss)) {
      const i = nearestIndex(loss.steps, at);
      const text = `loss ${formatNumber(loss.values[i], 4)} @${loss.steps[i]}`;
      lossItem = h(
        "span",
        { className: "readout-item", dataset: { testid: "readout-loss" } },
        text,
      );
    }
    replace(
      this.readout,
      h("span", { className: "readout-step" }, where),
      lossItem,
      model.layers.filter((l) => l.steps.length).map((l) => readoutLayer(l, at, model.showMeanAbs)),
    );
  }
}
