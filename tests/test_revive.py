"""revive(): ReDo-style re-initialisation on real Keras 3 models."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from tb_deadneurons.keras.revive import revive

L = keras.layers
RNG = np.random.default_rng(0)


@pytest.fixture(autouse=True)
def _seeded():
    # Unseeded weights made the suite order-dependent: with some draws every
    # unit of a 4-channel ReLU conv started dead and the next layer's slots
    # stayed zero, which the slot checks below read as a revive bug.
    keras.utils.set_random_seed(0)


def _data(shape, outputs=2, n=16):
    x = RNG.uniform(0.0, 1.0, (n, *shape)).astype("float32")
    y = RNG.normal(size=(n, outputs)).astype("float32")
    return x, y


def _trained(model, x, y, optimizer=None):
    """Compiles and trains a few steps so the optimizer's slots are non-zero."""
    optimizer = optimizer or keras.optimizers.Adam(0.01)
    model.compile(optimizer=optimizer, loss="mse")
    for _ in range(3):
        model.train_on_batch(x, y)
    return optimizer


def _kill(layer, units):
    """Plants dead ReLU units: a bias no input in [0, 1] can overcome."""
    bias = layer.bias.numpy()
    bias[units] = -1e3
    layer.bias.assign(bias)


def _state(model, optimizer=None) -> dict[str, np.ndarray]:
    variables = list(model.weights) + list(optimizer.variables if optimizer else [])
    return {v.path: np.array(keras.ops.convert_to_numpy(v)) for v in variables}


def _slots(state, optimizer, path):
    prefix = f"{optimizer.name}/{path.replace('/', '_')}_"
    return [p for p in state if p.startswith(prefix)]


def _assert_revived(before, after, reinit, zero, optimizer=None):
    """``reinit``/``zero`` map variable paths to the entries revive must touch;
    every other entry of every weight and optimizer variable must be equal."""
    expected_zero = dict(zero)
    for path, mask in reinit.items():
        assert np.all(after[path][mask] != before[path][mask]), path
        assert np.array_equal(after[path][~mask], before[path][~mask]), path
    if optimizer is not None:
        for path in set(reinit) | set(zero):
            mask = reinit.get(path, zero.get(path))
            for slot in _slots(before, optimizer, path):
                assert np.count_nonzero(before[slot][mask]), f"{slot} was zero"
                expected_zero[slot] = mask
        assert any(_slots(before, optimizer, p) for p in reinit)
    for path, mask in expected_zero.items():
        assert np.all(after[path][mask] == 0), path
        if path not in reinit:
            assert np.array_equal(after[path][~mask], before[path][~mask]), path
    for path in set(before) - set(reinit) - set(expected_zero):
        if not path.endswith(("iteration", "learning_rate")):
            assert np.array_equal(after[path], before[path]), path


def _column_mask(shape, units):
    mask = np.zeros(shape, dtype=bool)
    mask[..., units] = True
    return mask


def _row_mask(shape, rows):
    mask = np.zeros(shape, dtype=bool)
    mask[..., rows, :] = True
    return mask


def test_dense_revival_keeps_outputs_and_resets_only_those_units_and_slots():
    model = keras.Sequential(
        [keras.Input((6,)), L.Dense(8, activation="relu", name="h"), L.Dense(3)]
    )
    x, y = _data((6,), outputs=3)
    optimizer = _trained(model, x, y)
    _kill(model.get_layer("h"), [1, 5])
    before, out_before = _state(model, optimizer), model.predict_on_batch(x)

    assert revive(model, "h", [5, 1, 5], optimizer) == [1, 5]

    after = _state(model, optimizer)
    assert np.max(np.abs(model.predict_on_batch(x) - out_before)) <= 1e-5
    out = model.layers[-1].kernel.path
    _assert_revived(
        before,
        after,
        reinit={model.get_layer("h").kernel.path: _column_mask((6, 8), [1, 5])},
        zero={
            model.get_layer("h").bias.path: _column_mask((8,), [1, 5]),
            out: _row_mask((8, 3), [1, 5]),
        },
        optimizer=optimizer,
    )


def test_revived_dense_units_are_active_again_on_the_probe():
    inputs = keras.Input((6,))
    hidden = L.Dense(8, activation="relu", name="h")(inputs)
    model = keras.Model(inputs, [hidden, L.Dense(2)(hidden)])
    x = RNG.normal(size=(64, 6)).astype("float32")  # centred, like a real probe
    _kill(model.get_layer("h"), [0, 3])
    assert np.all(model(x)[0].numpy()[:, [0, 3]] == 0)

    with pytest.raises(ValueError, match="'h'"):  # h itself is a model output
        revive(model, "h", [0, 3])
    model = keras.Model(inputs, model.outputs[1])
    revive(model, "h", [0, 3])

    probe = keras.Model(inputs, hidden)(x).numpy()
    assert np.all((probe[:, [0, 3]] > 0).any(axis=0))


