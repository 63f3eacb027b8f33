// Wires state, requests and views together: user actions become state
// patches (selection.js), requests go through loaders.js, and every change
// of the state redraws the views once per animation frame.

import { h, replace } from "./dom.js";
import { Loaders } from "./loaders.js";
import { MainView } from "./mainview.js";
import * as selection from "./selection.js";
import { Sidebar } from "./sidebar.js";
import { createStore, initialState } from "./state.js";
import { Tooltip } from "./tooltip.js";
import { TopBar, POLL_MS, currentTheme, watchTheme } from "./topbar.js";
import { decodeHash, encodeHash } from "./urlhash.js";

export function start(root) {
  const store = createStore({ ...initialState(), ...decodeHash(location.hash) });
  const load = new Loaders(store);
  const change = (patch, fetch = true) => {
    store.update(patch);
    if (fetch) load.ensure();
  };
  const pick = (key, unit) => change(selection.pickUnit(store.get(), key, unit));
  const tooltip = new Tooltip((run, tag, unit) => load.unit(run, tag, unit));
  const hover = (view, cell, event) => tooltip.hover(view, cell, event, store.get());
  const zoom = (key, range) => change(selection.zoomLayer(store.get(), key, range));
  const main = new MainView({
    hover,
    pick,
    zoom,
    setCompareTag: (compareTag) => change({ compareTag }, false),
    sortCompare: (column, shown) => change(selection.sortBy(column, shown), false),
  });
  const sidebar = new Sidebar({
    toggleRun: (run, on) => change(selection.toggleRun(store.get(), run, on)),
    toggleLayer: (key, on) => change(selection.toggleLayer(store.get(), key, on)),
    setFilter: (filter) => change({ filter }, false),
    setDefinition: (definition) => change({ definition }),
    setTau: (tau) => change({ tau, tauError: "" }),
    refuseTau: (tauError) => change({ tauError }, false),
    setOrder: (order) => change({ order }, false),
    setLossTag: (lossTag) => change({ lossTag }),
    wantLossTags: () => load.scalarTags(),
  });
  const top = new TopBar({
    setLive: (live) => change({ live }, false),
    setShowMeanAbs: (showMeanAbs) => change({ showMeanAbs }, false),
    setSharedSteps: (sharedSteps) => change({ sharedSteps }, false),
    refresh: () => load.poll(true),
  });
  const layout = h("div", { className: "layout" }, sidebar.root, main.root);
  replace(root, h("div", { className: "dn-app" }, top.root, main.banner, layout), tooltip.root);
  const render = onceAFrame(() => {
    const state = store.get();
    top.render(state);
    sidebar.render(state);
    main.render(state, currentTheme());
    tooltip.render(state);
  });
  store.subscribe(render);
  store.subscribe(keepHash());
  watchTheme(render);
  const poll = keepPolling(store, load, main.root, render);
  return { store, poll };
}

/** A listener that writes the user's choices into the URL hash (urlhash.js) when they change. */
function keepHash() {
  let last = location.hash.replace(/^#/, "");
  return (state) => {
    if (state.runs === null) return; // the first answer may still complete the hash's choice
    const hash = encodeHash(state);
    if (hash === last) return;
    last = hash;
    // The document's own path: a bare "#..." would resolve against <base href>.
    history.replaceState(null, "", `${location.pathname}${location.search}#${hash}`);
  };
}

/** `fn` run at most once per animation frame, however often it is asked for. */
function onceAFrame(fn) {
  let queued = false;
  return () => {
    if (queued) return;
    queued = true;
    requestAnimationFrame(() => {
      queued = false;
      fn();
    });
  };
}

/**
 * Polls ./runs now, every POLL_MS while live and visible, and when `watched`
 * is resized after a pause (TensorBoard hides the iframe of another tab and
 * sends no event when it is shown again); a resize also redraws.
 */
function keepPolling(store, load, watched, redraw) {
  let last = 0;
  const poll = (force = false) => {
    last = Date.now();
    return load.poll(force);
  };
  const visible = () => document.visibilityState === "visible" && window.innerWidth > 0;
  new ResizeObserver(() => {
    redraw();
    if (visible() && store.get().live && Date.now() - last > POLL_MS) poll();
  }).observe(watched);
  setInterval(() => store.get().live && visible() && poll(), POLL_MS);
  poll();
  return poll;
}
