// The timeline chart of one run: its loss and the dead (solid) and dormant
// (dashed) share of each selected layer on one step axis, revivals marked,
// and one readout that shows loss and counts at the hovered step.

import { cssVar, floorIndex, formatNumber, formatPercent, h, nearestIndex, replace, s } from "./dom.js";

const HEIGHT = 220;
const M = { top: 14, right: 58, bottom: 28, left: 48 };

function niceTicks(lo, hi, count) {
  if (!(hi > lo)) return [lo];
  const raw = (hi - lo) / count;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((f) => f * mag).find((v) => v >= raw) || raw;
  const ticks = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) ticks.push(Number(v.toPrecision(12)));
  return ticks;
}

function linePath(xs, ys, sx, sy) {
  let d = "";
  let pen = false;
  for (let i = 0; i < xs.length; i++) {
    const y = ys[i];
    if (y === null || y === undefined || !Number.isFinite(y)) {
      pen = false;
      continue;
    }
    d += `${pen ? "L" : "M"}${sx(xs[i]).toFixed(1)},${sy(y).toFixed(1)}`;
    pen = true;
  }
  return d;
}

export class TimelineChart {
  constructor() {
    this.readout = h("div", { className: "readout", dataset: { testid: "readout" } });
    this.note = h("div", { className: "chart-note" });
    this.svg = s("svg", { class: "timeline-svg", height: HEIGHT, "data-testid": "timeline" });
    this.legend = h("div", { className: "chart-legend" });
    this.root = h("div", { className: "timeline" }, this.readout, this.svg, this.legend, this.note);
    this.model = null;
    this.svg.addEventListener("mousemove", (e) => this.hover(e));
    this.svg.addEventListener("mouseleave", () => this.showReadout(null));
  }

  /**
   * model: {width, domain: [x0, x1], loss: loss response or null,
   *   lossNote: string, layers: [{tag, color, units, steps, dead, dormant}],
   *   revivals: [{step, units, tag}], definition, tau}
   */
  draw(model) {
    this.model = model;
    const width = Math.max(model.width, 240);
    const svg = this.svg;
    svg.setAttribute("width", width);
    svg.setAttribute("viewBox", `0 0 ${width} ${HEIGHT}`);
    const fg = cssVar("--muted", "#888");
    const grid = cssVar("--grid", "#8883");
    const lossColor = cssVar("--loss", "#888");
    const [x0, x1] = model.domain[1] > model.domain[0] ? model.domain : [model.domain[0], model.domain[0] + 1];
    const iw = width - M.left - M.right;
    const ih = HEIGHT - M.top - M.bottom;
    const sx = (x) => M.left + ((x - x0) / (x1 - x0)) * iw;
    this.invertX = (px) => x0 + ((px - M.left) / iw) * (x1 - x0);

    let maxShare = 0;
    for (const layer of model.layers) {
      for (let i = 0; i < layer.steps.length; i++) {
        maxShare = Math.max(maxShare, layer.dead[i] / layer.units, layer.dormant[i] / layer.units);
      }
    }
    const shareTop = maxShare > 0.5 ? 1 : Math.max(0.05, Math.ceil(maxShare * 11) / 10);
    const sy = (v) => M.top + ih - (v / shareTop) * ih;

    const loss = model.loss && model.loss.steps && model.loss.steps.length ? model.loss : null;
    let ly = null;
    let lossTicks = [];
    if (loss) {
      const finite = loss.values.filter((v) => Number.isFinite(v));
      let lo = Math.min(...finite);
      let hi = Math.max(...finite);
      const log = lo > 0 && hi / lo > 50;
      if (log) {
        const a = Math.log10(lo);
        const b = Math.log10(hi);
        ly = (v) => (v > 0 ? M.top + ih - ((Math.log10(v) - a) / (b - a || 1)) * ih : null);
        lossTicks = [];
        for (let p = Math.ceil(a); p <= Math.floor(b); p++) lossTicks.push(10 ** p);
      } else {
        if (hi === lo) {
          hi += 1;
          lo -= 1;
        }
        const pad = (hi - lo) * 0.05;
        lo -= pad;
        hi += pad;
        ly = (v) => M.top + ih - ((v - lo) / (hi - lo)) * ih;
        lossTicks = niceTicks(lo, hi, 4);
      }
    }

    const nodes = [];
    for (const t of niceTicks(0, shareTop, 4)) {
      nodes.push(s("line", { x1: M.left, x2: M.left + iw, y1: sy(t), y2: sy(t), stroke: grid }));
      nodes.push(s("text", { x: M.left - 6, y: sy(t) + 4, "text-anchor": "end", fill: fg, class: "tick" }, formatPercent(t)));
    }
    for (const t of niceTicks(x0, x1, Math.max(2, Math.floor(iw / 90)))) {
      nodes.push(s("line", { x1: sx(t), x2: sx(t), y1: M.top + ih, y2: M.top + ih + 4, stroke: fg }));
      nodes.push(s("text", { x: sx(t), y: HEIGHT - 8, "text-anchor": "middle", fill: fg, class: "tick" }, String(t)));
    }
    nodes.push(s("text", { x: 4, y: M.top - 3, fill: fg, class: "axis-label" }, "units"));
    if (loss) {
      for (const t of lossTicks) {
        const y = ly(t);
        if (y === null || y < M.top - 1 || y > M.top + ih + 1) continue;
        nodes.push(s("text", { x: M.left + iw + 6, y: y + 4, fill: lossColor, class: "tick" }, formatNumber(t, 2)));
      }
      nodes.push(s("text", { x: width - 4, y: M.top - 3, "text-anchor": "end", fill: lossColor, class: "axis-label" }, "loss"));
    }
    nodes.push(s("rect", { x: M.left, y: M.top, width: iw, height: ih, fill: "none", stroke: grid }));

    for (const rev of model.revivals) {
      const x = sx(rev.step);
      const marker = s(
        "g",
        { class: "revival", "data-step": rev.step },
        s("line", { x1: x, x2: x, y1: M.top, y2: M.top + ih, stroke: cssVar("--revival", "#2a9d8f"), "stroke-dasharray": "2 3" }),
        s("path", { d: `M${x - 5},${M.top}L${x + 5},${M.top}L${x},${M.top + 7}Z`, fill: cssVar("--revival", "#2a9d8f") }),
        s("title", {}, `step ${rev.step}: ${rev.units.length} units of ${rev.tag} re-initialised`),
      );
      nodes.push(marker);
    }
    if (loss) {
      nodes.push(
        s("path", { d: linePath(loss.steps, loss.values, sx, ly), fill: "none", stroke: lossColor, "stroke-width": 1.5, class: "loss-line", opacity: 0.85 }),
      );
    }
    for (const layer of model.layers) {
      const shares = (counts) => counts.map((c) => c / layer.units);
      nodes.push(
        s("path", { d: linePath(layer.steps, shares(layer.dormant), sx, sy), fill: "none", stroke: layer.color, "stroke-width": 1.5, "stroke-dasharray": "5 3", class: "dormant-line" }),
        s("path", { d: linePath(layer.steps, shares(layer.dead), sx, sy), fill: "none", stroke: layer.color, "stroke-width": 2.2, class: "dead-line" }),
      );
    }
    this.rule = s("line", { x1: 0, x2: 0, y1: M.top, y2: M.top + ih, stroke: fg, visibility: "hidden" });
    nodes.push(this.rule);
    nodes.push(s("rect", { x: M.left, y: M.top, width: iw, height: ih, fill: "transparent", class: "hover-target" }));
    replace(svg, ...nodes);
    this.sx = sx;

    replace(
      this.legend,
      loss ? h("span", { className: "key" }, h("i", { className: "swatch line", style: { background: lossColor } }), `loss (${loss.tag}, per ${loss.step_unit || "step"})`) : null,
      model.layers.map((layer) =>
        h(
          "span",
          { className: "key" },
          h("i", { className: "swatch line", style: { background: layer.color } }),
          `${layer.tag}: dead`,
          h("i", { className: "swatch dashed", style: { borderColor: layer.color } }),
          "dormant",
        ),
      ),
      model.revivals.length ? h("span", { className: "key" }, h("i", { className: "swatch revival" }), "revival") : null,
    );
    replace(this.note, model.lossNote ? h("span", { className: "note", dataset: { testid: "loss-note" } }, model.lossNote) : null);
    this.showReadout(this.hoverStep ?? null);
  }

