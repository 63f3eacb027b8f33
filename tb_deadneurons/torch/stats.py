"""Per-unit statistics of a module's output, reduced on the module's device.

The torch twin of ``format.stats._per_unit_stats_np``: the same rows, in
float32, from the finite values only, so that the codes
``format.stats.encode_rows`` gives match ``format.stats.snapshot_np`` on the
same data (a test pins them on random data with NaN/Inf, channels-first and
-last, bf16/fp16). The reductions run over every axis but the unit axis of
the tensor as it lies (no transposing copy), under ``no_grad``, and share
what they can: ``sum |x|``, ``max |x|`` and the active count read one
``|x|`` temporary (none for a non-negative output, ReLU family, where
``|x| = x`` and ``mean_abs = mean``), and no bool tensor is reduced (slow on
CPU). Everything up to the encoding stays on the device; the caller moves
all modules' rows to the host in one transfer.
"""

from __future__ import annotations

import math

import torch

from tb_deadneurons.format import metadata

# Recorded activation names (``modules.ACTIVATIONS``'s values) whose output
# is never negative: ``unit_stats(..., nonnegative=True)`` holds for them.
NONNEGATIVE_ACTIVATIONS = frozenset(
    {"relu", "relu6", "sigmoid", "hard_sigmoid", "softplus"}
)


def is_nonnegative(activation: str) -> bool:
    """Whether an output of the recorded ``activation`` is never below 0."""
    return activation in NONNEGATIVE_ACTIVATIONS


def _prepared(x: torch.Tensor, unit_axis: int):
    """float32 ``x`` (no copy if it is one), the reduced dims, positions."""
    x = x.detach()
    if x.dtype != torch.float32:
        x = x.float()
    axis = unit_axis % x.dim()
    dims = tuple(d for d in range(x.dim()) if d != axis)
    return x, dims, math.prod(x.shape[d] for d in dims)


@torch.no_grad()
def unit_stats(
    x: torch.Tensor,
    epsilon: float,
    unit_axis: int,
    masked: bool = True,
    *,
    nonnegative: bool = False,
) -> torch.Tensor:
    """float32 ``[len(metadata.BASE_STATS), units]`` rows of ``x``, on its device.

    ``masked=False`` skips the NaN/Inf masking (about half the work): its
    ``nonfinite`` row is then 1 for a unit with any non-finite value (its
    other rows are garbage) and 0 otherwise, so the caller can recompute
    those with ``masked=True`` once the rows are on the host.
    ``nonnegative=True`` is the caller's promise that no finite value of
    ``x`` is below 0 (a ReLU-family output): the unmasked path then reads
    ``x`` four times instead of six and makes no ``|x|`` temporary.
    """
    x, dims, n = _prepared(x, unit_axis)
    if masked:
        return _masked(x, dims, n, epsilon)
    return _unmasked(x, dims, n, epsilon, nonnegative)


# On the CPU the elementwise temporaries (``x - mean``, ``|x|``, signs) are
# made for about this many bytes of ``x`` at a time: a fresh temporary the
# size of a conv's output (11 MB for the small CNN's first layer) costs more
# in page faults and cache misses than its arithmetic (measured: the ReLU
# statistics of [256, 16, 26, 26] 3.4 ms in one piece, 1.9 ms in ~1 MB
# pieces, one thread). On CUDA the caching allocator makes them cheap.
CPU_CHUNK_BYTES = 1 << 20


