"""The snapshot summary: a TensorFlow op and its numpy twin.

``activations`` computes per-unit statistics of a layer's output inside the
TensorFlow graph and writes one tensor summary; ``activations_pb`` builds the
same summary from a numpy array without importing TensorFlow. Both reduce
every axis but the unit axis (batch, time, space) and encode the statistics
as ``codec`` says; ``metadata`` describes the result.
"""

from __future__ import annotations

import numpy as np
from tensorboard.compat.proto import summary_pb2
from tensorboard.util import tensor_util

from tb_deadneurons import metadata
from tb_deadneurons.stats import snapshot_np
from tb_deadneurons.stats_tf import check_tf, snapshot_tf, write_once

__all__ = [
    "activations",
    "activations_pb",
    "revivals",
    "revivals_pb",
    "snapshot_np",
    "snapshot_tf",
]


def activations_pb(
    name: str,
    data,
    gradients=None,
    description: str | None = None,
    *,
    unit_axis: int = -1,
    epsilon: float = 0.0,
    layer_class: str = "",
    activation: str = "",
) -> summary_pb2.Summary:
    """A snapshot summary protobuf from numpy data (no TensorFlow needed).

    Args:
      name: tag of the series (the layer's name).
      data: the layer's output, array-like of rank >= 2, numeric.
      gradients: optional dL/d(data), same shape; adds ``grad_mean_abs``.
      description: optional long-form description.
      unit_axis: the axis that holds the units (-1 for channels-last).
      epsilon: a position counts as active where |a| > epsilon.
      layer_class, activation: recorded in the metadata for readers.

    Returns:
      A ``tensorboard.compat.proto.summary_pb2.Summary`` with one value.

    Raises:
      ValueError: rank < 2, zero units, non-numeric dtype, bad ``unit_axis``,
        or gradients of another shape.
    """
    layer_info = dict(
        epsilon=epsilon,
        layer_class=layer_class,
        activation=activation,
        unit_axis=unit_axis,
    )
    tensor = snapshot_np(data, gradients, unit_axis=unit_axis, epsilon=epsilon)
    summary_metadata = metadata.create_summary_metadata(
        None,
        description,
        with_gradients=gradients is not None,
        **layer_info,
    )
    summary = summary_pb2.Summary()
    summary.value.add(
        tag=name,
        metadata=summary_metadata,
        tensor=tensor_util.make_tensor_proto(tensor),
    )
    return summary


def revivals_pb(layer_tag: str, units) -> summary_pb2.Summary:
    """A revival record: ``units`` of ``layer_tag`` were re-initialised.

    Raises:
      ValueError: ``units`` is not a 1-D sequence of non-negative integers.
    """
    indices = np.asarray(units)
    if indices.ndim != 1 or (
        indices.size and not np.issubdtype(indices.dtype, np.integer)
    ):
        raise ValueError(f"units must be a 1-D list of ints; got {units!r}")
    if indices.size and indices.min() < 0:
        raise ValueError(f"units must be non-negative; got {units!r}")
    summary = summary_pb2.Summary()
    summary.value.add(
        tag=metadata.revival_tag(layer_tag),
        metadata=metadata.create_revival_metadata(layer_tag),
        tensor=tensor_util.make_tensor_proto(indices.astype(np.int32)),
    )
    return summary


# --- TensorFlow op ----------------------------------------------------------


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
      ValueError: rank < 2, zero units, non-numeric dtype, bad ``unit_axis``,
        gradients of another shape, or no step given and none set.
    """
    import tensorflow as tf

    layer_info = dict(
        epsilon=epsilon,
        layer_class=layer_class,
        activation=activation,
        unit_axis=unit_axis,
    )
    summary_metadata = metadata.create_summary_metadata(
        None,
        description,
        with_gradients=gradients is not None,
        **layer_info,
    )
    # Validate eagerly so bad input fails at the call, not when recorded.
    check_tf(tf, "data", data, unit_axis)
    if gradients is not None:
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
    """
    import tensorflow as tf

    return tf.summary.write(
        tag=metadata.revival_tag(layer_tag),
        tensor=tf.constant(np.asarray(units, dtype=np.int32).reshape(-1)),
        step=step,
        metadata=metadata.create_revival_metadata(layer_tag),
    )
