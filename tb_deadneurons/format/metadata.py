"""Plugin name, format version and the summary metadata of a snapshot series.

A snapshot is a tensor summary: ``uint8`` of shape ``[num_stats, units]``,
one row per statistic (named, in order, by ``stat_names`` in the metadata),
one column per unit. ``SummaryMetadata.plugin_data.content`` is a serialized
``DeadNeuronsPluginData``; ``data_class`` is ``DATA_CLASS_TENSOR``.
"""

from __future__ import annotations

from tensorboard.compat.proto import summary_pb2

from tb_deadneurons.format import codec
from tb_deadneurons.format.proto import plugin_data_pb2

PLUGIN_NAME = "deadneurons"

# The scalar every writer logs the training loss to, at the snapshots' steps.
LOSS_TAG = "deadneurons/loss"

# Increase on any change a reader must know about; never reuse field numbers.
PROTO_VERSION = 1

ACTIVE_FRACTION = "active_fraction"
MEAN_ABS = "mean_abs"
MEAN = "mean"
STD = "std"
MAX_ABS = "max_abs"
COUNT = "count"
NONFINITE = "nonfinite"
GRAD_MEAN_ABS = "grad_mean_abs"

# Row order of the tensor the writer logs; GRAD_MEAN_ABS only with gradients.
# ``count`` is the number of finite values behind each unit's statistics
# (batch x time x space), ``nonfinite`` the number of NaN/Inf values dropped.
BASE_STATS = (ACTIVE_FRACTION, MEAN_ABS, MEAN, STD, MAX_ABS, COUNT, NONFINITE)
# The row of the NaN/Inf count, which the writers check before encoding.
NONFINITE_ROW = BASE_STATS.index(NONFINITE)

# Activations: 2**-32 .. 2**18.8 at 5 steps per octave (about +-7 %);
# counts: 1 .. 2**63 at 4 steps per octave; gradients reach far smaller values.
ENCODINGS = {
    ACTIVE_FRACTION: codec.fraction(),
    MEAN_ABS: codec.log(-32.0, 5.0),
    MEAN: codec.signed_log(-24.0, 3.0),
    STD: codec.log(-32.0, 5.0),
    MAX_ABS: codec.log(-32.0, 5.0),
    COUNT: codec.log(0.0, 4.0),
    NONFINITE: codec.log(0.0, 4.0),
    GRAD_MEAN_ABS: codec.log(-48.0, 4.0),
}


def stat_names(with_gradients: bool) -> tuple[str, ...]:
    """The row names a snapshot has, with or without the gradient row."""
    return BASE_STATS + ((GRAD_MEAN_ABS,) if with_gradients else ())


def snapshot_plugin_data(
    *,
    with_gradients: bool = False,
    epsilon: float = 0.0,
    layer_class: str = "",
    activation: str = "",
    unit_axis: int = -1,
) -> plugin_data_pb2.DeadNeuronsPluginData:
    """The current-version ``DeadNeuronsPluginData`` of a snapshot series."""
    names = stat_names(with_gradients)
    return plugin_data_pb2.DeadNeuronsPluginData(
        version=PROTO_VERSION,
        stat_names=names,
        encodings=[ENCODINGS[n] for n in names],
        epsilon=epsilon,
        layer_class=layer_class,
        activation=activation,
        unit_axis=unit_axis,
    )


def create_summary_metadata(
    display_name: str | None,
    description: str | None,
    *,
    with_gradients: bool = False,
    epsilon: float = 0.0,
    layer_class: str = "",
    activation: str = "",
    unit_axis: int = -1,
) -> summary_pb2.SummaryMetadata:
    """Builds the ``SummaryMetadata`` for a snapshot series."""
    content = snapshot_plugin_data(
        with_gradients=with_gradients,
        epsilon=epsilon,
        layer_class=layer_class,
        activation=activation,
        unit_axis=unit_axis,
    )
    return summary_pb2.SummaryMetadata(
        display_name=display_name or "",
        summary_description=description or "",
        plugin_data=summary_pb2.SummaryMetadata.PluginData(
            plugin_name=PLUGIN_NAME, content=content.SerializeToString()
        ),
        data_class=summary_pb2.DATA_CLASS_TENSOR,
    )


REVIVAL_TAG_PREFIX = "_revivals/"


def revival_tag(layer_tag: str) -> str:
    """The tag of the revival series for the snapshot series ``layer_tag``."""
    return REVIVAL_TAG_PREFIX + layer_tag


def create_revival_metadata(layer_tag: str) -> summary_pb2.SummaryMetadata:
    """``SummaryMetadata`` of a revival series: int32 ``[n]`` unit indices."""
    content = plugin_data_pb2.DeadNeuronsPluginData(
        version=PROTO_VERSION,
        kind=plugin_data_pb2.DeadNeuronsPluginData.REVIVAL,
        layer=layer_tag,
    )
    return summary_pb2.SummaryMetadata(
        plugin_data=summary_pb2.SummaryMetadata.PluginData(
            plugin_name=PLUGIN_NAME, content=content.SerializeToString()
        ),
        data_class=summary_pb2.DATA_CLASS_TENSOR,
    )


class MetadataError(ValueError):
    """Plugin content that cannot be read as ``DeadNeuronsPluginData``."""


def parse_plugin_metadata(content: bytes) -> plugin_data_pb2.DeadNeuronsPluginData:
    """Parses ``plugin_data.content`` into ``DeadNeuronsPluginData``.

    Versions newer than ``PROTO_VERSION`` are returned as parsed (fields are
    never reused, so known fields keep their meaning); the caller decides
    whether to warn. Migration from older versions happens here.

    Raises:
      MetadataError: ``content`` is not a parsable message, has no version,
        or its rows and encodings do not match.
    """
    if not isinstance(content, bytes):
        raise MetadataError(f"content must be bytes, got {type(content).__name__}")
    result = plugin_data_pb2.DeadNeuronsPluginData()
    try:
        result.ParseFromString(content)
    except Exception as e:  # protobuf raises DecodeError or RuntimeError
        raise MetadataError(f"unparsable plugin content: {e}") from None
    if result.version <= 0:
        raise MetadataError("plugin content has no version")
    if result.version == 1:
        pass  # current format; older versions would be migrated here
    if result.kind == plugin_data_pb2.DeadNeuronsPluginData.REVIVAL:
        if not result.layer:
            raise MetadataError("revival series names no layer")
        return result
    if len(result.stat_names) != len(result.encodings):
        raise MetadataError(
            f"{len(result.stat_names)} stat names but {len(result.encodings)} encodings"
        )
    return result
