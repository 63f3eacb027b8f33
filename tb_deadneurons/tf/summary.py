"""The snapshot summary as a TensorFlow op (``tf.summary`` style).

``activations`` computes the per-unit statistics of a layer's output inside
the TensorFlow graph (``tf.stats``) and writes one tensor summary, the same
summary ``format.summary.activations_pb`` builds from numpy; ``revivals`` is
the op twin of ``revivals_pb``. TensorFlow is imported when an op runs.
"""

from __future__ import annotations

import numpy as np

from tb_deadneurons.format import checks, metadata
from tb_deadneurons.format import summary as summary_pb
from tb_deadneurons.tf.stats import check_tf, snapshot_tf, write_once

__all__ = ["activations", "revivals"]


def activations(
    name: str,
    data,
    step=None,
    gradients=None,
    description: str | None = None,
    *,
    unit_axis: int = -1,
    epsilon: float = 0.0,
    layer_class: str = "",
    activation: str = "",
):
    """Writes a per-unit activation snapshot of ``data`` (a ``tf.summary`` op).

    The statistics are computed in the graph, only when the summary is
    recorded (``tf.summary.record_if``, a default writer); the activations
    themselves never leave the device.

    Args:
      name: tag of the series (the layer's name); name scopes prefix it.
      data: a layer's output, a float or int ``Tensor`` of rank >= 2 whose
        ``unit_axis`` holds the units; every other axis is reduced.
      step: explicit ``int64`` step; defaults to
        ``tf.summary.experimental.get_step()``.
      gradients: optional dL/d(data), same shape; adds ``grad_mean_abs``.
      description: optional long-form description.
      unit_axis: the axis holding the units (-1 channels-last, 1 channels-first).
      epsilon: a position counts as active where |a| > epsilon.
      layer_class, activation: recorded in the metadata for readers.

    Returns:
      What ``tf.summary.write`` returns: True on success, False when no
      default writer is set or recording is off.

    Raises:
      ValueError: rank < 2, zero units, non-numeric dtype, bad ``unit_axis``
        or ``epsilon``, gradients of another shape, non-str ``layer_class``
        or ``activation``, or no step given and none set.
    """
    import tensorflow as tf

    layer_info = summary_pb.layer_info(epsilon, unit_axis, layer_class, activation)
    unit_axis, epsilon = layer_info["unit_axis"], layer_info["epsilon"]
    summary_metadata = metadata.create_summary_metadata(
        None,
        description,
        with_gradients=gradients is not None,
        **layer_info,
    )
    # Validate eagerly so bad input fails at the call, not when recorded.
    summary_pb.check_array_like("data", data)
    check_tf(tf, "data", data, unit_axis)
    if gradients is not None:
        summary_pb.check_array_like("gradients", gradients)
        check_tf(tf, "gradients", gradients, unit_axis)
    with tf.summary.experimental.summary_scope(
        name, "deadneurons_summary", values=[data, gradients, step]
    ) as (tag, _):
        return write_once(
            tag,
            lambda: snapshot_tf(data, gradients, unit_axis=unit_axis, epsilon=epsilon),
            step,
            summary_metadata,
        )


def revivals(layer_tag: str, units, step=None):
    """Writes a revival record (the op twin of ``revivals_pb``).

    Returns:
      What ``tf.summary.write`` returns.

    Raises:
      ValueError: as ``revivals_pb``.
    """
    import tensorflow as tf

    indices = checks.unit_indices("units", units)
    return tf.summary.write(
        tag=metadata.revival_tag(layer_tag),
        tensor=tf.constant(indices.astype(np.int32)),
        step=step,
        metadata=metadata.create_revival_metadata(layer_tag),
    )