  hover(event) {
    if (!this.model || !this.invertX) return;
    const rect = this.svg.getBoundingClientRect();
    const px = ((event.clientX - rect.left) / rect.width) * Number(this.svg.getAttribute("width"));
    this.showReadout(this.invertX(px));
  }

  /** Loss and dead/dormant counts at `step` (the last step when null). */
  showReadout(step) {
    const model = this.model;
    if (!model) return;
    this.hoverStep = step;
    const allSteps = model.layers.flatMap((l) => (l.steps.length ? [l.steps[l.steps.length - 1]] : []));
    const at = step === null ? Math.max(...allSteps, model.domain[0]) : step;
    const parts = [];
    if (step !== null) {
      this.rule.setAttribute("x1", this.sx(at));
      this.rule.setAttribute("x2", this.sx(at));
      this.rule.setAttribute("visibility", "visible");
    } else if (this.rule) {
      this.rule.setAttribute("visibility", "hidden");
    }
    parts.push(h("span", { className: "readout-step" }, step === null ? `latest (step ${Math.round(at)})` : `step ${Math.round(at)}`));
    const loss = model.loss && model.loss.steps && model.loss.steps.length ? model.loss : null;
    if (loss) {
      const i = nearestIndex(loss.steps, at);
      parts.push(h("span", { className: "readout-item", dataset: { testid: "readout-loss" } }, `loss ${formatNumber(loss.values[i], 4)} @${loss.steps[i]}`));
    } else {
      parts.push(h("span", { className: "readout-item muted" }, "no loss"));
    }
    for (const layer of model.layers) {
      let i = floorIndex(layer.steps, at);
      if (i < 0) i = 0;
      if (!layer.steps.length) continue;
      parts.push(
        h(
          "span",
          { className: "readout-item", dataset: { testid: "readout-layer", tag: layer.tag } },
          h("i", { className: "swatch line", style: { background: layer.color } }),
          `${layer.tag}: ${layer.dead[i]} dead · ${layer.dormant[i]} dormant / ${layer.units} @${layer.steps[i]}`,
        ),
      );
    }
    replace(this.readout, ...parts);
  }
}
