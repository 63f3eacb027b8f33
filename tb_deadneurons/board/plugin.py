"""The TensorBoard plugin: loader, routes and static files.

Routes (relative to ``data/plugin/deadneurons/``; JSON shapes in
docs/routes.md): ``./runs``, ``./timeline``, ``./unit``, ``./loss``,
``./scalar_tags``, ``./index.js``, ``./static/*``. The routes here only
parse the request; the bodies are ``routes.*_impl``. Everything is read through
``context.data_provider`` (works with ``--load_fast=false`` and with the Rust
data server); ``./runs`` adds what ``records.Scanner`` finds in the event
files under ``context.logdir`` (damage, restarts). Bad parameters raise
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

from tensorboard import errors, plugin_util
from tensorboard.backend import http_util
from tensorboard.data import provider
from tensorboard.plugins import base_plugin
from werkzeug import wrappers

from tb_deadneurons.analysis import classify, overview
from tb_deadneurons.board import reader, records, routes
from tb_deadneurons.format.metadata import PLUGIN_NAME

DEFAULT_SAMPLES = 800
# TensorBoard's own default for scalars.
DEFAULT_SCALAR_SAMPLES = 1000
_PACKAGE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# A wheel ships the dashboard inside the package (tb_deadneurons/static); a
# source checkout, and an editable install of it, serves the top-level static/.
STATIC_DIR = os.path.join(_PACKAGE, "static")
if not os.path.isdir(STATIC_DIR):
    STATIC_DIR = os.path.join(os.path.dirname(_PACKAGE), "static")
_CONTENT_TYPES = {
    ".js": "text/javascript",
    ".mjs": "text/javascript",
    ".css": "text/css",
}
# Numbers and words, not names: runs and tags of any length are accepted.
_MAX_VALUE = 1000
_NAMES = ("run", "tag", "loss_tag")


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


def _dumps(body: dict) -> str:
    try:
        return json.dumps(body, separators=(",", ":"), allow_nan=False)
    except ValueError:  # NaN/inf somewhere (e.g. a logged epsilon): null it
        return json.dumps(routes.finite(body), separators=(",", ":"), allow_nan=False)


def _json(request, body: dict, raw: str | None = None):
    """Responds with ``body`` as JSON; never fails on a non-finite number.

    ``raw`` (ASCII that needs no escaping, e.g. base64) replaces the first
    string ``_RAW`` in ``body`` without passing through the JSON encoder,
    which would scan the whole string for characters to escape.
    """
    text = _dumps(body)
    if raw is not None:
        text = text.replace(json.dumps(_RAW), f'"{raw}"', 1)
    return http_util.Respond(request, text, "application/json")


def _param(request, name: str, required: bool = True) -> str | None:
    value = request.args.get(name)
    if value is None and required:
        raise errors.InvalidArgumentError(f"missing parameter {name!r}")
    if value is not None and name not in _NAMES and len(value) > _MAX_VALUE:
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


def _index(request, name: str, required: bool = False) -> int | None:
    """An integer >= 0 parameter, None when optional and absent."""
    value = _param(request, name, required=required)
    # isdigit() alone accepts other scripts' digits ("\u0663"): int() would too.
    if value is not None and not (value.isascii() and value.isdigit()):
        raise errors.InvalidArgumentError(f"{name} must be an integer >= 0: {value!r}")
    return None if value is None else int(value)


def view_from(request) -> overview.View:
    """``overview.View`` from ``rows``, ``cols``, ``unit_start``, ``unit_stop``."""
    return overview.View(*(_index(request, name) for name in overview.View._fields))


def query_from(request) -> routes.Query:
    """``routes.Query`` from ``tau``, ``definition``, ``constant_std``."""
    definition = _param(request, "definition", required=False) or "dead"
    if definition not in classify.DEFINITIONS:
        raise errors.InvalidArgumentError(
            f"definition must be one of {', '.join(classify.DEFINITIONS)}"
        )
    return routes.Query(
        tau=_float(request, "tau", classify.DEFAULT_TAU),
        definition=definition,
        constant_std=_float(request, "constant_std", classify.DEFAULT_CONSTANT_STD),
    )


class DeadNeuronsPlugin(base_plugin.TBPlugin):
    """Serves the Dead Neurons dashboard and its data routes."""

    plugin_name = PLUGIN_NAME

    def __init__(self, context: base_plugin.TBContext):
        self._provider = context.data_provider
        hints = context.sampling_hints or {}
        hint = hints.get(PLUGIN_NAME, DEFAULT_SAMPLES)
        # 0 means all, for TensorBoard's scalars as for us.
        scalars = hints.get("scalars", DEFAULT_SCALAR_SAMPLES)
        self._loss_samples = scalars or reader.ALL_SAMPLES
        self._downsample = hint if hint > 0 else reader.ALL_SAMPLES
        self._runs_cache = routes.RunsCache()
        self._timelines = routes.TimelineCache()
        # In the background: a big log's first CRC check must not hold ./runs.
        self._scanner = records.Scanner(
            getattr(context, "logdir", None), background=True
        )

    def get_plugin_apps(self):
        return {
            "/runs": self._serve_runs,
            "/timeline": self._serve_timeline,
            "/unit": self._serve_unit,
            "/loss": self._serve_loss,
            "/scalar_tags": self._serve_scalar_tags,
            "/compare": self._serve_compare,
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
        body = routes.runs_impl(rd, self._runs_cache, self._scanner.warnings())
        return _json(request, body)

    @wrappers.Request.application
    def _serve_timeline(self, request):
        run, tag = _param(request, "run"), _param(request, "tag")
        query = query_from(request)
        rd = self._reader(request)
        view = view_from(request)
        loss_tag = _param(request, "loss_tag", required=False)
        body = routes.timeline_impl(
            rd, run, tag, query, self._loss_samples, view, self._timelines, loss_tag
        )
        data, body["matrix"]["data"] = body["matrix"]["data"], _RAW
        return _json(request, body, raw=data)

    @wrappers.Request.application
    def _serve_unit(self, request):
        unit = _index(request, "unit", required=True)
        run, tag = _param(request, "run"), _param(request, "tag")
        query = query_from(request)
        body = routes.unit_impl(self._reader(request), run, tag, unit, query)
        return _json(request, body)

    @wrappers.Request.application
    def _serve_loss(self, request):
        run = _param(request, "run")
        loss_tag = _param(request, "loss_tag", required=False)
        rd = self._reader(request)
        body = routes.loss_impl(rd, run, self._loss_samples, loss_tag)
        return _json(request, body)

    @wrappers.Request.application
    def _serve_scalar_tags(self, request):
        run = _param(request, "run")
        return _json(request, routes.scalar_tags_impl(self._reader(request), run))

    @wrappers.Request.application
    def _serve_compare(self, request):
        query = query_from(request)
        hparams = routes.hparams_from(self._hparams_listing(request))
        body = routes.compare_impl(self._reader(request), query, hparams)
        return _json(request, body)

    def _hparams_listing(self, request) -> dict:
        """The HParams plugin's session-start series, as its own backend reads them."""
        return self._provider.list_tensors(
            plugin_util.context(request.environ),
            experiment_id=plugin_util.experiment_id(request.environ),
            plugin_name=routes.HPARAMS_PLUGIN,
            run_tag_filter=provider.RunTagFilter(tags=[routes.HPARAMS_TAG]),
        )

    # --- static files -------------------------------------------------------

    @wrappers.Request.application
    def _serve_index(self, request):
        return _serve_file(request, "index.js")

    @wrappers.Request.application
    def _serve_static(self, request):
        _, _, name = request.path.partition("/static/")
        return _serve_file(request, name)


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
