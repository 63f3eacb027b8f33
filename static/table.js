// The dead-unit table of one layer and its CSV / JSON export (Blob download).
// Rows and file contents come from deadunits.js.

import { DEFINITION_WORDS, definitionOf, deadRows, fileStem, toCsv, toJson } from "./deadunits.js";
import { h, replace } from "./dom.js";
import { formatNumber } from "./format.js";
import { memo } from "./memo.js";

const MAX_ROWS = 400;
const COLUMNS = [
  ["unit", (r) => String(r.unit)],
  ["died at", (r) => (r.died_at === null ? "—" : String(r.died_at))],
  ["revived", (r) => (r.revived ? "yes" : "no")],
  ["dormant score now", (r) => formatNumber(r.dormant_score_now)],
  ["gradient-negligible now", (r) => ({ true: "yes", false: "no" })[r.grad_dormant_now] ?? "—"],
];

function download(name, type, text) {
  const url = URL.createObjectURL(new Blob([text], { type }));
  const a = h("a", { href: url, download: name });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10000);
}

function button(text, testid, onClick) {
  const b = h("button", { type: "button", textContent: text, dataset: { testid } });
  b.addEventListener("click", onClick);
  return b;
}

/** A table view bound to one layer; `update` redraws only for a new response. */
export class DeadTable {
  constructor(onPick) {
    this.onPick = onPick;
    this.caption = h("div", { className: "table-caption" });
    this.thead = h("thead");
    this.tbody = h("tbody");
    this.more = h("div", { className: "muted small" });
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
      this.more,
    );
    this.update = memo((run, tag, timeline) => this.show(run, tag, timeline));
  }

  show(run, tag, timeline) {
    Object.assign(this, { run, tag, timeline, rows: deadRows(timeline) });
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
    replace(
      this.tbody,
      this.rows.slice(0, MAX_ROWS).map((r) => this.row(r)),
    );
    if (!this.rows.length) {
      this.tbody.append(
        h("tr", {}, h("td", { colSpan: COLUMNS.length, className: "muted" }, "none")),
      );
    }
    const cut = this.rows.length > MAX_ROWS;
    replace(
      this.more,
      cut ? `showing ${MAX_ROWS} of ${this.rows.length}; the exports hold all` : "",
    );
    this.csvButton.disabled = this.jsonButton.disabled = !this.rows.length;
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
