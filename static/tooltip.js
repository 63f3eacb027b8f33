// The heat map's tooltip: the hovered cell, and the unit's statistics once
// ./unit answered (it redraws from the state like every other view).

import { h, replace } from "./dom.js";
import { tooltipLines } from "./heatmap.js";
import { thresholdKey, unitKey } from "./state.js";

const HOVER_DELAY_MS = 120;

export class Tooltip {
  /** `loadUnit(run, tag, unit)` requests a unit's statistics. */
  constructor(loadUnit) {
    this.loadUnit = loadUnit;
    this.root = h("div", { className: "tooltip", hidden: true, dataset: { testid: "tooltip" } });
    this.target = null;
    this.timer = 0;
  }

  /** Shows `cell` of `view` (a LayerView) at the pointer of `event`; null hides it. */
  hover(view, cell, event, state) {
    clearTimeout(this.timer);
    this.target = cell && { view, cell, x: event.clientX, y: event.clientY };
    if (!cell) {
      this.root.hidden = true;
      return;
    }
    this.render(state);
    const oneUnit = cell.unitStop - cell.unit === 1;
    if (oneUnit && !state.units[this.unitKey(state)]) {
      this.timer = setTimeout(() => this.loadUnit(view.run, view.tag, cell.unit), HOVER_DELAY_MS);
    }
  }

  unitKey(state) {
    const { view, cell } = this.target;
    return unitKey(view.run, view.tag, cell.unit, thresholdKey(state));
  }

  render(state) {
    if (!this.target) return;
    const { view, cell } = this.target;
    const entry = state.units[this.unitKey(state)];
    const timeline = view.heatmap.timeline;
    const lines = tooltipLines(
      view.run,
      view.tag,
      cell,
      timeline,
      entry && entry.status === "ok" ? entry.data : null,
    );
    if (entry && entry.status === "error") lines[lines.length - 1] = "statistics: request failed";
    replace(
      this.root,
      lines.map((line, i) => h("div", { className: i === 0 ? "tip-title" : "" }, line)),
    );
    this.root.hidden = false;
    this.place();
  }

  place() {
    const { x: px, y: py } = this.target;
    const tip = this.root;
    // clientWidth/Height exclude the scrollbars, unlike innerWidth/Height.
    const { clientWidth, clientHeight } = document.documentElement;
    const x = Math.min(px + 14, clientWidth - tip.offsetWidth - 4);
    const below = py + 16 + tip.offsetHeight <= clientHeight;
    const y = below ? py + 16 : py - tip.offsetHeight - 8;
    tip.style.left = `${Math.max(4, x)}px`;
    tip.style.top = `${Math.max(4, y)}px`;
  }
}
