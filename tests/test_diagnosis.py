"""diagnose(): each pattern on arrays built to show it, none on a healthy run."""

from __future__ import annotations

import numpy as np
import pytest

from tb_deadneurons.analysis.hints import diagnose

UNITS, T = 32, 20
STEPS = np.arange(T, dtype=np.int64) * 100  # snapshots at 0, 100, ..., 1900
LOSS_STEPS = np.arange(0, 2000, 10, dtype=np.int64)


def _smooth_loss():
    return 2.0 * np.exp(-LOSS_STEPS / 800.0) + 0.1


def _alive():
    return np.zeros((UNITS, T), dtype=bool)


def _patterns(hints):
    return [h["pattern"] for h in hints]


def test_healthy_run_gets_no_hint():
    hints = diagnose(
        STEPS,
        _alive(),
        activation="relu",
        loss_steps=LOSS_STEPS,
        loss_values=_smooth_loss(),
    )
    assert hints == []


def test_one_unit_dying_late_is_not_a_pattern():
    dead = _alive()
    dead[4, 15:] = True
    assert diagnose(STEPS, dead, activation="relu") == []


def test_units_dead_at_the_first_snapshot_point_to_initialisation():
    dead = _alive()
    dead[[3, 7, 9, 20], :] = True
    dead[9, 10:] = False  # one of them recovers

    hints = diagnose(STEPS, dead, never_active=dead.copy(), activation="relu")

    assert _patterns(hints) == ["initialisation"]
    (hint,) = hints
    assert hint["units"] == [3, 7, 9, 20]
    assert "4 of 32 units" in hint["evidence"] and "(step 0)" in hint["evidence"]
    assert "3 still dead" in hint["evidence"] and "He" in hint["remedy"]


def test_a_few_units_born_dead_are_not_an_initialisation_problem():
    dead = _alive()
    dead[[3, 7, 9], :] = True  # under a tenth of the layer
    assert diagnose(STEPS, dead, never_active=dead.copy(), activation="relu") == []


def test_units_dead_at_a_late_first_snapshot_are_not_blamed_on_initialisation():
    dead = _alive()
    dead[[3, 7, 9], :] = True
    assert diagnose(STEPS + 5000, dead, activation="relu") == []


def test_burst_of_deaths_with_a_loss_spike_points_to_the_learning_rate():
    dead = _alive()
    dead[:10, 9:] = True  # 10 units die between step 800 and step 900
    loss = _smooth_loss()
    loss[LOSS_STEPS == 850] = 40.0

    hints = diagnose(
        STEPS, dead, activation="relu", loss_steps=LOSS_STEPS, loss_values=loss
    )

    assert _patterns(hints) == ["learning_rate"]
    evidence = hints[0]["evidence"]
    assert "from 0 to 10 of 32" in evidence and "step 900" in evidence
    assert "step 850" in evidence and "40" in evidence
    assert hints[0]["units"] == list(range(10))


def test_non_finite_loss_counts_as_a_spike():
    dead = _alive()
    dead[:10, 9:] = True
    loss = _smooth_loss()
    loss[LOSS_STEPS >= 870] = np.nan
    hints = diagnose(STEPS, dead, loss_steps=LOSS_STEPS, loss_values=loss)
    assert _patterns(hints) == ["learning_rate"] and "step 870" in hints[0]["evidence"]


def test_burst_without_a_loss_spike_is_not_blamed_on_the_learning_rate():
    dead = _alive()
    dead[:10, 9:] = True
    hints = diagnose(STEPS, dead, loss_steps=LOSS_STEPS, loss_values=_smooth_loss())
    assert _patterns(hints) == ["burst"]
    assert "no loss spike" in hints[0]["evidence"]
    assert _patterns(diagnose(STEPS, dead)) == ["burst"]


def test_loss_spike_far_from_the_burst_is_not_evidence():
    dead = _alive()
    dead[:10, 9:] = True
    loss = _smooth_loss()
    loss[LOSS_STEPS == 1800] = 40.0
    hints = diagnose(STEPS, dead, loss_steps=LOSS_STEPS, loss_values=loss)
    assert _patterns(hints) == ["burst"]


