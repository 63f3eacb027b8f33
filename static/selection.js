// What is selected and which requests that needs: pure functions of the
// state (state.js) that return patches or lists.

import { layerMatcher } from "./input.js";
import { layerKey, splitLayerKey } from "./state.js";

/** The most runs selected by default (the ones with the most dead units). */
export const RUN_LIMIT = 4;

/** A run's worst layer's dead share now (from ./runs). */
export function worstShare(info) {
  return Math.max(0, ...info.layers.map((l) => l.dead_fraction_now || 0));
}

/** `infos` (./runs entries) with the most dead first; ties keep their order. */
export function mostDeadFirst(infos) {
  return [...infos].sort((a, b) => worstShare(b) - worstShare(a));
}

/** The layers shown when a run is first selected: all of a small run, else the two worst. */
export function defaultLayers(info) {
  if (!info) return [];
  const worst = [...info.layers].sort((a, b) => b.dead_fraction_now - a.dead_fraction_now);
  const chosen = info.layers.length <= 3 ? info.layers : worst.slice(0, 2);
  return chosen.map((l) => layerKey(info.run, l.tag));
}

/**
 * [{run, layer, key}] of the selected layers of the selected runs that pass
 * the layer filter (it filters the main view as well as the list), in
 * ./runs order.
 */
export function selectedPairs(state) {
  const pairs = [];
  const matcher = layerMatcher(state.filter);
  for (const r of state.runs || []) {
    if (!state.selectedRuns.includes(r.run)) continue;
    for (const layer of r.layers) {
      const key = layerKey(r.run, layer.tag);
      if (!matcher.test(r.run, layer.tag)) continue;
      if (state.selectedLayers.includes(key)) pairs.push({ run: r.run, layer, key });
    }
  }
  return pairs;
}

function toggled(list, item, on) {
  return on ? [...new Set([...list, item])] : list.filter((x) => x !== item);
}

export function toggleRun(state, run, on) {
  const selectedRuns = toggled(state.selectedRuns, run, on);
  let selectedLayers = state.selectedLayers;
  if (on && !selectedLayers.some((k) => splitLayerKey(k).run === run)) {
    const info = (state.runs || []).find((r) => r.run === run);
    selectedLayers = [...selectedLayers, ...defaultLayers(info)];
  }
  return { selectedRuns, selectedLayers };
}

export function toggleLayer(state, key, on) {
  return { selectedLayers: toggled(state.selectedLayers, key, on) };
}

/** Selects `unit` of a layer; null, or the selected unit again, clears it. */
export function pickUnit(state, key, unit) {
  const selectedUnits = { ...state.selectedUnits };
  if (unit === null || selectedUnits[key] === unit) delete selectedUnits[key];
  else selectedUnits[key] = unit;
  return { selectedUnits };
}

/** Zooms a layer's heat map into units [start, stop); null shows every unit again. */
export function zoomLayer(state, key, range) {
  const zooms = { ...state.zooms };
  if (range) zooms[key] = range;
  else delete zooms[key];
  return { zooms };
}

/**
 * The patch of a ./runs response. The first response with runs selects
 * the RUN_LIMIT runs with the most dead units (all when there are no more),
 * unless the URL hash chose; a chosen run without layers chosen gets its
 * default layers.
 */
export function runsPatch(state, body, now) {
  const runs = Array.isArray(body.runs) ? body.runs : [];
  const patch = { runs, runsError: null, runsWarnings: body.warnings || [], updatedAt: now };
  if (!state.selectedRuns.length && runs.length) {
    patch.selectedRuns = mostDeadFirst(runs)
      .slice(0, RUN_LIMIT)
      .map((r) => r.run);
    const picked = runs.filter((r) => patch.selectedRuns.includes(r.run));
    patch.selectedLayers = picked.flatMap(defaultLayers);
  } else if (state.runs === null && runs.length) {
    const has = (run) => state.selectedLayers.some((k) => splitLayerKey(k).run === run);
    const bare = runs.filter((r) => state.selectedRuns.includes(r.run) && !has(r.run));
    if (bare.length)
      patch.selectedLayers = [...state.selectedLayers, ...bare.flatMap(defaultLayers)];
  }
  return patch;
}

/** Keys of the layers whose snapshot count or last step differ between two ./runs lists. */
export function changedLayers(before, after) {
  const sig = (runs) => {
    const m = new Map();
    for (const r of runs || []) {
      for (const l of r.layers) m.set(layerKey(r.run, l.tag), `${l.snapshots}|${l.last_step}`);
    }
    return m;
  };
  const was = sig(before);
  return [...sig(after)].filter(([k, v]) => was.has(k) && was.get(k) !== v).map(([k]) => k);
}

/**
 * The step axis of the panels of `infos` (one run for a card's own axis,
 * every selected run for the shared one): their selected layers' snapshots
 * and their losses logged per step.
 */
export function stepDomain(state, infos) {
  let lo = Infinity;
  let hi = -Infinity;
  for (const info of infos) {
    for (const l of info.layers) {
      if (!state.selectedLayers.includes(layerKey(info.run, l.tag))) continue;
      lo = Math.min(lo, l.first_step ?? Infinity);
      hi = Math.max(hi, l.last_step ?? -Infinity);
    }
    const loss = state.losses[info.run] && state.losses[info.run].data;
    if (loss && loss.steps && loss.steps.length && loss.step_unit !== "epoch") {
      lo = Math.min(lo, loss.steps[0]);
      hi = Math.max(hi, loss.steps[loss.steps.length - 1]);
    }
  }
  return Number.isFinite(lo) && Number.isFinite(hi) ? [lo, hi] : [0, 1];
}

/**
 * The runs table sorted by `column`; the column it is `shown` sorted by
 * ({column, descending}) flips direction. Shares sort worst first.
 */
export function sortBy(column, shown) {
  const descending = shown.column === column ? !shown.descending : column !== "run";
  return { compareSort: { column, descending } };
}

/** The largest dead or dormant share any shown layer has (the common share axis). */
export function shownMaxShare(state) {
  let max = 0;
  for (const { key } of selectedPairs(state)) {
    const data = state.timelines[key] && state.timelines[key].data;
    if (!data || !data.units) continue;
    const dormant = data.dormant_or_dead_count || data.dormant_count || [];
    for (const c of [...data.dead_count, ...dormant]) max = Math.max(max, c / data.units);
  }
  return max;
}