def _chunks(x: torch.Tensor, dims) -> tuple[torch.Tensor, ...]:
    """``x`` split along its first reduced dim into ~``CPU_CHUNK_BYTES``
    pieces on the CPU; ``(x,)`` elsewhere or when it is small."""
    size = x.numel() * x.element_size()
    if x.device.type != "cpu" or size <= CPU_CHUNK_BYTES:
        return (x,)
    length = x.shape[dims[0]]
    step = max(1, CPU_CHUNK_BYTES * length // size)
    return x.split(step, dim=dims[0])


def _amax(x: torch.Tensor, dims) -> torch.Tensor:
    """``x.amax(dims, keepdim=True)``, the first of ``dims`` taken first.

    torch reduces a leading dim as an elementwise maximum of slabs
    (vectorised), while its column maximum of a tall, narrow matrix is not:
    a channels-last [256, 26, 26, 16] took 7.1 ms at once and 0.24 ms this
    way (one thread; channels-first 0.18 and 0.16 ms).
    """
    if len(dims) < 2:
        return x.amax(dims, keepdim=True)
    return x.amax(dims[0], keepdim=True).amax(dims[1:], keepdim=True)


def _active_count(absx: torch.Tensor, dims, epsilon: float) -> torch.Tensor:
    """Per unit, how many of the (finite) ``absx`` values are above epsilon.

    ``sign`` and ``sum`` instead of ``(absx > eps).sum()``: comparisons make
    bool tensors, which torch reduces several times slower on CPU. For finite
    float32 values ``a - eps > 0`` exactly when ``a > eps``; with epsilon 0
    the signs of ``absx`` are already 0 or 1.
    """
    if not epsilon:
        return torch.sign(absx).sum(dims, keepdim=True)
    return torch.sign(absx - epsilon).clamp_min_(0).sum(dims, keepdim=True)


def _second_pass(x, dims, mean, epsilon: float, nonnegative: bool):
    """Per unit: max |x|, then the sum of squares around ``mean``, the
    active count and (unless ``nonnegative``) sum |x|, chunk by chunk."""
    max_abs = sums = None
    for chunk in _chunks(x, dims):
        absx = chunk if nonnegative else chunk.abs()
        biggest = _amax(absx, dims)
        parts = [
            (chunk - mean).square_().sum(dims, keepdim=True),
            _active_count(absx, dims, epsilon),
        ]
        if not nonnegative:
            parts.append(absx.sum(dims, keepdim=True))
        if sums is None:
            max_abs, sums = biggest, parts
        else:
            max_abs = torch.maximum(max_abs, biggest)
            sums = [a + b for a, b in zip(sums, parts, strict=True)]
    return max_abs, *sums


def _unmasked(x, dims, n: int, epsilon: float, nonnegative: bool) -> torch.Tensor:
    denom = float(max(n, 1))
    total = x.sum(dims, keepdim=True)
    mean = total / denom
    if n:
        max_abs, squares, active, *sum_abs = _second_pass(
            x, dims, mean, epsilon, nonnegative
        )
    else:
        squares = active = max_abs = torch.zeros_like(mean)
        sum_abs = [] if nonnegative else [squares]
    rows = {
        metadata.ACTIVE_FRACTION: active / denom,
        metadata.MEAN_ABS: sum_abs[0] / denom if sum_abs else mean,
        metadata.MEAN: mean,
        # Two passes, as numpy's twin.
        metadata.STD: torch.sqrt(squares / denom),
        metadata.MAX_ABS: max_abs,
        metadata.COUNT: torch.full_like(mean, n),
        # A NaN/Inf anywhere in a column makes its sum NaN/Inf.
        metadata.NONFINITE: (~torch.isfinite(total)).float(),
    }
    return torch.stack([rows[name].reshape(-1) for name in metadata.BASE_STATS])


def _masked(x: torch.Tensor, dims, n: int, epsilon: float) -> torch.Tensor:
    """The finite values' statistics, as ``_per_unit_stats_np`` computes them."""
    finite = torch.isfinite(x)
    x0 = torch.where(finite, x, 0.0)
    count = finite.sum(dims, dtype=torch.float32, keepdim=True)
    denom = count.clamp_min(1.0)
    absx = x0.abs()
    mean = x0.sum(dims, keepdim=True) / denom
    centred = torch.where(finite, x0 - mean, 0.0)
    max_abs = _amax(absx, dims) if n else torch.zeros_like(count)
    rows = {
        metadata.ACTIVE_FRACTION: (finite & (absx > epsilon)).sum(
            dims, dtype=torch.float32, keepdim=True
        )
        / denom,
        metadata.MEAN_ABS: absx.sum(dims, keepdim=True) / denom,
        metadata.MEAN: mean,
        metadata.STD: torch.sqrt((centred * centred).sum(dims, keepdim=True) / denom),
        metadata.MAX_ABS: max_abs,
        metadata.COUNT: count,
        metadata.NONFINITE: n - count,
    }
    return torch.stack([rows[name].reshape(-1) for name in metadata.BASE_STATS])


@torch.no_grad()
def grad_mean_abs(g: torch.Tensor, unit_axis: int) -> torch.Tensor:
    """float32 ``[1, units]``: mean |g| over the finite values per unit."""
    g, dims, n = _prepared(g, unit_axis)
    total = g.abs().sum(dims)
    if bool(torch.isfinite(total).all()):
        return (total / float(max(n, 1)))[None]
    finite = torch.isfinite(g)
    total = torch.where(finite, g.abs(), 0.0).sum(dims)
    return (total / finite.sum(dims, dtype=torch.float32).clamp_min(1.0))[None]
