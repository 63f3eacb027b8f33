"""The JAX/Flax monitor on real linen and NNX models with planted dead units."""

from __future__ import annotations

import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from tb_deadneurons import api
from tb_deadneurons.format import metadata
from tb_deadneurons.format.stats import snapshot_np
from tb_deadneurons.jax import DeadNeuronMonitor
from tests import events
from tests import jax_models as models
from tests.support import report_layers

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def linen_logs(tmp_path_factory):
    logdir = str(tmp_path_factory.mktemp("linen"))
    x, y = models.data()
    model = models.MLP()
    variables = models.linen_init(model, x, "hidden", models.DEAD_UNITS)
    with DeadNeuronMonitor(
        model.apply, logdir, x[:64], every_n_steps=5, variables=variables
    ) as monitor:
        models.train_linen(model, variables, x, y, steps=12, monitor=monitor)
    return logdir, monitor


def test_linen_planted_dead_units_are_found_exactly(linen_logs):
    logdir, monitor = linen_logs
    assert monitor.watched == {
        "hidden": (32, "Dense", "relu"),
        "mid": (16, "Dense", "tanh"),
    }  # not the output
    layers = report_layers(logdir)
    assert sorted(layers) == ["hidden", "mid"]
    assert layers["hidden"]["dead_now"] == models.DEAD_UNITS
    assert layers["hidden"]["steps"] == [0, 5, 10, 12]  # start, every 5, close
    assert layers["mid"]["dead_now"] == []
    logs = api.load(logdir)
    hidden = logs.layers["."]["hidden"]
    assert hidden.dead_now == models.DEAD_UNITS and hidden.units == 32
    assert hidden.activation == "relu" and hidden.layer_class == "Dense"


def test_linen_loss_is_logged_at_the_snapshot_steps(linen_logs):
    logdir, _ = linen_logs
    acc = events.load(logdir)
    steps = [e.step for e in acc.Scalars(metadata.LOSS_TAG)]
    assert steps == [5, 10, 12]  # none before training
    assert all(np.isfinite(e.value) for e in acc.Scalars(metadata.LOSS_TAG))


def test_snapshot_matches_snapshot_np_of_the_hidden_activations(tmp_path):
    x, y = models.data()
    model = models.MLP()
    variables = models.linen_init(model, x, "hidden", models.DEAD_UNITS)
    probe = x[:64].copy()
    probe[3, 0] = np.nan  # one sample's hidden units are all NaN
    with DeadNeuronMonitor(
        model.apply, str(tmp_path), probe, variables=variables
    ) as monitor:
        p = variables["params"]["hidden"]
        hidden = jax.nn.relu(probe @ p["kernel"] + p["bias"])
        twin = snapshot_np(np.asarray(hidden))
        assert twin[metadata.BASE_STATS.index("nonfinite")].all()
        np.testing.assert_array_equal(monitor.last_snapshot["hidden"], twin)


def test_gradients_row_is_dl_da_and_flags_units_with_zero_outgoing_weights(tmp_path):
    x, y = models.data()
    model = models.MLP()
    variables = models.linen_init(model, x, "hidden", models.DEAD_UNITS)
    starved = [2, 7]  # active, but no gradient reaches them
    kernel = variables["params"]["mid"]["kernel"]
    variables["params"]["mid"]["kernel"] = kernel.at[np.asarray(starved)].set(0.0)
    p = variables["params"]

    def loss_of_hidden(h):
        mid = jnp.tanh(h @ p["mid"]["kernel"] + p["mid"]["bias"])
        return models.xent(mid @ p["out"]["kernel"] + p["out"]["bias"], y[:64])

    with DeadNeuronMonitor(
        model.apply,
        str(tmp_path),
        (x[:64], y[:64]),
        variables=variables,
        gradients=True,
        loss_fn=models.xent,
    ) as monitor:
        h = jax.nn.relu(x[:64] @ p["hidden"]["kernel"] + p["hidden"]["bias"])
        g = jax.grad(loss_of_hidden)(h)
        twin = snapshot_np(np.asarray(h), np.asarray(g))
        ours = monitor.last_snapshot["hidden"]
        assert ours.shape == twin.shape == (8, 32)
        np.testing.assert_array_equal(ours[:-1], twin[:-1])
        assert np.abs(ours[-1].astype(int) - twin[-1]).max() <= 1
    layer = report_layers(str(tmp_path), "--tau", "0")["hidden"]
    assert layer["grad_dormant_units"] == starved
    assert layer["dead_now"] == models.DEAD_UNITS


