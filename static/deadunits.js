// The dead-unit table's rows and their CSV / JSON exports. Pure.

/** What a unit "dead now" is called under each definition (docs/routes.md). */
export const DEFINITION_WORDS = {
  dead: "dead",
  dormant: "dormant",
  grad_dormant: "gradient-negligible",
};

/** The definition a timeline response was classified with ("dead" by default). */
export function definitionOf(timeline) {
  return (timeline.thresholds && timeline.thresholds.definition) || "dead";
}

const NOW = { dead: "dead_now", dormant: "dormant_now", grad_dormant: "grad_dormant_now" };

/**
 * Rows of the table: units dead now under the timeline's definition, by
 * died-at step. `grad_dormant_now` is null when the series has no gradient row.
 */
export function deadRows(timeline) {
  const now = timeline[NOW[definitionOf(timeline)] || "dead_now"] || [];
  const diedAt = timeline.died_at || [];
  const revived = timeline.revived || [];
  const score = timeline.dormant_score_now || [];
  const grad = Array.isArray(timeline.grad_dormant_now) ? new Set(timeline.grad_dormant_now) : null;
  return now
    .map((unit) => ({
      unit,
      died_at: diedAt[unit] ?? null,
      revived: Boolean(revived[unit]),
      dormant_score_now: score[unit] ?? null,
      grad_dormant_now: grad ? grad.has(unit) : null,
    }))
    .sort((a, b) => (a.died_at ?? Infinity) - (b.died_at ?? Infinity) || a.unit - b.unit);
}

function csvField(value) {
  const text = value === null || value === undefined ? "" : String(value);
  return /[",\n\r]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text;
}

export const CSV_COLUMNS = ["unit", "died_at", "revived", "dormant_score_now", "grad_dormant_now"];

/** The rows as CSV (RFC 4180 quoting), one line per unit with run, tag and thresholds. */
export function toCsv(run, tag, timeline, rows) {
  const t = timeline.thresholds || {};
  const header = ["run", "tag", ...CSV_COLUMNS, "definition", "tau"];
  const lines = [header.join(",")];
  for (const r of rows) {
    const fields = [run, tag, ...CSV_COLUMNS.map((c) => r[c]), t.definition, t.tau];
    lines.push(fields.map(csvField).join(","));
  }
  return `${lines.join("\n")}\n`;
}

export function toJson(run, tag, timeline, rows) {
  const body = {
    run,
    tag,
    units: timeline.units,
    thresholds: timeline.thresholds,
    dead_units: rows,
  };
  return JSON.stringify(body, null, 2);
}

/** A file name stem safe on every file system. */
export function fileStem(run, tag) {
  return `deadneurons-${run}-${tag}`.replace(/[^A-Za-z0-9._-]+/g, "_").slice(0, 120);
}