def test_repeated_revival_draws_fresh_incoming_weights():
    model = keras.Sequential(
        [keras.Input((4,)), L.Dense(3, activation="relu"), L.Dense(1)]
    )
    layer = model.layers[0]
    revive(model, layer, [2])
    first = layer.kernel.numpy()[:, 2].copy()
    revive(model, layer, [2])
    assert not np.allclose(layer.kernel.numpy()[:, 2], first)


def test_conv2d_revival_zeroes_that_input_channel_of_the_next_conv():
    inputs = keras.Input((7, 7, 2))
    h = L.Conv2D(4, 3, activation="relu", name="c1")(inputs)
    h = L.Conv2D(3, 3, name="c2")(L.ReLU()(h))
    model = keras.Model(inputs, L.Dense(2)(L.GlobalMaxPooling2D()(h)))
    x, y = _data((7, 7, 2))
    optimizer = _trained(model, x, y)
    _kill(model.get_layer("c1"), [2])
    before, out_before = _state(model, optimizer), model.predict_on_batch(x)

    assert revive(model, model.get_layer("c1"), [2], optimizer) == [2]

    assert np.max(np.abs(model.predict_on_batch(x) - out_before)) <= 1e-5
    _assert_revived(
        before,
        _state(model, optimizer),
        reinit={model.get_layer("c1").kernel.path: _column_mask((3, 3, 2, 4), [2])},
        zero={
            model.get_layer("c1").bias.path: _column_mask((4,), [2]),
            model.get_layer("c2").kernel.path: _row_mask((3, 3, 4, 3), [2]),
        },
        optimizer=optimizer,
    )


def test_conv_flatten_dense_revival_zeroes_rows_whose_index_mod_channels_is_the_unit():
    inputs = keras.Input((6, 6, 2))
    h = L.Conv2D(4, 3, activation="relu", name="c")(inputs)
    h = L.Flatten()(L.Dropout(0.3)(L.MaxPooling2D()(h)))  # (2, 2, 4) -> 16
    model = keras.Model(inputs, L.Dense(2, name="d")(h))
    x, y = _data((6, 6, 2))
    optimizer = _trained(model, x, y)
    _kill(model.get_layer("c"), [1, 3])
    before, out_before = _state(model, optimizer), model.predict_on_batch(x)

    revive(model, "c", [1, 3], optimizer)

    assert np.max(np.abs(model.predict_on_batch(x) - out_before)) <= 1e-5
    rows = [i for i in range(16) if i % 4 in (1, 3)]
    _assert_revived(
        before,
        _state(model, optimizer),
        reinit={model.get_layer("c").kernel.path: _column_mask((3, 3, 2, 4), [1, 3])},
        zero={
            model.get_layer("c").bias.path: _column_mask((4,), [1, 3]),
            model.get_layer("d").kernel.path: _row_mask((16, 2), rows),
        },
        optimizer=optimizer,
    )


def test_conv_global_average_pooling_dense_revival_resets_sgd_momentum():
    inputs = keras.Input((6, 6, 2))
    h = L.Conv2D(5, 3, activation="relu", name="c")(inputs)
    model = keras.Model(inputs, L.Dense(2, name="d")(L.GlobalAveragePooling2D()(h)))
    x, y = _data((6, 6, 2))
    optimizer = _trained(model, x, y, keras.optimizers.SGD(0.01, momentum=0.9))
    _kill(model.get_layer("c"), [0, 4])
    before, out_before = _state(model, optimizer), model.predict_on_batch(x)

    revive(model, "c", [0, 4], optimizer)

    assert np.max(np.abs(model.predict_on_batch(x) - out_before)) <= 1e-5
    _assert_revived(
        before,
        _state(model, optimizer),
        reinit={model.get_layer("c").kernel.path: _column_mask((3, 3, 2, 5), [0, 4])},
        zero={
            model.get_layer("c").bias.path: _column_mask((5,), [0, 4]),
            model.get_layer("d").kernel.path: _row_mask((5, 2), [0, 4]),
        },
        optimizer=optimizer,
    )