@pytest.fixture(scope="module")
def nnx_logs(tmp_path_factory):
    logdir = str(tmp_path_factory.mktemp("nnx"))
    x, y = models.data()
    model = models.nnx_model()
    with DeadNeuronMonitor(model, logdir, x[:64], every_n_steps=4) as monitor:
        models.train_nnx(model, x, y, steps=10, monitor=monitor)
    return logdir, monitor


def test_nnx_planted_dead_units_are_found_exactly(nnx_logs):
    logdir, monitor = nnx_logs
    assert monitor.watched == {"hidden": (32, "Dense", "relu")}
    layers = report_layers(logdir)
    assert sorted(layers) == ["hidden"]
    assert layers["hidden"]["dead_now"] == models.DEAD_UNITS
    assert layers["hidden"]["steps"] == [0, 4, 8, 10]
    assert api.load(logdir).layers["."]["hidden"].dead_now == models.DEAD_UNITS


def test_nnx_snapshot_reads_the_current_state_with_dropout_off(tmp_path):
    x, y = models.data()
    model = models.nnx_model()
    monitor = DeadNeuronMonitor(model, str(tmp_path), x[:64], every_n_steps=1)
    first = monitor.last_snapshot  # written at close or the next step
    models.train_nnx(model, x, y, steps=3)
    monitor.step()
    monitor.close()
    hidden = jax.nn.relu(x[:64] @ model.hidden.kernel.value + model.hidden.bias.value)
    np.testing.assert_array_equal(
        monitor.last_snapshot["hidden"], snapshot_np(np.asarray(hidden))
    )
    assert first is not monitor.last_snapshot
    assert model.drop.deterministic is False  # the module itself is untouched


def _params_after(monitored: bool, tmp_path, nnx_model: bool):
    x, y = models.data()
    if nnx_model:
        model = models.nnx_model()
        monitor = (
            DeadNeuronMonitor(model, str(tmp_path), x[:64], every_n_steps=1)
            if monitored
            else None
        )
        models.train_nnx(model, x, y, steps=6, monitor=monitor)
        from flax import nnx

        result = nnx.state(model)
    else:
        model = models.CNN()
        xi, yi = models.data((8, 8, 3), n=64, classes=4)
        variables = models.linen_init(
            model, xi, "bn", models.DEAD_CHANNELS, name="bias"
        )
        monitor = (
            DeadNeuronMonitor(
                lambda v, d: model.apply(v, d, mutable=["batch_stats"]),
                str(tmp_path),
                (xi[:32], yi[:32]),
                every_n_steps=1,
                variables=variables,
                gradients=True,
                loss_fn=models.xent,
            )
            if monitored
            else None
        )
        result = models.train_linen(
            model, variables, xi, yi, steps=4, monitor=monitor, mutable=True
        )
    if monitor:
        monitor.close()
    return jax.tree_util.tree_leaves(result)


@pytest.mark.parametrize(
    "nnx_model", [False, True], ids=["linen-cnn-bn", "nnx-dropout"]
)
def test_training_is_identical_with_and_without_the_monitor(tmp_path, nnx_model):
    """Params, BatchNorm statistics, dropout RNG state: bit for bit the same."""
    without = _params_after(False, tmp_path / "a", nnx_model)
    with_ = _params_after(True, tmp_path / "b", nnx_model)
    assert len(without) == len(with_)
    for a, b in zip(without, with_, strict=True):
        np.testing.assert_array_equal(_host(a), _host(b))


