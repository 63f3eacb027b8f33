"""Reading API for notebooks: a log dir's snapshots as numpy arrays.

Example:

```python
from tb_deadneurons import api

logs = api.load("logs")                  # or api.load("logs", run="train")
layer = logs.layers["train"]["dense"]
layer.steps                              # int64 [T]
layer.stats["active_fraction"]           # float32 [T, U]
layer.result.dead                        # bool [T, U]
layer.dead_now, layer.died_at()          # as the report and the dashboard
frame = logs.to_dataframe()              # one row per (run, tag, step, unit)
```

``load`` is the one path the report uses too: the same snapshots (restart
rule, odd-data rules of ``reader``), the same classification, the same
warnings (``records.Scanner``'s damage and restarts included).
``decode_snapshot`` decodes one snapshot read by any other tool (tbparse,
``EventAccumulator``, ``tf.data.TFRecordDataset``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

import numpy as np

from tb_deadneurons.analysis import classify
from tb_deadneurons.board import reader, records
from tb_deadneurons.format import codec, metadata


@dataclasses.dataclass
class Layer:
    """One layer's snapshots and their classification.

    ``stats`` maps stat name -> float32 ``[T, U]`` (decoded on first use);
    ``result`` is ``classify.Classification`` (``dead``, ``dormant``,
    ``grad_dormant`` masks ``[T, U]``, ``died_at()``, ``revived()``, ...).
    """

    run: str
    tag: str
    layer_class: str
    activation: str
    epsilon: float
    stats: Mapping[str, np.ndarray]
    result: classify.Classification
    hints: list[dict]
    revivals: list[dict]

    @property
    def steps(self) -> np.ndarray:
        return self.result.steps

    @property
    def units(self) -> int:
        return self.result.units

    @property
    def dead_now(self) -> list[int]:
        return self.result.dead_now

    @property
    def mean_abs(self) -> np.ndarray:
        """The layer's mean |a| per step, float64 ``[T]`` (NaN: no data)."""
        if not len(self.steps):
            return np.zeros(0)
        return classify.layer_mean_abs(self.stats)

    def died_at(self) -> list[int | None]:
        return self.result.died_at()


@dataclasses.dataclass
class Logs:
    """``layers[run][tag]``: every classified layer; ``warnings``: what was
    skipped or set aside, and why (runs and tags sorted by name)."""

    layers: dict[str, dict[str, Layer]]
    warnings: list[str]

    def to_dataframe(self):
        """A long pandas DataFrame: one row per (run, tag, step, unit), a
        column per stat and per state (``dead``, ``dormant``, ``grad_dormant``
        where logged). Needs pandas."""
        import pandas as pd

        frames = [
            _frame(layer) for tags in self.layers.values() for layer in tags.values()
        ]
        if not frames:
            return pd.DataFrame(columns=["run", "tag", "step", "unit"])
        return pd.concat(frames, ignore_index=True)


def _frame(layer: Layer):
    import pandas as pd

    t, u = len(layer.steps), layer.units
    columns = {
        "run": layer.run,
        "tag": layer.tag,
        "step": np.repeat(layer.steps, u),
        "unit": np.tile(np.arange(u), t),
    }
    columns.update({name: layer.stats[name].reshape(-1) for name in layer.stats})
    r = layer.result
    columns.update(dead=r.dead.reshape(-1), dormant=r.dormant.reshape(-1))
    if r.grad_dormant is not None:
        columns["grad_dormant"] = r.grad_dormant.reshape(-1)
    return pd.DataFrame(columns)


def load(
    logdir: str,
    run: str | None = None,
    tau: float = classify.DEFAULT_TAU,
    definition: str = "dead",
    constant_std: float = classify.DEFAULT_CONSTANT_STD,
    loss_tag: str | None = None,
) -> Logs:
    """Reads and classifies every snapshot series under ``logdir``.

    Every snapshot on disk is read (no sampling), everything readable of a
    damaged file included (``records``: a record that is not an ``Event`` is
    skipped, an absurd length header ends what is read of its file; each is
    a warning with file and byte). Layers without a readable snapshot are
    left out, with a warning. ``tau``, ``definition`` and
    ``constant_std`` are ``classify.Thresholds``'; the epsilon is each
    series' own. The hints use the loss scalar ``loss_tag`` names (default:
    the first of ``reader.LOSS_TAGS`` with float values; odd loss scalars
    are skipped with a warning).

    Raises:
      ValueError: a bad threshold; ``definition="grad_dormant"`` where a
        series has no gradient row.
      OSError: the log dir cannot be read.
    """
    classify.Thresholds(definition=definition, tau=tau, constant_std=constant_std)
    scanner = records.Scanner(logdir)
    provider, warnings = reader.local_data_provider(logdir, scanner.readable_ends())
    rd = reader.Reader(provider, "", downsample=reader.ALL_SAMPLES)
    found, more = rd.layers(run)
    warnings += more
    layers = {}
    for run_, tags in found.items():
        loss, w = rd.find_loss(run_, reader.ALL_SAMPLES, loss_tag)
        warnings += w
        for tag in tags:
            layer, w = _layer(rd, run_, tag, loss, (tau, definition, constant_std))
            warnings += w
            if layer is not None:
                layers.setdefault(run_, {})[tag] = layer
    warnings += scanner.warnings(run)
    return Logs(layers, list(dict.fromkeys(warnings)))


def _layer(rd: reader.Reader, run: str, tag: str, loss, thresholds: tuple):
    """(the classified ``Layer`` or None without snapshots, its warnings)."""
    series = rd.series(run, tag)
    _, stats, result, warnings = reader.classify_series(series, *thresholds)
    if not len(result.steps):
        return None, warnings
    meta = series.meta
    return Layer(
        run,
        tag,
        meta.layer_class,
        meta.activation,
        float(meta.epsilon),
        stats,
        result,
        classify.hints(result, meta.activation, loss),
        rd.revivals(run, tag),
    ), warnings


def decode_snapshot(tensor, summary_metadata) -> dict[str, np.ndarray]:
    """Decodes one snapshot read by another tool to ``{stat: float [units]}``.

    Args:
      tensor: the logged ``uint8 [stats, units]`` tensor: a numpy array, a
        ``TensorProto`` (``EventAccumulator.Tensors(tag)[i].tensor_proto``)
        or anything ``np.asarray`` takes (tbparse's ``value`` column).
      summary_metadata: the series' ``SummaryMetadata`` (from its first
        event; ``EventAccumulator.SummaryMetadata(tag)``), its
        ``plugin_data.content`` bytes, or parsed ``DeadNeuronsPluginData``.

    Raises:
      ValueError: not a snapshot of this plugin, or not decodable
        (``metadata.MetadataError`` is a ValueError).
    """
    plugin_data = summary_metadata
    if hasattr(plugin_data, "plugin_data"):
        if plugin_data.plugin_data.plugin_name != metadata.PLUGIN_NAME:
            raise ValueError(
                f"summary_metadata is of plugin {plugin_data.plugin_data.plugin_name!r}"
            )
        plugin_data = plugin_data.plugin_data.content
    if isinstance(plugin_data, bytes):
        plugin_data = metadata.parse_plugin_metadata(plugin_data)
    if hasattr(tensor, "tensor_shape"):  # a TensorProto
        from tensorboard.util import tensor_util

        tensor = tensor_util.make_ndarray(tensor)
    return codec.decode_snapshot(np.asarray(tensor), plugin_data)