@pytest.mark.parametrize("flatten_format", ["channels_last", "channels_first"])
def test_channels_first_conv_flatten_rows_match_what_keras_flatten_does(flatten_format):
    # TF on CPU cannot run NCHW convolutions; the graph is built, not run, and
    # Keras's own Flatten on a one-hot channel says which rows carry the unit.
    inputs = keras.Input((2, 5, 5))
    h = L.Conv2D(3, 3, data_format="channels_first", activation="relu", name="c")(
        inputs
    )
    h = L.Flatten(data_format=flatten_format)(h)  # (3, 3, 3) -> 27
    model = keras.Model(inputs, L.Dense(2, name="d")(h))
    onehot = np.zeros((1, 3, 3, 3), dtype="float32")
    onehot[:, 1] = 1.0
    rows = np.flatnonzero(L.Flatten(data_format=flatten_format)(onehot).numpy()[0])

    revive(model, "c", [1])

    zero_rows = np.flatnonzero(np.all(model.get_layer("d").kernel.numpy() == 0, axis=1))
    assert np.array_equal(zero_rows, rows) and len(rows) == 9


def test_every_consumer_of_a_branching_layer_is_zeroed():
    inputs = keras.Input((4,))
    h = L.Dense(5, activation="relu", name="h")(inputs)
    a, b = L.Dense(2, name="a")(h), L.Dense(3, name="b")(L.Dropout(0.1)(h))
    model = keras.Model(inputs, L.Concatenate()([a, b]))

    revive(model, "h", [3])

    assert np.all(model.get_layer("a").kernel.numpy()[3] == 0)
    assert np.all(model.get_layer("b").kernel.numpy()[3] == 0)


def _bn_before_relu(inputs):
    h = L.Dense(4, name="target")(inputs)
    return L.Dense(2)(L.ReLU()(L.BatchNormalization(name="bn")(h))), "bn"


def _add_merge(inputs):
    h = L.Dense(4, activation="relu", name="target")(inputs)
    return L.Dense(2)(L.Add(name="add")([h, L.Dense(4)(inputs)])), "add"


def _softmax_units(inputs):
    h = L.Dense(4, activation="softmax", name="target")(inputs)
    return L.Dense(2)(h), "target"


def _reshape_consumer(inputs):
    h = L.Dense(4, activation="relu", name="target")(inputs)
    return L.Dense(2)(L.Flatten()(L.Reshape((2, 2), name="reshape")(h))), "reshape"


def _layernorm_consumer(inputs):
    h = L.Dense(4, activation="relu", name="target")(inputs)
    return L.Dense(2)(L.LayerNormalization(name="ln")(h)), "ln"


def _shared_consumer(inputs):
    h = L.Dense(4, activation="relu", name="target")(inputs)
    shared = L.Dense(2, name="shared")
    return L.Add()([shared(h), shared(L.Dense(4)(inputs))]), "shared"


@pytest.mark.parametrize(
    "build",
    [
        _bn_before_relu,
        _add_merge,
        _softmax_units,
        _reshape_consumer,
        _layernorm_consumer,
        _shared_consumer,
    ],
)
def test_unsupported_topology_raises_naming_the_layer_and_changes_nothing(build):
    inputs = keras.Input((6,))
    outputs, culprit = build(inputs)
    model = keras.Model(inputs, outputs)
    x, y = _data((6,))
    optimizer = _trained(model, x, y)
    before = _state(model, optimizer)

    with pytest.raises(ValueError, match=f"'{culprit}'"):
        revive(model, "target", [0, 2], optimizer)

    after = _state(model, optimizer)
    assert all(np.array_equal(before[p], after[p]) for p in before)


def test_unit_out_of_range_raises_and_changes_nothing():
    model = keras.Sequential(
        [keras.Input((3,)), L.Dense(4, activation="relu"), L.Dense(1)]
    )
    before = _state(model)
    with pytest.raises(ValueError, match="out of range"):
        revive(model, model.layers[0], [1, 4])
    assert all(np.array_equal(v, _state(model)[p]) for p, v in before.items())


def _mlp():
    return keras.Sequential(
        [keras.Input((6,)), L.Dense(8, activation="relu", name="h"), L.Dense(3)]
    )


@pytest.mark.parametrize("wrong", ["adam", "another model's"])
def test_revive_refuses_an_optimizer_that_does_not_train_the_model(wrong):
    model, other = _mlp(), _mlp()
    x, y = _data((6,), outputs=3)
    optimizer = _trained(model, x, y)
    other_optimizer = _trained(other, x, y)
    _kill(model.get_layer("h"), [1])
    before = _state(model, optimizer)
    with pytest.raises(ValueError, match="optimizer"):
        revive(model, "h", [1], "adam" if wrong == "adam" else other_optimizer)
    # Nothing changed: not the weights, not the real optimizer's slots.
    after = _state(model, optimizer)
    for path, value in before.items():
        np.testing.assert_array_equal(after[path], value)
