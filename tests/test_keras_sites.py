"""The traced Keras probe's options and fit variants, in this process's
backend: ``layers=`` naming a layer's input, ``unit_axis=``,
``steps_per_execution``, revival of gated FFN units and its refusals.
The models are tests/keras_units_run.py's, units planted there.
"""

from __future__ import annotations

import keras
import numpy as np
import pytest

import tb_deadneurons
from tb_deadneurons.format import codec, metadata
from tb_deadneurons.keras import probe
from tb_deadneurons.keras.revive import revive_site
from tests import events
from tests import keras_units_run as models

FFN0 = "transformer_layer_0/feedforward_output_dense:input"


def _stats(codes) -> dict:
    return codec.decode_snapshot(
        codes, metadata.snapshot_plugin_data(with_gradients=False)
    )


def _dead(codes) -> list[int]:
    return np.flatnonzero(_stats(codes)["active_fraction"] == 0).tolist()


def test_layers_names_a_layers_input_or_its_output():
    model, x, _, truth = models.blocks()
    p = probe.Probe(model, x, layers=["gelu_block/up", "relu_block/down:input"])
    assert sorted(p.sites) == ["gelu_block/up", "relu_block/down:input"]
    codes = p()
    assert _dead(codes["relu_block/down:input"]) == truth["relu"]
    # The pre-activation of the planted units is -1e4: active, not dead.
    assert _dead(codes["gelu_block/up"]) == []
    with pytest.raises(ValueError, match="layers: 'nope'"):
        probe.Probe(model, x, layers=["nope:input"])


def test_unit_axis_overrides_the_axis_of_a_named_series():
    model, x, _, _ = models.timedistributed()
    p = probe.Probe(model, x, unit_axis={"td": 1})
    assert _stats(p()["td"])["count"].shape == (models.STEPS,)
    with pytest.raises(ValueError, match="unit_axis: 'nope' is not a watched"):
        probe.Probe(model, x, unit_axis={"nope": 1})
    with pytest.raises(ValueError, match="unit_axis must be a dict"):
        tb_deadneurons.DeadNeuronCallback("logs", x, unit_axis=[1])


def test_steps_per_execution_snapshots_sit_on_optimizer_steps(tmp_path):
    model, x, y, _ = models.blocks()
    x, y = np.concatenate([x] * 4), np.concatenate([y] * 4)  # 64 samples
    # A tiny step: with the planted -1e4 pre-activations SGD(1e-3) diverged
    # to NaN in some runs, and a NaN loss is (rightly) not written.
    model.compile(keras.optimizers.SGD(1e-6), "mse", steps_per_execution=4)
    cb = tb_deadneurons.DeadNeuronCallback(tmp_path, x[:16], every_n_batches=6)
    board = keras.callbacks.TensorBoard(str(tmp_path), update_freq=1)
    model.fit(x, y, batch_size=4, epochs=1, callbacks=[cb, board], verbose=0)
    snaps = events.snapshots(str(tmp_path / "train"))
    # 16 optimizer steps in executions of 4: the hooks see steps 0, 4, 8, 12
    # and the epoch's end at 16; periods of 6 end inside 4..8 and 8..12.
    assert [s for s, _ in snaps["relu_block/down:input"]] == [0, 8, 12, 16]
    run = events.load(str(tmp_path / "train"))
    loss = [e.step for e in run.Tensors(metadata.LOSS_TAG)]
    assert loss == [8, 12, 16]  # no loss before the first step
    # Keras's own batch_loss counts callback calls: steps 1..4.
    assert [e.step for e in run.Tensors("batch_loss")] == [1, 2, 3, 4]


