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

from tb_deadneurons import codec, metadata
from tb_deadneurons.proto import plugin_data_pb2

_Kind = plugin_data_pb2.RowEncoding


def _check_shape(arg: str, shape, unit_axis: int) -> None:
    rank = len(shape)
    if rank < 2:
        raise ValueError(
            f"{arg} must have rank >= 2 (batch, ..., units); got shape {tuple(shape)}"
        )
    if not -rank <= unit_axis < rank:
        raise ValueError(
            f"unit_axis={unit_axis} is out of range for {arg} of rank {rank}"
        )
    if shape[unit_axis] == 0:
        raise ValueError(
            f"{arg} has zero units on axis {unit_axis}: shape {tuple(shape)}"
        )


def _check_numpy_dtype(arg: str, array: np.ndarray) -> None:
    if array.dtype == np.bool_ or not np.issubdtype(array.dtype, np.number):
        raise ValueError(f"{arg} must be numeric; got dtype {array.dtype}")
    if np.issubdtype(array.dtype, np.complexfloating):
        raise ValueError(f"{arg} must be real; got dtype {array.dtype}")


# --- numpy twin -------------------------------------------------------------


def _per_unit_stats_np(x: np.ndarray, epsilon: float) -> dict[str, np.ndarray]:
    """Statistics of the finite values of ``x`` ([n, units]) per column."""
    finite = np.isfinite(x)
    x0 = np.where(finite, x, np.float32(0))
    count = finite.sum(axis=0, dtype=np.float32)
    denom = np.maximum(count, np.float32(1))
    absx = np.abs(x0)
    mean = x0.sum(axis=0, dtype=np.float32) / denom
    centred = np.where(finite, x0 - mean, np.float32(0))
    return {
        metadata.ACTIVE_FRACTION: (finite & (absx > np.float32(epsilon))).sum(
            axis=0, dtype=np.float32
        )
        / denom,
        metadata.MEAN_ABS: absx.sum(axis=0, dtype=np.float32) / denom,
        metadata.MEAN: mean,
        metadata.STD: np.sqrt(
            (centred * centred).sum(axis=0, dtype=np.float32) / denom
        ),
        metadata.MAX_ABS: absx.max(axis=0, initial=np.float32(0)),
        metadata.COUNT: count,
        metadata.NONFINITE: np.float32(x.shape[0]) - count,
    }


def _as_units_last_np(arg: str, data, unit_axis: int) -> np.ndarray:
    array = np.asarray(data)
    _check_numpy_dtype(arg, array)
    _check_shape(arg, array.shape, unit_axis)
    array = np.moveaxis(array, unit_axis, -1)
    return array.reshape(-1, array.shape[-1]).astype(np.float32)


