"""DeadNeuronCallback on real Keras models, read back from real event files."""

import time

import keras
import numpy as np
import pytest
import tensorflow as tf
from tensorboard.util import tensor_util

import tb_deadneurons
from tb_deadneurons.format import events as events_lib
from tb_deadneurons.keras.callback import LOSS_TAG
from tests import events

DEAD_DENSE = [1, 4, 9]
DEAD_CHANNELS = [0, 5]
SATURATED_TANH = [2, 3]


def _xy(n=256, shape=(8, 8, 1), seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, *shape)).astype("float32")
    y = rng.integers(0, 3, size=n)
    return x, y


def _planted_model():
    inputs = keras.Input((8, 8, 1))
    h = keras.layers.Conv2D(8, 3, activation="relu", name="conv")(inputs)
    h = keras.layers.Flatten()(h)
    h = keras.layers.Dense(12, activation="relu", name="dense")(h)
    h = keras.layers.Dense(6, activation="tanh", name="tanh")(h)
    outputs = keras.layers.Dense(3, activation="softmax", name="out")(h)
    model = keras.Model(inputs, outputs)
    # Healthy units get a positive bias so that none dies by chance.
    kernel, bias = model.get_layer("dense").get_weights()
    kernel *= 0.05
    bias[:] = 1.0
    bias[DEAD_DENSE] = -1e4
    model.get_layer("dense").set_weights([kernel, bias])
    kernel, bias = model.get_layer("conv").get_weights()
    bias[:] = 1.0
    bias[DEAD_CHANNELS] = -1e4
    model.get_layer("conv").set_weights([kernel, bias])
    kernel, bias = model.get_layer("tanh").get_weights()
    kernel[:, SATURATED_TANH] = 0.0
    bias[SATURATED_TANH] = 30.0
    model.get_layer("tanh").set_weights([kernel, bias])
    # A small step size, so that no healthy unit dies while the test trains.
    model.compile(keras.optimizers.SGD(1e-3), "sparse_categorical_crossentropy")
    return model


def test_planted_dead_units_are_exactly_the_never_active_or_constant_ones(tmp_path):
    x, y = _xy()
    model = _planted_model()
    cb = tb_deadneurons.DeadNeuronCallback(tmp_path, x[:128], every_n_batches=4)
    model.fit(x, y, batch_size=32, epochs=2, callbacks=[cb], verbose=0)
    snaps = events.snapshots(str(tmp_path / "train"))
    assert set(snaps) == {"conv", "dense", "tanh"}  # not the output layer
    assert [s for s, _ in snaps["dense"]] == [0, 4, 8, 12, 16]
    for _, stats in snaps["dense"]:
        assert np.flatnonzero(stats["active_fraction"] == 0).tolist() == DEAD_DENSE
    for _, stats in snaps["conv"]:
        assert np.flatnonzero(stats["active_fraction"] == 0).tolist() == DEAD_CHANNELS
        assert np.flatnonzero(stats["max_abs"] == 0).tolist() == DEAD_CHANNELS
    for _, stats in snaps["tanh"]:
        assert np.flatnonzero(stats["std"] == 0).tolist() == SATURATED_TANH
        others = np.setdiff1d(np.arange(6), SATURATED_TANH)
        assert np.all(stats["std"][others] > 1e-3)
        assert np.all(stats["count"] == pytest.approx(128, rel=0.1))
    _, data = events.plugin_data(str(tmp_path / "train"), "conv")
    assert (data.layer_class, data.activation, data.unit_axis) == ("Conv2D", "relu", -1)


def test_a_relu_layer_with_a_negative_slope_is_recorded_as_leaky(tmp_path):
    # keras.layers.ReLU(negative_slope=...) outputs negative values: a "relu"
    # label would tell the dashboard and the hints a unit cannot be negative.
    model = keras.Sequential(
        [
            keras.Input((10,)),
            keras.layers.Dense(8, name="a"),
            keras.layers.ReLU(name="plain"),
            keras.layers.Dense(8, name="b"),
            keras.layers.ReLU(negative_slope=0.1, name="leaks"),
            keras.layers.Dense(3),
        ]
    )
    model.compile("sgd", "mse")
    x, _ = _xy(n=32, shape=(10,))
    cb = tb_deadneurons.DeadNeuronCallback(tmp_path, x, every_n_batches=1)
    model.fit(x, np.zeros((32, 3)), batch_size=16, verbose=0, callbacks=[cb])
    run = str(tmp_path / "train")
    assert events.plugin_data(run, "plain")[1].activation == "relu"
    assert events.plugin_data(run, "leaks")[1].activation == "leaky_relu"


