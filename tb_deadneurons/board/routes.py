"""The data routes' bodies, apart from HTTP: ``*_impl(reader, ...)`` -> dict.

``plugin`` parses the request and calls these; tests call them directly.
Each JSON shape of docs/routes.md is built here and only here. Unknown
run/tag/unit raise ``tensorboard.errors.NotFoundError``; a threshold the
series cannot use (``definition=grad_dormant`` without the gradient row)
raises ``InvalidArgumentError``.
"""

from __future__ import annotations

import dataclasses
import math
import threading
from collections import OrderedDict
from typing import NamedTuple

import numpy as np
from tensorboard import errors

from tb_deadneurons.analysis import classify, overview
from tb_deadneurons.board import reader

RUNS_CACHE_SIZE = 4096
# Classified layers kept for ./timeline (see TimelineCache): ~6 MB each at
# LLM width (11,008 units x 500 snapshots).
TIMELINE_CACHE_SIZE = 8
CELL = (
    "bits 7-6 state (0 active, 1 dormant, 2 dead, 3 no data); bit 5 grad-dormant "
    "(never without the gradient row); bits 4-0 round(active_fraction*31), "
    "nonzero share >= 1"
)


class Query(NamedTuple):
    """The classification parameters a request may set."""

    tau: float = classify.DEFAULT_TAU
    definition: str = "dead"
    constant_std: float = classify.DEFAULT_CONSTANT_STD


