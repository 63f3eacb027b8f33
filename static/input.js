// Reading what the user typed into the controls. Pure.

/** The range of the dormant threshold τ the dashboard accepts (docs/routes.md). */
export const TAU_RANGE = [0, 1];

/**
 * The τ a text box holds: {tau} for a number in [0, 1], else {error} that
 * says what is wrong (shown next to the box; the view keeps its τ).
 */
export function parseTau(text) {
  const raw = String(text ?? "").trim();
  const [lo, hi] = TAU_RANGE;
  const want = `τ must be a number from ${lo} to ${hi}`;
  if (raw === "") return { error: `${want}; the box is empty` };
  // Number("") is 0 and Number("0x10") is 16: only plain decimals count.
  if (!/^[+]?(\d+\.?\d*|\.\d+)(e[+-]?\d+)?$/i.test(raw)) return { error: `${want}, not "${raw}"` };
  const tau = Number(raw);
  if (!(tau >= lo && tau <= hi)) return { error: `${want}; ${raw} is outside` };
  return { tau };
}

/**
 * A matcher of "filter layers" text, like TensorBoard's tag filter: a
 * case-insensitive regular expression tested against "run tag". An
 * invalid expression matches as plain text and says so in `error`.
 */
export function layerMatcher(text) {
  const query = String(text ?? "").trim();
  if (!query) return { test: () => true, error: null };
  try {
    const re = new RegExp(query, "i");
    return { test: (run, tag) => re.test(tag) || re.test(`${run} ${tag}`), error: null };
  } catch (err) {
    const plain = query.toLowerCase();
    const test = (run, tag) => `${run} ${tag}`.toLowerCase().includes(plain);
    return { test, error: `not a regular expression (${err.message}); matched as text` };
  }
}
