// Wires state, requests and views together: user actions become state
// patches (selection.js), requests go through loaders.js, and every change
// of the state redraws the views once per animation frame.

import { h, replace } from "./dom.js";
import { createLoaders } from "./loaders.js";
import { MainView } from "./mainview.js";
import * as selection from "./selection.js";
import { Sidebar } from "./sidebar.js";
import { createStore, initialState } from "./state.js";
import { Tooltip } from "./tooltip.js";
import { TopBar, POLL_MS, currentTheme, watchTheme } from "./topbar.js";

export function start(root) {
  const store = createStore(initialState());
  const load = createLoaders(store);
  const change = (patch, fetch = true) => {
    store.update(patch);
    if (fetch) load.ensure();
  };
  const tooltip = new Tooltip(load.unit);
  const main = new MainView({
    hover: (view, cell, event) => tooltip.hover(view, cell, event, store.get()),
    pick: (key, unit) => change(selection.pickUnit(store.get(), key, unit)),
  });
  const sidebar = new Sidebar({
    toggleRun: (run, on) => change(selection.toggleRun(store.get(), run, on)),
    toggleLayer: (key, on) => change(selection.toggleLayer(store.get(), key, on)),
    setFilter: (filter) => change({ filter }, false),
    setDefinition: (definition) => change({ definition }),
    setTau: (tau) => change({ tau }),
    setOrder: (order) => change({ order }, false),
  });
  const top = new TopBar({
    setLive: (live) => change({ live }, false),
    setShowMeanAbs: (showMeanAbs) => change({ showMeanAbs }, false),
    refresh: () => load.poll(true),
  });
  const layout = h("div", { className: "layout" }, sidebar.root, main.root);
  replace(root, h("div", { className: "dn-app" }, top.root, main.banner, layout), tooltip.root);

  let queued = false;
  const render = () => {
    if (queued) return;
    queued = true;
    requestAnimationFrame(() => {
      queued = false;
      const state = store.get();
      const theme = currentTheme();
      top.render(state);
      sidebar.render(state);
      main.render(state, theme);
      tooltip.render(state);
    });
  };
  store.subscribe(render);
  watchTheme(render);
  let lastPoll = 0;
  const poll = () => {
    lastPoll = Date.now();
    load.poll();
  };
  const visible = () => document.visibilityState === "visible" && window.innerWidth > 0;
  new ResizeObserver(() => {
    render();
    if (visible() && store.get().live && Date.now() - lastPoll > POLL_MS) poll();
  }).observe(main.root);
  setInterval(() => store.get().live && visible() && poll(), POLL_MS);
  poll();
  return { store, poll: load.poll };
}
