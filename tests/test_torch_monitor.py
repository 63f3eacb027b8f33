"""The PyTorch monitor on real torch models with planted dead units."""

from __future__ import annotations

import glob
import os

import numpy as np
import pytest
import torch
from torch import nn

from tb_deadneurons import summary
from tb_deadneurons.format import metadata
from tb_deadneurons.format.stats import encode_rows
from tb_deadneurons.torch import DeadNeuronMonitor
from tb_deadneurons.torch import stats as torch_stats
from tests.support import report_layers
from tests.test_plugin_routes import get, make_app

DEAD_UNITS = [3, 17, 30]
DEAD_CHANNELS = [1, 6]


def _codes(x, grad=None, axis=-1, masked=True):
    rows = torch_stats.unit_stats(x, 0.0, axis, masked)
    if grad is not None:
        rows = torch.cat([rows, torch_stats.grad_mean_abs(grad, axis)])
    return encode_rows(rows.numpy(), grad is not None)


def _close(ours, twin):
    diff = np.abs(ours.astype(int) - twin.astype(int))
    assert ours.shape == twin.shape
    assert diff.max() <= 1 and (diff > 0).mean() < 0.01


def test_device_statistics_encode_as_snapshot_np():
    g = torch.Generator().manual_seed(0)
    x = torch.relu(torch.randn(64, 12, 5, 5, generator=g) * 3 - 1)
    x[:, 4] = 0.0  # dead channel
    grad = torch.randn(64, 12, 5, 5, generator=g) * 1e-3
    for masked in (True, False):
        twin = summary.snapshot_np(x, grad, unit_axis=1)
        _close(_codes(x, grad, axis=1, masked=masked), twin)
    x[3, 2, 0, 0] = float("nan")  # dropped and counted
    _close(_codes(x, grad, axis=1), summary.snapshot_np(x, grad, unit_axis=1))
    dense = torch.tanh(torch.randn(300, 40, generator=g) * 4)
    _close(_codes(dense, masked=False), summary.snapshot_np(dense.numpy()))


def test_monitor_snapshot_of_nan_activations_matches_snapshot_np(tmp_path):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(5, 7), nn.ReLU(), nn.Linear(7, 2))
    x = torch.randn(40, 5)
    x[3, 0] = float("nan")  # one sample's hidden units are all NaN
    with DeadNeuronMonitor(model, str(tmp_path), probe_data=x) as monitor:
        twin = summary.snapshot_np(model[1](model[0](x)))
        assert twin[list(metadata.BASE_STATS).index("nonfinite")].all()
        _close(monitor.last_snapshot["1"], twin)


class _ReluGatedFFN(nn.Module):
    """A ReLU MLP layer, then a gated FFN whose gate is an ``nn.ReLU``."""

    def __init__(self):
        super().__init__()
        self.fc, self.relu = nn.Linear(6, 9), nn.ReLU()
        self.gate, self.up, self.act = nn.Linear(9, 8), nn.Linear(9, 8), nn.ReLU()
        self.down = nn.Linear(8, 3)

    def hidden(self, x):
        h = self.relu(self.fc(x))
        return h, self.act(self.gate(h)) * self.up(h)

    def forward(self, x):
        return self.down(self.hidden(x)[1])


def test_relu_outputs_and_a_signed_relu_gated_product_match_snapshot_np(tmp_path):
    """A ReLU module's own output takes the non-negative fast path; the
    gated product of a ReLU gate is signed and must not."""
    torch.manual_seed(0)
    model, x = _ReluGatedFFN(), torch.randn(50, 6)
    with DeadNeuronMonitor(model, str(tmp_path), probe_data=x) as monitor:
        with torch.no_grad():
            h, product = model.hidden(x)
        snaps = monitor.last_snapshot
        assert sorted(snaps) == ["down:input", "relu"]
        assert monitor._probe._nonnegative == {"relu"}  # the fast path
        assert (product < 0).any()
        _close(snaps["relu"], summary.snapshot_np(h))
        _close(snaps["down:input"], summary.snapshot_np(product))


