// Run colours and the loss curve as TensorBoard draws them. Pure.

/**
 * TensorBoard 2.21's default run palette (light theme; settings'
 * "colorPalette" in its webapp). TensorBoard gives the i-th run of
 * data/runs the i-th colour, cycling.
 */
export const RUN_PALETTE = [
  "#425066",
  "#12b5cb",
  "#e52592",
  "#f9ab00",
  "#9334e6",
  "#7cb342",
  "#e8710a",
];
/** The dark theme's colours differ only for the first ("Slate"). */
const DARK_FIRST = "#8e98a3";

/** The colour of `run`: its place in `tbRuns` (TensorBoard's run list), else in `fallback`. */
export function runColor(run, tbRuns, fallback = [], theme = "light") {
  let i = (tbRuns || []).indexOf(run);
  if (i < 0) i = fallback.indexOf(run);
  if (i < 0) i = 0;
  const c = RUN_PALETTE[i % RUN_PALETTE.length];
  return theme === "dark" && c === RUN_PALETTE[0] ? DARK_FIRST : c;
}

/** The Scalars dashboard's default smoothing weight. */
export const SMOOTHING = 0.6;

/**
 * The Scalars dashboard's smoothing: a debiased exponential moving average
 * (weight `w`); non-finite values pass through and do not enter the average;
 * a constant series is left as it is.
 */
export function smoothed(values, w = SMOOTHING) {
  const finite = values.filter((v) => Number.isFinite(v));
  if (!finite.length || finite.every((v) => v === finite[0])) return values.slice();
  let last = 0;
  let n = 0;
  return values.map((v) => {
    if (!Number.isFinite(v)) return v;
    last = last * w + (1 - w) * v;
    n += 1;
    return w === 1 ? last : last / (1 - w ** n);
  });
}
