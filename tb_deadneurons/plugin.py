"""The TensorBoard plugin: loader, routes and static files.

Routes (relative to ``data/plugin/deadneurons/``; JSON shapes in
docs/routes.md): ``./runs``, ``./timeline``, ``./unit``, ``./loss``,
``./index.js``, ``./static/*``. Everything is read through
``context.data_provider`` (works with ``--load_fast=false`` and with the Rust
data server); classification is ``analysis``'s. Bad parameters raise
``InvalidArgumentError`` (400), unknown run/tag/unit ``NotFoundError`` (404).

Samples: TensorBoard keeps 10 (Python loader) or 100 (data server) samples
per tag of a third-party plugin. ``DeadNeuronsLoader.fix_flags`` raises our
default to ``DEFAULT_SAMPLES`` = 800 snapshots per layer. Measured with
benchmarks/backend.py, a loaded snapshot costs TensorBoard about 10 bytes per
unit (Python loader and Rust data server alike; ~7 on disk), so 50 layers x
1,024 units x 800 snapshots is ~390 MiB, inside the ~500 MB budget (1,000
would be ~490 MiB). A user's ``--samples_per_plugin deadneurons=N`` wins;
``deadneurons=0`` keeps every snapshot (TensorBoard 2.21's flag parser takes
integers only and passes 0 to the data server as ``all``).
"""

from __future__ import annotations

import json
import math
import mimetypes
import os
import threading

import numpy as np
from tensorboard import errors, plugin_util
from tensorboard.backend import http_util
from tensorboard.plugins import base_plugin
from werkzeug import wrappers

from tb_deadneurons import analysis, reader
from tb_deadneurons.metadata import PLUGIN_NAME

DEFAULT_SAMPLES = 800
# What ``downsample`` means "all" when the hint is 0 (keep every sample).
ALL_SAMPLES = 2**31 - 1
_HERE = os.path.dirname(os.path.abspath(__file__))
# A wheel ships the dashboard inside the package (tb_deadneurons/static); a
# source checkout, and an editable install of it, serves the top-level static/.
STATIC_DIR = os.path.join(_HERE, "static")
if not os.path.isdir(STATIC_DIR):
    STATIC_DIR = os.path.join(os.path.dirname(_HERE), "static")
_CONTENT_TYPES = {
    ".js": "text/javascript",
    ".mjs": "text/javascript",
    ".css": "text/css",
}
_MAX_PARAM = 1000
_RUNS_CACHE_SIZE = 4096
_REQUIRED = analysis.REQUIRED_STATS


class DeadNeuronsLoader(base_plugin.TBLoader):
    """Loads the plugin; raises the default sample count (see module doc)."""

    def fix_flags(self, flags) -> None:
        samples = getattr(flags, "samples_per_plugin", None)
        if isinstance(samples, dict):
            samples.setdefault(PLUGIN_NAME, DEFAULT_SAMPLES)

    def load(self, context: base_plugin.TBContext) -> base_plugin.TBPlugin:
        return DeadNeuronsPlugin(context)


# Stands for the base64 matrix while the body is JSON-encoded: a NUL, which
# no run or tag name holds, so the encoded placeholder cannot occur elsewhere.
_RAW = "\x00raw\x00"


def _json(request, body: dict, raw: str | None = None):
    """Responds with ``body`` as JSON.

    ``raw`` (ASCII that needs no escaping, e.g. base64) replaces the first
    string ``_RAW`` in ``body`` without passing through the JSON encoder,
    which would scan the whole string for characters to escape.
    """
    text = json.dumps(body, separators=(",", ":"), allow_nan=False)
    if raw is not None:
        text = text.replace(json.dumps(_RAW), f'"{raw}"', 1)
    return http_util.Respond(request, text, "application/json")


def _param(request, name: str, required: bool = True) -> str | None:
    value = request.args.get(name)
    if value is None and required:
        raise errors.InvalidArgumentError(f"missing parameter {name!r}")
    if value is not None and len(value) > _MAX_PARAM:
        raise errors.InvalidArgumentError(f"parameter {name!r} is too long")
    return value


def _float(request, name: str, default: float) -> float:
    value = _param(request, name, required=False)
    if value is None:
        return default
    try:
        number = float(value)
    except ValueError:
        number = math.nan
    if not (math.isfinite(number) and number >= 0):
        raise errors.InvalidArgumentError(f"{name} must be a number >= 0: {value!r}")
    return number


def thresholds_from(request, epsilon: float = 0.0) -> analysis.Thresholds:
    """``analysis.Thresholds`` from ``tau``, ``definition``, ``constant_std``."""
    definition = _param(request, "definition", required=False) or "dead"
    if definition not in analysis.DEFINITIONS:
        raise errors.InvalidArgumentError(
            f"definition must be one of {', '.join(analysis.DEFINITIONS)}"
        )
    return analysis.Thresholds(
        definition=definition,
        tau=_float(request, "tau", analysis.DEFAULT_TAU),
        epsilon=float(epsilon),
        constant_std=_float(request, "constant_std", analysis.DEFAULT_CONSTANT_STD),
    )


