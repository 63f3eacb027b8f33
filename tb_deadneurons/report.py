"""``tb-deadneurons report LOGDIR``: dead units per run and layer, no server.

Reads and classifies with ``api.load`` (TensorBoard's own loader, every
snapshot kept, the restart rule and the warnings of the dashboard), so the
report, the notebook API and the routes give the same answers.

Output: a text table per run, or with ``--json`` one object, a versioned
contract (``"schema": SCHEMA``; a change of a key's name or meaning raises
it, and the old name stays as an alias for one minor version)::

  {"schema": 2,
   "runs": {RUN: {"layers": {TAG: {"units": int, "steps": [int],
     "dead_count": [int], "dormant_count": [int],
     "grad_dormant_count": [int] | null,
     "dead_units": [int], "dormant_units": [int],
     "grad_dormant_units": [int] | null, "revived_units": [int],
     "dead_count_now": int,
     "mean_abs": [float | null], "died_at": {"UNIT": step},
     "revivals": [{"step": int, "units": [int]}],
     "hints": [{"pattern", "remedy", "evidence", "steps", "units"}],
     "dead_now": [int]}}}},
   "warnings": [str],
   "deprecated": {OLD KEY: NEW KEY}}

Every per-unit list is named ``<state>_units``: ``dead_units``,
``dormant_units``, ``grad_dormant_units`` are the units in that state at the
last snapshot (``grad_*`` null without the gradient row), ``revived_units``
those dead at some snapshot and active later. Per-step lists are
``<state>_count``. Deprecated (schema 1, tb_deadneurons 0.2): ``dead_now``,
the same list as ``dead_units``; it goes in the next minor version, and
``deprecated`` names each such alias with its replacement. ``mean_abs`` is the
layer's mean |a| per step; ``died_at`` lists only units dead at the end;
``revivals`` are the re-initialisations logged by
``DeadNeuronCallback(revive_every=...)`` or ``summary.revivals``. The text
output escapes control characters (ESC, newlines, bidi marks) in names and
warnings, so a tag cannot paint the terminal or forge a row.

Exit status, for CI gates: 0 checked, and no layer over ``--fail-above``;
1 some layer's dead fraction at its last snapshot exceeds ``--fail-above``;
2 could not check: bad arguments, no snapshot series found, or the log dir
unreadable (one line on stderr; never a traceback).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys

from tb_deadneurons import api
from tb_deadneurons.analysis import classify
from tb_deadneurons.board import reader, routes

_PROG = "tb-deadneurons report"
# The --json contract's version (module docstring); 1 had no "schema" key.
SCHEMA = 2
# Deprecated key -> its replacement, kept as aliases for one minor version.
DEPRECATED = {"dead_now": "dead_units"}
EXIT_STATUS = """exit status:
  0  checked, and no layer over --fail-above
  1  a layer's dead fraction at its last snapshot exceeds --fail-above
  2  could not check: bad arguments, no snapshot series found, or the log
     dir unreadable (one line on stderr, never a traceback)"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Adds the ``report`` arguments; sets ``run`` to the command function."""
    parser.add_argument(
        "logdir", help="directory of event files (searched recursively)"
    )
    parser.add_argument("--run", dest="run_name", metavar="R", help="only this run")
    parser.add_argument(
        "--tau",
        type=float,
        default=classify.DEFAULT_TAU,
        metavar="T",
        help=f"ReDo dormancy threshold (default {classify.DEFAULT_TAU})",
    )
    parser.add_argument(
        "--loss-tag",
        metavar="TAG",
        help="the scalar the hints use as the loss (default: the first of "
        + ", ".join(t for t, _, _ in reader.LOSS_TAGS)
        + ")",
    )
    parser.add_argument("--json", action="store_true", help="print JSON")
    parser.add_argument(
        "--fail-above",
        type=float,
        metavar="FRACTION",
        help="exit 1 if a layer's dead fraction at its last snapshot exceeds this",
    )
    parser.epilog = EXIT_STATUS
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.set_defaults(run=run)


def _fail(message: str) -> int:
    print(f"{_PROG}: error: {printable(message)}", file=sys.stderr)
    return 2


def printable(text: str) -> str:
    """``text`` with every non-printable character escaped (``\\x1b``)."""
    if text.isprintable():
        return text
    return "".join(
        c if c.isprintable() else c.encode("unicode_escape").decode("ascii")
        for c in text
    )


def layer_json(layer: api.Layer) -> dict:
    """One layer's ``--json`` object (module docstring)."""
    r = layer.result
    body = {
        "units": r.units,
        "steps": r.steps.tolist(),
        "dead_count": r.dead_count,
        "dormant_count": r.dormant_count,
        "grad_dormant_count": r.grad_dormant_count,
        "dead_units": r.dead_now,
        "dormant_units": r.dormant_now,
        "grad_dormant_units": r.grad_dormant_now,
        "revived_units": [int(u) for u in r.revived().nonzero()[0]],
        "dead_count_now": len(r.dead_now),
        "mean_abs": routes.finite(layer.mean_abs.tolist()),
        "died_at": {str(u): s for u, s in enumerate(r.died_at()) if s is not None},
        "revivals": layer.revivals,
        "hints": layer.hints,
    }
    body.update({old: body[new] for old, new in DEPRECATED.items()})
    return body


