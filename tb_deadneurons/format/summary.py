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

from tb_deadneurons import checks, metadata
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


def _check_array_like(arg: str, value) -> None:
    """ValueError naming ``arg`` for None or a ragged nested list."""
    if value is None:
        raise ValueError(f"{arg} must be an array; got None")
    if isinstance(value, (list, tuple)):
        try:
            np.asarray(value)
        except ValueError:  # numpy's message does not name the argument
            raise ValueError(
                f"{arg} must be a rectangular array; got a ragged nested list"
            ) from None


def _layer_info(epsilon, unit_axis, layer_class, activation) -> dict:
    """The checked per-series fields both writers record in the metadata.

    Raises:
      ValueError: epsilon not a finite number >= 0, unit_axis not an
        integer, layer_class or activation not a str (``checks`` messages).
    """
    for name, value in (("layer_class", layer_class), ("activation", activation)):
        if not isinstance(value, str):
            raise ValueError(f"{name} must be a str; got {value!r}")
    return dict(
        epsilon=checks.epsilon(epsilon),
        unit_axis=checks.unit_axis(unit_axis),
        layer_class=layer_class,
        activation=activation,
    )


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
      ValueError: rank < 2, zero units, non-numeric dtype, bad ``unit_axis``
        or ``epsilon``, gradients of another shape, non-str ``layer_class``
        or ``activation``.
    """
    layer_info = _layer_info(epsilon, unit_axis, layer_class, activation)
    _check_array_like("data", data)
    if gradients is not None:
        _check_array_like("gradients", gradients)
    tensor = snapshot_np(
        data,
        gradients,
        unit_axis=layer_info["unit_axis"],
        epsilon=layer_info["epsilon"],
    )
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
      ValueError: ``units`` is not a 1-D sequence of non-negative integers
        that fit the record's int32 (``checks.unit_indices``).
    """
    indices = checks.unit_indices("units", units)
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
      ValueError: rank < 2, zero units, non-numeric dtype, bad ``unit_axis``
        or ``epsilon``, gradients of another shape, non-str ``layer_class``
        or ``activation``, or no step given and none set.
    """
    import tensorflow as tf

    layer_info = _layer_info(epsilon, unit_axis, layer_class, activation)
    unit_axis, epsilon = layer_info["unit_axis"], layer_info["epsilon"]
    summary_metadata = metadata.create_summary_metadata(
        None,
        description,
        with_gradients=gradients is not None,
        **layer_info,
    )
    # Validate eagerly so bad input fails at the call, not when recorded.
    _check_array_like("data", data)
    check_tf(tf, "data", data, unit_axis)
    if gradients is not None:
        _check_array_like("gradients", gradients)
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
