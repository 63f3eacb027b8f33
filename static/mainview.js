// The page below the top bar: the banner (./runs errors and warnings) and
// the main area (loading, the empty page, or one panel per selected run).

import { h, replace } from "./dom.js";
import { memo } from "./memo.js";
import { CompareView } from "./compare.js";
import { RunPanel, syncChildren } from "./runpanel.js";
import { shareTop } from "./scale.js";
import { mostDeadFirst, shownMaxShare, stepDomain } from "./selection.js";
import { emptyState, errorBox, warningsBox } from "./widgets.js";

const PICK = "Pick one or more runs on the left; several runs are shown side by side.";
const PAGES = {
  loading: () => h("div", { className: "muted" }, "Loading runs…"),
  failed: () => null, // the banner names the failed request
  empty: emptyState,
  pick: () => h("div", { className: "muted hint-box" }, PICK),
  grid: (view) => view.grid,
};

export class MainView {
  /** `on`: the layer views' handlers (layerview.js) and the compare view's (compare.js). */
  constructor(on) {
    this.on = on;
    this.banner = h("div", { className: "banner" });
    this.root = h("main", { className: "main" });
    this.compare = new CompareView(on);
    this.runs = h("div", { className: "run-grid" });
    this.grid = h("div", {}, this.compare.root, this.runs);
    this.panels = new Map();
    this.showBanner = memo((error, warnings) => {
      const read = " while reading the logs";
      replace(
        this.banner,
        error ? errorBox("Request ./runs", error) : null,
        warningsBox(warnings, read),
      );
    });
    this.showPage = memo((name) => replace(this.root, PAGES[name](this)));
  }

  render(state, theme) {
    this.showBanner(state.runsError, state.runsWarnings);
    const selected = (state.runs || []).filter((r) => state.selectedRuns.includes(r.run));
    const page = pageName(state, selected);
    this.showPage(page);
    if (page !== "grid") return;
    this.compare.update(state, theme);
    this.runs.classList.toggle("compare", selected.length > 1);
    const make = (run) => new RunPanel(run, this.on);
    const ordered = mostDeadFirst(selected);
    const panels = syncChildren(
      this.runs,
      this.panels,
      ordered.map((r) => r.run),
      make,
    );
    // Each card its own steps unless shared; one share axis for all cards.
    const shared = stepDomain(state, selected);
    const domain = (info) => (state.sharedSteps ? shared : stepDomain(state, [info]));
    const top = shareTop(shownMaxShare(state));
    panels.forEach((panel, i) => panel.update(state, ordered[i], domain(ordered[i]), top, theme));
  }
}

function pageName(state, selected) {
  if (state.runs === null) return state.runsError ? "failed" : "loading";
  if (!state.runs.some((r) => r.layers && r.layers.length)) return "empty";
  return selected.length ? "grid" : "pick";
}
