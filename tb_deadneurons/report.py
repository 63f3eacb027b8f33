"""``tb-deadneurons report LOGDIR``: dead units per run and layer, no server.

Reads the event files with TensorBoard's own ``EventMultiplexer`` and
``MultiplexerDataProvider`` (every snapshot kept) and classifies them with
``analysis``, exactly as the plugin's routes do.

Output: a text table per run, or with ``--json`` one object::

  {"runs": {RUN: {"layers": {TAG: {"units": int, "steps": [int],
     "dead_count": [int], "dormant_count": [int], "dead_units": [int],
     "dormant_units": [int], "died_at": {"UNIT": step},
     "revived_units": [int], "revivals": [{"step": int, "units": [int]}],
     "hints": [{"pattern", "remedy", "evidence", "steps", "units"}]}}}},
   "warnings": [str]}

``dead_units``/``dormant_units`` are those at the last snapshot; ``died_at``
lists only units dead at the end; ``revivals`` are the re-initialisations
logged by ``DeadNeuronCallback(revive_every=...)`` or ``summary.revivals``.
Exit status: 0; 1 when ``--fail-above F`` is given and some layer's dead
fraction at its last snapshot exceeds F; 2 on a usage error or a
missing/unreadable logdir (one line on stderr).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import types
from typing import NamedTuple

from tb_deadneurons import analysis, reader

_PROG = "tb-deadneurons report"


class LayerReport(NamedTuple):
    """One layer's snapshots, classification, hints and logged revivals."""

    series: reader.Series
    result: analysis.Classification
    hints: list[dict]
    revivals: list[dict]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Adds the ``report`` arguments; sets ``run`` to the command function."""
    parser.add_argument(
        "logdir", help="directory of event files (searched recursively)"
    )
    parser.add_argument("--run", dest="run_name", metavar="R", help="only this run")
    parser.add_argument(
        "--tau",
        type=float,
        default=analysis.DEFAULT_TAU,
        metavar="T",
        help=f"ReDo dormancy threshold (default {analysis.DEFAULT_TAU})",
    )
    parser.add_argument("--json", action="store_true", help="print JSON")
    parser.add_argument(
        "--fail-above",
        type=float,
        metavar="FRACTION",
        help="exit 1 if a layer's dead fraction at its last snapshot exceeds this",
    )
    parser.set_defaults(run=run)


def _fail(message: str) -> int:
    print(f"{_PROG}: error: {message}", file=sys.stderr)
    return 2


def _data_provider(logdir: str):
    if "://" not in logdir and "tensorflow" not in sys.modules:
        # Local files need no TensorFlow: TensorBoard's own no-TF switch
        # (//tensorboard/compat:no_tensorflow) saves seconds of import.
        sys.modules.setdefault(
            "tensorboard.compat.notf", types.ModuleType("tensorboard.compat.notf")
        )
    from tensorboard.backend.event_processing import data_provider
    from tensorboard.backend.event_processing import plugin_event_multiplexer as pem

    from tb_deadneurons.metadata import PLUGIN_NAME

    multiplexer = pem.EventMultiplexer(tensor_size_guidance={PLUGIN_NAME: 0})
    multiplexer.AddRunsFromDirectory(logdir)
    multiplexer.Reload()
    return data_provider.MultiplexerDataProvider(multiplexer, logdir)


def analyse(logdir: str, run_name: str | None = None, tau: float = 0.1):
    """({run: {tag: LayerReport}}, warnings) for a logdir."""
    rd = reader.Reader(_data_provider(logdir), "", downsample=2**31 - 1)
    layers, warnings = rd.layers(run_name)
    results = {}
    for run_, tags in layers.items():
        loss = rd.loss(run_, downsample=2**31 - 1)
        for tag, layer in tags.items():
            series = rd.series(run_, tag)
            warnings += series.warnings
            if not len(series.steps) or not analysis.REQUIRED_STATS <= set(
                series.stats
            ):
                continue
            thresholds = analysis.Thresholds(tau=tau, epsilon=layer.meta.epsilon)
            result = analysis.classify(series.stats, series.steps, thresholds)
            hints = analysis.hints(result, layer.meta.activation, loss)
            results.setdefault(run_, {})[tag] = LayerReport(
                series, result, hints, rd.revivals(run_, tag)
            )
    return results, warnings


def to_json(results, warnings) -> dict:
    """The ``--json`` object (module docstring)."""
    runs = {}
    for run_, tags in results.items():
        layers = {}
        for tag, (_, r, hints, revivals) in tags.items():
            layers[tag] = {
                "units": r.units,
                "steps": r.steps.tolist(),
                "dead_count": r.dead_count,
                "dormant_count": r.dormant_count,
                "dead_units": r.dead_now,
                "dormant_units": r.dormant_now,
                "died_at": {
                    str(u): s for u, s in enumerate(r.died_at()) if s is not None
                },
                "revived_units": [int(u) for u in r.revived().nonzero()[0]],
                "revivals": revivals,
                "hints": hints,
            }
        runs[run_] = {"layers": layers}
    return {"runs": runs, "warnings": warnings}


def to_text(results, warnings) -> str:
    """One table per run: units, dead/dormant now, first death, revived, worst."""
    header = ("layer", "units", "dead now", "dormant now", "first death", "revived")
    lines = []
    for run_, tags in results.items():
        rows = [(*header, "worst step (dead)")]
        for tag, (_, r, _, _) in tags.items():
            deaths = [s for s in r.died_at() if s is not None]
            worst = int(max(range(len(r.steps)), key=lambda i: r.dead_count[i]))
            rows.append(
                (
                    tag,
                    str(r.units),
                    f"{len(r.dead_now)} ({len(r.dead_now) / r.units:.1%})",
                    f"{len(r.dormant_now)} ({len(r.dormant_now) / r.units:.1%})",
                    str(min(deaths)) if deaths else "-",
                    str(int(r.revived().sum())),
                    f"{int(r.steps[worst])} ({r.dead_count[worst]})",
                )
            )
        widths = [max(len(row[i]) for row in rows) for i in range(len(header) + 1)]
        lines.append(f"run {run_}")
        for row in rows:
            cells = [row[0].ljust(widths[0])]
            cells += [c.rjust(w) for c, w in zip(row[1:], widths[1:], strict=True)]
            lines.append("  " + "  ".join(cells))
        for tag, layer in tags.items():
            if layer.revivals:
                n = sum(len(r["units"]) for r in layer.revivals)
                lines.append(
                    f"  revived {tag}: {n} units in {len(layer.revivals)} "
                    f"re-initialisations (steps {layer.revivals[0]['step']}"
                    f"..{layer.revivals[-1]['step']})"
                )
            for hint in layer.hints:
                lines.append(f"  hint {tag}: {hint['pattern']}: {hint['evidence']}")
                lines.append(f"    remedy: {hint['remedy']}")
        lines.append("")
    if not results:
        lines.append("no dead-neuron snapshot series found\n")
    lines += [f"warning: {w}" for w in warnings]
    return "\n".join(lines).rstrip("\n")


def run(args: argparse.Namespace) -> int:
    """Runs the report; returns the exit status (module docstring)."""
    if not math.isfinite(args.tau) or args.tau < 0:
        return _fail(f"--tau must be a finite number >= 0, got {args.tau}")
    fail_above = args.fail_above
    if fail_above is not None and not 0 <= fail_above <= 1:
        return _fail(f"--fail-above must be a fraction in [0, 1], got {fail_above}")
    if not os.path.isdir(args.logdir):
        return _fail(f"logdir {args.logdir!r} does not exist or is not a directory")
    if not os.access(args.logdir, os.R_OK | os.X_OK):
        return _fail(f"logdir {args.logdir!r} is not readable")
    try:
        results, warnings = analyse(args.logdir, args.run_name, args.tau)
    except OSError as e:
        return _fail(f"cannot read {args.logdir!r}: {e}")
    if args.run_name is not None and args.run_name not in results:
        return _fail(f"no snapshot series in run {args.run_name!r}")
    if args.json:
        print(json.dumps(to_json(results, warnings)))
    else:
        print(to_text(results, warnings))
    if fail_above is None:
        return 0
    status = 0
    for run_, tags in results.items():
        for tag, (_, r, _, _) in tags.items():
            fraction = len(r.dead_now) / r.units
            if fraction > fail_above:
                print(
                    f"{_PROG}: run {run_}, layer {tag}: {fraction:.1%} dead "
                    f"> {fail_above:.1%}",
                    file=sys.stderr,
                )
                status = 1
    return status