def test_loss_is_logged_at_the_snapshot_steps(tmp_path):
    x, y = _xy()
    cb = tb_deadneurons.DeadNeuronCallback(tmp_path, x[:64], every_n_batches=2)
    _planted_model().fit(x, y, batch_size=64, epochs=1, callbacks=[cb], verbose=0)
    loss = events.load(str(tmp_path / "train")).Tensors(LOSS_TAG)
    assert [e.step for e in loss] == [2, 4]
    assert all(np.isfinite(tensor_util.make_ndarray(e.tensor_proto)) for e in loss)


def _mlp_layers():
    return [
        keras.layers.Dense(16, activation="relu", name="h1"),
        keras.layers.Dense(8, name="lin"),
        keras.layers.LeakyReLU(name="leaky"),
        keras.layers.Dense(3, activation="softmax", name="out"),
    ]


class SubclassedMLP(keras.Model):
    def __init__(self):
        super().__init__()
        self.h1, self.lin, self.leaky, self.out = _mlp_layers()

    def call(self, x):
        return self.out(self.leaky(self.lin(self.h1(x))))


def _sequential():
    return keras.Sequential([keras.Input((10,)), *_mlp_layers()])


def _functional():
    inputs = keras.Input((10,))
    h = inputs
    for layer in _mlp_layers():
        h = layer(h)
    return keras.Model(inputs, h)


def _nested():
    inner = keras.Sequential(
        [keras.Input((10,)), keras.layers.Dense(16, activation="relu", name="h1")],
        name="inner",
    )
    inputs = keras.Input((10,))
    h = keras.layers.Dense(8, activation="elu", name="e")(inner(inputs))
    return keras.Model(inputs, keras.layers.Dense(3, activation="softmax")(h))


@pytest.mark.parametrize(
    "build, tags",
    [
        (_sequential, {"h1", "leaky"}),
        (_functional, {"h1", "leaky"}),
        (SubclassedMLP, {"h1", "leaky"}),
        (_nested, {"inner/h1", "e"}),
    ],
    ids=["sequential", "functional", "subclassed", "nested"],
)
def test_every_model_style_logs_its_non_linear_layers(tmp_path, build, tags):
    x, y = _xy(n=96, shape=(10,))
    model = build()
    model.compile("sgd", "sparse_categorical_crossentropy")
    cb = tb_deadneurons.DeadNeuronCallback(
        tmp_path, (x[:32], y[:32]), every_n_batches=3, gradients=True
    )
    model.fit(x, y, batch_size=16, epochs=1, callbacks=[cb], verbose=0)
    snaps = events.snapshots(str(tmp_path / "train"))
    assert set(snaps) == tags
    for series in snaps.values():
        assert [s for s, _ in series] == [0, 3, 6]
        assert all(np.all(st["grad_mean_abs"] >= 0) for _, st in series)
        assert any(np.any(st["grad_mean_abs"] > 0) for _, st in series)
    # The training loss, not the probe's (gradients=True computes that too).
    loss = events.load(str(tmp_path / "train")).Tensors(LOSS_TAG)
    assert [e.step for e in loss] == [3, 6]


def test_layers_argument_takes_names_and_objects_and_may_name_the_output(tmp_path):
    x, y = _xy(n=32, shape=(10,))
    model = _sequential()
    model.compile("sgd", "sparse_categorical_crossentropy")
    cb = tb_deadneurons.DeadNeuronCallback(
        tmp_path, x, layers=["lin", model.get_layer("out")]
    )
    model.fit(x, y, epochs=1, callbacks=[cb], verbose=0)
    assert set(events.snapshots(str(tmp_path / "train"))) == {"lin", "out"}


def _state_after_fit(tmp_path, with_callback):
    """Weights, BN moving statistics and optimizer variables after a fit."""
    keras.utils.set_random_seed(123)
    x, y = _xy(n=128, shape=(6, 6, 2), seed=3)
    model = keras.Sequential(
        [
            keras.Input((6, 6, 2)),
            keras.layers.Conv2D(8, 3),
            keras.layers.BatchNormalization(),
            keras.layers.ReLU(),
            keras.layers.Flatten(),
            keras.layers.Dense(16, activation="relu"),
            keras.layers.Dropout(0.3),
            keras.layers.Dense(3, activation="softmax"),
        ]
    )
    model.compile("adam", "sparse_categorical_crossentropy")
    callbacks = (
        [
            tb_deadneurons.DeadNeuronCallback(
                tmp_path, (x[:32], y[:32]), 2, gradients=True
            )
        ]
        if with_callback
        else []
    )
    model.fit(x, y, batch_size=16, epochs=2, callbacks=callbacks, verbose=0)
    return [v.numpy() for v in model.variables + model.optimizer.variables]


