"""Per-unit statistics of a layer's output computed in the TensorFlow graph.

The in-graph twin of ``format.stats.snapshot_np``: same reductions, same codes
(a test pins them together). TensorFlow is passed in, not imported, so the
module imports without it.
"""

from __future__ import annotations

import weakref

import numpy as np

from tb_deadneurons.format import codec, metadata
from tb_deadneurons.format.stats import check_shape
from tb_deadneurons.tf import private


def check_tf(tf, arg: str, x, unit_axis: int):
    """``x`` as a tensor; ValueError naming ``arg`` for a bad dtype or shape."""
    x = tf.convert_to_tensor(x)
    if x.dtype.is_bool or not (x.dtype.is_floating or x.dtype.is_integer):
        raise ValueError(f"{arg} must be real and numeric; got dtype {x.dtype.name}")
    if x.shape.rank is None:
        raise ValueError(f"{arg} must have a known rank; got shape {x.shape}")
    check_shape(arg, x.shape.as_list(), unit_axis)
    return x


def units_last_tf(tf, arg: str, x, unit_axis: int):
    """``x`` checked, as float32 ``[positions, units]``."""
    x = check_tf(tf, arg, x, unit_axis)
    rank = x.shape.rank
    axis = unit_axis % rank
    if axis != rank - 1:
        x = tf.transpose(x, [i for i in range(rank) if i != axis] + [axis])
    units = x.shape[-1]
    return tf.reshape(tf.cast(x, tf.float32), [-1, units if units is not None else -1])


def _column_sums(tf, x):
    # A matrix-vector product: much faster than reduce_sum over axis 0 of a
    # tall, narrow [positions, units] matrix on CPU.
    return tf.linalg.matvec(x, tf.ones(tf.shape(x)[:1], x.dtype), transpose_a=True)


def _masked_stats(tf, x, epsilon: float):
    """Statistics of the finite values only: the path for NaN/Inf input."""
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
    return (
        tf.reduce_sum(active, axis=0) / denom,
        tf.reduce_sum(absx, axis=0) / denom,
        mean,
        tf.sqrt(tf.reduce_sum(centred * centred, axis=0) / denom),
        # max over an empty batch is -inf in TF; clamp to numpy's initial 0.
        tf.maximum(tf.reduce_max(absx, axis=0), 0.0),
        count,
        n - count,
    )


def _unmasked_stats(tf, x, epsilon: float) -> tuple:
    """``metadata.BASE_STATS`` rows of ``x`` ([positions, units]) for finite
    values: column sums by matrix-vector products and a one-pass variance
    shifted by the first row, which is exact (0) for constant units. The
    ``nonfinite`` row is 1 for a unit whose ``sum |x|`` is not finite (its
    other rows are then garbage), else 0.

    Fusing further measured slower on CPU (TF 2.21, [173056, 16] and
    [32768, 64]): ``jit_compile=True`` 2-4x, one matvec over the four
    columns concatenated 1.5-2x, ``reduce_sum`` 1.5-1.7x, and reducing a
    channels-first tensor over its axes without the transpose 1.2-3x.
    """
    absx = tf.abs(x)
    sum_abs = _column_sums(tf, absx)
    n = tf.cast(tf.shape(x)[0], tf.float32)
    denom = tf.maximum(n, 1.0)
    shift = tf.reduce_sum(x[:1], axis=0)  # the first row; zeros for no row
    mean_d = _column_sums(tf, x) / denom - shift
    squares = _column_sums(tf, tf.math.squared_difference(x, shift))
    var = tf.maximum(squares / denom - mean_d * mean_d, 0.0)
    # The signs of |x| (- epsilon) count the active positions: a bool
    # tensor cast to float is twice the work on CPU.
    above = absx if epsilon == 0 else tf.nn.relu(absx - epsilon)
    active = _column_sums(tf, tf.sign(above))
    return (
        active / denom,
        sum_abs / denom,
        shift + mean_d,
        tf.sqrt(var),
        # max over no row is -inf in TF; numpy's initial is 0.
        tf.maximum(tf.reduce_max(absx, axis=0), 0.0),
        tf.fill(tf.shape(sum_abs), n),
        tf.cast(tf.logical_not(tf.math.is_finite(sum_abs)), tf.float32),
    )


def _per_unit_stats_tf(tf, x, epsilon: float) -> dict:
    """``{stat: [units]}`` of ``x`` ([positions, units]), finite values only.

    ``_unmasked_stats`` always; where they flag a non-finite value (or
    there is no position) the masked statistics instead, chosen in the graph
    (``tf.cond``: the masks run only then).
    """
    unmasked = _unmasked_stats(tf, x, epsilon)
    flags = unmasked[metadata.NONFINITE_ROW]
    ok = (tf.shape(x)[0] > 0) & tf.reduce_all(flags == 0.0)
    values = tf.cond(ok, lambda: unmasked, lambda: _masked_stats(tf, x, epsilon))
    return dict(zip(metadata.BASE_STATS, values, strict=True))


