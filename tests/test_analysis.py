"""Classification rules of tb_deadneurons.analysis.classify (numpy only)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from tb_deadneurons import summary
from tb_deadneurons.analysis import classify
from tb_deadneurons.board import reader
from tb_deadneurons.format import codec, metadata


def _stats(af, mean_abs=None, std=None, count=None):
    af = np.asarray(af, dtype=np.float64)
    return {
        "active_fraction": af,
        "mean_abs": np.asarray(mean_abs if mean_abs is not None else af + 0.0),
        "std": np.asarray(std if std is not None else np.where(af > 0, 0.5, 0.0)),
        "count": np.asarray(count if count is not None else np.full(af.shape, 64.0)),
    }


def _decoded_snapshot(data, **kwargs):
    """A snapshot through the real numpy writer and codec, as ``[1, U]`` rows."""
    tensor = summary.snapshot_np(data, **kwargs)
    plugin_data = metadata.create_summary_metadata(None, None)
    content = metadata.parse_plugin_metadata(plugin_data.plugin_data.content)
    return {k: v[None, :] for k, v in codec.decode_snapshot(tensor, content).items()}


def test_never_active_relu_unit_is_dead_and_others_are_not():
    rng = np.random.default_rng(0)
    a = np.maximum(rng.normal(0.5, 1.0, (256, 6)), 0).astype(np.float32)
    a[:, [1, 4]] = 0.0
    result = classify.classify(_decoded_snapshot(a), [0])
    assert result.dead_now == [1, 4]


def test_saturated_tanh_unit_is_dead_by_constant_output():
    rng = np.random.default_rng(1)
    pre = rng.normal(0.0, 1.0, (256, 5)).astype(np.float32)
    pre[:, 3] += 40.0  # tanh pinned at +1: active everywhere, but constant
    result = classify.classify(_decoded_snapshot(np.tanh(pre)), [0])
    assert result.dead_now == [3]
    assert 3 not in result.dormant_now  # |a| = 1: large, not dormant


def test_constant_output_test_is_relative_to_the_layer():
    std = np.array([[1e-7, 2e-7, 1.5e-7, 1e-12]])
    result = classify.classify(_stats(np.ones((1, 4)), std=std), [0])
    assert result.dead_now == [3]


def test_constant_std_threshold_is_a_parameter():
    std = np.array([[1.0, 1.0, 1.0, 0.05]])
    stats = _stats(np.ones((1, 4)), std=std)
    assert classify.classify(stats, [0]).dead_now == []
    loose = classify.Thresholds(constant_std=0.1)
    assert classify.classify(stats, [0], loose).dead_now == [3]


def test_low_magnitude_unit_is_tau_dormant_but_not_dead():
    mean_abs = np.array([[1.0, 1.0, 1.0, 0.05]])
    result = classify.classify(_stats(np.ones((1, 4)), mean_abs=mean_abs), [0])
    assert result.dormant_now == [3]
    assert result.dead_now == []
    assert result.score[0, 3] == pytest.approx(0.05 / 0.7625, rel=1e-5)


def test_tau_zero_counts_only_zero_output_as_dormant():
    mean_abs = np.array([[1.0, 0.0, 0.01]])
    stats = _stats(np.array([[1.0, 0.0, 1.0]]), mean_abs=mean_abs)
    assert classify.classify(stats, [0], classify.Thresholds(tau=0.0)).dormant_now == [
        1
    ]
    assert classify.classify(stats, [0], classify.Thresholds(tau=0.1)).dormant_now == [
        1,
        2,
    ]


def test_died_at_is_first_step_of_the_final_dead_stretch():
    af = np.array([[0.5, 0.0], [0.0, 0.5], [0.5, 0.0], [0.0, 0.0], [0.0, 0.0]])
    result = classify.classify(_stats(af), [0, 10, 20, 30, 40])
    assert result.died_at() == [30, 20]
    assert result.dead_count == [1, 1, 1, 2, 2]


def test_unit_dead_then_active_again_is_revived_without_died_at():
    af = np.array([[0.5, 0.5], [0.0, 0.5], [0.0, 0.5], [0.4, 0.5]])
    result = classify.classify(_stats(af), [0, 1, 2, 3])
    assert result.revived().tolist() == [True, False]
    assert result.died_at() == [None, None]


def test_unit_dead_from_the_first_snapshot_died_at_first_step():
    result = classify.classify(_stats(np.zeros((3, 1))), [5, 6, 7])
    assert result.died_at() == [5]
    assert result.revived().tolist() == [False]


def test_snapshot_without_data_for_a_unit_does_not_break_its_dead_stretch():
    af = np.array([[0.5], [0.0], [0.0], [0.0]])
    count = np.array([[64.0], [64.0], [0.0], [64.0]])
    result = classify.classify(_stats(af, count=count), [0, 1, 2, 3])
    assert result.died_at() == [1]
    assert result.dead_count == [0, 1, 0, 1]
    assert result.has_data[:, 0].tolist() == [True, True, False, True]


def test_matrix_cells_pack_state_and_activity():
    af = np.array([[1.0, 0.0, 0.004, 0.5, 0.5]])
    mean_abs = np.array([[1.0, 0.0, 1.0, 0.01, 1.0]])
    count = np.array([[64.0, 64.0, 64.0, 64.0, 0.0]])
    result = classify.classify(_stats(af, mean_abs, count=count), [0])
    matrix = result.matrix()
    assert matrix.shape == (5, 1) and matrix.dtype == np.uint8
    assert matrix[:, 0].tolist() == [
        31,  # active, always on
        2 << 6,  # dead, activity 0
        1,  # active; a nonzero share never rounds to 0
        1 << 6 | 16,  # dormant, round(0.5 * 31)
        3 << 6,  # no data
    ]


def test_matrix_sets_bit_5_on_grad_dormant_units_with_data_only():
    af = np.array([[1.0, 1.0, 0.0, 0.5]])
    grad = np.array([[1.0, 0.0, 0.0, 0.0]])
    count = np.array([[64.0, 64.0, 64.0, 0.0]])
    stats = _stats(af, count=count) | {"grad_mean_abs": grad}
    cells = classify.classify(stats, [0]).matrix()[:, 0].tolist()
    bit = classify.GRAD_DORMANT_BIT
    assert bit == 1 << 5
    assert cells == [31, bit | 31, 2 << 6 | bit, 3 << 6]
    without = classify.classify(_stats(af, count=count), [0]).matrix()
    assert not (without & bit).any()


def test_unit_with_active_share_falling_towards_zero_is_dying():
    t = np.arange(8)
    af = np.stack([0.8 - 0.1 * t, np.full(8, 0.6), np.zeros(8)], axis=1)
    af = np.clip(af, 0.01, None)
    af[:, 2] = 0.0
    result = classify.classify(_stats(af), t * 10)
    assert result.dying().tolist() == [True, False, False]


def test_fewer_than_three_snapshots_mark_nothing_dying():
    af = np.array([[0.8], [0.05]])
    assert classify.classify(_stats(af), [0, 1]).dying().tolist() == [False]


def test_dormant_definition_dates_deaths_by_dormancy():
    mean_abs = np.array([[1.0, 1.0, 1.0], [1.0, 1.0, 0.01], [1.0, 1.0, 0.01]])
    stats = _stats(np.ones((3, 3)), mean_abs=mean_abs)
    dead = classify.classify(stats, [0, 1, 2])
    dormant = classify.classify(stats, [0, 1, 2], classify.Thresholds("dormant"))
    assert dead.died_at() == [None, None, None]
    assert dormant.died_at() == [None, None, 1]


def test_layer_with_zero_output_everywhere_is_all_dead_and_dormant():
    result = classify.classify(_stats(np.zeros((1, 3))), [0])
    assert result.dead_now == [0, 1, 2]
    assert result.dormant_now == [0, 1, 2]


def test_no_snapshots_give_empty_answers():
    result = classify.classify(_stats(np.zeros((0, 4))), [])
    assert result.dead_now == [] and result.dead_count == []
    assert result.died_at() == [None] * 4
    assert result.matrix().shape == (4, 0)


@pytest.mark.parametrize(
    "kwargs", [{"definition": "gone"}, {"tau": -1.0}, {"constant_std": float("nan")}]
)
def test_thresholds_reject_bad_values(kwargs):
    with pytest.raises(ValueError):
        classify.Thresholds(**kwargs)


def test_thresholds_are_reported_as_used():
    t = classify.Thresholds(definition="dormant", tau=0.025, epsilon=0.5)
    assert t.as_dict() == {
        "definition": "dormant",
        "tau": 0.025,
        "epsilon": 0.5,
        "constant_std": classify.DEFAULT_CONSTANT_STD,
    }


def _grad_stats(grad, af=None):
    grad = np.asarray(grad, dtype=np.float64)
    return _stats(np.ones(grad.shape) if af is None else af) | {"grad_mean_abs": grad}


def test_grad_dormant_scores_mean_abs_gradient_against_the_layer_mean():
    grad = np.array([[1.0, 1.0, 0.05, 0.0]])
    result = classify.classify(_grad_stats(grad), [0])
    assert result.grad_dormant_now == [2, 3]
    assert result.grad_dormant_count == [2]
    assert result.grad_score[0, 2] == pytest.approx(0.05 / 0.5125, rel=1e-5)
    assert result.dead_now == [] and result.dormant_now == []
    exact = classify.classify(_grad_stats(grad), [0], classify.Thresholds(tau=0.0))
    assert exact.grad_dormant_now == [3]


def test_layer_without_any_gradient_is_all_grad_dormant():
    result = classify.classify(_grad_stats(np.zeros((2, 3))), [0, 1])
    assert result.grad_dormant_now == [0, 1, 2]
    assert result.grad_dormant_count == [3, 3]


def test_units_without_data_are_neither_scored_nor_grad_dormant():
    grad = np.array([[1.0, 0.0, 3.0]])
    stats = _grad_stats(grad) | {"count": np.array([[64.0, 0.0, 64.0]])}
    result = classify.classify(stats, [0])
    assert result.grad_dormant_now == []
    assert result.grad_score[0, 0] == pytest.approx(0.5)
    assert np.isnan(result.grad_score[0, 1])


def test_analysis_names_the_gradient_row_as_the_format_does():
    assert classify.GRAD_STAT == metadata.GRAD_MEAN_ABS
    assert classify.REQUIRED_STATS <= set(metadata.BASE_STATS)


def test_without_the_gradient_row_grad_dormant_is_none_not_a_guess():
    result = classify.classify(_stats(np.ones((2, 3))), [0, 1])
    assert result.grad_dormant is None and result.grad_score is None
    assert result.grad_dormant_count is None and result.grad_dormant_now is None


def test_grad_dormant_definition_without_the_row_raises_a_clear_value_error():
    thresholds = classify.Thresholds("grad_dormant")
    with pytest.raises(ValueError, match="grad_mean_abs.*gradients=True"):
        classify.classify(_stats(np.ones((2, 3))), [0, 1], thresholds)
    result = classify.classify(_stats(np.ones((2, 3))), [0, 1])
    hand_made = dataclasses.replace(result, thresholds=thresholds)
    with pytest.raises(classify.MissingGradientsError):
        hand_made.died_at()


def test_grad_dormant_definition_dates_deaths_and_revivals_by_gradient():
    grad = np.array([[1.0, 1.0, 0.0], [1.0, 0.0, 1.0], [1.0, 0.0, 0.0]])
    t = classify.Thresholds("grad_dormant", tau=0.0)
    result = classify.classify(_grad_stats(grad), [0, 10, 20], t)
    assert result.died_at() == [None, 10, 20]
    assert result.revived().tolist() == [False, False, True]
    assert classify.classify(_grad_stats(grad), [0, 10, 20]).died_at() == [None] * 3


def test_layer_mean_abs_weights_units_by_count_and_skips_units_without_data():
    mean_abs = np.array([[1.0, 3.0, 100.0], [0.0, 0.0, 0.0], [2.0, 2.0, 2.0]])
    count = np.array([[10.0, 30.0, 0.0], [5.0, 5.0, 5.0], [0.0, 0.0, 0.0]])
    stats = _stats(np.ones((3, 3)), mean_abs=mean_abs, count=count)
    got = classify.layer_mean_abs(stats)
    assert got.dtype == np.float64 and got.shape == (3,)
    assert got[0] == pytest.approx((1.0 * 10 + 3.0 * 30) / 40)
    assert got[1] == 0.0
    assert np.isnan(got[2])
    unweighted = {"mean_abs": mean_abs[:1]}
    assert classify.layer_mean_abs(unweighted).tolist() == [pytest.approx(104 / 3)]


def test_hints_read_the_loss_by_name_and_only_on_the_batch_step_axis():
    steps = np.arange(10) * 100
    af = np.ones((10, 20))
    af[5:, :8] = 0.0  # 8 of 20 units die between steps 400 and 500
    result = classify.classify(_stats(af), steps)
    loss_steps = list(range(0, 1000, 50))
    values = [5.0 if s == 450 else 1.0 for s in loss_steps]
    batch = reader.LossSeries(
        "deadneurons/loss", "batch", "scalars", loss_steps, values
    )
    spiked = classify.hints(result, "relu", batch)
    assert [h["pattern"] for h in spiked] == ["learning_rate"]
    assert "450" in spiked[0]["evidence"]
    epoch = batch._replace(step_unit="epoch")
    unrelated = classify.hints(result, "relu", epoch)
    assert [h["pattern"] for h in unrelated] == ["burst"]
    assert "no loss logged" in unrelated[0]["evidence"]