def test_activations_pb_takes_grad_bf16_tensors_and_names_what_it_cannot():
    x = torch.relu(torch.randn(32, 8, requires_grad=True))
    pb = summary.activations_pb("dense", x.bfloat16())
    assert pb.value[0].tensor.tensor_shape.dim[1].size == 8
    np.testing.assert_array_equal(
        summary.snapshot_np(x), summary.snapshot_np(x.detach().numpy())
    )
    with pytest.raises(ValueError, match="data: this torch tensor has no dense"):
        summary.activations_pb("dense", x.detach().to_sparse())


def mlp(dead=DEAD_UNITS) -> nn.Module:
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Linear(20, 32),
        nn.ReLU(),
        nn.Dropout(0.2),
        nn.Linear(32, 32),
        nn.Tanh(),
        nn.Linear(32, 3),
    )
    with torch.no_grad():
        model[0].bias[dead] = -1e4
    return model


def cnn() -> nn.Module:
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),
        nn.BatchNorm2d(8),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(8 * 4 * 4, 4),
    )
    with torch.no_grad():
        model[1].bias[DEAD_CHANNELS] = -1e4  # BN's beta: the channel never fires
    return model


def train(model, logdir, x, y, steps=12, monitor_kwargs=None):
    """SGD with momentum for ``steps`` steps; loss also via SummaryWriter."""
    from torch.utils.tensorboard import SummaryWriter

    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    writer = SummaryWriter(logdir) if monitor_kwargs is not None else None
    monitor = (
        DeadNeuronMonitor(model, writer, probe_data=x[:64], **monitor_kwargs)
        if writer
        else None
    )
    for step in range(steps):
        i = (step * 16) % len(x)
        model.train()
        loss = nn.functional.cross_entropy(model(x[i : i + 16]), y[i : i + 16])
        opt.zero_grad()
        loss.backward()
        opt.step()
        if writer:
            writer.add_scalar("loss", loss.item(), step + 1)
            monitor.step(loss)
    if writer:
        monitor.close()
        writer.close()
    return opt, monitor


@pytest.fixture(scope="module")
def planted_logs(tmp_path_factory):
    torch.manual_seed(1)
    mlp_dir = str(tmp_path_factory.mktemp("mlp"))
    x, y = torch.randn(256, 20), torch.randint(0, 3, (256,))
    train(mlp(), mlp_dir, x, y, monitor_kwargs=dict(every_n_steps=5))
    cnn_dir = str(tmp_path_factory.mktemp("cnn"))
    xi, yi = torch.randn(128, 3, 8, 8), torch.randint(0, 4, (128,))
    train(cnn(), cnn_dir, xi, yi, steps=6, monitor_kwargs=dict(every_n_steps=3))
    return mlp_dir, cnn_dir


def test_mlp_planted_dead_units_are_exactly_reported(planted_logs):
    mlp_dir, _ = planted_logs
    layers = report_layers(mlp_dir)
    assert sorted(layers) == ["1", "4"]  # ReLU and Tanh; not the output
    assert layers["1"]["dead_now"] == DEAD_UNITS
    assert layers["1"]["steps"] == [0, 5, 10, 12]  # start, every 5, close
    assert layers["4"]["dead_now"] == []
    body = get(make_app_client(mlp_dir), "timeline?run=.&tag=1")
    assert body["dead_now"] == DEAD_UNITS and body["units"] == 32


def test_cnn_planted_dead_channels_on_axis_1_are_exactly_reported(planted_logs):
    _, cnn_dir = planted_logs
    layers = report_layers(cnn_dir)
    assert sorted(layers) == ["2"] and layers["2"]["units"] == 8
    assert layers["2"]["dead_now"] == DEAD_CHANNELS
    body = get(make_app_client(cnn_dir), "timeline?run=.&tag=2")
    assert body["dead_now"] == DEAD_CHANNELS


def test_loss_is_logged_at_the_snapshot_steps_next_to_add_scalar(planted_logs):
    mlp_dir, _ = planted_logs
    client = make_app_client(mlp_dir)
    ours = get(client, "loss?run=.")
    assert ours["tag"] == metadata.LOSS_TAG and ours["steps"] == [5, 10, 12]
    from tensorboard.backend.event_processing import event_accumulator

    acc = event_accumulator.EventAccumulator(mlp_dir)
    acc.Reload()
    theirs = {e.step: e.value for e in acc.Scalars("loss")}
    for step, value in zip(ours["steps"], ours["values"], strict=True):
        assert value == pytest.approx(theirs[step], rel=1e-6)