def unit_rows(x, epsilon: float, unit_axis: int, masked: bool):
    """float32 ``[len(metadata.BASE_STATS), units]`` rows of ``x``, in-graph.

    ``masked`` as in ``torch.stats.unit_stats``: without it no ``tf.cond``
    is built, and a unit with a NaN/Inf has ``nonfinite`` 1 and garbage in
    its other rows, for the caller to ask again with ``masked=True``.
    """
    import tensorflow as tf

    x = units_last_tf(tf, "data", x, unit_axis)
    if masked:
        return tf.stack(_masked_stats(tf, x, epsilon))
    return tf.stack(_unmasked_stats(tf, x, epsilon))


def _grad_mean_abs_tf(tf, g):
    """float32 ``[units]``: mean |g| of ``g`` ([positions, units]) over its
    finite values."""
    finite = tf.math.is_finite(g)
    total = _column_sums(tf, tf.where(finite, tf.abs(g), 0.0))
    return total / tf.maximum(_column_sums(tf, tf.cast(finite, tf.float32)), 1.0)


def grad_mean_abs(g, unit_axis: int):
    """float32 ``[1, units]``: mean |g| over the finite values per unit."""
    import tensorflow as tf

    return _grad_mean_abs_tf(tf, units_last_tf(tf, "gradients", g, unit_axis))[None]


def _encode_rows_tf(tf, rows, encodings):
    """Encodes ``rows`` ([R, U] float32) with one ``RowEncoding`` per row.

    The same formulas as ``codec.encode_columns``, on the same columns.
    """
    cols = codec.columns(encodings)
    log2_min, steps, max_code = (
        tf.constant(c) for c in (cols.log2_min, cols.steps, cols.max_code)
    )
    is_fraction, is_signed = tf.constant(cols.fraction), tf.constant(cols.signed)

    v = tf.clip_by_value(rows, 0.0, 1.0)
    mid = tf.clip_by_value(tf.floor(v * codec.FRACTION_SCALE + 0.5), 1.0, 254.0)
    fraction = tf.where(v <= 0.0, 0.0, tf.where(v >= 1.0, float(codec.MAX_CODE), mid))

    magnitude = tf.abs(rows)
    positive = magnitude > 0
    safe = tf.where(positive, magnitude, 1.0)
    pos = (tf.math.log(safe) / np.float32(np.log(2.0)) - log2_min) * steps
    log_codes = tf.clip_by_value(tf.floor(pos + 0.5) + 1.0, 1.0, max_code)
    log_codes = tf.where(positive, log_codes, 0.0)
    sign = tf.where(is_signed & (rows < 0.0), float(codec.SIGN_BIT), 0.0)
    return tf.cast(tf.where(is_fraction, fraction, log_codes + sign), tf.uint8)


def snapshot_tf(data, gradients=None, *, unit_axis: int = -1, epsilon: float = 0.0):
    """The encoded ``[num_stats, units]`` uint8 snapshot, computed in-graph."""
    import tensorflow as tf

    x = units_last_tf(tf, "data", data, unit_axis)
    stats = _per_unit_stats_tf(tf, x, epsilon)
    if gradients is not None:
        g = units_last_tf(tf, "gradients", gradients, unit_axis)
        if not g.shape.is_compatible_with(x.shape):
            raise ValueError(
                "gradients must have the shape of data: "
                f"{gradients.shape} vs {data.shape}"
            )
        stats[metadata.GRAD_MEAN_ABS] = _grad_mean_abs_tf(tf, g)
    names = metadata.stat_names(gradients is not None)
    rows = tf.stack([stats[n] for n in names])
    return _encode_rows_tf(tf, rows, [metadata.ENCODINGS[n] for n in names])


# writer -> {tag: tf.Variable(bool)}: whether the tag's metadata was written.
_metadata_written = weakref.WeakKeyDictionary()


def write_once(tag: str, tensor, step, summary_metadata):
    """``tf.summary.write``, with the metadata only in the tag's first event.

    TensorBoard keeps the metadata of a series' first event only; TF's own
    ops repeat it in every event, which for our ~190-byte metadata would
    cost as much as 3 bytes per unit of a 64-unit snapshot. A flag per
    (default writer, tag) -- a variable, so it works inside ``tf.function``
    -- is set once a write actually happened (``record_if`` respected).
    Without a default writer, or on a TensorFlow whose writer state cannot
    be seen, the metadata is written every time.
    """
    import tensorflow as tf

    full = summary_metadata.SerializeToString()
    writer = private.default_summary_writer()
    if writer is None:
        return tf.summary.write(tag, tensor, step=step, metadata=full)
    try:
        flags = _metadata_written.setdefault(writer, {})
    except TypeError:  # not weak-referenceable
        return tf.summary.write(tag, tensor, step=step, metadata=full)
    flag = flags.get(tag)
    if flag is None:
        with tf.init_scope():
            flag = tf.Variable(False, trainable=False, name="deadneurons_meta")
        flags[tag] = flag
    meta = tf.where(flag, tf.constant(b""), tf.constant(full))
    written = tf.summary.write(tag, tensor, step=step, metadata=meta)
    flag.assign(tf.logical_or(flag, written))
    return written
