"""What the JAX writer watches: the unit rules on a gated FFN and a CNN."""

from __future__ import annotations

import flax.linen as nn
import jax
import pytest

from tb_deadneurons import api
from tb_deadneurons.jax import DeadNeuronMonitor
from tests import events
from tests import jax_models as models


def test_gated_ffn_watches_the_product_and_finds_planted_gates(tmp_path):
    """act(gate(x)) * up(x) is the unit; the LayerNorm output read by gate
    and up, and the model's output, are not."""
    x, y = models.data()
    model = models.GatedFFN()
    variables = models.linen_init(model, x, "gate", models.DEAD_GATES)
    with DeadNeuronMonitor(
        model.apply, str(tmp_path), x[:64], every_n_steps=3, variables=variables
    ) as monitor:
        models.train_linen(model, variables, x, y, steps=6, monitor=monitor)
    assert monitor.watched == {"gate": (24, "Dense", "silu_glu")}
    layer = api.load(str(tmp_path)).layers["."]["gate"]
    assert layer.dead_now == models.DEAD_GATES
    assert list(layer.steps) == [0, 3, 6]


def test_cnn_watches_channels_and_finds_planted_dead_channels(tmp_path):
    xi, yi = models.data((8, 8, 3), n=64, classes=4)
    model = models.CNN()
    variables = models.linen_init(model, xi, "bn", models.DEAD_CHANNELS)
    with DeadNeuronMonitor(
        lambda v, d: model.apply(v, d, mutable=["batch_stats"]),
        str(tmp_path),
        xi[:32],
        every_n_steps=2,
        variables=variables,
    ) as monitor:
        models.train_linen(
            model, variables, xi, yi, steps=4, monitor=monitor, mutable=True
        )
    # BatchNorm then nn.relu: conv1's channels; jax.nn.gelu (written out by
    # jax as x * cdf(x)) then a reshape into Dense: conv2's channels.
    assert monitor.watched == {
        "conv1": (8, "Conv", "relu"),
        "conv2": (6, "Conv", "gelu"),
    }
    logs = api.load(str(tmp_path)).layers["."]
    assert logs["conv1"].dead_now == models.DEAD_CHANNELS
    assert logs["conv2"].dead_now == []
    (step0, stats), *_ = events.snapshots(str(tmp_path))["conv1"]
    assert step0 == 0 and set(stats["count"]) == {32 * 8 * 8}  # batch x H x W
    meta, data = events.plugin_data(str(tmp_path), "conv1")
    assert data.unit_axis == -1 and data.activation == "relu"


class _Mixed(nn.Module):
    """Activations as Flax code writes them, plus values that are no units."""

    @nn.compact
    def __call__(self, x):
        h = jax.nn.gelu(nn.Dense(8, name="a")(x), approximate=False)
        h = nn.Dense(8, name="b")(h)  # no activation: b's output is no unit
        h = nn.LayerNorm()(h)
        h = Act(name="act")(nn.Dense(8, name="c")(h))  # an activation module
        probs = jax.nn.softmax(nn.Dense(8, name="d")(h))
        h = nn.Dense(8, name="e")(probs)  # softmax output: no unit
        return nn.sigmoid(nn.Dense(2, name="out")(h))  # the output: no unit


class Act(nn.Module):
    @nn.compact
    def __call__(self, x):
        return nn.leaky_relu(x)


def test_every_activation_as_written_and_no_false_unit(tmp_path):
    x, _ = models.data()
    model = _Mixed()
    variables = model.init(jax.random.key(0), x[:2])
    monitor = DeadNeuronMonitor(model.apply, str(tmp_path), x[:16], variables=variables)
    monitor.close()
    assert monitor.watched == {
        "a": (8, "Dense", "gelu"),
        "act": (8, "Dense", "leaky_relu"),
    }


class _SquaredReLU(nn.Module):
    """Primer's MLP: ``relu(x) ** 2``, as ``jnp.square`` or ``**``."""

    power: bool

    @nn.compact
    def __call__(self, x):
        h = nn.relu(nn.Dense(32, name="hidden")(x))
        return nn.Dense(3, name="out")(h**2 if self.power else jax.numpy.square(h))


