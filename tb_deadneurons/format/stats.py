"""Per-unit statistics of a layer's output in numpy (the twin of ``tf.stats``).

Every axis but the unit axis (batch, time, space) is reduced; the result is
the uint8 ``[num_stats, units]`` snapshot of ``docs/format.md``.
"""

from __future__ import annotations

import numpy as np

from tb_deadneurons.format import codec, metadata


def check_shape(arg: str, shape, unit_axis: int) -> None:
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


def check_numpy_dtype(arg: str, array: np.ndarray) -> None:
    if array.dtype == np.bool_ or not np.issubdtype(array.dtype, np.number):
        raise ValueError(f"{arg} must be numeric; got dtype {array.dtype}")
    if np.issubdtype(array.dtype, np.complexfloating):
        raise ValueError(f"{arg} must be real; got dtype {array.dtype}")


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


def _host_array(arg: str, data) -> np.ndarray:
    """``data`` as numpy; torch tensors by duck typing (no torch import).

    A torch tensor may require grad, be bfloat16/float16 or live on any
    device: it is detached, copied to the host and floats widened to
    float32. Sparse, quantized, meta and nested tensors have no dense host
    values and raise ValueError.
    """
    if hasattr(data, "detach") and hasattr(data, "is_floating_point"):
        try:
            data = data.detach().cpu()
            data = (data.float() if data.is_floating_point() else data).numpy()
        except (RuntimeError, TypeError, NotImplementedError) as e:
            raise ValueError(
                f"{arg}: this torch tensor has no dense host values "
                f"(sparse, quantized, meta or nested?): {e}"
            ) from e
    return np.asarray(data)


def _as_units_last_np(arg: str, data, unit_axis: int) -> np.ndarray:
    array = _host_array(arg, data)
    check_numpy_dtype(arg, array)
    check_shape(arg, array.shape, unit_axis)
    array = np.moveaxis(array, unit_axis, -1)
    return array.reshape(-1, array.shape[-1]).astype(np.float32)


def _rows_np(x: np.ndarray, epsilon: float) -> np.ndarray:
    stats = _per_unit_stats_np(x, epsilon)
    return np.stack([stats[n] for n in metadata.BASE_STATS])


def _grad_row_np(g: np.ndarray) -> np.ndarray:
    return _per_unit_stats_np(g, 0.0)[metadata.MEAN_ABS][None]


def unit_rows_np(data, epsilon: float = 0.0, unit_axis: int = -1) -> np.ndarray:
    """float32 ``[len(metadata.BASE_STATS), units]`` rows of ``data``, before
    encoding (``data`` as in ``snapshot_np``)."""
    return _rows_np(_as_units_last_np("data", data, unit_axis), epsilon)


def grad_mean_abs_np(gradients, unit_axis: int = -1) -> np.ndarray:
    """float32 ``[1, units]``: mean |g| over the finite values per unit."""
    return _grad_row_np(_as_units_last_np("gradients", gradients, unit_axis))


def snapshot_np(
    data, gradients=None, *, unit_axis: int = -1, epsilon: float = 0.0
) -> np.ndarray:
    """The encoded ``[num_stats, units]`` uint8 snapshot of a numpy array.

    ``data``/``gradients`` may also be torch tensors (any device, requiring
    grad, bfloat16/float16); sparse, quantized, meta and nested tensors raise
    ValueError.
    """
    x = _as_units_last_np("data", data, unit_axis)
    rows = [_rows_np(x, epsilon)]
    if gradients is not None:
        g = _as_units_last_np("gradients", gradients, unit_axis)
        if g.shape != x.shape:
            raise ValueError(
                f"gradients must have the shape of data: {np.shape(gradients)} vs "
                f"{np.shape(data)}"
            )
        rows.append(_grad_row_np(g))
    return encode_rows(np.concatenate(rows), gradients is not None)


# The parameter columns of the rows, with and without the gradient row.
_COLUMNS = {
    g: codec.columns([metadata.ENCODINGS[n] for n in metadata.stat_names(g)])
    for g in (False, True)
}


def encode_rows(rows: np.ndarray, with_gradients: bool) -> np.ndarray:
    """uint8 codes of float32 ``[num_stats, units]`` rows in
    ``metadata.stat_names`` order: the one host encoder of every writer
    whose statistics were reduced elsewhere (torch, jax, Keras), all rows in
    one ``codec.encode_columns`` pass.
    """
    return codec.encode_columns(rows, _COLUMNS[with_gradients])
