"""``tb_deadneurons.torch.revive`` and the monitor's ``revive_every``."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from werkzeug.test import Client

from tb_deadneurons.torch import DeadNeuronMonitor, revive
from tests.test_plugin_routes import get, make_app

DEAD = [1, 4]


class Residual(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc, self.act, self.out = nn.Linear(6, 6), nn.ReLU(), nn.Linear(6, 2)

    def forward(self, x):
        return self.out(self.act(self.fc(x)) + x)


TOPOLOGIES = {
    "linear-linear": (
        lambda: nn.Sequential(
            nn.Linear(6, 8), nn.ReLU(), nn.Dropout(0.1), nn.Linear(8, 3)
        ),
        (6,),
    ),
    "conv-conv": (
        lambda: nn.Sequential(
            nn.Conv2d(2, 8, 3), nn.ReLU(), nn.Conv2d(8, 3, 3), nn.Flatten()
        ),
        (2, 7, 7),
    ),
    "conv-flatten-linear": (
        lambda: nn.Sequential(
            nn.Conv2d(2, 8, 3), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 25, 3)
        ),
        (2, 7, 7),
    ),
    "conv-pool-linear": (
        lambda: nn.Sequential(
            nn.Conv2d(2, 8, 3),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Flatten(),
            nn.Linear(8 * 4, 3),
        ),
        (2, 6, 6),
    ),
}
UNSUPPORTED = {
    "batchnorm": (
        lambda: nn.Sequential(
            nn.Conv2d(2, 8, 3),
            nn.BatchNorm2d(8),
            nn.ReLU(),
            nn.Flatten(),
            nn.Linear(8 * 25, 3),
        ),
        (2, 7, 7),
        "revive '0': revived units feed module '1' \\(BatchNorm2d\\)",
    ),
    "to-output": (
        lambda: nn.Sequential(nn.Linear(6, 8), nn.ReLU()),
        (6,),
        "revive '0': revived units feed the model output",
    ),
    "residual": (Residual, (6,), "revive 'fc': revived units feed function add"),
}


def _trained(make, shape, opt_class):
    """Two optimizer steps (state everywhere non-zero), then plant dead units."""
    torch.manual_seed(0)
    model = make()
    opt = opt_class(model.parameters())
    x = torch.randn(16, *shape)
    for _ in range(2):
        loss = model(x).square().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        model[0].bias[DEAD] = -1e4
    return model, opt, x


def _snapshot(model, opt):
    return {k: v.clone() for k, v in model.state_dict().items()}, {
        (i, k): v.clone()
        for i, p in enumerate(model.parameters())
        for k, v in opt.state[p].items()
    }


@pytest.mark.parametrize("name", TOPOLOGIES)
@pytest.mark.parametrize(
    "opt_class",
    [torch.optim.Adam, lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9)],
    ids=["adam", "sgd-momentum"],
)
def test_revive_keeps_outputs_and_zeroes_exactly_those_entries(name, opt_class):
    model, opt, x = _trained(*TOPOLOGIES[name], opt_class)
    model.eval()
    before = model(x).detach()
    weights, state = _snapshot(model, opt)
    assert revive(model, model[0], DEAD + [1], optimizer=opt) == DEAD
    assert (model(x).detach() - before).abs().max() <= 1e-5
    consumer = [k for k in weights if k.endswith("weight") and not k.startswith("0.")]
    changed = {k: ~torch.isclose(weights[k], v) for k, v in model.state_dict().items()}
    rows = torch.zeros(8, dtype=torch.bool)
    rows[DEAD] = True
    assert changed["0.weight"].flatten(1).any(1).equal(rows)  # fresh draw
    assert model.state_dict()["0.bias"][DEAD].eq(0).all()
    out_w = model.state_dict()[consumer[0]]
    assert changed[consumer[0]].any() and out_w[changed[consumer[0]]].eq(0).all()
    params = list(model.parameters())
    for (i, key), old in state.items():
        new = opt.state[params[i]][key]
        if old.dim() == 0:
            assert torch.equal(old, new)  # step counters stay
            continue
        edited = params[i].detach() != list(weights.values())[i]
        assert new[edited].eq(0).all() and torch.equal(new[~edited], old[~edited])
        assert not edited.any() or old[edited].ne(0).any()  # state to reset


@pytest.mark.parametrize("name", UNSUPPORTED)
def test_unsupported_topology_raises_naming_it_and_changes_nothing(name):
    make, shape, message = UNSUPPORTED[name]
    torch.manual_seed(0)
    model = make()
    opt = torch.optim.Adam(model.parameters())
    model(torch.randn(4, *shape)).sum().backward()
    opt.step()
    weights, state = _snapshot(model, opt)
    first = model.fc if name == "residual" else model[0]
    with pytest.raises(ValueError, match=message):
        revive(model, first, [0, 1], optimizer=opt)
    after_w, after_s = _snapshot(model, opt)
    assert all(torch.equal(weights[k], after_w[k]) for k in weights)
    assert all(torch.equal(state[k], after_s[k]) for k in state)


def test_revive_rejects_units_out_of_range_and_non_producers():
    model = TOPOLOGIES["linear-linear"][0]()
    with pytest.raises(ValueError, match="units has index 8"):
        revive(model, model[0], [8])
    with pytest.raises(ValueError, match=r"module '1' \(ReLU\) is not Linear"):
        revive(model, "1", [0])


def test_monitor_revive_every_revives_and_logs_what_the_dashboard_marks(tmp_path):
    model, opt, x = _trained(*TOPOLOGIES["linear-linear"], torch.optim.Adam)
    logdir = str(tmp_path)
    with DeadNeuronMonitor(
        model, logdir, probe_data=x, every_n_steps=2, revive_every=3, optimizer=opt
    ) as monitor:
        for _ in range(6):
            loss = model(x).square().mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            monitor.step(loss)
    assert monitor.revivals == [(3, "1", DEAD)]
    body = get(Client(make_app(logdir)), "timeline?run=.&tag=1")
    assert body["revivals"] == [{"step": 3, "units": DEAD}]
    revived = [u for u, flag in enumerate(body["revived"]) if flag]
    assert body["dead_now"] == [] and revived == DEAD