def _rounded_list(values, decimals: int = 4) -> list:
    """Floats rounded to ``decimals`` places; NaN/inf -> None (vectorised)."""
    values = np.asarray(values, dtype=np.float64)
    out = np.round(values, decimals).tolist()
    if not np.isfinite(values).all():
        out = [v if math.isfinite(v) else None for v in out]
    return out


def _finite_list(values, digits: int = 4) -> list:
    """Floats rounded to ``digits`` significant digits; NaN/inf -> None."""
    return [
        float(f"{v:.{digits}g}") if math.isfinite(v) else None
        for v in np.asarray(values, dtype=np.float64).tolist()
    ]


class DeadNeuronsPlugin(base_plugin.TBPlugin):
    """Serves the Dead Neurons dashboard and its data routes."""

    plugin_name = PLUGIN_NAME

    def __init__(self, context: base_plugin.TBContext):
        self._provider = context.data_provider
        hints = context.sampling_hints or {}
        hint = hints.get(PLUGIN_NAME, DEFAULT_SAMPLES)
        # TensorBoard's own default for scalars; 0 means all, as for us.
        self._loss_samples = hints.get("scalars", 1000) or ALL_SAMPLES
        self._downsample = hint if hint > 0 else ALL_SAMPLES
        self._runs_cache: dict = {}
        self._lock = threading.Lock()

    def get_plugin_apps(self):
        return {
            "/runs": self._serve_runs,
            "/timeline": self._serve_timeline,
            "/unit": self._serve_unit,
            "/loss": self._serve_loss,
            "/index.js": self._serve_index,
            "/static/*": self._serve_static,
        }

    def is_active(self) -> bool:
        return False  # TensorBoard activates us when list_plugins names us

    def frontend_metadata(self) -> base_plugin.FrontendMetadata:
        return base_plugin.FrontendMetadata(
            es_module_path="/index.js", tab_name="Dead Neurons"
        )

    def _reader(self, request) -> reader.Reader:
        return reader.Reader(
            self._provider,
            plugin_util.experiment_id(request.environ),
            plugin_util.context(request.environ),
            downsample=self._downsample,
        )

    # --- data routes --------------------------------------------------------

    @wrappers.Request.application
    def _serve_runs(self, request):
        rd = self._reader(request)
        layers, warnings = rd.layers()
        runs = []
        for run, tags in layers.items():
            entries = []
            for tag, layer in tags.items():
                summary, w = self._layer_summary(rd, run, tag, layer)
                entries.append(summary)
                warnings += w
            runs.append({"run": run, "layers": entries})
        unique = list(dict.fromkeys(warnings))  # layers() and series() both warn
        return _json(request, {"runs": runs, "warnings": unique})

    def _layer_summary(self, rd: reader.Reader, run, tag, layer: reader.Layer):
        key = (rd.experiment_id, run, tag, layer.max_step, layer.max_wall_time)
        with self._lock:
            if key in self._runs_cache:
                return self._runs_cache[key]
        series = rd.series(run, tag)
        last = series.stats.tail(1)
        dead_now = 0
        if len(series.steps) and _REQUIRED <= set(last):
            thresholds = analysis.Thresholds(epsilon=series.meta.epsilon)
            dead_now = len(
                analysis.classify(last, series.steps[-1:], thresholds).dead_now
            )
        steps = series.steps.tolist()
        summary = {
            "tag": tag,
            "units": series.units,
            "snapshots": len(steps),
            "first_step": steps[0] if steps else None,
            "last_step": steps[-1] if steps else None,
            "dead_now": dead_now,
            "dead_fraction_now": dead_now / series.units if series.units else 0.0,
            "layer_class": layer.meta.layer_class,
            "activation": layer.meta.activation,
        }
        with self._lock:
            if len(self._runs_cache) >= _RUNS_CACHE_SIZE:
                self._runs_cache.clear()
            self._runs_cache[key] = (summary, series.warnings)
        return summary, series.warnings

    def _classified(self, request):
        """(series, stats, classification) of the request's run and tag."""
        run, tag = _param(request, "run"), _param(request, "tag")
        series = self._reader(request).series(run, tag)
        thresholds = thresholds_from(request, series.meta.epsilon)
        stats = series.stats
        if not _REQUIRED <= set(stats):
            series.warnings.append(
                f"run {run}, tag {tag}: no {' / '.join(sorted(_REQUIRED))} rows; "
                "not classified"
            )
            series.steps = series.steps[:0]
        if not len(series.steps):
            stats = {n: np.zeros((0, series.units), np.float32) for n in _REQUIRED}
        return series, stats, analysis.classify(stats, series.steps, thresholds)

    @wrappers.Request.application
    def _serve_timeline(self, request):
        series, _, result = self._classified(request)
        rd = self._reader(request)
        matrix = result.matrix()
        body = {
            # First, so that the placeholder replaced is this one (see _json).
            "matrix": {
                "encoding": "base64",
                "shape": list(matrix.shape),
                "order": "unit-major",
                "cell": "bits 7-6 state (0 active, 1 dormant, 2 dead, 3 no data); "
                "bits 5-0 round(active_fraction*63), nonzero share >= 1",
                "data": _RAW,
            },
            "run": series.run,
            "tag": series.tag,
            "units": result.units,
            "steps": result.steps.tolist(),
            "thresholds": result.thresholds.as_dict(),
            "dead_count": result.dead_count,
            "dormant_count": result.dormant_count,
            "died_at": result.died_at(),
            "revived": result.revived().tolist(),
            "dying": result.dying().tolist(),
            # Scores are relative to the layer's mean: 4 decimals suffice.
            "dormant_score_now": _rounded_list(result.score[-1])
            if len(result.steps)
            else [None] * result.units,
            "dead_now": result.dead_now,
            "dormant_now": result.dormant_now,
            "revivals": rd.revivals(series.run, series.tag),
            "hints": analysis.hints(
                result, series.meta.activation, rd.loss(series.run, self._loss_samples)
            ),
            "warnings": series.warnings,
        }
        return _json(request, body, raw=_b64(matrix))

    @wrappers.Request.application
    def _serve_unit(self, request):
        raw = _param(request, "unit")
        if not raw.isascii() or not raw.isdigit():
            raise errors.InvalidArgumentError(f"unit must be an integer >= 0: {raw!r}")
        series, stats, result = self._classified(request)
        unit = int(raw)
        if unit >= result.units:
            raise errors.NotFoundError(
                f"unit {unit} not in tag {series.tag!r} ({result.units} units)"
            )
        stats = {name: _finite_list(stats[name][:, unit]) for name in stats}
        died_at = result.died_at()[unit]
        body = {
            "run": series.run,
            "tag": series.tag,
            "unit": unit,
            "steps": result.steps.tolist(),
            "thresholds": result.thresholds.as_dict(),
            "stats": stats,
            "dormant_score": _finite_list(result.score[:, unit]),
            "dead": result.dead[:, unit].tolist(),
            "dormant": result.dormant[:, unit].tolist(),
            "died_at": died_at,
            "revived": bool(result.revived()[unit]),
            "warnings": series.warnings,
        }
        return _json(request, body)

    @wrappers.Request.application
    def _serve_loss(self, request):
        run = _param(request, "run")
        rd = self._reader(request)
        if run not in rd.runs():
            raise errors.NotFoundError(f"no run {run!r}")
        found = rd.loss(run, downsample=self._loss_samples)
        if found is None:
            body = {
                "run": run,
                "tag": None,
                "source": None,
                "step_unit": None,
                "steps": [],
                "values": [],
                "message": f"run {run} has no loss scalar ("
                + ", ".join(t for t, _, _ in reader.LOSS_TAGS)
                + ")",
            }
        else:
            tag, unit, source, steps, values = found
            body = {
                "run": run,
                "tag": tag,
                "source": source,
                "step_unit": unit,
                "steps": steps,
                "values": [v if math.isfinite(v) else None for v in values],
            }
        return _json(request, body)

    # --- static files -------------------------------------------------------

    @wrappers.Request.application
    def _serve_index(self, request):
        return _serve_file(request, "index.js")

    @wrappers.Request.application
    def _serve_static(self, request):
        _, _, name = request.path.partition("/static/")
        return _serve_file(request, name)


def _b64(matrix: np.ndarray) -> str:
    import base64

    return base64.b64encode(matrix.tobytes()).decode("ascii")


def _serve_file(request, name: str):
    """Serves ``static/<name>``; 404 for anything outside ``static/``."""
    parts = name.split("/")
    if (
        not name
        or "\\" in name
        or "\x00" in name
        or any(p in ("", ".", "..") for p in parts)
    ):
        raise errors.NotFoundError("no such static file")
    path = os.path.realpath(os.path.join(STATIC_DIR, *parts))
    root = os.path.realpath(STATIC_DIR)
    if os.path.commonpath([path, root]) != root or not os.path.isfile(path):
        raise errors.NotFoundError("no such static file")
    ext = os.path.splitext(path)[1].lower()
    content_type = _CONTENT_TYPES.get(ext) or (
        mimetypes.guess_type(path)[0] or "application/octet-stream"
    )
    with open(path, "rb") as f:
        content = f.read()
    return http_util.Respond(request, content, content_type)
