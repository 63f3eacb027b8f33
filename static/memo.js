// The dashboard's one cache idea: a view step reruns only when one of its
// inputs changed. State is never mutated (state.js), so identity (===) of
// the inputs says whether anything changed.

/** `fn` wrapped to run only when its arguments differ (by ===) from the last call's. */
export function memo(fn) {
  let last = null;
  return (...args) => {
    if (last && last.length === args.length && last.every((a, i) => a === args[i])) return false;
    last = args;
    fn(...args);
    return true;
  };
}
