"""The loss-of-plasticity hints: where their evidence starts to count and
what they say (dead share climbing through a long run; flat dead share while
the loss stalls)."""

from __future__ import annotations

import numpy as np
import pytest

from tb_deadneurons.analysis import hints

UNITS, T = 40, 40
STEPS = np.arange(T, dtype=np.int64) * 100  # four parts of ten snapshots


def _dead(per_part, t=T) -> np.ndarray:
    """``[UNITS, t]``: ``per_part[k]`` units dead through part ``k``."""
    dead = np.zeros((UNITS, t), bool)
    for k, part in enumerate(np.array_split(np.arange(t), len(per_part))):
        dead[: per_part[k], part] = True
    return dead


def _patterns(dead, steps=STEPS, loss=None) -> list[str]:
    kwargs = {} if loss is None else {"loss_steps": steps, "loss_values": loss}
    return [h["pattern"] for h in hints.diagnose(steps, dead, **kwargs)]


def _loss(per_part) -> np.ndarray:
    return np.repeat(np.asarray(per_part, np.float64), T // len(per_part))


def test_dead_share_climbing_through_a_long_run_names_revival_with_settings():
    (hint,) = [
        h
        for h in hints.diagnose(STEPS, _dead([2, 4, 7, 10]))
        if h["pattern"] == "plasticity"
    ]
    assert (
        "5%, 10%, 18%, 25% on average in 4 equal parts of 40 snapshots"
        in (hint["evidence"])
    )
    assert (
        "2 of 40 units dead at the first snapshot, 10 at the last" in hint["evidence"]
    )
    assert hint["steps"] == [0, 3900] and hint["units"] == list(range(2, 10))
    for setting in (
        "revive_every=",
        "revive_tau=0.025",
        "revive_select='utility'",
        "revive_rate=1e-4",
        "revive_maturity=100",
        "Dohare",
    ):
        assert setting in hint["remedy"]


def test_a_rise_of_a_tenth_of_the_units_is_the_bar():
    assert hints.PLASTICITY_MIN_RISE == 0.1
    assert "plasticity" in _patterns(_dead([0, 1, 2, 4]))  # 4 of 40: 0.1
    assert "plasticity" not in _patterns(_dead([0, 1, 2, 3]))


def test_a_part_below_the_one_before_is_not_a_climb():
    assert "plasticity" not in _patterns(_dead([0, 6, 5, 10]))
    assert "plasticity" in _patterns(_dead([0, 6, 6, 10]))  # level counts


def test_a_short_run_is_not_evidence_of_lost_plasticity():
    assert hints.PLASTICITY_MIN_SNAPSHOTS == 30
    for t, expected in ((29, False), (30, True)):
        found = _patterns(_dead([0, 3, 6, 10], t), np.arange(t, dtype=np.int64))
        assert ("plasticity" in found) is expected


def test_flat_dead_share_with_a_stalled_loss_says_plasticity_can_go_without():
    loss = _loss([1.0, 0.5, 0.6, 0.6])
    (hint,) = hints.diagnose(
        STEPS, _dead([3, 3, 4, 5]), loss_steps=STEPS, loss_values=loss
    )
    assert hint["pattern"] == "plasticity_without_dead"
    assert "stayed between 8% and 12%" in hint["evidence"]
    assert (
        "median 0.6 in the last part, 0.6 in the part before, 0.5 at best"
        in (hint["evidence"])
    )
    assert "Lyle et al. 2023" in hint["remedy"] and hint["units"] == []


@pytest.mark.parametrize(
    ("per_part", "fires"),
    [
        ([1.0, 0.5, 0.6, 0.6], True),  # last = 1.2 x best: the bar
        ([1.0, 0.5, 0.6, 0.59], False),  # below 1.2 x best
        ([1.0, 0.5, 0.7, 0.66], False),  # still falling: < 0.95 x the part before
        ([1.0, 0.5, 0.7, 0.665], True),  # 0.95 x 0.7
        ([0.6, 0.6, 0.6, 0.6], False),  # flat from the start: never better
        ([2.0, 1.0, 0.5, 0.25], False),  # a healthy, falling loss
    ],
)
def test_a_stall_is_a_loss_no_longer_falling_and_above_its_best(per_part, fires):
    found = _patterns(_dead([3, 3, 3, 3]), loss=_loss(per_part))
    assert ("plasticity_without_dead" in found) is fires


def test_a_dead_share_moving_more_than_five_percent_is_not_flat():
    assert hints.FLAT_MAX_SHARE == 0.05
    loss = _loss([1.0, 0.5, 0.6, 0.6])
    assert "plasticity_without_dead" in _patterns(_dead([3, 5, 3, 4]), loss=loss)
    assert "plasticity_without_dead" not in _patterns(_dead([3, 6, 3, 4]), loss=loss)


def test_without_a_loss_a_flat_dead_share_says_nothing():
    assert hints.diagnose(STEPS, _dead([3, 3, 3, 3])) == []
