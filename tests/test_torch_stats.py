"""torch's on-device statistics give snapshot_np's codes, byte for byte."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tb_deadneurons import summary
from tb_deadneurons.format import metadata
from tb_deadneurons.format.stats import encode_rows
from tb_deadneurons.torch import modules as stats_modules
from tb_deadneurons.torch import stats

NONFINITE = list(metadata.BASE_STATS).index(metadata.NONFINITE)


def _codes(x, axis, *, epsilon=0.0, grad=None, nonnegative=False):
    """As the monitor does: the unmasked pass, the masked one on NaN/Inf."""
    rows = stats.unit_stats(x, epsilon, axis, False, nonnegative=nonnegative)
    if rows[NONFINITE].any():
        rows = stats.unit_stats(x, epsilon, axis, True)
    if grad is not None:
        rows = torch.cat([rows, stats.grad_mean_abs(grad, axis)])
    return encode_rows(rows.numpy(), grad is not None)


def _activations(seed: int, shape, nonfinite: bool) -> torch.Tensor:
    """ReLU'd data over many scales, a dead unit, optionally NaN/+-Inf."""
    g = torch.Generator().manual_seed(seed)
    units = shape[1]
    scale = torch.exp(torch.randn(units, generator=g) * 3).reshape(1, units, 1, 1)
    x = torch.relu(torch.randn(shape, generator=g) * scale - 0.3 * scale)
    x[:, 2] = 0.0  # dead
    x[:, 5] = 1.0  # saturated: constant
    if nonfinite:
        x[3, 1, 0, 0] = float("nan")
        x[0, 4, 1, 2] = float("inf")
        x[7, 6, 2, 1] = -float("inf")
    return x


@pytest.mark.parametrize("nonfinite", [False, True])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_channels_first_and_last_give_snapshot_np_codes(seed, nonfinite):
    x = _activations(seed, (48, 12, 7, 9), nonfinite)
    twin = summary.snapshot_np(x.numpy(), unit_axis=1)
    np.testing.assert_array_equal(_codes(x, 1), twin)
    np.testing.assert_array_equal(_codes(x, 1, nonnegative=True), twin)
    last = x.permute(0, 2, 3, 1)  # a view: channels-last without a copy
    np.testing.assert_array_equal(_codes(last, -1), twin)
    np.testing.assert_array_equal(_codes(last.contiguous(), 3), twin)
    assert twin[NONFINITE].any() == nonfinite


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_half_precision_gives_the_codes_of_its_float32_values(dtype):
    x = _activations(3, (32, 64, 6, 6), nonfinite=True).to(dtype)
    twin = summary.snapshot_np(x.float().numpy(), unit_axis=1)
    np.testing.assert_array_equal(_codes(x, 1), twin)


def test_signed_values_epsilon_and_gradients_give_snapshot_np_codes():
    g = torch.Generator().manual_seed(4)
    x = torch.tanh(torch.randn(64, 20, 24, generator=g) * 2 + 0.5)
    # Below epsilon everywhere: inactive, yet not zero. (A constant whose sum
    # rounds, such as 0.05, has a std of rounding noise, ~1e-9 here and
    # ~1e-7 in numpy's sequential sum: codes of noise, not compared.)
    x[:, :, 3] = 0.0625
    x[1, 4, 7] = float("nan")
    grad = torch.randn(64, 20, 24, generator=g) * 1e-4
    for data in (x, x.nan_to_num()):
        twin = summary.snapshot_np(data.numpy(), grad.numpy(), epsilon=0.1)
        np.testing.assert_array_equal(_codes(data, -1, epsilon=0.1, grad=grad), twin)
        twin0 = summary.snapshot_np(data.numpy(), grad.numpy())
        np.testing.assert_array_equal(_codes(data, 2, grad=grad), twin0)
    grad[0, 0, 0] = float("inf")
    twin = summary.snapshot_np(x.numpy(), grad.numpy())
    np.testing.assert_array_equal(_codes(x, -1, grad=grad), twin)


@pytest.mark.parametrize("epsilon", [0.0, 0.05])
def test_a_tensor_reduced_in_cpu_chunks_gives_snapshot_np_codes(epsilon):
    """Above ``CPU_CHUNK_BYTES`` the second pass runs chunk by chunk along
    the batch: what only the last chunk holds still counts."""
    x = _activations(6, (160, 12, 18, 18), nonfinite=False)
    assert x.numel() * 4 > 2 * stats.CPU_CHUNK_BYTES
    x[:, 7] = 0.0
    x[-1, 7, 3, 3] = 9.0  # active once, in the last chunk: its max and count
    x[:, 8] = -x[:, 8]  # signed: |x| from every chunk
    x[-1, 8, 0, 0] = -40.0
    relu = x.abs()
    for axis, dims, view in ((1, (0, 2, 3), x), (-1, (0, 1, 2), x.permute(0, 2, 3, 1))):
        assert len(stats._chunks(view, dims)) > 2
        twin = summary.snapshot_np(x.numpy(), unit_axis=1, epsilon=epsilon)
        np.testing.assert_array_equal(_codes(view, axis, epsilon=epsilon), twin)
    twin = summary.snapshot_np(relu.numpy(), unit_axis=1, epsilon=epsilon)
    ours = _codes(relu, 1, epsilon=epsilon, nonnegative=True)
    np.testing.assert_array_equal(ours, twin)
    assert twin[metadata.BASE_STATS.index(metadata.ACTIVE_FRACTION), 7] > 0


def test_unmasked_pass_flags_exactly_the_units_with_nonfinite_values():
    x = _activations(5, (16, 8, 4, 4), nonfinite=True)
    flags = stats.unit_stats(x, 0.0, 1, False)[NONFINITE]
    assert torch.nonzero(flags).flatten().tolist() == [1, 4, 6]


def test_statistics_build_no_graph_from_a_tensor_that_requires_grad():
    w = torch.randn(8, 5, requires_grad=True)
    h = torch.relu(torch.randn(30, 8) @ w)
    for masked in (False, True):
        rows = stats.unit_stats(h, 0.0, -1, masked)
        assert not rows.requires_grad and rows.grad_fn is None
    assert not stats.grad_mean_abs(h, -1).requires_grad


def test_nonnegative_activations_are_the_ones_whose_outputs_are():
    x = torch.linspace(-6, 6, 1201).reshape(-1, 1)
    for cls, name in stats_modules.ACTIVATIONS.items():
        module = getattr(torch.nn, cls, None)
        if module is None or name != stats_modules.activation_name(module()):
            continue
        assert stats.is_nonnegative(name) == bool((module()(x) >= 0).all()), cls