def finite(value):
    """``value`` (JSON-ready) with every non-finite float replaced by None."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [finite(v) for v in value]
    return value


def rounded(values, decimals: int = 4) -> list:
    """Floats rounded to ``decimals`` places; NaN/inf -> None (vectorised)."""
    values = np.asarray(values, dtype=np.float64)
    out = np.round(values, decimals).tolist()
    if not np.isfinite(values).all():
        out = [v if math.isfinite(v) else None for v in out]
    return out


def significant(values, digits: int = 4) -> list:
    """Floats rounded to ``digits`` significant digits; NaN/inf -> None."""
    return [
        float(f"{v:.{digits}g}") if math.isfinite(v) else None
        for v in np.asarray(values, dtype=np.float64).tolist()
    ]


def classified(rd: reader.Reader, run: str, tag: str, query: Query):
    """``reader.Classified`` of one layer; bad thresholds -> 400."""
    series = rd.series(run, tag)
    try:
        return reader.classify_series(series, *query)
    except ValueError as e:
        raise errors.InvalidArgumentError(str(e)) from None


class RunsCache:
    """``./runs`` entries per run, kept across requests.

    A run's key is its listing -- every tag with its newest step and wall
    time -- so a run that changes (a new snapshot, a restart, a new layer)
    is read again and the others are answered from memory.
    """

    def __init__(self, size: int = RUNS_CACHE_SIZE):
        self._size, self._entries, self._lock = size, {}, threading.Lock()

    def run(self, rd: reader.Reader, run: str, layers: dict):
        """(the run's ``./runs`` layer entries, their warnings)."""
        listing = tuple((t, la.max_step, la.max_wall_time) for t, la in layers.items())
        key = (rd.experiment_id, run, listing)
        with self._lock:
            if key in self._entries:
                return self._entries[key]
        entry = _run_entries(rd, run, layers)
        with self._lock:
            if len(self._entries) >= self._size:
                self._entries.clear()
            self._entries[key] = entry
        return entry


def _run_entries(rd: reader.Reader, run: str, layers: dict):
    """Every layer's entry from one layer's steps and each one's newest
    snapshot.

    Writers snapshot all their layers at the same steps, so the first layer
    with a readable snapshot is read in full (its steps after the restart
    rule give ``snapshots`` and ``first_step``) and every other layer only
    its newest snapshot (``dead_count_now``). A layer whose newest step is
    not the reference's (another writer, another period) is read in full.
    """
    entries, warnings, reference = [], [], None
    for tag, layer in layers.items():
        series = None if reference is None else rd.series(run, tag, downsample=1)
        steps = reference
        if series is None or not _ends_at(series, reference):
            series = rd.series(run, tag)
            steps = series.steps
            if reference is None and len(steps):
                reference = steps
        entries.append(_layer_entry(series, layer, steps))
        warnings += series.warnings
    return entries, warnings


def _ends_at(series: reader.Series, steps) -> bool:
    return bool(len(series.steps)) and int(series.steps[-1]) == int(steps[-1])


def _layer_entry(series: reader.Series, layer: reader.Layer, steps):
    # Only the last snapshot decides the count: classify just that one.
    last = _last_snapshot(series)
    dead = len(reader.classify_series(last).result.dead_now)
    return {
        "tag": series.tag,
        "units": series.units,
        "snapshots": len(steps),
        "first_step": int(steps[0]) if len(steps) else None,
        "last_step": int(steps[-1]) if len(steps) else None,
        "dead_count_now": dead,
        "dead_fraction_now": dead / series.units if series.units else 0.0,
        "layer_class": layer.meta.layer_class,
        "activation": layer.meta.activation,
    }


def _last_snapshot(series: reader.Series) -> reader.Series:
    """``series`` restricted to its last snapshot (a new object)."""
    return dataclasses.replace(
        series, steps=series.steps[-1:], stats=series.stats.tail(1), warnings=[]
    )


def runs_impl(rd: reader.Reader, cache: RunsCache, file_warnings=()) -> dict:
    """The ``./runs`` body: every run's layers, then all warnings once each."""
    layers, warnings = rd.layers()
    runs = []
    for run, tags in layers.items():
        entries, w = cache.run(rd, run, tags)
        runs.append({"run": run, "layers": entries})
        warnings += w
    warnings += file_warnings
    return {"runs": runs, "warnings": list(dict.fromkeys(warnings))}


def layer_mean_abs(stats) -> list:
    """The layer's mean |a| per step (4 significant digits; null: no data)."""
    if not len(stats["mean_abs"]):
        return []
    return significant(classify.layer_mean_abs(stats))


class TimelineCache:
    """Classified layers (cell matrix + the rest of the ``./timeline`` body),
    keyed by what changes when data arrives and by the query, so another view
    of the same layer (overview, zoom) only aggregates. Least recently used
    entries go first; a 11,008 x 500 layer holds ~6 MB."""

    def __init__(self, size: int = TIMELINE_CACHE_SIZE):
        self._size, self._entries, self._lock = size, OrderedDict(), threading.Lock()

    def get(self, key, compute):
        with self._lock:
            if key in self._entries:
                self._entries.move_to_end(key)
                return self._entries[key]
        value = compute()
        with self._lock:
            self._entries[key] = value
            while len(self._entries) > self._size:
                self._entries.popitem(last=False)
        return value


def timeline_impl(
    rd: reader.Reader,
    run: str,
    tag: str,
    query: Query,
    loss_samples: int,
    view: overview.View | None = None,
    cache: TimelineCache | None = None,
    loss_tag: str | None = None,
) -> dict:
    """The ``./timeline`` body; ``matrix.data`` is the base64 cell matrix,
    aggregated to ``view`` (``overview.matrix_json``; a bad view -> 400).
    The hints use the loss ``loss_tag`` names (default: ``reader.LOSS_TAGS``
    order); a tag the run lacks gives hints without a loss and a warning."""

    def compute():
        return _timeline_layer(rd, run, tag, query, loss_samples, loss_tag)

    if cache is None:
        cells, body = compute()
    else:
        layer = rd.layers(run)[0].get(run, {}).get(tag)
        newest = (layer.max_step, layer.max_wall_time) if layer else None
        key = (rd.experiment_id, run, tag, newest, query, loss_samples, loss_tag)
        cells, body = cache.get(key, compute)
    try:
        matrix = overview.matrix_json(cells, CELL, view)
    except ValueError as e:
        raise errors.InvalidArgumentError(str(e)) from None
    # First key: plugin splices the base64 data in by position.
    return {"matrix": matrix, **body}


def _timeline_layer(rd, run, tag, query, loss_samples, loss_tag=None):
    """(uint8 [units, steps] cell matrix, the body of ``./timeline`` but
    its ``matrix``) of one layer."""
    series, stats, result, warnings = classified(rd, run, tag, query)
    loss, loss_warnings = rd.find_loss(run, loss_samples, loss_tag)
    score_now = result.score[-1] if len(result.steps) else [math.nan] * result.units
    return result.matrix(), {
        "run": run,
        "tag": tag,
        "units": result.units,
        "steps": result.steps.tolist(),
        "thresholds": result.thresholds.as_dict(),
        "dead_count": result.dead_count,
        "dormant_count": result.dormant_count,
        "grad_dormant_count": result.grad_dormant_count,
        # What the dashboard shows as dormant: dead units are dormant too.
        "dormant_or_dead_count": flagged(result, "dormant").sum(axis=1).tolist(),
        "mean_abs": layer_mean_abs(stats),
        "died_at": result.died_at(),
        "revived": result.revived().tolist(),
        "dying": result.dying().tolist(),
        # Scores are relative to the layer's mean: 4 decimals suffice.
        "dormant_score_now": rounded(score_now),
        "dead_now": result.dead_now,
        "dormant_now": result.dormant_now,
        "grad_dormant_now": result.grad_dormant_now,
        "revivals": rd.revivals(run, tag),
        "hints": classify.hints(result, series.meta.activation, loss),
        "loss_tag": loss.tag if loss else None,
        "warnings": warnings + loss_warnings,
    }


def unit_impl(rd: reader.Reader, run: str, tag: str, unit: int, query: Query):
    """The ``./unit`` body for unit index ``unit`` (>= 0)."""
    series, stats, result, warnings = classified(rd, run, tag, query)
    if unit >= result.units:
        raise errors.NotFoundError(
            f"unit {unit} not in tag {tag!r} ({result.units} units)"
        )
    return {
        "run": run,
        "tag": tag,
        "unit": unit,
        "steps": result.steps.tolist(),
        "thresholds": result.thresholds.as_dict(),
        "stats": {name: significant(stats[name][:, unit]) for name in stats},
        "dormant_score": significant(result.score[:, unit]),
        "dead": result.dead[:, unit].tolist(),
        "dormant": result.dormant[:, unit].tolist(),
        "grad_dormant": None
        if result.grad_dormant is None
        else result.grad_dormant[:, unit].tolist(),
        "died_at": result.died_at()[unit],
        "revived": bool(result.revived()[unit]),
        "warnings": warnings,
    }


def loss_impl(
    rd: reader.Reader, run: str, loss_samples: int, loss_tag: str | None = None
) -> dict:
    """The ``./loss`` body: the run's loss (``loss_tag``, else the first of
    ``reader.LOSS_TAGS``), or an empty answer with a message. Unknown run,
    or a ``loss_tag`` that is no scalar of the run: 404."""
    if run not in rd.runs():
        raise errors.NotFoundError(f"no run {run!r}")
    if loss_tag is not None and loss_tag not in {t["tag"] for t in rd.scalar_tags(run)}:
        raise errors.NotFoundError(f"run {run!r} has no scalar {loss_tag!r}")
    found, warnings = rd.find_loss(run, loss_samples, loss_tag)
    if found is None:
        tags = loss_tag or ", ".join(t for t, _, _ in reader.LOSS_TAGS)
        return {
            "run": run,
            "tag": None,
            "source": None,
            "step_unit": None,
            "steps": [],
            "values": [],
            "message": f"run {run} has no float scalar loss ({tags})",
            "warnings": warnings,
        }
    return {
        "run": run,
        "tag": found.tag,
        "source": found.source,
        "step_unit": found.step_unit,
        "steps": found.steps,
        "values": [v if math.isfinite(v) else None for v in found.values],
        "warnings": warnings,
    }


def scalar_tags_impl(rd: reader.Reader, run: str) -> dict:
    """The ``./scalar_tags`` body: the run's scalar tags for the loss picker
    and the tag ``./loss`` picks without ``loss_tag``. Unknown run: 404."""
    if run not in rd.runs():
        raise errors.NotFoundError(f"no run {run!r}")
    found = rd.loss(run, downsample=1)
    return {
        "run": run,
        "tags": rd.scalar_tags(run),
        "loss_tag": found.tag if found else None,
    }


# --- compare (issue 19): one layer across runs, runs x layers ---------------

HPARAMS_PLUGIN = "hparams"
HPARAMS_TAG = "_hparams_/session_start_info"


def flagged(result, definition: str) -> np.ndarray:
    """bool [T, U]: units counted under ``definition``; "dormant" counts the
    dead too (a unit with zero output is dormant at any tau; one dead by the
    constant-output rule may have a high score), so dead <= dormant."""
    if definition == "dormant":
        return result.dead | result.dormant
    return result.by_definition


def _compare_layer(rd: reader.Reader, run: str, tag: str, query: Query) -> dict:
    _, _, result, warnings = classified(rd, run, tag, query)
    flags = flagged(result, query.definition)
    counts = flags.sum(axis=1).tolist()
    died = result.died_at()
    steps = result.steps.tolist()
    where = {s: i for i, s in enumerate(steps)}
    died_counts = [0] * len(steps)
    for s in died:
        if s is not None:
            died_counts[where[s]] += 1
    return {
        "tag": tag,
        "units": result.units,
        "steps": steps,
        "count": counts,
        "count_now": counts[-1] if counts else 0,
        "share_now": counts[-1] / result.units if counts and result.units else 0.0,
        "died_at_counts": died_counts,
        "warnings": warnings,
    }


def compare_impl(rd: reader.Reader, query: Query, hparams: dict | None = None) -> dict:
    """The ``./compare`` body: every run's layers counted under ``query``
    (per step and now, died-at per step) and each run's hyperparameters.

    A layer that cannot be classified under the definition (grad_dormant
    without the gradient row) is left out with a warning, never a 400.
    """
    layers, warnings = rd.layers()
    hparams = hparams or {}
    runs = []
    for run, tags in layers.items():
        entries = []
        for tag in tags:
            try:
                entries.append(_compare_layer(rd, run, tag, query))
            except errors.InvalidArgumentError as e:
                warnings.append(f"run {run}, tag {tag}: {e}")
        for entry in entries:
            warnings += entry.pop("warnings")
        found = run_hparams(run, hparams)
        runs.append({"run": run, "hparams": found, "layers": entries})
    return {
        "thresholds": {"definition": query.definition, "tau": query.tau},
        "runs": runs,
        "warnings": list(dict.fromkeys(warnings)),
    }


def run_hparams(run: str, hparams: dict) -> dict:
    """The hyperparameters of ``run``: its own, else those of the nearest
    run above it (Keras writes them in ``log_dir``, the snapshots in
    ``log_dir/train``), else {}."""
    parts = run.split("/")
    for n in range(len(parts), 0, -1):
        found = hparams.get("/".join(parts[:n]))
        if found is not None:
            return found
    return hparams.get(".", {})


def hparams_from(listing: dict) -> dict:
    """{run: {name: value}} from the HParams plugin's session-start series
    (``data_provider.list_tensors(plugin_name="hparams")``); a run whose
    plugin data cannot be read is left out."""
    from google.protobuf import json_format
    from tensorboard.plugins.hparams import metadata as hp_metadata

    out = {}
    for run, tags in listing.items():
        series = tags.get(HPARAMS_TAG)
        if series is None:
            continue
        try:
            info = hp_metadata.parse_session_start_info_plugin_data(
                series.plugin_content
            )
        except Exception:  # noqa: BLE001 - any unreadable content: no hparams
            continue
        out[run] = {
            name: json_format.MessageToDict(value)
            for name, value in sorted(info.hparams.items())
        }
    return out
