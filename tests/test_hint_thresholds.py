"""Where a hint's evidence starts to count, and the numbers its evidence
quotes: the loss-spike bar, one saturated unit, since when units starve
(found by mutation testing, issue 9 item 7)."""

from __future__ import annotations

import math

import numpy as np

from tb_deadneurons.analysis import classify, hints

STEPS = np.arange(0, 100, 10)  # ten snapshots


def _burst_at(index: int, units: int = 16, died: int = 8) -> np.ndarray:
    """``[units, T]``: ``died`` units dead from snapshot ``index`` on."""
    dead = np.zeros((units, len(STEPS)), bool)
    dead[:died, index:] = True
    return dead


def _patterns(dead, loss) -> list[str]:
    found = hints.diagnose(
        STEPS, dead, loss_steps=STEPS, loss_values=np.asarray(loss, np.float64)
    )
    return [h["pattern"] for h in found]


def test_loss_spike_must_exceed_twice_the_recent_median():
    dead = _burst_at(5)
    flat = [0.5] * 10
    at_bar = flat[:5] + [2 * 0.5] + flat[6:]  # exactly SPIKE_RATIO x median
    above = flat[:5] + [1.5] + flat[6:]
    assert hints.SPIKE_RATIO == 2.0
    assert _patterns(dead, flat) == ["burst"]
    assert _patterns(dead, at_bar) == ["burst"]
    assert _patterns(dead, above) == ["learning_rate"]


def test_spike_right_after_the_first_loss_value_counts():
    dead = _burst_at(1)
    assert _patterns(dead, [0.5, 1.5] + [0.5] * 8) == ["learning_rate"]
    assert _patterns(dead, [0.5, math.nan] + [0.5] * 8) == ["learning_rate"]


def test_a_loss_rising_from_exactly_zero_is_not_a_spike():
    dead = _burst_at(5)
    assert _patterns(dead, [0.0] * 5 + [0.1] * 5) == ["burst"]


def test_learning_rate_evidence_quotes_the_spike():
    dead = _burst_at(5)
    (hint,) = hints.diagnose(
        STEPS, dead, loss_steps=STEPS, loss_values=[0.5] * 5 + [1.5] + [0.5] * 4
    )
    assert "the loss spiked to 1.5 at step 50" in hint["evidence"]
    assert hint["units"] == list(range(8))


def test_one_saturated_unit_is_enough_and_the_evidence_counts_per_step():
    steps = np.array([0, 10, 20, 30])
    constant = np.zeros((4, 4), bool)
    constant[0, :] = True  # unit 0 flat throughout
    constant[1, 1:3] = True  # unit 1 flat at steps 10 and 20 only
    (hint,) = hints.diagnose(steps, constant, constant=constant, activation="tanh")
    assert hint["pattern"] == "saturation" and hint["units"] == [0, 1]
    assert "2 of 4 tanh units had a constant output" in hint["evidence"]
    assert "most at step 10 (2 units)" in hint["evidence"]
    assert "1 at the last snapshot (step 30)" in hint["evidence"]
    assert hint["steps"] == [10, 30]
    only_one = constant.copy()
    only_one[1] = False
    (hint,) = hints.diagnose(steps, only_one, constant=only_one, activation="tanh")
    assert hint["pattern"] == "saturation" and hint["units"] == [0]


def _starved(grad_dormant, share=None):
    steps = np.arange(0, 50, 10)
    grad_dormant = np.asarray(grad_dormant, bool)
    dead = np.zeros(grad_dormant.shape, bool)
    (hint,) = hints.diagnose(
        steps,
        dead,
        grad_dormant=grad_dormant,
        tau=0.1,
        next_layer_dead_share=share,
    )
    assert hint["pattern"] == "gradient_starved"
    return hint


def test_gradient_starved_dates_the_earliest_final_starved_stretch():
    hint = _starved(
        [
            [0, 0, 1, 1, 1],  # starved since step 20
            [1, 0, 0, 1, 1],  # starved at 0, fed at 10, starved since 30
            [0, 0, 0, 0, 0],
        ]
    )
    assert hint["units"] == [0, 1] and hint["steps"] == [20, 40]
    assert hint["evidence"].startswith("2 of 3 units are active but receive")
    assert (
        "at the last snapshot (step 40), the first of them since step 20"
        in (hint["evidence"])
    )
    always = _starved([[1, 1, 1, 1, 1], [0, 0, 0, 0, 0]])
    assert always["steps"] == [0, 40]


def test_gradient_starved_evidence_says_what_is_known_of_the_next_layer():
    pattern = [[0, 0, 1, 1, 1], [0, 0, 0, 0, 0]]
    unknown = _starved(pattern)["evidence"]
    assert "the next layer's dead share is not known" in unknown
    assert "zero or pruned outgoing weights are not in the logs" in unknown
    none_dead = _starved(pattern, share=0.0)["evidence"]
    assert "the next layer has no dead unit" in none_dead
    some_dead = _starved(pattern, share=0.25)["evidence"]
    assert "25% of the next layer's units are dead and pass no gradient back" in (
        some_dead
    )
    assert some_dead.startswith("1 of 2 units are active")


def test_classified_tanh_layer_blames_only_its_flat_units_on_saturation():
    # Through classify.hints, as the report and ./timeline ask: unit 1 has a
    # constant output (active, no spread), unit 2 never fires.
    t, units = 4, 6
    std = np.full((t, units), 0.3)
    std[:, 1] = 0.0
    af = np.full((t, units), 0.5)
    af[:, 2] = 0.0
    std[:, 2] = 0.0
    stats = {"active_fraction": af, "mean_abs": np.full((t, units), 0.4), "std": std}
    result = classify.classify(stats, np.arange(t) * 10)
    hints = {h["pattern"]: h for h in classify.hints(result, "tanh")}
    assert hints["saturation"]["units"] == [1]
    assert "saturation" not in {h["pattern"] for h in classify.hints(result, "relu")}
