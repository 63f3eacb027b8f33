"""Edges of the classification rules a user sees: where "dying" starts and
stops, the lower median behind the constant-output test, and the boundaries
of the thresholds (found by mutation testing, issue 9 item 7)."""

from __future__ import annotations

import numpy as np
import pytest

from tb_deadneurons.analysis import classify

# Eight snapshots (one DYING_WINDOW), one column per case.
FALLING_TO_ZERO = [0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1]
# Halved exactly (0.35 == 0.5 * 0.7) and the fit reaches 0 within a window.
HALVED_EXACTLY = [0.7, 0.65, 0.6, 0.55, 0.5, 0.45, 0.4, 0.35]
# Fell early, then flat: the fit does not reach 0 within another window.
PLATEAU = [0.8, 0.4, 0.4, 0.4, 0.4, 0.4, 0.4, 0.4]
# Falls steeply enough to reach 0 soon, but has not halved yet.
NOT_HALVED = [0.725, 0.675, 0.625, 0.575, 0.525, 0.475, 0.425, 0.375]
RISING = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8]


def _dying(columns, mask=None, has_data=None, window=classify.DYING_WINDOW):
    af = np.asarray(columns, dtype=np.float64).T
    mask = np.zeros(af.shape, bool) if mask is None else np.asarray(mask)
    has_data = np.ones(af.shape, bool) if has_data is None else np.asarray(has_data)
    return classify.dying(af, mask, has_data, window).tolist()


def test_dying_needs_a_falling_share_that_has_halved_and_heads_for_zero():
    cases = [FALLING_TO_ZERO, HALVED_EXACTLY, PLATEAU, NOT_HALVED, RISING]
    assert _dying(cases) == [True, True, False, False, False]


def test_each_unit_gets_its_own_trend_line():
    # The same cases one by one give the same answers as side by side.
    for case, expected in [(FALLING_TO_ZERO, True), (PLATEAU, False)]:
        assert _dying([case]) == [expected]
    assert _dying([PLATEAU, FALLING_TO_ZERO]) == [False, True]


def test_only_the_last_window_of_snapshots_counts():
    # Long dead history before the window does not hide a recent fall, and a
    # fall long ago does not make a unit dying now.
    old_zeros = [0.0] * 6 + FALLING_TO_ZERO
    old_fall = FALLING_TO_ZERO[:3] + [0.1] * 11
    assert _dying([old_zeros, old_fall]) == [True, False]


def test_three_snapshots_are_enough_to_call_a_unit_dying():
    assert _dying([[0.6, 0.3, 0.01]]) == [True]
    assert _dying([[0.6, 0.01]]) == [False]


def test_unit_dead_at_the_last_snapshot_is_dead_not_dying():
    mask = np.zeros((8, 2), bool)
    mask[-1, 0] = True  # unit 0 dead at the end
    mask[-2, 1] = True  # unit 1 dead one snapshot before, alive again
    assert _dying([FALLING_TO_ZERO, FALLING_TO_ZERO], mask=mask) == [False, True]


def test_a_snapshot_without_data_in_the_window_rules_dying_out():
    has_data = np.ones((8, 2), bool)
    has_data[2, 0] = False
    assert _dying([FALLING_TO_ZERO, FALLING_TO_ZERO], has_data=has_data) == [
        False,
        True,
    ]


def test_classify_reports_dying_units_from_the_active_share():
    af = np.asarray([FALLING_TO_ZERO, PLATEAU, RISING]).T
    stats = {"active_fraction": af, "mean_abs": np.full(af.shape, 0.5)}
    result = classify.classify(stats, np.arange(8) * 10)
    assert result.dying().tolist() == [True, False, False]


def _dead_by_std(std, count=None, constant_std=1e-3):
    std = np.asarray([std], dtype=np.float64)
    stats = {
        "active_fraction": np.full(std.shape, 0.5),
        "mean_abs": np.full(std.shape, 0.5),
        "std": std,
    }
    if count is not None:
        stats["count"] = np.asarray([count], dtype=np.float64)
    thresholds = classify.Thresholds(constant_std=constant_std)
    return classify.classify(stats, [0], thresholds).dead[0].tolist()


def test_constant_output_is_judged_against_the_lower_median_std():
    # Five varying units: the lower median is 2, so the bar is 2e-3.
    assert _dead_by_std([1.5e-3, 1, 2, 3, 4]) == [True] + [False] * 4
    # At the bar exactly the unit counts as constant.
    assert _dead_by_std([2e-3, 1, 2, 3, 4]) == [True] + [False] * 4
    assert _dead_by_std([2.5e-3, 1, 2, 3, 4]) == [False] * 5


def test_units_with_zero_std_do_not_drag_the_median_down():
    # Three flat units; the median of the three varying ones is 1.
    assert _dead_by_std([0, 0, 0, 5e-4, 1, 2]) == [True] * 4 + [False] * 2


def test_units_without_data_do_not_count_towards_the_median():
    # Unit 5 has no samples (count 0); its leftover std must not be a vote.
    count = [64] * 5 + [0]
    assert _dead_by_std([1.5e-3, 1, 2, 3, 4, 1e-9], count) == [True] + [False] * 5


def test_constant_std_zero_keeps_only_exactly_flat_units():
    assert _dead_by_std([0, 1e-9, 1, 2], constant_std=0.0) == [
        True,
        False,
        False,
        False,
    ]


def test_unit_never_above_epsilon_is_dead_even_if_its_output_varies():
    # Below-epsilon output still has a spread: only the active share says dead.
    stats = {
        "active_fraction": np.array([[0.0, 0.5, 0.5]]),
        "mean_abs": np.array([[0.01, 0.5, 0.5]]),
        "std": np.array([[0.3, 0.5, 0.5]]),
    }
    assert classify.classify(stats, [0]).dead[0].tolist() == [True, False, False]
    del stats["std"]  # without the std row as well
    assert classify.classify(stats, [0]).dead[0].tolist() == [True, False, False]


def test_dormant_score_is_relative_to_the_units_with_data_only():
    # Unit 2 has no samples; its leftover mean_abs must not move the mean.
    stats = {
        "active_fraction": np.full((2, 3), 0.5),
        "mean_abs": np.array([[0.2, 0.4, 5.0], [0.7, 3.0, 9.0]]),
        "count": np.array([[1.0, 64.0, 0.0], [1.0, 0.0, 0.0]]),
    }
    result = classify.classify(stats, [0, 10])
    np.testing.assert_allclose(result.score[0, :2], [2 / 3, 4 / 3], rtol=1e-6)
    assert np.isnan(result.score[0, 2])
    # A single unit with data is exactly average.
    np.testing.assert_allclose(result.score[1, 0], 1.0, rtol=1e-6)
    assert result.has_data.tolist() == [[True, True, False], [True, False, False]]


@pytest.mark.parametrize(
    "kwargs, name",
    [
        ({"definition": "zombie"}, "definition"),
        ({"tau": -0.1}, "tau"),
        ({"tau": float("nan")}, "tau"),
        ({"constant_std": float("inf")}, "constant_std"),
        ({"constant_std": -1e-3}, "constant_std"),
    ],
)
def test_bad_thresholds_raise_value_error_naming_the_field(kwargs, name):
    with pytest.raises(ValueError, match=name):
        classify.Thresholds(**kwargs)
