"""The Keras writer on models nobody here wrote: keras-hub backbones,
keras.applications, blocks written as layers, Conv-BN-ReLU.

Every model is built from a config (no weights); dead units are planted
(a bias of -1e4, or a BN beta of -1e4) and must be exactly the dead ones.
"""

from __future__ import annotations

import keras
import keras_hub
import numpy as np
import pytest

import tb_deadneurons
from tb_deadneurons.format import codec, metadata
from tb_deadneurons.keras import discovery, probe
from tests import events

L = keras.layers
RNG = np.random.default_rng(0)
DEAD_FFN = {0: [3, 17, 40], 1: [0, 63]}
TINY = dict(
    vocabulary_size=100,
    num_layers=2,
    num_heads=2,
    hidden_dim=32,
    intermediate_dim=64,
    max_sequence_length=16,
)


def _plant(layer, units, healthy=None):
    """A bias of -1e4 on ``units``; ``healthy`` on the others if given (a
    positive bias keeps a ReLU unit from dying by chance)."""
    values = keras.ops.convert_to_numpy(layer.bias).copy()
    if healthy is not None:
        values[:] = healthy
    values[units] = -1e4
    layer.bias.assign(values)


def _dead(codes) -> list[int]:
    stats = codec.decode_snapshot(
        codes, metadata.snapshot_plugin_data(with_gradients=False)
    )
    return np.flatnonzero(stats["active_fraction"] == 0).tolist()


def _tokens(n=8, segments=False):
    x = {
        "token_ids": RNG.integers(1, 100, (n, 16)),
        "padding_mask": np.ones((n, 16), bool),
    }
    if segments:
        x["segment_ids"] = np.zeros((n, 16), "int32")
    return x


def _layer(model, path):
    return dict(discovery.walk(model))[path]


def _ffn(i):
    return f"transformer_layer_{i}/feedforward_intermediate_dense"


def test_gpt2_planted_ffn_units_are_exactly_the_dead_ones_and_no_block_is_watched(
    tmp_path,
):
    model = keras_hub.models.GPT2Backbone(**TINY)
    for i, units in DEAD_FFN.items():
        _plant(
            model.get_layer(f"transformer_layer_{i}")._feedforward_intermediate_dense,
            units,
        )
    model.compile(keras.optimizers.SGD(1e-4), "mse")
    x = _tokens(24)
    cb = tb_deadneurons.DeadNeuronCallback(tmp_path, _tokens(8), every_n_batches=2)
    model.fit(
        x, np.zeros((24, 16, 32), "float32"), batch_size=8, callbacks=[cb], verbose=0
    )
    snaps = events.snapshots(str(tmp_path / "train"))
    assert set(snaps) == {_ffn(0), _ffn(1)}  # GELU units, not the blocks' outputs
    for i, units in DEAD_FFN.items():
        # 3 batches every 2: steps 0 and 2, and the end of training at 3.
        assert [s for s, _ in snaps[_ffn(i)]] == [0, 2, 3]
        for _, stats in snaps[_ffn(i)]:
            assert np.flatnonzero(stats["active_fraction"] == 0).tolist() == units
    _, data = events.plugin_data(str(tmp_path / "train"), _ffn(0))
    assert (data.layer_class, data.activation) == ("Dense", "gelu_approximate")


def test_bert_planted_ffn_units_are_exactly_the_dead_ones():
    model = keras_hub.models.BertBackbone(**TINY)
    for i, units in DEAD_FFN.items():
        _plant(
            model.get_layer(f"transformer_layer_{i}")._feedforward_intermediate_dense,
            units,
        )
    p = probe.Probe(model, _tokens(segments=True))
    # pooled_dense (tanh) is a model output: left out like any output layer.
    assert set(p.watched) == {_ffn(0), _ffn(1)}
    codes = p()
    for i, units in DEAD_FFN.items():
        assert _dead(codes[_ffn(i)]) == units


def test_layers_takes_paths_unique_suffixes_and_objects_and_names_ambiguity():
    model = keras_hub.models.GPT2Backbone(**TINY)
    inner = _layer(model, "transformer_layer_1/feedforward_output_dense")
    assert list(
        discovery.select(model, ["transformer_layer_0/feedforward_intermediate_dense"])
    ) == [_ffn(0)]
    assert list(discovery.select(model, [inner])) == [
        "transformer_layer_1/feedforward_output_dense"
    ]
    with pytest.raises(ValueError, match="names 2 layers.*transformer_layer_0/feed"):
        discovery.select(model, ["feedforward_intermediate_dense"])
    with pytest.raises(ValueError, match="layers: 'nope'"):
        discovery.select(model, ["nope"])


class _HoldsDense(L.Layer):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.inner = L.Dense(4, activation="relu", name="dense")

    def call(self, x):
        return self.inner(x)


def test_a_full_path_wins_over_a_longer_path_ending_in_it():
    # "dense" is the top-level layer's whole path and also the suffix of
    # "block/dense", walked first: the name means the layer that has it.
    x = keras.Input((3,))
    top = L.Dense(5, activation="relu", name="dense")
    model = keras.Model(x, top(_HoldsDense(name="block")(x)))
    paths = [p for p, _ in discovery.walk(model)]
    assert paths.index("block/dense") < paths.index("dense")
    assert discovery.select(model, ["dense"]) == {"dense": top}