def test_training_is_unchanged_by_the_callback(tmp_path):
    without = _state_after_fit(tmp_path / "a", False)
    with_cb = _state_after_fit(tmp_path / "b", True)
    assert len(without) > 10  # kernels, BN moving stats, seed state, Adam slots
    for a, b in zip(without, with_cb, strict=True):
        np.testing.assert_array_equal(a, b)


def test_end_of_training_is_snapshotted_when_no_period_ended_there(tmp_path):
    x, y = _xy(n=33 * 4, shape=(10,))
    model = _sequential()
    model.compile("sgd", "sparse_categorical_crossentropy")
    cb = tb_deadneurons.DeadNeuronCallback(tmp_path, x[:16], every_n_batches=4)
    model.fit(x, y, batch_size=4, epochs=1, callbacks=[cb], verbose=0)
    steps = [s for s, _ in events.snapshots(str(tmp_path / "train"))["h1"]]
    assert steps == [0, 4, 8, 12, 16, 20, 24, 28, 32, 33]
    loss = events.load(str(tmp_path / "train")).Tensors(LOSS_TAG)
    assert [e.step for e in loss][-1] == 33


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"every_n_batches": 0}, "every_n_batches"),
        ({"every_n_batches": 2.5}, "every_n_batches"),
        ({"gradients": True}, "labels"),
        ({"layers": "dense"}, "layers"),
        ({"layers": 5}, "layers"),
        ({"layers": [5]}, "layers"),
        ({"epsilon": "x"}, "epsilon"),
        ({"revive_tau": None}, "revive_tau"),
        ({"revive_every": 0}, "revive_every"),
        ({"probe_data": "some text"}, "probe_data"),
        ({"probe_data": np.array(["a", "b"])}, "probe_data"),
        ({"probe_data": np.zeros((0, 10), "float32")}, "no samples"),
        ({"log_dir": ""}, "log_dir"),
    ],
)
def test_bad_arguments_fail_at_construction(tmp_path, kwargs, match):
    args = {"log_dir": str(tmp_path), "probe_data": np.zeros((4, 10), "float32")}
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        tb_deadneurons.DeadNeuronCallback(**args)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"probe_data": np.zeros((4, 7), "float32")}, "does not fit"),
        ({"probe_data": np.zeros((4, 10), "float32"), "layers": ["nope"]}, "nope"),
    ],
)
def test_bad_probe_or_layer_names_fail_before_the_first_step(tmp_path, kwargs, match):
    x, y = _xy(n=32, shape=(10,))
    model = _sequential()
    model.compile("sgd", "sparse_categorical_crossentropy")
    steps = []

    class Count(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            steps.append(batch)

    cb = tb_deadneurons.DeadNeuronCallback(tmp_path, **kwargs)
    with pytest.raises(ValueError, match=match):
        model.fit(x, y, epochs=1, callbacks=[cb, Count()], verbose=0)
    assert steps == []


def test_tf_data_probe_uses_its_first_batch(tmp_path):
    x, y = _xy(n=64, shape=(10,))
    ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(20)
    model = _sequential()
    model.compile("sgd", "sparse_categorical_crossentropy")
    cb = tb_deadneurons.DeadNeuronCallback(tmp_path, ds, gradients=True)
    model.fit(x, y, epochs=1, callbacks=[cb], verbose=0)
    (_, stats), *_ = events.snapshots(str(tmp_path / "train"))["h1"]
    assert np.all(stats["count"] == pytest.approx(20, rel=0.1))


def test_interrupted_fit_keeps_every_snapshot_written_so_far(tmp_path):
    x, y = _xy(n=160, shape=(10,))
    model = _sequential()
    model.compile("sgd", "sparse_categorical_crossentropy")

    class Boom(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            if batch == 6:
                raise RuntimeError("boom")

    cb = tb_deadneurons.DeadNeuronCallback(tmp_path, x[:16], every_n_batches=2)
    with pytest.raises(RuntimeError, match="boom"):
        model.fit(x, y, batch_size=16, epochs=1, callbacks=[cb, Boom()], verbose=0)
    # No hook runs after the exception: the writer's thread writes what was
    # queued at its next turn (every DEFAULT_INTERVAL_S).
    deadline = time.monotonic() + 10 * events_lib.DEFAULT_INTERVAL_S
    while True:
        steps = [s for s, _ in events.snapshots(str(tmp_path / "train")).get("h1", [])]
        if steps == [0, 2, 4, 6] or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert steps == [0, 2, 4, 6]


def test_gradients_on_a_backend_without_autodiff_fail_naming_the_backend():
    from tb_deadneurons.keras import probe

    with pytest.raises(ValueError, match="'numpy'"):
        probe.gradient_function("numpy")
    assert callable(probe.gradient_function("jax"))