def make_app_client(logdir):
    from werkzeug.test import Client

    return Client(make_app(logdir))


def _state(model, opt):
    return (
        [t.clone() for t in model.state_dict().values()],
        [p.grad.clone() for p in model.parameters()],
        [t.clone() for s in opt.state.values() for t in s.values()],
        torch.get_rng_state(),
        [m.training for m in model.modules()],
    )


def _same(a: list, b: list) -> bool:
    return all(torch.equal(s, t) for s, t in zip(a, b, strict=True))


def test_training_is_identical_with_and_without_the_monitor(tmp_path):
    """Weights, BN buffers, .grad, Adam state, RNG and modes: all unchanged."""
    x, y = torch.randn(64, 3, 8, 8), torch.randint(0, 4, (64,))
    probe = dict(
        probe_data=(x[:32], y[:32]),
        every_n_steps=1,
        gradients=True,
        loss_fn=nn.functional.cross_entropy,
    )
    states = []
    for kwargs in (None, probe):
        base = cnn()
        model = nn.Sequential(*base[:3], nn.Dropout(0.3), *base[3:])
        torch.manual_seed(5)
        opt = torch.optim.Adam(model.parameters())
        monitor = DeadNeuronMonitor(model, str(tmp_path), **kwargs) if kwargs else None
        for step in range(4):
            batch = slice(step * 16, step * 16 + 16)
            loss = nn.functional.cross_entropy(model(x[batch]), y[batch])
            opt.zero_grad()
            loss.backward()
            opt.step()
            if monitor:
                monitor.step(loss)
        if monitor:
            assert list(monitor.watched) == ["2"]
            monitor.close()
        states.append(_state(model, opt))
    (*tensors0, rng0, modes0), (*tensors1, rng1, modes1) = states
    for a, b in zip(tensors0, tensors1, strict=True):
        assert _same(a, b)
    assert torch.equal(rng0, rng1) and modes0 == modes1


def test_gradients_row_is_dl_da_and_flags_units_with_zero_outgoing_weights(tmp_path):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 10), nn.ReLU(), nn.Linear(10, 3))
    starved = [2, 7]
    with torch.no_grad():
        model[2].weight[:, starved] = 0.0  # active, but no gradient reaches them
    x, y = torch.randn(48, 6), torch.randint(0, 3, (48,))
    loss_fn = nn.functional.cross_entropy
    with DeadNeuronMonitor(
        model, str(tmp_path), probe_data=(x, y), gradients=True, loss_fn=loss_fn
    ) as monitor:
        a = model[1](model[0](x))
        (g,) = torch.autograd.grad(loss_fn(model[2](a), y), [a])
        _close(monitor.last_snapshot["1"], summary.snapshot_np(a, g))
    layer = report_layers(str(tmp_path), "--tau", "0")["1"]  # exactly zero gradient
    assert layer["grad_dormant_units"] == starved and layer["dead_now"] == []


def test_metadata_is_written_in_each_tags_first_event_only(planted_logs):
    from tensorboard.backend.event_processing import event_file_loader

    mlp_dir, _ = planted_logs
    (ours,) = glob.glob(os.path.join(mlp_dir, "*.deadneurons"))
    described = {}
    for event in event_file_loader.EventFileLoader(ours).Load():
        for value in event.summary.value:
            described.setdefault(value.tag, []).append(value.HasField("metadata"))
    assert described["1"] == [True, False, False, False]
    assert described["4"] == [True, False, False, False]


def test_batchnorm_runs_on_batch_statistics_unless_the_user_froze_it(tmp_path):
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(), nn.Linear(64, 2)
    )
    with torch.no_grad():
        model[1].running_mean.fill_(1e4)  # stale running statistics
    x = torch.randn(16, 3, 6, 6)
    dead = {}
    for frozen in (False, True):
        model[1].train(not frozen)
        with DeadNeuronMonitor(model, str(tmp_path), probe_data=x) as monitor:
            dead[frozen] = _dead_units(monitor.last_snapshot["2"])
        assert model[1].training is not frozen
    assert dead == {False: [], True: [0, 1, 2, 3]}


def _dead_units(codes) -> list[int]:
    return np.flatnonzero(codes[0] == 0).tolist()  # active_fraction row