def snapshot_np(
    data, gradients=None, *, unit_axis: int = -1, epsilon: float = 0.0
) -> np.ndarray:
    """The encoded ``[num_stats, units]`` uint8 snapshot of a numpy array."""
    x = _as_units_last_np("data", data, unit_axis)
    stats = _per_unit_stats_np(x, epsilon)
    if gradients is not None:
        g = _as_units_last_np("gradients", gradients, unit_axis)
        if g.shape != x.shape:
            raise ValueError(
                f"gradients must have the shape of data: {np.shape(gradients)} vs "
                f"{np.shape(data)}"
            )
        stats[metadata.GRAD_MEAN_ABS] = _per_unit_stats_np(g, 0.0)[metadata.MEAN_ABS]
    names = metadata.stat_names(gradients is not None)
    return np.stack([codec.encode(stats[n], metadata.ENCODINGS[n]) for n in names])


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
    tensor = snapshot_np(data, gradients, unit_axis=unit_axis, epsilon=epsilon)
    summary_metadata = metadata.create_summary_metadata(
        display_name=None,
        description=description,
        with_gradients=gradients is not None,
        epsilon=epsilon,
        layer_class=layer_class,
        activation=activation,
        unit_axis=unit_axis,
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


def _units_last_tf(tf, arg: str, x, unit_axis: int):
    x = tf.convert_to_tensor(x)
    if x.dtype.is_bool or not (x.dtype.is_floating or x.dtype.is_integer):
        raise ValueError(f"{arg} must be real and numeric; got dtype {x.dtype.name}")
    if x.shape.rank is None:
        raise ValueError(f"{arg} must have a known rank; got shape {x.shape}")
    _check_shape(arg, x.shape.as_list(), unit_axis)
    rank = x.shape.rank
    axis = unit_axis % rank
    if axis != rank - 1:
        x = tf.transpose(x, [i for i in range(rank) if i != axis] + [axis])
    units = x.shape[-1]
    return tf.reshape(tf.cast(x, tf.float32), [-1, units if units is not None else -1])


def _per_unit_stats_tf(tf, x, epsilon: float) -> dict:
    finite = tf.math.is_finite(x)
    x0 = tf.where(finite, x, 0.0)
    finite_f = tf.cast(finite, tf.float32)
    count = tf.reduce_sum(finite_f, axis=0)
    denom = tf.maximum(count, 1.0)
    absx = tf.abs(x0)
    mean = tf.reduce_sum(x0, axis=0) / denom
    centred = (x0 - mean) * finite_f
    active = tf.cast(absx > epsilon, tf.float32) * finite_f
    n = tf.cast(tf.shape(x)[0], tf.float32)
    return {
        metadata.ACTIVE_FRACTION: tf.reduce_sum(active, axis=0) / denom,
        metadata.MEAN_ABS: tf.reduce_sum(absx, axis=0) / denom,
        metadata.MEAN: mean,
        metadata.STD: tf.sqrt(tf.reduce_sum(centred * centred, axis=0) / denom),
        # max over an empty batch is -inf in TF; clamp to numpy's initial 0.
        metadata.MAX_ABS: tf.maximum(tf.reduce_max(absx, axis=0), 0.0),
        metadata.COUNT: count,
        metadata.NONFINITE: n - count,
    }


def _log_codes_tf(tf, magnitude, enc, max_code: int):
    pos = (tf.math.log(magnitude) / np.float32(np.log(2.0)) - enc.log2_min) * (
        enc.steps_per_octave
    )
    pos = tf.where(magnitude > 0, pos, 0.0)
    codes = tf.clip_by_value(tf.floor(pos + 0.5) + 1.0, 1.0, float(max_code))
    return tf.where(magnitude > 0, codes, 0.0)


def _encode_tf(tf, values, enc):
    if enc.kind == _Kind.UNIT_FRACTION:
        v = tf.clip_by_value(values, 0.0, 1.0)
        mid = tf.clip_by_value(tf.floor(v * codec.FRACTION_SCALE + 0.5), 1.0, 254.0)
        codes = tf.where(v <= 0.0, 0.0, tf.where(v >= 1.0, float(codec.MAX_CODE), mid))
    elif enc.kind == _Kind.LOG:
        codes = _log_codes_tf(tf, tf.abs(values), enc, codec.MAX_CODE)
    else:
        codes = _log_codes_tf(
            tf, tf.abs(values), enc, codec.SIGNED_MAX_CODE
        ) + tf.where(values < 0.0, float(codec.SIGN_BIT), 0.0)
    return tf.cast(codes, tf.uint8)


def snapshot_tf(data, gradients=None, *, unit_axis: int = -1, epsilon: float = 0.0):
    """The encoded ``[num_stats, units]`` uint8 snapshot, computed in-graph."""
    import tensorflow as tf

    x = _units_last_tf(tf, "data", data, unit_axis)
    stats = _per_unit_stats_tf(tf, x, epsilon)
    if gradients is not None:
        g = _units_last_tf(tf, "gradients", gradients, unit_axis)
        if not g.shape.is_compatible_with(x.shape):
            raise ValueError(
                "gradients must have the shape of data: "
                f"{gradients.shape} vs {data.shape}"
            )
        stats[metadata.GRAD_MEAN_ABS] = _per_unit_stats_tf(tf, g, 0.0)[
            metadata.MEAN_ABS
        ]
    names = metadata.stat_names(gradients is not None)
    return tf.stack([_encode_tf(tf, stats[n], metadata.ENCODINGS[n]) for n in names])


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

    summary_metadata = metadata.create_summary_metadata(
        display_name=None,
        description=description,
        with_gradients=gradients is not None,
        epsilon=epsilon,
        layer_class=layer_class,
        activation=activation,
        unit_axis=unit_axis,
    )
    # Validate eagerly so bad input fails at the call, not when recorded.
    _units_last_tf(tf, "data", data, unit_axis)
    if gradients is not None:
        _units_last_tf(tf, "gradients", gradients, unit_axis)
    with tf.summary.experimental.summary_scope(
        name, "deadneurons_summary", values=[data, gradients, step]
    ) as (tag, _):
        return tf.summary.write(
            tag=tag,
            tensor=lambda: snapshot_tf(
                data, gradients, unit_axis=unit_axis, epsilon=epsilon
            ),
            step=step,
            metadata=summary_metadata,
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