def to_json(logs: api.Logs) -> dict:
    """The ``--json`` object (module docstring)."""
    runs = {
        run: {"layers": {tag: layer_json(layer) for tag, layer in tags.items()}}
        for run, tags in logs.layers.items()
    }
    return {
        "schema": SCHEMA,
        "runs": runs,
        "warnings": logs.warnings,
        "deprecated": dict(DEPRECATED),
    }


_HEADER = (
    "layer",
    "units",
    "dead now",
    "dormant now",
    "grad-dormant now",
    "first death",
    "revived",
    "worst step (dead)",
)


def _share(units: list[int] | None, total: int) -> str:
    return "-" if units is None else f"{len(units)} ({len(units) / total:.1%})"


def _row(tag: str, layer: api.Layer) -> tuple[str, ...]:
    r = layer.result
    deaths = [s for s in r.died_at() if s is not None]
    worst = int(max(range(len(r.steps)), key=lambda i: r.dead_count[i]))
    return (
        printable(tag),
        str(r.units),
        _share(r.dead_now, r.units),
        _share(r.dormant_now, r.units),
        _share(r.grad_dormant_now, r.units),
        str(min(deaths)) if deaths else "-",
        str(int(r.revived().sum())),
        f"{int(r.steps[worst])} ({r.dead_count[worst]})",
    )


def _notes(tag: str, layer: api.Layer) -> list[str]:
    lines, tag = [], printable(tag)
    if layer.revivals:
        n = sum(len(r["units"]) for r in layer.revivals)
        lines.append(
            f"  revived {tag}: {n} units in {len(layer.revivals)} "
            f"re-initialisations (steps {layer.revivals[0]['step']}"
            f"..{layer.revivals[-1]['step']})"
        )
    for hint in layer.hints:
        pattern, evidence = printable(hint["pattern"]), printable(hint["evidence"])
        lines.append(f"  hint {tag}: {pattern}: {evidence}")
        lines.append(f"    remedy: {printable(hint['remedy'])}")
    return lines


def to_text(logs: api.Logs) -> str:
    """One table per run: units, dead/dormant/grad-dormant now, first death,
    revived, worst step; then revivals, hints and warnings."""
    lines = []
    for run, tags in logs.layers.items():
        rows = [_HEADER] + [_row(tag, layer) for tag, layer in tags.items()]
        widths = [max(len(row[i]) for row in rows) for i in range(len(_HEADER))]
        lines.append(f"run {printable(run)}")
        for row in rows:
            cells = [row[0].ljust(widths[0])]
            cells += [c.rjust(w) for c, w in zip(row[1:], widths[1:], strict=True)]
            lines.append("  " + "  ".join(cells))
        for tag, layer in tags.items():
            lines += _notes(tag, layer)
        lines.append("")
    if not logs.layers:
        lines.append("no dead-neuron snapshot series found\n")
    lines += [f"warning: {printable(w)}" for w in logs.warnings]
    return "\n".join(lines).rstrip("\n")


def _over(logs: api.Logs, fail_above: float) -> list[str]:
    """A message per layer whose dead fraction now exceeds ``fail_above``."""
    out = []
    for run, tags in logs.layers.items():
        for tag, layer in tags.items():
            fraction = len(layer.dead_now) / layer.units
            if fraction > fail_above:
                out.append(
                    f"run {printable(run)}, layer {printable(tag)}: "
                    f"{fraction:.1%} dead > {fail_above:.1%}"
                )
    return out


def _check(args: argparse.Namespace) -> str | None:
    """The argument error, or None."""
    if not math.isfinite(args.tau) or args.tau < 0:
        return f"--tau must be a finite number >= 0, got {args.tau}"
    fail_above = args.fail_above
    if fail_above is not None and not 0 <= fail_above <= 1:
        return f"--fail-above must be a fraction in [0, 1], got {fail_above}"
    if not os.path.isdir(args.logdir):
        return f"logdir {args.logdir!r} does not exist or is not a directory"
    if not os.access(args.logdir, os.R_OK | os.X_OK):
        return f"logdir {args.logdir!r} is not readable"
    return None


def run(args: argparse.Namespace) -> int:
    """Runs the report; returns the exit status (module docstring)."""
    problem = _check(args)
    if problem:
        return _fail(problem)
    if "://" not in args.logdir:
        reader.without_tensorflow()  # local files: no need to import it
    try:
        logs = api.load(args.logdir, args.run_name, args.tau, loss_tag=args.loss_tag)
    except Exception as e:  # noqa: BLE001 - any failure to read is "could not check"
        return _fail(f"cannot read {args.logdir!r}: {type(e).__name__}: {e}")
    if args.run_name is not None and args.run_name not in logs.layers:
        return _fail(f"no snapshot series in run {args.run_name!r}")
    if not logs.layers:  # the error line alone: nothing on stdout
        return _fail(f"no dead-neuron snapshot series found under {args.logdir!r}")
    print(json.dumps(routes.finite(to_json(logs))) if args.json else to_text(logs))
    over = [] if args.fail_above is None else _over(logs, args.fail_above)
    for message in over:
        print(f"{_PROG}: {message}", file=sys.stderr)
    return 1 if over else 0
