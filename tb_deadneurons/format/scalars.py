"""Standard scalars per watched layer, for every tool that reads scalars.

At each snapshot a writer can also log, per watched layer, plain scalar
summaries (``simple_value``, what PyTorch's ``SummaryWriter.add_scalar``
writes and every reader takes: TensorBoard migrates them to the Scalars
plugin, tbparse lists them in ``.scalars``, which the tensor form of
``scalar_pb`` is not) under
``deadneurons/<layer tag>/<name>``: the Scalars dashboard, HParams (as
metrics), tbparse and tools that sync TensorBoard scalars (W&B, Comet) read
them without this plugin. ``tb_deadneurons.analysis.progress`` computes the
values; this module only names and encodes them.
"""

from __future__ import annotations

from tensorboard.compat.proto import summary_pb2

from tb_deadneurons.format.metadata import PLUGIN_NAME

# The scalars logged per layer, in order: dead share and tau-dormant share
# (at the default thresholds) of the layer's units.
DEAD_FRACTION = "dead_fraction"
DORMANT_FRACTION = "dormant_fraction"
SCALAR_NAMES = (DEAD_FRACTION, DORMANT_FRACTION)


def scalar_tag(layer_tag: str, name: str) -> str:
    """``deadneurons/<layer_tag>/<name>``: the tag of one layer scalar."""
    return f"{PLUGIN_NAME}/{layer_tag}/{name}"


def layer_scalars_pb(layer_tag: str, values: dict[str, float]) -> summary_pb2.Summary:
    """One ``Summary`` holding the layer's scalars (``SCALAR_NAMES`` order).

    Raises:
      ValueError: ``values`` lacks one of ``SCALAR_NAMES``.
    """
    missing = [n for n in SCALAR_NAMES if n not in values]
    if missing:
        raise ValueError(f"values must have {', '.join(missing)}; got {values!r}")
    summary = summary_pb2.Summary()
    for name in SCALAR_NAMES:
        summary.value.add(
            tag=scalar_tag(layer_tag, name), simple_value=float(values[name])
        )
    return summary
