"""The snapshot summary as a protobuf, from numpy (no TensorFlow).

``activations_pb`` builds one tensor summary of a layer's output from an
array: every axis but the unit axis (batch, time, space) is reduced and the
statistics are encoded as ``codec`` says; ``metadata`` describes the result.
``revivals_pb`` records re-initialised units. ``tb_deadneurons.tf.summary``
holds the TensorFlow op twins; ``tb_deadneurons.summary`` is the public face
of both.
"""

from __future__ import annotations

import numpy as np
from tensorboard.compat.proto import summary_pb2
from tensorboard.util import tensor_util

from tb_deadneurons.format import checks, metadata
from tb_deadneurons.format.stats import snapshot_np

__all__ = ["activations_pb", "revivals_pb", "check_array_like", "layer_info"]


def check_array_like(arg: str, value) -> None:
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


def layer_info(epsilon, unit_axis, layer_class, activation) -> dict:
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
    info = layer_info(epsilon, unit_axis, layer_class, activation)
    check_array_like("data", data)
    if gradients is not None:
        check_array_like("gradients", gradients)
    tensor = snapshot_np(
        data,
        gradients,
        unit_axis=info["unit_axis"],
        epsilon=info["epsilon"],
    )
    summary_metadata = metadata.create_summary_metadata(
        None,
        description,
        with_gradients=gradients is not None,
        **info,
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