def test_gated_units_are_revived_with_the_models_outputs_unchanged():
    model, x, _, truth = models.llama()
    p = probe.Probe(model, x)
    assert _dead(p()[FFN0]) == truth["dead"]
    before = keras.ops.convert_to_numpy(model(x))
    model.compile(keras.optimizers.Adam(1e-3), "mse")
    assert revive_site(model, p.sites[FFN0], truth["dead"]) == truth["dead"]
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(model(x)), before, rtol=1e-5, atol=1e-6
    )
    block = model.get_layer("transformer_layer_0")
    down = keras.ops.convert_to_numpy(block._feedforward_output_dense.kernel)
    assert np.all(down[truth["dead"]] == 0)
    for dense in (block._feedforward_gate_dense, block._feedforward_intermediate_dense):
        kernel = keras.ops.convert_to_numpy(dense.kernel)
        assert np.all(np.any(kernel[:, truth["dead"]] != 0, axis=0))
    assert _dead(p()[FFN0]) == []


@pytest.mark.parametrize(
    "build, tag, why",
    [
        (models.timedistributed, "td", "TimeDistributed output"),
        (models.recurrent, "gru", "GRU output"),
        (models.blocks, "gelu_block/down:input", "Dense input"),
        (models.shared, "shared@2", "Dense output, call 2"),
    ],
)
def test_revival_is_refused_where_it_is_not_safe(build, tag, why):
    model, x, _, _ = build()
    p = probe.Probe(model, x)
    weights = [keras.ops.convert_to_numpy(w) for w in model.weights]
    with pytest.raises(ValueError, match=f"{tag!r} \\({why}"):
        revive_site(model, p.sites[tag], [0])
    for old, w in zip(weights, model.weights, strict=True):
        np.testing.assert_array_equal(old, keras.ops.convert_to_numpy(w))


def test_revive_every_revives_llamas_dead_gated_units(tmp_path):
    model, x, y, truth = models.llama()
    model.compile(keras.optimizers.SGD(0.0), "mse")
    cb = tb_deadneurons.DeadNeuronCallback(
        tmp_path, x, every_n_batches=1, revive_every=1
    )
    model.fit(x, y, batch_size=8, epochs=1, callbacks=[cb], verbose=0)
    assert (1, FFN0, truth["dead"]) in cb.revivals
    last = events.snapshots(str(tmp_path / "train"))[FFN0][-1][1]
    assert np.all(last["active_fraction"] > 0)


@pytest.mark.parametrize(
    "build, extra, tag, width, activation",
    [
        ("MistralBackbone", {}, FFN0, 32, "silu_gated"),
        ("QwenBackbone", {}, FFN0, 32, "silu_gated"),
        # Gemma's product is written ``gelu(x1) * x2``, round keras.ops.
        (
            "GemmaBackbone",
            {"head_dim": 8},
            "decoder_block_0/ffw_linear:input",
            16,
            "gelu_gated",
        ),
    ],
)
def test_keras_hub_gated_ffn_products_are_watched_by_default(
    build, extra, tag, width, activation
):
    import keras_hub

    model = getattr(keras_hub.models, build)(
        vocabulary_size=50,
        num_layers=1,
        num_query_heads=2,
        num_key_value_heads=1,
        hidden_dim=16,
        intermediate_dim=32,
        **extra,
    )
    x = {"token_ids": np.ones((4, 8), "int32"), "padding_mask": np.ones((4, 8), bool)}
    p = probe.Probe(model, x)
    assert list(p.sites) == [tag]
    assert p.sites[tag].activation == activation
    assert p.sites[tag].gate is not None and p.sites[tag].up is not None
    assert _stats(p()[tag])["count"].shape == (width,)


def test_the_discovery_pass_leaves_no_shadow_behind():
    from keras.src import backend

    before = {n: getattr(backend.nn, n) for n in ("relu", "gelu", "silu", "tanh")}
    mul = type(keras.ops.ones((1,))).__mul__
    model, x, _, _ = models.blocks()
    probe.Probe(model, x)()
    assert {n: getattr(backend.nn, n) for n in before} == before
    assert type(keras.ops.ones((1,))).__mul__ is mul
    for layer in model.layers + [model.get_layer("gelu_block").up]:
        assert "call" not in vars(layer), layer.name
