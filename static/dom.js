// Small DOM helpers. Text from logs (run and layer names, messages) is only
// ever inserted as text nodes or textContent, never parsed as HTML.

/**
 * Creates an element. `props` sets properties (className, title, type, ...),
 * `dataset` and `style` entries; children are nodes or strings (as text).
 */
export function h(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (value === undefined || value === null) continue;
    if (key === "dataset") Object.assign(node.dataset, value);
    else if (key === "style") Object.assign(node.style, value);
    else if (key === "attrs") {
      for (const [name, v] of Object.entries(value)) node.setAttribute(name, v);
    } else node[key] = value;
  }
  append(node, children);
  return node;
}

function append(node, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    const text = typeof child === "string" || typeof child === "number";
    node.append(text ? String(child) : child);
  }
}

const SVG_NS = "http://www.w3.org/2000/svg";

/** Creates an SVG element with attributes (all set with setAttribute). */
export function s(tag, attrs = {}, ...children) {
  const node = document.createElementNS(SVG_NS, tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value !== undefined && value !== null) node.setAttribute(key, String(value));
  }
  append(node, children);
  return node;
}

/** A button that calls `onClick`; `testid` names it for the tests. */
export function button(text, testid, onClick) {
  const node = h("button", { type: "button", textContent: text, dataset: { testid } });
  node.addEventListener("click", onClick);
  return node;
}

/** Replaces all children of `node`. */
export function replace(node, ...children) {
  node.replaceChildren();
  append(node, children);
  return node;
}

/** The CSS custom property `name` of the document (for canvas/SVG colours). */
export function cssVar(name, fallback = "") {
  const v = getComputedStyle(document.documentElement).getPropertyValue(name).trim();
  return v || fallback;
}
