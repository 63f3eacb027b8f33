"""Revival selection in the PyTorch monitor: dead, tau-dormant and
utility-ranked (continual backprop), with maturity protecting new units."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn
from werkzeug.test import Client

from tb_deadneurons import api
from tb_deadneurons.analysis import utility
from tb_deadneurons.torch import DeadNeuronMonitor
from tests.test_plugin_routes import get, make_app

LOW = [2, 5]  # the planted low-utility (or dead, or dormant) units
UTILITY = {
    "revive_every": 10,
    "revive_select": "utility",
    "revive_rate": 0.065,
    "revive_maturity": 15,
}


def _model(plant: str):
    """64 probe samples and an MLP 6 -> 8 ReLU -> 3 where units ``LOW`` are
    ``"dead"`` (bias -1e4), ``"dormant"`` (incoming weights x 0.01, alive)
    or ``"useless"`` (outgoing weights x 1e-3, alive); no other unit dead."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 3))
    with torch.no_grad():
        model[0].bias.fill_(1.0)
        if plant == "dead":
            model[0].bias[LOW] = -1e4
        elif plant == "dormant":
            model[0].weight[LOW] *= 0.01
            model[0].bias[LOW] = 0.01
        else:
            model[2].weight[:, LOW] *= 1e-3
    return model, torch.randn(64, 6)


def _train(model, x, steps, lr=1e-3, **settings):
    """``steps`` SGD-momentum steps under a monitor; the monitor and, per
    revival, (parameters, optimizer state, output) just before and after."""
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    seen = []
    monitor = DeadNeuronMonitor(
        model, settings.pop("log_dir"), x, every_n_steps=5, optimizer=opt, **settings
    )
    with monitor:
        for _ in range(steps):
            loss = model(x).square().mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            before = _state(model, opt, x)
            count = len(monitor.revivals)
            monitor.step(loss)
            if len(monitor.revivals) > count:
                seen.append((before, _state(model, opt, x)))
    return monitor, seen


def _state(model, opt, x):
    with torch.no_grad():
        out = model(x).clone()
    params = [p.detach().clone() for p in model.parameters()]
    buffers = [opt.state[p]["momentum_buffer"].clone() for p in model.parameters()]
    return params, buffers, out


def test_utility_selection_replaces_the_lowest_utility_units_at_the_rate(tmp_path):
    model, x = _model("useless")
    monitor, _ = _train(model, x, 35, log_dir=str(tmp_path), **UTILITY)
    # Step 10: nobody is older than 15 steps. Step 20: 8 units x 5 mature
    # steps x 0.065 = 2.6, the two least useful.
    (s1, t1, first), (s2, t2, second) = monitor.revivals
    assert (s1, t1, first) == (20, "1", LOW)
    # Step 30: 6 units x 10 steps x 0.065 + 0.6 = 4.5; LOW, 10 steps old, are
    # protected by the maturity of 15.
    assert (s2, t2) == (30, "1") and len(second) == 4
    assert not set(second) & set(LOW)


def test_dead_selection_leaves_alive_low_utility_units_alone(tmp_path):
    model, x = _model("useless")
    monitor, _ = _train(model, x, 25, log_dir=str(tmp_path), revive_every=10)
    assert monitor.revivals == []


def test_without_maturity_new_units_can_be_chosen_again(tmp_path):
    model, x = _model("useless")
    # 8 units x 10 steps x 0.015 = 1.2: one unit per check. Without
    # training (lr 0) a replaced unit keeps zero outgoing weights, utility 0:
    # unprotected, it is the one replaced next time.
    settings = dict(UTILITY, revive_rate=0.015, revive_maturity=0)
    monitor, _ = _train(model, x, 20, lr=0.0, log_dir=str(tmp_path), **settings)
    (_, _, first), (_, _, second) = monitor.revivals
    assert first == second and first[0] in LOW