@pytest.mark.parametrize("power", [False, True], ids=["square", "power"])
def test_a_squared_relu_is_watched_and_its_dead_units_found(tmp_path, power):
    x, _ = models.data()
    model = _SquaredReLU(power)
    variables = models.linen_init(model, x, "hidden", models.DEAD_UNITS)
    monitor = DeadNeuronMonitor(model.apply, str(tmp_path), x[:64], variables=variables)
    monitor.close()
    assert monitor.watched == {"hidden": (32, "Dense", "relu")}
    assert api.load(str(tmp_path)).layers["."]["hidden"].dead_now == models.DEAD_UNITS


class _TwoReaders(nn.Module):
    """A batched weight's ReLU output read by two more batched weights."""

    @nn.compact
    def __call__(self, x):
        w1, w2, w3 = (
            self.param(n, nn.initializers.normal(0.3), s)
            for n, s in (("w1", (2, 16, 12)), ("w2", (2, 12, 16)), ("w3", (2, 12, 16)))
        )
        h = nn.relu(jax.numpy.einsum("ecd,edf->ecf", x.reshape(2, -1, 16), w1))
        y = jax.numpy.einsum("ecf,efd->ecd", h, w2)
        y = y + jax.numpy.einsum("ecf,efd->ecd", h, w3)
        return nn.Dense(3)(nn.relu(nn.Dense(8, name="d")(y.reshape(x.shape))))


def test_units_a_batched_weight_made_are_named_once_however_often_read(tmp_path):
    x, _ = models.data((16,))
    model = _TwoReaders()
    variables = model.init(jax.random.key(0), x[:2])
    with pytest.warns(UserWarning, match="units not watched") as caught:
        monitor = DeadNeuronMonitor(
            model.apply, str(tmp_path), x[:64], variables=variables
        )
    monitor.close()
    assert monitor.watched == {"d": (8, "Dense", "relu")}
    message = str([w.message for w in caught if "not watched" in str(w.message)][0])
    assert message.count("(relu, made by a variable of the top module)") == 1


def test_a_model_without_units_is_refused(tmp_path):
    model = nn.Dense(3)
    x, _ = models.data()
    variables = model.init(jax.random.key(0), x[:2])
    with pytest.raises(ValueError, match="no unit"):
        DeadNeuronMonitor(model.apply, str(tmp_path), x[:8], variables=variables)


class _Experts(nn.Module):
    """Two experts as stacked kernels, each on half the rows (an einsum MoE)."""

    @nn.compact
    def __call__(self, x):
        w1 = self.param("w1", nn.initializers.normal(0.3), (2, 16, 12))
        w2 = self.param("w2", nn.initializers.normal(0.3), (2, 12, 16))
        h = nn.relu(jax.numpy.einsum("ecd,edf->ecf", x.reshape(2, -1, 16), w1))
        return jax.numpy.einsum("ecf,efd->ecd", h, w2).reshape(x.shape)


class _MoE(nn.Module):
    @nn.compact
    def __call__(self, x):
        h = nn.relu(nn.Dense(16, name="inp")(x))
        return nn.Dense(3, name="out")(_Experts(name="experts")(h))


def test_units_a_batched_weight_made_are_reported_never_mixed_into_one_series(
    tmp_path,
):
    # Expert 0's unit 5 is dead, expert 1's alive: one series over both
    # experts' rows would call unit 5 alive. What the experts read is a unit.
    x, _ = models.data()
    model = _MoE()
    variables = model.init(jax.random.key(0), x[:2])
    w1 = variables["params"]["experts"]["w1"]
    variables["params"]["experts"]["w1"] = w1.at[0, :, 5].set(0.0)
    with pytest.warns(UserWarning, match="units not watched") as caught:
        monitor = DeadNeuronMonitor(
            model.apply, str(tmp_path), x[:64], variables=variables
        )
    monitor.close()
    assert monitor.watched == {"inp": (16, "Dense", "relu")}
    message = str([w.message for w in caught if "not watched" in str(w.message)][0])
    assert "['experts (relu, made by experts)']" in message
    alone = r"not watchable: \['activation \(relu, made by a variable of the top"
    with pytest.raises(ValueError, match=alone):
        DeadNeuronMonitor(
            _Experts().apply,
            str(tmp_path / "alone"),
            x[:64, :16],
            variables={"params": variables["params"]["experts"]},
        )
