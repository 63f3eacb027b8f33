// The dead-unit table of one layer and its CSV / JSON export (Blob download).
// Rows and file contents come from deadunits.js. A wide layer's table is
// paged: MAX_ROWS rows in the DOM at a time, the exports hold all.

import {
  DEFINITION_WORDS,
  definitionOf,
  deadRows,
  fileStem,
  revivalOf,
  revivalText,
  toCsv,
  toJson,
} from "./deadunits.js";
import { DEAD, DORMANT, cellGradDormant, cellState } from "./matrix.js";
import { button, h, replace } from "./dom.js";
import { formatNumber } from "./format.js";
import { memo } from "./memo.js";

const MAX_ROWS = 400;
const COLUMNS = [
  ["unit", (r) => String(r.unit)],
  ["died at", (r) => (r.died_at === null ? "—" : String(r.died_at))],
  ["revived", (r) => r.revivedText || (r.revived ? "yes" : "no")],
  ["dormant score now", (r) => formatNumber(r.dormant_score_now)],
  ["gradient-negligible now", (r) => ({ true: "yes", false: "no" })[r.grad_dormant_now] ?? "—"],
];

/**
 * Rows with `revivedText` ("revived at s, dead again since t") where the
 * timeline's matrix holds one column per snapshot and one row per unit.
 */
function withRevivals(rows, timeline) {
  const m = timeline.cells;
  if (!m || !m.wholeLayer || m.steps !== timeline.steps.length) return rows;
  const definition = definitionOf(timeline);
  const flagged = (byte) => {
    const state = cellState(byte);
    if (definition === "grad_dormant") return cellGradDormant(byte);
    return state === DEAD || (definition === "dormant" && state === DORMANT);
  };
  const word = DEFINITION_WORDS[definition] || "dead";
  return rows.map((r) => {
    if (!r.revived) return r;
    const row = m.bytes.subarray(r.unit * m.steps, (r.unit + 1) * m.steps);
    const story = revivalOf(timeline.steps, Array.from(row, flagged));
    return { ...r, revivedText: revivalText(story, word) };
  });
}

function download(name, type, text) {
  const url = URL.createObjectURL(new Blob([text], { type }));
  const a = h("a", { href: url, download: name });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10000);
}

/** A table view bound to one layer; `update` redraws only for a new response. */
export class DeadTable {
  constructor(onPick) {
    this.onPick = onPick;
    this.caption = h("div", { className: "table-caption" });
    this.thead = h("thead");
    this.tbody = h("tbody");
    this.more = h("span", { className: "muted small", dataset: { testid: "table-page" } });
    this.page = 0;
    this.prevButton = button("‹ previous", "page-prev", () => this.turn(-1));
    this.nextButton = button("next ›", "page-next", () => this.turn(1));
    this.csvButton = button("Export CSV", "export-csv", () => this.export("csv"));
    this.jsonButton = button("Export JSON", "export-json", () => this.export("json"));
    const table = h(
      "table",
      { className: "dead-table", dataset: { testid: "dead-table" } },
      this.thead,
      this.tbody,
    );
    const head = h(
      "div",
      { className: "table-head" },
      this.caption,
      h("span", { className: "spacer" }),
    );
    head.append(this.csvButton, this.jsonButton);
    this.root = h(
      "div",
      { className: "dead-units" },
      head,
      h("div", { className: "table-scroll" }, table),
      h("div", { className: "table-pager" }, this.prevButton, this.more, this.nextButton),
    );
    this.update = memo((run, tag, timeline) => this.show(run, tag, timeline));
  }

  show(run, tag, timeline) {
    const same = this.run === run && this.tag === tag;
    const rows = withRevivals(deadRows(timeline), timeline);
    Object.assign(this, { run, tag, timeline, rows });
    if (!same) this.page = 0;
    const definition = definitionOf(timeline);
    const tau = definition === "dead" ? "" : ` (τ = ${timeline.thresholds.tau})`;
    const word = `${DEFINITION_WORDS[definition] || definition}${tau}`;
    replace(
      this.caption,
      `${this.rows.length} of ${timeline.units} units ${word} at the last snapshot`,
    );
    replace(
      this.thead,
      h(
        "tr",
        {},
        COLUMNS.map(([title]) => h("th", { scope: "col" }, title)),
      ),
    );
    this.showPage();
    this.csvButton.disabled = this.jsonButton.disabled = !this.rows.length;
  }

  /** Draws page `this.page` (kept inside the rows there are). */
  showPage() {
    const pages = Math.max(1, Math.ceil(this.rows.length / MAX_ROWS));
    this.page = Math.min(Math.max(this.page, 0), pages - 1);
    const first = this.page * MAX_ROWS;
    const shown = this.rows.slice(first, first + MAX_ROWS);
    replace(
      this.tbody,
      shown.map((r) => this.row(r)),
    );
    if (!this.rows.length) {
      this.tbody.append(
        h("tr", {}, h("td", { colSpan: COLUMNS.length, className: "muted" }, "none")),
      );
    }
    const paged = pages > 1;
    const where = `rows ${first + 1}–${first + shown.length} of ${this.rows.length}`;
    replace(this.more, paged ? ` ${where}; the exports hold all ` : "");
    this.prevButton.hidden = this.nextButton.hidden = !paged;
    this.prevButton.disabled = this.page === 0;
    this.nextButton.disabled = this.page === pages - 1;
  }

  turn(delta) {
    this.page += delta;
    this.showPage();
  }

  row(r) {
    const tr = h(
      "tr",
      { dataset: { unit: String(r.unit) } },
      COLUMNS.map(([, cell]) => h("td", {}, cell(r))),
    );
    tr.addEventListener("click", () => this.onPick(r.unit));
    return tr;
  }

  export(kind) {
    if (!this.timeline) return;
    const stem = fileStem(this.run, this.tag);
    const args = [this.run, this.tag, this.timeline, this.rows];
    if (kind === "csv") download(`${stem}.csv`, "text/csv", toCsv(...args));
    else download(`${stem}.json`, "application/json", toJson(...args));
  }
}
