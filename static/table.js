// The dead-unit table of one layer and its CSV / JSON export (Blob download).

import { formatNumber, h, replace } from "./dom.js";

const MAX_ROWS = 400;

/** Rows of the table: units dead now under the timeline's definition. */
export function deadRows(timeline) {
  const definition = (timeline.thresholds && timeline.thresholds.definition) || "dead";
  const now = definition === "dormant" ? timeline.dormant_now : timeline.dead_now;
  const diedAt = timeline.died_at || [];
  const revived = timeline.revived || [];
  const score = timeline.dormant_score_now || [];
  return (now || [])
    .map((unit) => ({
      unit,
      died_at: diedAt[unit] ?? null,
      revived: Boolean(revived[unit]),
      dormant_score_now: score[unit] ?? null,
    }))
    .sort((a, b) => (a.died_at ?? Infinity) - (b.died_at ?? Infinity) || a.unit - b.unit);
}

function csvField(value) {
  const text = value === null || value === undefined ? "" : String(value);
  return /[",\n\r]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text;
}

export function toCsv(run, tag, timeline, rows) {
  const t = timeline.thresholds || {};
  const header = ["run", "tag", "unit", "died_at", "revived", "dormant_score_now", "definition", "tau"];
  const lines = [header.join(",")];
  for (const r of rows) {
    lines.push(
      [run, tag, r.unit, r.died_at, r.revived, r.dormant_score_now, t.definition, t.tau].map(csvField).join(","),
    );
  }
  return `${lines.join("\n")}\n`;
}

export function toJson(run, tag, timeline, rows) {
  return JSON.stringify({ run, tag, units: timeline.units, thresholds: timeline.thresholds, dead_units: rows }, null, 2);
}

function fileStem(run, tag) {
  return `deadneurons-${run}-${tag}`.replace(/[^A-Za-z0-9._-]+/g, "_").slice(0, 120);
}

function download(name, type, text) {
  const url = URL.createObjectURL(new Blob([text], { type }));
  const a = h("a", { href: url, download: name });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10000);
}

/** A table view bound to one layer; `update` keeps its scroll position. */
export class DeadTable {
  constructor(onPick) {
    this.onPick = onPick;
    this.caption = h("div", { className: "table-caption" });
    this.tbody = h("tbody");
    this.more = h("div", { className: "muted small" });
    this.csvButton = h("button", { type: "button", textContent: "Export CSV", dataset: { testid: "export-csv" } });
    this.jsonButton = h("button", { type: "button", textContent: "Export JSON", dataset: { testid: "export-json" } });
    this.csvButton.addEventListener("click", () => this.export("csv"));
    this.jsonButton.addEventListener("click", () => this.export("json"));
    const head = h(
      "thead",
      {},
      h("tr", {}, ["unit", "died at", "revived", "dormant score now"].map((t) => h("th", { scope: "col" }, t))),
    );
    this.scroll = h("div", { className: "table-scroll" }, h("table", { className: "dead-table", dataset: { testid: "dead-table" } }, head, this.tbody));
    this.root = h(
      "div",
      { className: "dead-units" },
      h("div", { className: "table-head" }, this.caption, h("span", { className: "spacer" }), this.csvButton, this.jsonButton),
      this.scroll,
      this.more,
    );
  }

  update(run, tag, timeline) {
    if (timeline === this.timeline) return;
    this.run = run;
    this.tag = tag;
    this.timeline = timeline;
    this.rows = deadRows(timeline);
    const definition = (timeline.thresholds && timeline.thresholds.definition) || "dead";
    const word = definition === "dormant" ? `dormant (τ = ${timeline.thresholds.tau})` : "dead";
    replace(this.caption, `${this.rows.length} of ${timeline.units} units ${word} at the last snapshot`);
    const shown = this.rows.slice(0, MAX_ROWS);
    replace(
      this.tbody,
      shown.map((r) => {
        const tr = h(
          "tr",
          { dataset: { unit: String(r.unit) } },
          h("td", {}, String(r.unit)),
          h("td", {}, r.died_at === null ? "—" : String(r.died_at)),
          h("td", {}, r.revived ? "yes" : "no"),
          h("td", {}, formatNumber(r.dormant_score_now)),
        );
        tr.addEventListener("click", () => this.onPick(r.unit));
        return tr;
      }),
    );
    if (!this.rows.length) this.tbody.append(h("tr", {}, h("td", { colSpan: 4, className: "muted" }, "none")));
    replace(this.more, this.rows.length > MAX_ROWS ? `showing ${MAX_ROWS} of ${this.rows.length}; the exports hold all` : "");
    this.csvButton.disabled = this.jsonButton.disabled = !this.rows.length;
  }

  export(kind) {
    if (!this.timeline) return;
    const stem = fileStem(this.run, this.tag);
    if (kind === "csv") download(`${stem}.csv`, "text/csv", toCsv(this.run, this.tag, this.timeline, this.rows));
    else download(`${stem}.json`, "application/json", toJson(this.run, this.tag, this.timeline, this.rows));
  }
}