def _host(leaf) -> np.ndarray:
    if jnp.issubdtype(leaf.dtype, jax.dtypes.prng_key):  # dropout's RNG stream
        return np.asarray(jax.random.key_data(leaf))
    return np.asarray(leaf)


def test_start_step_resumes_the_step_axis(tmp_path):
    x, y = models.data()
    model = models.MLP()
    variables = models.linen_init(model, x, "hidden", models.DEAD_UNITS)
    with DeadNeuronMonitor(
        model.apply,
        str(tmp_path),
        x[:64],
        every_n_steps=5,
        variables=variables,
        start_step=100,
    ) as monitor:
        models.train_linen(model, variables, x, y, steps=7, monitor=monitor)
    steps = [s for s, _ in events.snapshots(str(tmp_path))["hidden"]]
    assert steps == [100, 105, 107]


def test_scalars_and_alert_come_from_the_shared_progress_rule(tmp_path):
    x, y = models.data()
    model = models.MLP()
    variables = models.linen_init(model, x, "hidden", models.DEAD_UNITS)
    with pytest.warns(UserWarning, match="hidden") as caught:
        with DeadNeuronMonitor(
            model.apply,
            str(tmp_path),
            x[:64],
            every_n_steps=5,
            variables=variables,
            scalars=True,
            alert_above=0.05,
        ) as monitor:
            models.train_linen(model, variables, x, y, steps=12, monitor=monitor)
    assert sum("hidden" in str(w.message) for w in caught) == 1  # once per layer
    run = events.load(str(tmp_path))
    dead = run.Scalars("deadneurons/hidden/dead_fraction")
    assert [e.step for e in dead] == [0, 5, 10, 12]
    share = len(models.DEAD_UNITS) / 32
    assert all(abs(e.value - share) < 1e-6 for e in dead)


def test_no_tensorflow_keras_or_torch_is_imported():
    code = (
        "import sys, numpy as np\n"
        "from tests import jax_models as m\n"
        "from tb_deadneurons.jax import DeadNeuronMonitor\n"
        "import tempfile\n"
        "x, y = m.data(); model = m.MLP()\n"
        "v = m.linen_init(model, x, 'hidden', m.DEAD_UNITS)\n"
        "with DeadNeuronMonitor(model.apply, tempfile.mkdtemp(), x[:32],"
        " every_n_steps=2, variables=v) as mon:\n"
        "    m.train_linen(model, v, x, y, steps=3, monitor=mon)\n"
        "print(sorted({k.split('.')[0] for k in sys.modules}"
        " & {'tensorflow', 'keras', 'torch', 'jax'}))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env=dict(os.environ, PYTHONPATH=ROOT),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.strip().splitlines()[-1] == "['jax']"


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(every_n_steps=0), "every_n_steps must be an integer >= 1; got 0"),
        (dict(start_step=-1), "start_step must be an integer >= 0; got -1"),
        (dict(epsilon=float("nan")), "epsilon must be a finite number"),
        (dict(gradients=True), "gradients=True needs probe_data=\\(x, y\\)"),
        (dict(variables=None), "variables must be given"),
        (dict(probe_data=np.zeros((0, 20), np.float32)), "probe_data has no samples"),
        (dict(probe_data=np.zeros((4, 7), np.float32)), "probe_data does not fit"),
    ],
)
def test_bad_arguments_raise_a_value_error_naming_them(tmp_path, kwargs, match):
    x, _ = models.data()
    model = models.MLP()
    args = dict(
        model=model.apply,
        log_dir=str(tmp_path),
        probe_data=x[:8],
        variables=models.linen_init(model, x, "hidden", []),
    )
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        DeadNeuronMonitor(**args)


def test_step_after_close_and_wrong_step_arguments_raise(tmp_path):
    x, _ = models.data()
    model = models.nnx_model()
    monitor = DeadNeuronMonitor(model, str(tmp_path), x[:8])
    with pytest.raises(ValueError, match="step takes \\(loss=None\\)"):
        monitor.step(1.0, 2.0)
    monitor.close()
    with pytest.raises(ValueError, match="after close"):
        monitor.step()
