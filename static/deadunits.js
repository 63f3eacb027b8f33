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

// A spreadsheet evaluates a cell that starts with one of these as a formula,
// quoted or not (OWASP "CSV injection"): such cells get a leading apostrophe.
const FORMULA_START = /^[=+\-@\t\r]/;

/** One CSV field: formula starts neutralised, then RFC 4180 quoting. */
export function csvField(value) {
  let text = value === null || value === undefined ? "" : String(value);
  if (FORMULA_START.test(text)) text = `'${text}`;
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
    dead_units: rows.map((r) => Object.fromEntries(CSV_COLUMNS.map((c) => [c, r[c]]))),
  };
  return JSON.stringify(body, null, 2);
}

/**
 * Which rule made a dead cell dead, from its active share (exact zero means
 * never |a| > eps; the cell's share bits are 0 only then, docs/routes.md).
 */
export function deadRule(activeShare) {
  return activeShare === 0 ? "never active" : "constant output (std ≈ 0)";
}

/**
 * The last revival of a unit from its per-snapshot verdicts (`flags[i]`:
 * dead, or dormant, by the definition at `steps[i]`): {revivedAt: the first
 * step of its last return to life, or null; deadSince: the step from which
 * it stays flagged to the end, or null}.
 */
export function revivalOf(steps, flags) {
  let revivedAt = null;
  let deadSince = null;
  for (let i = 0; i < flags.length; i++) {
    if (flags[i] && deadSince === null) deadSince = steps[i];
    if (!flags[i]) {
      if (deadSince !== null) revivedAt = steps[i];
      deadSince = null;
    }
  }
  return { revivedAt, deadSince };
}

/** "revived at s, dead again since t", "revived at s", "no" (`word`: dead or dormant). */
export function revivalText({ revivedAt, deadSince }, word = "dead") {
  if (revivedAt === null) return "no";
  if (deadSince !== null) return `revived at ${revivedAt}, ${word} again since ${deadSince}`;
  return `revived at ${revivedAt}`;
}

/** A file name stem safe on every file system. */
export function fileStem(run, tag) {
  return `deadneurons-${run}-${tag}`.replace(/[^A-Za-z0-9._-]+/g, "_").slice(0, 120);
}
