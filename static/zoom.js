// Wide layers: what part of a layer the heat map asks ./timeline for
// (`rows`, `cols`, `unit_start`, `unit_stop`; docs/routes.md), and how the
// rows of an aggregated matrix map back to units. Pure.

/** The most heat-map rows (and the width of a zoom window, in units). */
export const MAX_ROWS = 512;
/** The most heat-map columns (with MAX_ROWS, an overview stays under 1 MB of JSON). */
export const MAX_COLS = 500;

/**
 * The view parameters of a layer's ./timeline request: nothing for a layer
 * that fits, `rows`/`cols` for a wider or longer one, and the unit range
 * of a zoom ([start, stop) or null).
 */
export function timelineView(units, snapshots, zoom) {
  const view = {};
  if (zoom) {
    view.unit_start = zoom[0];
    view.unit_stop = zoom[1];
  }
  const width = zoom ? zoom[1] - zoom[0] : units;
  if (width > MAX_ROWS) view.rows = MAX_ROWS;
  if (snapshots > MAX_COLS) view.cols = MAX_COLS;
  return view;
}

/** The zoom window of `MAX_ROWS` units centred on units [start, stop) of a layer. */
export function zoomAround(start, stop, units) {
  const size = Math.min(MAX_ROWS, units);
  const centre = Math.floor((start + stop) / 2);
  const first = Math.min(Math.max(centre - Math.floor(size / 2), 0), units - size);
  return [first, first + size];
}

/** The index of the row of `bounds` (ascending cut points) that holds `unit`, or -1. */
export function rowOfUnit(bounds, unit) {
  if (!bounds || unit < bounds[0] || unit >= bounds[bounds.length - 1]) return -1;
  let lo = 0;
  let hi = bounds.length - 1;
  while (hi - lo > 1) {
    const mid = (lo + hi) >> 1;
    if (bounds[mid] <= unit) lo = mid;
    else hi = mid;
  }
  return lo;
}

const COUNT_ARRAYS = { uint8: Uint8Array, uint16: Uint16Array, uint32: Uint32Array };

/**
 * The per-block dead counts of an aggregated matrix (`matrix.dead`: base64
 * little-endian integers), or null when the response has none.
 */
export function decodeDeadCounts(dead, cells, bytesOf) {
  if (!dead) return null;
  const Type = COUNT_ARRAYS[dead.dtype];
  if (!Type || dead.encoding !== "base64" || dead.byte_order !== "little") {
    throw new Error(`unknown dead-count encoding ${JSON.stringify(dead.dtype)}`);
  }
  const bytes = bytesOf(dead.data || "");
  if (bytes.length !== cells * Type.BYTES_PER_ELEMENT) {
    throw new Error(`dead counts have ${bytes.length} bytes, expected ${cells} ${dead.dtype}`);
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const out = new Type(cells);
  const size = Type.BYTES_PER_ELEMENT;
  const read = { 1: (i) => view.getUint8(i), 2: (i) => view.getUint16(i, true) };
  const get = read[size] || ((i) => view.getUint32(i, true));
  for (let i = 0; i < cells; i++) out[i] = get(i * size);
  return out;
}

/** The view parameters of one layer's ./timeline under `state` (its ./runs entry, its zoom). */
export function layerView(state, run, tag, key) {
  const info = (state.runs || []).find((r) => r.run === run);
  const layer = info && info.layers.find((l) => l.tag === tag);
  return timelineView(layer ? layer.units : 0, layer ? layer.snapshots : 0, state.zooms[key]);
}