@pytest.mark.parametrize(
    ("plant", "settings"),
    [
        ("dead", {}),
        ("dormant", {"revive_tau": 0.1}),
        ("dead", {"revive_select": "utility", "revive_rate": 0.03}),
        # Dead units had no gradient: their state is 0 anyway. Dormant and
        # useless ones had: these cases are the ones that see the reset.
        ("useless", {"revive_select": "utility", "revive_rate": 0.03}),
    ],
    ids=["dead", "tau-dormant", "utility-dead", "utility-useless"],
)
def test_revival_at_the_scheduled_step_keeps_outputs_and_resets_state_there(
    tmp_path, plant, settings
):
    model, x = _model(plant)
    settings.setdefault("revive_maturity", 0)
    monitor, seen = _train(
        model, x, 12, log_dir=str(tmp_path), revive_every=10, **settings
    )
    assert [(s, t, u) for s, t, u in monitor.revivals] == [(10, "1", LOW)]
    (params, buffers, out), (params2, buffers2, out2) = seen[0]
    if plant != "dead":
        assert torch.all(buffers[0][LOW] != 0)  # so the reset below shows
    if plant == "dead":  # dead units output 0: zero outgoing weights change nothing
        torch.testing.assert_close(out2, out, rtol=0, atol=1e-6)
    changed = {0: (LOW,), 1: (LOW,), 2: (slice(None), LOW)}  # out.bias: none
    for i, (b, b2) in enumerate(zip(buffers, buffers2, strict=True)):
        mask = torch.zeros_like(b, dtype=torch.bool)
        if i in changed:
            mask[changed[i]] = True
        assert torch.all(b2[mask] == 0), f"parameter {i}: state not reset"
        torch.testing.assert_close(b2[~mask], b[~mask], rtol=0, atol=0)
    torch.testing.assert_close(params2[2][:, LOW], torch.zeros(3, 2))
    assert not torch.equal(params2[0][LOW], params[0][LOW])  # redrawn


def test_revival_records_are_what_the_api_and_the_dashboard_read(tmp_path):
    model, x = _model("useless")
    logdir = str(tmp_path)
    monitor, _ = _train(model, x, 35, log_dir=logdir, **UTILITY)
    expected = [{"step": s, "units": u} for s, _, u in monitor.revivals]
    assert len(expected) == 2
    (layer,) = api.load(logdir).layers["."].values()
    assert layer.revivals == expected
    body = get(Client(make_app(logdir)), "timeline?run=.&tag=1")
    assert body["revivals"] == expected


@pytest.mark.parametrize(
    ("settings", "named"),
    [
        ({"revive_select": "random"}, "revive_select"),
        ({"revive_rate": 0}, "revive_rate"),
        ({"revive_rate": 1.5}, "revive_rate"),
        ({"revive_rate": float("nan")}, "revive_rate"),
        ({"revive_rate": True}, "revive_rate"),
        ({"revive_maturity": -1}, "revive_maturity"),
        ({"revive_maturity": 1.5}, "revive_maturity"),
    ],
)
def test_bad_selection_arguments_raise_naming_them(tmp_path, settings, named):
    model, x = _model("dead")
    with pytest.raises(ValueError, match=named):
        DeadNeuronMonitor(model, str(tmp_path), x, **settings)


def test_replacer_counts_only_mature_steps_and_corrects_for_age():
    replacer = utility.Replacer(10, rate=0.01, maturity=100, step=0)
    value = np.arange(10, 0, -1, dtype=np.float64)  # unit 9 least useful
    assert replacer.replace(value, 60) == []  # nobody mature: no allowance
    # Steps 101..160 count: 10 units x 60 steps x 0.01 = 6 units.
    assert replacer.replace(value, 160) == [4, 5, 6, 7, 8, 9]
    assert list(replacer.born) == [0] * 4 + [160] * 6
    # Unit 0 counts as born at step 90: its average holds 10 steps' weight,
    # 1 - 0.99**10; uncorrected (2.0 x 0.63 = 1.27 < 1.5) it would be chosen.
    young = utility.Replacer(2, rate=0.01, maturity=0, step=0)
    young.born[0] = 90
    assert young.replace(np.array([2.0, 1.5]), 100) == [1]  # 110 x 0.01: one


def test_contribution_is_std_times_outgoing_over_incoming():
    got = utility.contribution([0.5, np.nan, 1.0], [0.25, 1.0, 0.0], [0.1, 1.0, 1.0])
    np.testing.assert_allclose(got[:2], [0.2, 0.0])
    assert got[2] > 1e9  # zero incoming weights: a floor, not a division by 0