def test_slow_rise_of_the_dead_share_is_reported_as_slow_rise():
    dead = _alive()
    for i in range(10):  # one more unit dies every other snapshot
        dead[i, 2 * i + 1 :] = True

    hints = diagnose(
        STEPS,
        dead,
        activation="relu",
        loss_steps=LOSS_STEPS,
        loss_values=_smooth_loss(),
    )

    assert _patterns(hints) == ["slow_rise"]
    evidence = hints[0]["evidence"]
    assert "from 0 to 10 of 32" in evidence and "step 1900" in evidence
    assert "leaky" in hints[0]["remedy"]


def test_constant_tanh_units_point_to_saturation_not_initialisation():
    constant = _alive()
    constant[[0, 1, 2, 5], :] = True

    hints = diagnose(
        STEPS,
        constant.copy(),
        never_active=_alive(),
        constant=constant,
        activation="tanh",
    )

    assert _patterns(hints) == ["saturation"]
    assert hints[0]["units"] == [0, 1, 2, 5]
    assert "4 of 32 tanh units" in hints[0]["evidence"]
    assert "normalis" in hints[0]["remedy"]


def test_constant_relu_units_are_not_called_saturated():
    constant = _alive()
    constant[[0, 1], :] = True
    hints = diagnose(STEPS, constant.copy(), constant=constant, activation="relu")
    assert "saturation" not in _patterns(hints)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"steps": STEPS, "dead": np.zeros((UNITS, T + 1), dtype=bool)},
        {"steps": STEPS, "dead": np.zeros((UNITS, T), dtype=np.int8)},
        {"steps": STEPS[::-1], "dead": np.zeros((UNITS, T), dtype=bool)},
        {
            "steps": STEPS,
            "dead": np.zeros((UNITS, T), dtype=bool),
            "loss_steps": [0, 1],
            "loss_values": [1.0],
        },
        {
            "steps": STEPS,
            "dead": np.zeros((UNITS, T), dtype=bool),
            "grad_dormant": np.zeros((UNITS, T + 1), dtype=bool),
        },
        {
            "steps": STEPS,
            "dead": np.zeros((UNITS, T), dtype=bool),
            "grad_dormant": np.zeros((UNITS, T), dtype=bool),
            "next_layer_dead_share": 1.5,
        },
        {
            "steps": STEPS,
            "dead": np.zeros((UNITS, T), dtype=bool),
            "grad_dormant": np.zeros((UNITS, T), dtype=bool),
            "next_layer_dead_share": float("nan"),
        },
    ],
)
def test_mismatched_inputs_raise_value_error(kwargs):
    with pytest.raises(ValueError):
        diagnose(**kwargs)


def test_gradient_starved_names_active_units_without_gradient_since_when():
    dead, starved = _alive(), _alive()
    starved[[3, 7], 12:] = True
    starved[9, 5:8] = True  # starved for a while, fed again: not now
    hints = diagnose(STEPS, dead, grad_dormant=starved, tau=0.1)
    (hint,) = hints
    assert hint["pattern"] == "gradient_starved"
    assert hint["units"] == [3, 7] and hint["steps"] == [1200, 1900]
    assert (
        "2 of 32 units are active but receive a mean |dL/da| of at most 0.1"
        in (hint["evidence"])
    )
    assert "since step 1200" in hint["evidence"]


def test_dead_units_without_gradient_are_not_called_gradient_starved():
    dead = _alive()
    dead[4, :] = True
    assert diagnose(STEPS, dead, grad_dormant=dead.copy(), activation="relu") == []
    assert diagnose(STEPS, _alive(), grad_dormant=_alive()) == []


def test_gradient_starved_tanh_layer_names_saturation_as_a_cause():
    starved = _alive()
    starved[0, -1] = True
    (hint,) = diagnose(STEPS, _alive(), grad_dormant=starved, activation="tanh")
    assert "a saturated tanh passes almost no gradient" in hint["evidence"]
    assert "no gradient at the last snapshot" in hint["evidence"]
