// The only module that talks to the backend. Every URL is relative: the page
// runs in TensorBoard's iframe under <base href="plugin/deadneurons/">, so
// "./runs" works with or without --path_prefix and experiment URLs.

/** A failed request: which URL, the HTTP status (0: no response), why. */
export class RequestError extends Error {
  constructor(url, status, detail) {
    super(`${url} failed${status ? ` (HTTP ${status})` : ""}: ${detail}`);
    this.url = url;
    this.status = status;
    this.detail = detail;
  }
}

function routeUrl(route, params) {
  const query = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) {
    if (value !== undefined && value !== null) query.set(key, String(value));
  }
  const qs = query.toString();
  return `./${route}${qs ? `?${qs}` : ""}`;
}

async function getJson(route, params = {}) {
  const url = routeUrl(route, params);
  let response;
  try {
    response = await fetch(url, { headers: { Accept: "application/json" }, cache: "no-store" });
  } catch (err) {
    throw new RequestError(url, 0, `network error (${err.message})`);
  }
  const text = await response.text();
  let body = null;
  try {
    body = JSON.parse(text);
  } catch {
    body = null;
  }
  if (!response.ok) {
    const detail =
      (body && typeof body.error === "string" && body.error) ||
      text.trim().slice(0, 300) ||
      response.statusText;
    throw new RequestError(url, response.status, detail);
  }
  if (body === null || typeof body !== "object") {
    throw new RequestError(url, response.status, "the response is not a JSON object");
  }
  return body;
}

/** GET ./runs: runs with their layers (see docs/routes.md). */
export function fetchRuns() {
  return getJson("runs");
}

/** GET ./timeline for one layer with the given thresholds and view (zoom.js). */
export function fetchTimeline(run, tag, params) {
  const { tau, definition, rows, cols, unit_start, unit_stop, loss_tag } = params;
  const view = { rows, cols, unit_start, unit_stop };
  return getJson("timeline", { run, tag, tau, definition, ...view, loss_tag });
}

/** GET ./unit: one unit's statistics over time. */
export function fetchUnit(run, tag, unit, { tau, definition }) {
  return getJson("unit", { run, tag, unit, tau, definition });
}

/** GET ./loss: the run's loss curve (tag null when none was logged); `lossTag` "" = default. */
export function fetchLoss(run, lossTag) {
  return getJson("loss", { run, loss_tag: lossTag || undefined });
}

/** GET ./compare: every run's layers under the thresholds, with hyperparameters. */
export function fetchCompare({ tau, definition }) {
  return getJson("compare", { tau, definition });
}

/** GET ./scalar_tags: a run's scalar tags (the loss picker; loops20's route). */
export function fetchScalarTags(run) {
  return getJson("scalar_tags", { run });
}

/** TensorBoard's own run list (data/runs): its order gives each run its colour. */
export async function fetchTbRuns() {
  const url = "../../runs";
  let response;
  try {
    response = await fetch(url, { cache: "no-store" });
  } catch (err) {
    throw new RequestError(url, 0, `network error (${err.message})`);
  }
  const body = response.ok ? await response.json().catch(() => null) : null;
  if (!Array.isArray(body)) throw new RequestError(url, response.status, "not a list of runs");
  return body;
}
