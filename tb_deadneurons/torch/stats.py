"""Per-unit statistics of a module's output, reduced on the module's device.

The torch twin of ``tb_deadneurons.stats._per_unit_stats_np``: the same rows,
the same float32 arithmetic (finite values only, two-pass std), so that the
codes ``encode`` gives match ``stats.snapshot_np`` on the same data (a test
pins them). Everything up to ``encode`` stays on the device; the caller moves
all modules' rows to the host in one transfer.
"""

from __future__ import annotations

import numpy as np
import torch

from tb_deadneurons.format import codec, metadata


def units_last(x: torch.Tensor, unit_axis: int) -> torch.Tensor:
    """``x`` as float32 ``[positions, units]`` (every other axis flattened)."""
    x = torch.movedim(x.detach(), unit_axis, -1)
    return x.reshape(-1, x.shape[-1]).float()


def unit_stats(
    x: torch.Tensor, epsilon: float, unit_axis: int, masked: bool = True
) -> torch.Tensor:
    """float32 ``[len(metadata.BASE_STATS), units]`` rows of ``x``, on its device.

    ``masked=False`` skips the NaN/Inf masking (about half the work): its
    ``nonfinite`` row is then 1 for a unit with any non-finite value (its
    other rows are garbage) and 0 otherwise, so the caller can recompute
    those with ``masked=True`` once the rows are on the host.
    """
    x = units_last(x, unit_axis)
    if not masked:
        return _unmasked(x, epsilon)
    finite = torch.isfinite(x)
    x0 = torch.where(finite, x, 0.0)
    count = finite.sum(0, dtype=torch.float32)
    denom = count.clamp_min(1.0)
    absx = x0.abs()
    mean = x0.sum(0) / denom
    centred = torch.where(finite, x0 - mean, 0.0)
    rows = {
        metadata.ACTIVE_FRACTION: (finite & (absx > epsilon)).sum(
            0, dtype=torch.float32
        )
        / denom,
        metadata.MEAN_ABS: absx.sum(0) / denom,
        metadata.MEAN: mean,
        metadata.STD: torch.sqrt((centred * centred).sum(0) / denom),
        metadata.MAX_ABS: absx.amax(0) if x.shape[0] else torch.zeros_like(count),
        metadata.COUNT: count,
        metadata.NONFINITE: x.shape[0] - count,
    }
    return torch.stack([rows[name] for name in metadata.BASE_STATS])


def _unmasked(x: torch.Tensor, epsilon: float) -> torch.Tensor:
    n = x.shape[0]
    total = x.sum(0)
    mean = total / max(n, 1)
    absx = x.abs()
    centred = x - mean
    rows = {
        metadata.ACTIVE_FRACTION: (absx > epsilon).sum(0, dtype=torch.float32)
        / max(n, 1),
        metadata.MEAN_ABS: absx.sum(0) / max(n, 1),
        metadata.MEAN: mean,
        metadata.STD: torch.sqrt((centred * centred).sum(0) / max(n, 1)),
        metadata.MAX_ABS: absx.amax(0) if n else torch.zeros_like(total),
        metadata.COUNT: torch.full_like(total, n),
        # A NaN/Inf anywhere in a column makes its sum non-finite.
        metadata.NONFINITE: (~torch.isfinite(total)).float(),
    }
    return torch.stack([rows[name] for name in metadata.BASE_STATS])


def grad_mean_abs(g: torch.Tensor, unit_axis: int) -> torch.Tensor:
    """float32 ``[1, units]``: mean |g| over the finite values per unit."""
    g = units_last(g, unit_axis)
    finite = torch.isfinite(g)
    total = torch.where(finite, g.abs(), 0.0).sum(0)
    return (total / finite.sum(0, dtype=torch.float32).clamp_min(1.0))[None]


def _groups(with_gradients: bool) -> list[tuple[list[int], object]]:
    """Row indices that share an encoding, with that encoding."""
    names = metadata.stat_names(with_gradients)
    groups: dict[bytes, list[int]] = {}
    for i, name in enumerate(names):
        groups.setdefault(metadata.ENCODINGS[name].SerializeToString(), []).append(i)
    return [(rows, metadata.ENCODINGS[names[rows[0]]]) for rows in groups.values()]


_GROUPS = {g: _groups(g) for g in (False, True)}


def encode(rows: np.ndarray, with_gradients: bool) -> np.ndarray:
    """uint8 codes of float32 ``[num_stats, units]`` rows, as ``snapshot_np``.

    Rows that share an encoding are encoded in one ``codec.encode`` call.
    """
    codes = np.empty(rows.shape, np.uint8)
    for indices, enc in _GROUPS[with_gradients]:
        codes[indices] = codec.encode(rows[indices], enc)
    return codes