class SequentialFFN(L.Layer):
    """A block that holds its FFN as a Sequential, plus a residual."""

    def __init__(self, width, **kwargs):
        super().__init__(**kwargs)
        self.ffn = keras.Sequential(
            [L.Dense(width, activation="relu", name="up"), L.Dense(8, name="down")],
            name="ffn",
        )

    def call(self, x):
        return x + self.ffn(x)


class ResidualBlock(L.Layer):
    """A residual block written as a layer: Dense, ReLU layer, Dense, add."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.parts = {"dense": L.Dense(6, name="inner"), "act": L.ReLU(name="act")}
        self.proj = [L.Dense(8, name="proj")]

    def call(self, x):
        return x + self.proj[0](self.parts["act"](self.parts["dense"](x)))


def test_units_inside_custom_blocks_are_watched_and_the_blocks_are_not():
    inputs = keras.Input((8,))
    h = ResidualBlock(name="res")(inputs)
    h = SequentialFFN(12, name="block")(h)
    model = keras.Model(inputs, L.Dense(2)(h))
    _plant(model.get_layer("res").parts["dense"], [2, 4], healthy=1.0)
    _plant(model.get_layer("block").ffn.get_layer("up"), [0, 7, 11], healthy=1.0)
    p = probe.Probe(model, RNG.uniform(0, 1, (32, 8)).astype("float32"))
    assert set(p.watched) == {"res/act", "block/ffn/up"}
    # Unique suffixes name layers deep inside blocks.
    assert list(discovery.select(model, ["ffn/up", "act"])) == [
        "block/ffn/up",
        "res/act",
    ]
    codes = p()
    assert _dead(codes["res/act"]) == [2, 4]
    assert _dead(codes["block/ffn/up"]) == [0, 7, 11]


@pytest.mark.parametrize(
    "build, kind, count",
    [
        (keras.applications.ResNet50, "Activation", 49),
        (keras.applications.MobileNetV2, "ReLU", 35),
    ],
)
def test_every_relu_of_keras_applications_models_is_watched(build, kind, count):
    # 32x32 is the smallest input both accept.
    model = build(weights=None, input_shape=(32, 32, 3), classes=10)
    relus = {p for p, la in discovery.walk(model) if type(la).__name__ == kind}
    relus = {p for p in relus if discovery.activation_name(model.get_layer(p))}
    assert len(relus) == count
    assert set(discovery.select(model, None)) == relus  # not the softmax output


DEAD_CHANNELS = [1, 6]


def _conv_bn_relu():
    inputs = keras.Input((8, 8, 3))
    h = L.Conv2D(8, 3, name="conv")(inputs)
    h = L.BatchNormalization(name="bn")(h)
    h = L.ReLU(name="relu")(h)
    h = L.Dropout(0.3)(h)
    h = L.GlobalAveragePooling2D()(h)
    model = keras.Model(inputs, L.Dense(3, activation="softmax")(h))
    beta = keras.ops.convert_to_numpy(model.get_layer("bn").beta).copy()
    beta[DEAD_CHANNELS] = -1e4
    model.get_layer("bn").beta.assign(beta)
    model.compile(keras.optimizers.SGD(1e-3), "sparse_categorical_crossentropy")
    return model


def test_conv_bn_relu_on_uncentred_inputs_shows_only_the_planted_dead_channels(
    tmp_path,
):
    # Inputs far from zero: with BN's fresh moving statistics (mean 0, var 1)
    # an inference-mode probe finds whole channels below zero; training
    # normalises with the batch's statistics and sees none of that.
    x = RNG.uniform(5.0, 10.0, (64, 8, 8, 3)).astype("float32")
    y = RNG.integers(0, 3, 64)
    model = _conv_bn_relu()
    kernel = keras.ops.convert_to_numpy(model.get_layer("conv").kernel)
    model.get_layer("conv").kernel.assign(
        np.abs(kernel) * np.sign(kernel.sum((0, 1, 2)))
    )
    cb = tb_deadneurons.DeadNeuronCallback(tmp_path, x[:32], every_n_batches=2)
    model.fit(x, y, batch_size=16, epochs=1, callbacks=[cb], verbose=0)
    snaps = events.snapshots(str(tmp_path / "train"))["relu"]
    assert [s for s, _ in snaps] == [0, 2, 4]
    for _, stats in snaps:
        assert np.flatnonzero(stats["active_fraction"] == 0).tolist() == DEAD_CHANNELS


@pytest.mark.parametrize("frozen, dead", [(False, []), (True, list(range(8)))])
def test_a_frozen_batchnorm_keeps_its_moving_statistics_in_the_probe(frozen, dead):
    # Moving means far above anything the batch gives: inference mode puts
    # every channel below zero, batch statistics put none there.
    inputs = keras.Input((8, 8, 3))
    h = L.BatchNormalization(name="bn")(L.Conv2D(8, 3, name="conv")(inputs))
    model = keras.Model(inputs, L.Dense(2)(L.Flatten()(L.ReLU(name="relu")(h))))
    bn = model.get_layer("bn")
    bn.moving_mean.assign(np.full(8, 1e3, "float32"))
    bn.trainable = not frozen
    p = probe.Probe(model, RNG.uniform(0, 1, (16, 8, 8, 3)).astype("float32"))
    assert _dead(p()["relu"]) == dead
