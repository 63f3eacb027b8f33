"""Reads snapshot series through a TensorBoard data provider (numpy only).

Every consumer (plugin routes, ``tb-deadneurons report``) reads here, so odd
data is judged once. Nothing here raises on bad data: it becomes a warning
naming run, tag and step, and the snapshot (or row) is skipped:

- a snapshot whose unit count differs from the series' first snapshot;
- a tensor that is not ``uint8 [len(stat_names), units]``;
- a snapshot whose ``count`` row is 0 for every unit (an empty probe batch);
- a row whose encoding this version cannot decode (that row is dropped);
- metadata of a newer version (read anyway, with a warning) or unparsable
  metadata (the series is skipped).

Restarts: a run whose steps go back (a re-run or a resume into the same
directory) is read by TensorBoard's own rule, here and only here
(``after_restarts``): a point at step s discards the earlier points at step
>= s. The Rust data server applies it while loading; the Python loader does
not (its purge keys on ``SessionLog.START``, which Keras and PyTorch never
write), so without this rule the two loaders would disagree. A step that
only repeats keeps its later point, as the data server does, and is not a
restart: only a run whose steps go back (``goes_back``) is warned about. What was set
aside is named by ``records.Scanner``, which reads the files themselves and
so sees it under either loader.

Units with ``count == 0`` in an otherwise valid snapshot stay in: analysis
treats them as "no data".
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
import sys
import tempfile
import types
import weakref
from collections.abc import Iterator, Mapping
from typing import NamedTuple

import numpy as np
from tensorboard import context, errors
from tensorboard.data import provider as provider_lib

from tb_deadneurons.analysis import classify
from tb_deadneurons.format import codec, metadata
from tb_deadneurons.format.proto import plugin_data_pb2

_REVIVAL = plugin_data_pb2.DeadNeuronsPluginData.REVIVAL
# ``downsample`` for "every sample" (TensorBoard's readers take an int).
ALL_SAMPLES = 2**31 - 1
# Warnings kept per series; the rest are counted in one closing line.
MAX_WARNINGS = 20
# Loss series searched, in order: (tag, step unit, source). Our writers'
# scalar first, then the framework's own on the batch axis (Keras, the HF
# Trainer, Lightning, PyTorch's TensorBoard tutorial), then epoch and
# unknown axes. docs/routes.md lists the same order.
LOSS_TAGS = (
    (metadata.LOSS_TAG, "batch", "deadneurons"),
    ("batch_loss", "batch", "scalars"),
    ("train/loss", "batch", "scalars"),
    ("train_loss", "batch", "scalars"),
    ("train_loss_step", "batch", "scalars"),
    ("Loss/train", "batch", "scalars"),
    ("loss/train", "batch", "scalars"),
    ("training_loss", "batch", "scalars"),
    ("epoch_loss", "epoch", "scalars"),
    ("train_loss_epoch", "epoch", "scalars"),
    ("loss", "unknown", "scalars"),
)
_LOSS_UNITS = {tag: unit for tag, unit, _ in LOSS_TAGS}
# Scalars are listed under these plugins (ours first).
_SCALAR_PLUGINS = (metadata.PLUGIN_NAME, "scalars")


class _Stats(Mapping):
    """Stat name -> float32 ``[T, U]``, decoded from the codes on first use."""

    def __init__(self, codes: np.ndarray, luts: dict[str, tuple[int, np.ndarray]]):
        self._codes, self._luts, self._cache = codes, luts, {}

    def __getitem__(self, name: str) -> np.ndarray:
        if name not in self._cache:
            row, lut = self._luts[name]
            # np.take is about twice as fast as lut[codes] here.
            self._cache[name] = np.take(lut, self._codes[:, row, :])
        return self._cache[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._luts)

    def __len__(self) -> int:
        return len(self._luts)

    def tail(self, k: int) -> _Stats:
        """The same stats restricted to the last ``k`` snapshots."""
        return _Stats(self._codes[-k:] if k else self._codes[:0], self._luts)


@dataclasses.dataclass
class Series:
    """One layer's readable snapshots.

    ``steps`` is int64 ``[T]``; ``stats`` maps stat name -> float32 ``[T, U]``
    (lazily decoded, see ``classify.classify``); ``units`` is the first
    snapshot's unit count (0 without snapshots).
    """

    run: str
    tag: str
    steps: np.ndarray
    stats: _Stats
    units: int
    meta: plugin_data_pb2.DeadNeuronsPluginData
    warnings: list[str]


class LossSeries(NamedTuple):
    """A run's loss as read: which tag, on which step axis, and its points.

    ``step_unit`` is "batch" (the snapshots' step axis, which hints use),
    "epoch" or "unknown"; a tag the user chose that ``LOSS_TAGS`` does not
    name is taken to be on the snapshots' axis ("batch").
    """

    tag: str
    step_unit: str  # "batch", "epoch" or "unknown"
    source: str  # the plugin it was logged under: "deadneurons" or "scalars"
    steps: list[int]
    values: list[float]


class Layer(NamedTuple):
    """A snapshot series as listed: its metadata and its newest step/time."""

    meta: plugin_data_pb2.DeadNeuronsPluginData
    max_step: int
    max_wall_time: float


def after_restarts(steps) -> np.ndarray:
    """Which points of a series (in file order) TensorBoard keeps: bool ``[N]``.

    A point is kept when its step is below the step of every later point: a
    point at step s preempts the earlier points at steps >= s (the data
    server's reservoir rule; the Python loader's purge of orphaned data). A
    step that only repeats keeps its later point; it is no restart
    (``goes_back``).
    """
    steps = np.asarray(steps, dtype=np.int64).reshape(-1)
    keep = np.ones(len(steps), dtype=bool)
    if len(steps) > 1:
        later_min = np.minimum.accumulate(steps[::-1])[::-1]
        keep[:-1] = steps[:-1] < later_min[1:]
    return keep


def goes_back(steps) -> bool:
    """Whether a series' steps (in file order) ever go back: a restart.

    A step logged twice (the HF Trainer logs ``train/epoch`` twice at its
    last step) is a repeat, not a restart.
    """
    steps = np.asarray(steps, dtype=np.int64).reshape(-1)
    return bool((steps[1:] < steps[:-1]).any())


def _kept(data: list) -> list:
    """``data`` (datums with ``.step``) after ``after_restarts``."""
    keep = after_restarts([d.step for d in data])
    return data if keep.all() else [d for d, k in zip(data, keep, strict=True) if k]


def without_tensorflow() -> None:
    """Makes TensorBoard's readers in this process use their TensorFlow-free
    stubs (its own //tensorboard/compat:no_tensorflow switch), saving seconds
    of import. For command-line processes: it holds for the whole process."""
    if "tensorflow" not in sys.modules:
        sys.modules.setdefault(
            "tensorboard.compat.notf", types.ModuleType("tensorboard.compat.notf")
        )


# Reloads of one run that may each fail on one record (they read on past it).
MAX_RELOADS = 1000


def local_data_provider(logdir: str, readable_ends: Mapping[str, int] | None = None):
    """(TensorBoard's own ``MultiplexerDataProvider`` over ``logdir``, every
    snapshot kept (what ``tensorboard --load_fast=false`` reads with), the
    warnings of loading it).

    ``readable_ends`` maps event files under ``logdir`` to the byte where
    their readable part ends (``records.Scanner.readable_ends``): TensorBoard's
    loader is given only that part (a copy), since its reader cannot survive
    an absurd length header. A reload that raises on a record (one that is
    not an ``Event``: ``DecodeError``) has consumed it, so the run is
    reloaded, reading on past it, as the Rust data server does.
    """
    from tensorboard.backend.event_processing import data_provider
    from tensorboard.backend.event_processing import plugin_event_multiplexer as pem

    multiplexer = pem.EventMultiplexer(tensor_size_guidance={metadata.PLUGIN_NAME: 0})
    with _loadable(logdir, readable_ends or {}) as path:
        multiplexer.AddRunsFromDirectory(path)
        warnings = [
            w for run in sorted(multiplexer.Runs()) for w in _reload(multiplexer, run)
        ]
    provider = data_provider.MultiplexerDataProvider(multiplexer, logdir)
    if path != logdir:
        # TensorBoard's loader still reads a run's first event lazily
        # (list_runs): the mirror lives as long as the provider.
        weakref.finalize(provider, shutil.rmtree, path, True)
    return provider, warnings


def _reload(multiplexer, run: str) -> list[str]:
    """Loads one run, reading on past records the loader raises on."""
    accumulator = multiplexer.GetAccumulator(run)
    for _ in range(MAX_RELOADS):
        try:
            accumulator.Reload()
            return []
        except Exception as e:  # noqa: BLE001 - whatever TensorBoard's loader raises
            last = f"{type(e).__name__}: {e}"
    return [
        f"run {run}: TensorBoard's loader failed {MAX_RELOADS} times (last: "
        f"{last}); what it read before is shown"
    ]


@contextlib.contextmanager
def _loadable(logdir: str, readable_ends: Mapping[str, int]):
    """``logdir`` itself, or (when files are to be cut) a temporary mirror:
    links to its event files, and copies of the readable part of those in
    ``readable_ends``. The caller removes the mirror."""
    if not readable_ends:
        yield logdir
        return
    mirror = tempfile.mkdtemp(prefix="tb_deadneurons-")
    try:
        for root, _, files in os.walk(logdir):
            target = os.path.join(mirror, os.path.relpath(root, logdir))
            os.makedirs(target, exist_ok=True)
            for name in files:
                if "tfevents" not in name:
                    continue
                source = os.path.join(root, name)
                if source in readable_ends:
                    _copy_head(
                        source, os.path.join(target, name), readable_ends[source]
                    )
                else:
                    os.symlink(os.path.abspath(source), os.path.join(target, name))
        yield mirror
    except BaseException:
        shutil.rmtree(mirror, ignore_errors=True)
        raise


def _copy_head(source: str, target: str, size: int) -> None:
    with open(source, "rb") as src, open(target, "wb") as dst:
        while size > 0:
            block = src.read(min(size, 1 << 22))
            if not block:
                break
            dst.write(block)
            size -= len(block)
    # The copy keeps the original's times, so the loader sees the same file.
    st = os.stat(source)
    os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns))


def _where(run: str, tag: str, step=None) -> str:
    return f"run {run}, tag {tag}" + ("" if step is None else f", step {step}")


def _capped(warnings: list[str], run: str, tag: str) -> list[str]:
    if len(warnings) <= MAX_WARNINGS:
        return warnings
    extra = len(warnings) - MAX_WARNINGS
    return warnings[:MAX_WARNINGS] + [f"{_where(run, tag)}: {extra} more warnings"]


def parse_series_metadata(run: str, tag: str, content: bytes):
    """(parsed metadata or None, warnings) for a series' plugin content."""
    try:
        meta = metadata.parse_plugin_metadata(content)
    except metadata.MetadataError as e:
        return None, [f"{_where(run, tag)}: unreadable metadata ({e}); skipped"]
    if meta.version > metadata.PROTO_VERSION:
        return meta, [
            f"{_where(run, tag)}: metadata version {meta.version} is newer than "
            f"{metadata.PROTO_VERSION}; read as version {metadata.PROTO_VERSION}"
        ]
    return meta, []


def _problem(arr, rows: int, units: int | None) -> str | None:
    """Why a snapshot tensor cannot join its series, or None."""
    if not isinstance(arr, np.ndarray) or arr.dtype != np.uint8 or arr.ndim != 2:
        shape = getattr(arr, "shape", "?")
        dtype = getattr(arr, "dtype", type(arr).__name__)
        return f"tensor {dtype} {tuple(shape)}, expected uint8 [stats, units]"
    if arr.shape[0] != rows:
        return f"{arr.shape[0]} stat rows, metadata names {rows}"
    if arr.shape[1] == 0:
        return "no units"
    if units is not None and arr.shape[1] != units:
        return f"{arr.shape[1]} units, expected {units}"
    return None


def _lut(enc) -> np.ndarray:
    """float32 value of each of the 256 codes of ``enc``.

    Raises:
      ValueError: the kind is unknown, or a code's value does not fit
        float32 (infinite, or a non-zero one read as 0: a live unit as dead).
    """
    exact = codec.decode(np.arange(256), enc)
    with np.errstate(over="ignore", under="ignore"):
        lut = exact.astype(np.float32)
    if not (np.isfinite(lut).all() and np.array_equal(lut != 0, exact != 0)):
        raise ValueError("its codes reach beyond float32")
    return lut


def decode_series(run: str, tag: str, meta, data) -> Series:
    """Builds a ``Series`` from ``TensorDatum``s (see module docstring)."""
    warnings = []
    names = list(meta.stat_names)
    luts = {}
    for i, (name, enc) in enumerate(zip(names, meta.encodings, strict=True)):
        try:
            luts[name] = (i, _lut(enc))
        except ValueError as e:
            warnings.append(
                f"{_where(run, tag)}: stat {name} not decodable ({e}); dropped"
            )
    kept, steps, units = [], [], None
    for datum in _kept(data):
        arr = datum.numpy
        problem = _problem(arr, len(names), units)
        if problem:
            warnings.append(f"{_where(run, tag, datum.step)}: {problem}; skipped")
            continue
        units = arr.shape[1] if units is None else units
        kept.append(arr)
        steps.append(datum.step)
    codes = np.stack(kept) if kept else np.zeros((0, len(names), 0), np.uint8)
    steps = np.asarray(steps, dtype=np.int64)
    if metadata.COUNT in luts and len(steps):
        empty = ~codes[:, luts[metadata.COUNT][0], :].any(axis=1)
        if empty.any():
            for step in steps[empty].tolist():
                warnings.append(
                    f"{_where(run, tag, step)}: no samples behind the snapshot "
                    "(count 0 for every unit); skipped"
                )
            codes, steps = codes[~empty], steps[~empty]
    return Series(
        run=run,
        tag=tag,
        steps=steps,
        stats=_Stats(codes, luts),
        units=units or 0,
        meta=meta,
        warnings=_capped(warnings, run, tag),
    )


class Classified(NamedTuple):
    """A series as classified: the stats used, the result, its warnings."""

    series: Series
    stats: Mapping[str, np.ndarray]
    result: classify.Classification
    warnings: list[str]


def classify_series(
    series: Series,
    tau: float = classify.DEFAULT_TAU,
    definition: str = "dead",
    constant_std: float = classify.DEFAULT_CONSTANT_STD,
) -> Classified:
    """Classifies a series with its own epsilon; never changes ``series``.

    A series without the rows ``classify.REQUIRED_STATS`` names is classified
    as having no snapshots, with a warning.

    Raises:
      ValueError: a bad threshold, or ``definition`` "grad_dormant" for a
        series without the gradient row.
    """
    thresholds = classify.Thresholds(
        definition=definition,
        tau=tau,
        epsilon=float(series.meta.epsilon),
        constant_std=constant_std,
    )
    stats, steps, warnings = series.stats, series.steps, list(series.warnings)
    if not classify.REQUIRED_STATS <= set(stats):
        warnings.append(
            f"{_where(series.run, series.tag)}: no "
            f"{' / '.join(sorted(classify.REQUIRED_STATS))} rows; not classified"
        )
        steps = steps[:0]
    if not len(steps):
        stats = {n: np.zeros((0, series.units), np.float32) for n in stats}
        stats.update(
            {
                n: np.zeros((0, series.units), np.float32)
                for n in classify.REQUIRED_STATS
            }
        )
    result = classify.classify(stats, steps, thresholds)
    return Classified(series, stats, result, warnings)


class Reader:
    """Reads one experiment's snapshot series through a ``DataProvider``.

    ``downsample`` is the number of snapshots asked for per series (pass a
    large number for all of them).
    """

    def __init__(self, data_provider, experiment_id: str, ctx=None, downsample=1000):
        self._provider = data_provider
        self.experiment_id = experiment_id
        self._ctx = ctx if ctx is not None else context.RequestContext()
        self._downsample = downsample

    def _list(self, run_tag_filter=None):
        return self._provider.list_tensors(
            self._ctx,
            experiment_id=self.experiment_id,
            plugin_name=metadata.PLUGIN_NAME,
            run_tag_filter=run_tag_filter,
        )

    def layers(self, run: str | None = None):
        """({run: {tag: Layer}} of readable snapshot series, warnings).

        Runs and tags are sorted by name; revival series are left out.
        """
        listing = self._list(provider_lib.RunTagFilter(runs=[run]) if run else None)
        result, warnings = {}, []
        for r in sorted(listing):
            for tag in sorted(listing[r]):
                ts = listing[r][tag]
                meta, w = parse_series_metadata(r, tag, ts.plugin_content)
                warnings += w
                if meta is not None and meta.kind != _REVIVAL:
                    layer = Layer(meta, ts.max_step, ts.max_wall_time)
                    result.setdefault(r, {})[tag] = layer
        return result, warnings

    def series(self, run: str, tag: str, downsample: int | None = None) -> Series:
        """The snapshots of one layer (``downsample``: how many at most, the
        newest always among them; the reader's own number by default).

        Raises:
          tensorboard.errors.NotFoundError: no such run/tag snapshot series,
            or its metadata is unreadable.
        """
        listing = self._list(provider_lib.RunTagFilter(runs=[run], tags=[tag]))
        if tag not in listing.get(run, {}):
            raise errors.NotFoundError(
                f"no snapshot series for run {run!r}, tag {tag!r}"
            )
        meta, warnings = parse_series_metadata(
            run, tag, listing[run][tag].plugin_content
        )
        if meta is None or meta.kind == _REVIVAL:
            raise errors.NotFoundError(
                f"run {run!r}, tag {tag!r} is not a readable snapshot series"
                + (f": {warnings[0]}" if warnings else "")
            )
        data = self._provider.read_tensors(
            self._ctx,
            experiment_id=self.experiment_id,
            plugin_name=metadata.PLUGIN_NAME,
            downsample=self._downsample if downsample is None else downsample,
            run_tag_filter=provider_lib.RunTagFilter(runs=[run], tags=[tag]),
        )
        series = decode_series(run, tag, meta, data.get(run, {}).get(tag, []))
        series.warnings[:0] = warnings
        return series

    def revivals(self, run: str, tag: str) -> list[dict]:
        """Logged re-initialisations of layer ``tag``: ``[{"step", "units"}]``."""
        rtag = metadata.revival_tag(tag)
        data = self._provider.read_tensors(
            self._ctx,
            experiment_id=self.experiment_id,
            plugin_name=metadata.PLUGIN_NAME,
            downsample=self._downsample,
            run_tag_filter=provider_lib.RunTagFilter(runs=[run], tags=[rtag]),
        )
        result = []
        for datum in _kept(data.get(run, {}).get(rtag, [])):
            units = np.asarray(datum.numpy).reshape(-1)
            if np.issubdtype(units.dtype, np.integer):
                result.append({"step": int(datum.step), "units": units.tolist()})
        return result

    def _scalar_listings(self, run: str) -> dict:
        """{plugin: {tag: ScalarTimeSeries}} of ``run``'s scalars."""
        return {
            plugin: self._provider.list_scalars(
                self._ctx,
                experiment_id=self.experiment_id,
                plugin_name=plugin,
                run_tag_filter=provider_lib.RunTagFilter(runs=[run]),
            ).get(run, {})
            for plugin in _SCALAR_PLUGINS
        }

    def scalar_tags(self, run: str) -> list[dict]:
        """Every scalar tag of ``run``, sorted: ``[{"tag", "source",
        "step_unit", "max_step"}]`` (``step_unit`` as ``LossSeries``')."""
        out = {}
        for plugin, listing in self._scalar_listings(run).items():
            for tag, ts in listing.items():
                out.setdefault(
                    tag,
                    {
                        "tag": tag,
                        "source": plugin,
                        "step_unit": _LOSS_UNITS.get(tag, "batch"),
                        "max_step": int(ts.max_step),
                    },
                )
        return [out[tag] for tag in sorted(out)]

    def _read_loss(self, run: str, plugin: str, tag: str, downsample: int):
        """(``LossSeries`` or None, warnings) of one scalar tag; a tag whose
        values are not float scalars (a string, a ``[3]`` tensor) is None."""
        try:
            data = self._provider.read_scalars(
                self._ctx,
                experiment_id=self.experiment_id,
                plugin_name=plugin,
                downsample=downsample,
                run_tag_filter=provider_lib.RunTagFilter(runs=[run], tags=[tag]),
            )
            points = _kept(data.get(run, {}).get(tag, []))
            values = [float(p.value) for p in points]
        except (ValueError, TypeError) as e:  # make_ndarray().item(), float()
            return None, [f"{_where(run, tag)}: not a float scalar loss ({e}); skipped"]
        unit = _LOSS_UNITS.get(tag, "batch")
        source = metadata.PLUGIN_NAME if tag == metadata.LOSS_TAG else "scalars"
        return LossSeries(tag, unit, source, [p.step for p in points], values), []

    def find_loss(self, run: str, downsample: int = 1000, tag: str | None = None):
        """(the run's loss or None, warnings).

        ``tag`` None: the first of ``LOSS_TAGS`` the run has whose values
        are float scalars (the others are skipped with a warning naming the
        tag). ``tag`` given: that scalar tag (None with a warning when the
        run has no such scalar or it is not a float scalar).
        """
        listings = self._scalar_listings(run)
        wanted = [tag] if tag is not None else [t for t, _, _ in LOSS_TAGS]
        warnings = []
        for name in wanted:
            for plugin, listing in listings.items():
                if name not in listing:
                    continue
                found, w = self._read_loss(run, plugin, name, downsample)
                warnings += w
                if found is not None:
                    return found, warnings
                break  # an odd series: try the next tag, not the next plugin
        if tag is not None and not any(tag in lst for lst in listings.values()):
            warnings.append(f"run {run} has no scalar {tag}; no loss used")
        return None, warnings

    def loss(self, run: str, downsample: int = 1000, tag: str | None = None):
        """The run's loss (``find_loss`` without its warnings), or None."""
        return self.find_loss(run, downsample, tag)[0]

    def runs(self) -> list[str]:
        """Names of every run of the experiment, sorted.

        TensorBoard's Python loader reads a run's first event inside
        ``list_runs`` when it has none yet, and lets out what its reader
        raises on a damaged file (``DecodeError``, ``OverflowError``); then
        the runs are those that our plugin's and the scalars' listings name.
        """
        try:
            runs = self._provider.list_runs(self._ctx, experiment_id=self.experiment_id)
        except Exception:  # noqa: BLE001 - whatever TensorBoard's reader raised
            return sorted(set(self._list()) | set(self._scalar_runs()))
        return sorted(r.run_name for r in runs)

    def _scalar_runs(self):
        for plugin in (metadata.PLUGIN_NAME, "scalars"):
            yield from self._provider.list_scalars(
                self._ctx, experiment_id=self.experiment_id, plugin_name=plugin
            )
