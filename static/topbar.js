// The top bar (status, live updates, the mean |a| toggle, refresh) and the
// page's theme, which follows TensorBoard's dark-mode toggle.

import { button, h } from "./dom.js";
import { memo } from "./memo.js";

export const POLL_MS = 10000;

function checkbox(label, testid, checked, onChange) {
  const box = h("input", { type: "checkbox", checked, dataset: { testid } });
  box.addEventListener("change", () => onChange(box.checked));
  return [box, h("label", { className: "live" }, box, label)];
}

export class TopBar {
  /** actions: setLive(on), setShowMeanAbs(on), setSharedSteps(on), refresh() */
  constructor(actions) {
    const [shared, sharedLabel] = checkbox(
      "shared step axis",
      "shared-steps",
      false,
      actions.setSharedSteps,
    );
    sharedLabel.title = "One step range for every run's card (else each card shows its own)";
    this.status = h("span", { className: "status muted small", dataset: { testid: "status" } });
    const [live, liveLabel] = checkbox("live", "live", true, actions.setLive);
    const [meanAbs, meanAbsLabel] = checkbox(
      "mean |a|",
      "show-mean-abs",
      false,
      actions.setShowMeanAbs,
    );
    meanAbsLabel.title =
      "Draw each layer's mean |activation| on the timeline (scaled to its maximum)";
    Object.assign(this, { live, meanAbs, shared });
    const refresh = button("Refresh", "refresh", actions.refresh);
    const spacer = h("span", { className: "spacer" });
    const title = h("h1", {}, "Dead neurons");
    this.root = h(
      "header",
      { className: "topbar" },
      title,
      this.status,
      spacer,
      sharedLabel,
      meanAbsLabel,
      liveLabel,
      refresh,
    );
    this.showStatus = memo((updatedAt, live) => {
      const when = updatedAt ? updatedAt.toLocaleTimeString() : "—";
      const how = live ? ` · checking every ${POLL_MS / 1000} s` : " · live updates off";
      this.status.textContent = `updated ${when}${how}`;
    });
  }

  render(state) {
    this.live.checked = state.live;
    this.meanAbs.checked = state.showMeanAbs;
    this.shared.checked = state.sharedSteps;
    this.showStatus(state.updatedAt, state.live);
  }
}

/** "dark" or "light": TensorBoard's dark mode when readable, else prefers-color-scheme. */
export function currentTheme() {
  let dark = null;
  try {
    const body = window.parent && window.parent !== window ? window.parent.document.body : null;
    if (body) dark = body.classList.contains("dark-mode");
  } catch {
    dark = null; // not same-origin: follow prefers-color-scheme
  }
  if (dark === null) dark = window.matchMedia("(prefers-color-scheme: dark)").matches;
  const theme = dark ? "dark" : "light";
  document.documentElement.dataset.theme = theme;
  return theme;
}

/** Calls `onChange` when TensorBoard's dark-mode class may have changed. */
export function watchTheme(onChange) {
  try {
    const body = window.parent !== window ? window.parent.document.body : null;
    if (body)
      new MutationObserver(onChange).observe(body, {
        attributes: true,
        attributeFilter: ["class"],
      });
  } catch {
    // Not same-origin: prefers-color-scheme decides.
  }
}
