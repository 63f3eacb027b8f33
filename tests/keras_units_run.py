"""One Keras backend's run of the models whose units only the traced probe
finds, for test_keras_units.

Run as ``KERAS_BACKEND=jax python -m tests.keras_units_run OUT_DIR``: each
model (seeded numpy weights, units planted) is fitted with
``DeadNeuronCallback`` into ``OUT_DIR/<model>``, with a learning rate of 0 so
that every snapshot sees the planted weights; the ground truth, computed
here in numpy from those weights over every timestep and call, goes into
one JSON line. Reading the logs is left to the caller.
"""

from __future__ import annotations

import json
import os
import sys
import warnings

import keras
import keras_hub
import numpy as np

import tb_deadneurons
from tb_deadneurons.format import codec, metadata, stats

L = keras.layers
BATCH, STEPS = 16, 5
GATE_ZERO, UP_ZERO = [2, 9], [5, 20]
GELU_DEAD, RELU_DEAD = [3, 11], [0, 7]
SATURATED = 2  # the forward LSTM's constant unit


def _rng(seed):
    return np.random.default_rng(seed)


def _fit(build, out_dir, name) -> dict:
    """Fits the model ``build()`` makes (learning rate 0) with the callback
    into ``out_dir/name``; its truth plus the watched tags and the
    callback's warnings of units it does not watch."""
    model, x, y, truth = build()
    model.compile(keras.optimizers.SGD(0.0), "mse")
    cb = tb_deadneurons.DeadNeuronCallback(
        os.path.join(out_dir, name), x, every_n_batches=2
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model.fit(x, y, batch_size=BATCH // 2, epochs=1, callbacks=[cb], verbose=0)
    warned = [str(w.message) for w in caught if "not watched" in str(w.message)]
    return {**truth, "watched": sorted(cb.watched), "warned": warned}


def mixed(out_dir) -> dict:
    """The planted model of keras_backend_run under mixed_float16 and
    mixed_bfloat16, gradients on, into ``out_dir/<policy>``."""
    from tests import keras_backend_run as planted

    x, y = planted.data()
    for policy in ("mixed_float16", "mixed_bfloat16"):
        keras.mixed_precision.set_global_policy(policy)
        try:
            model = planted.planted_model()
            cb = tb_deadneurons.DeadNeuronCallback(
                os.path.join(out_dir, policy),
                (x[:32], y[:32]),
                every_n_batches=2,
                gradients=True,
            )
            model.fit(x, y, batch_size=16, epochs=1, callbacks=[cb], verbose=0)
        finally:
            keras.mixed_precision.set_global_policy("float32")
    return {"dense": planted.DEAD_DENSE, "relu": planted.DEAD_CHANNELS}


# The keras-hub decoders' size here (num_layers apart).
SMALL_DECODER = dict(
    vocabulary_size=50,
    num_query_heads=2,
    num_key_value_heads=1,
    hidden_dim=16,
    intermediate_dim=32,
)


def llama():
    """Layer 0's gate kernel has zero columns GATE_ZERO, its up kernel zero
    columns UP_ZERO: those products are exactly 0."""
    model = keras_hub.models.LlamaBackbone(num_layers=2, **SMALL_DECODER)
    block = model.get_layer("transformer_layer_0")
    for dense, units in (
        (block._feedforward_gate_dense, GATE_ZERO),
        (block._feedforward_intermediate_dense, UP_ZERO),
    ):
        kernel = keras.ops.convert_to_numpy(dense.kernel).copy()
        kernel[:, units] = 0
        dense.kernel.assign(kernel)
    x = {
        "token_ids": _rng(0).integers(1, 50, (BATCH, 8)),
        "padding_mask": np.ones((BATCH, 8), bool),
    }
    y = np.zeros((BATCH, 8, 16), "float32")
    return model, x, y, {"dead": sorted(GATE_ZERO + UP_ZERO), "count": BATCH * 8}


class FunctionalBlock(L.Layer):
    """``down(act(up(x)))`` with the activation a function call; ``square``
    and ``pow``: Primer's squared ReLU, with ``keras.ops.square`` or ``**``."""

    def __init__(self, act, **kwargs):
        super().__init__(**kwargs)
        self.act = act
        self.up = L.Dense(16, name="up")
        self.down = L.Dense(6, name="down")

    def call(self, x):
        if self.act == "gelu":
            return self.down(keras.activations.gelu(self.up(x)))
        if self.act == "square":
            return self.down(keras.ops.square(keras.ops.relu(self.up(x))))
        if self.act == "pow":
            return self.down(keras.ops.relu(self.up(x)) ** 2)
        return self.down(keras.ops.relu(self.up(x)))


def blocks():
    inputs = keras.Input((6,))
    gelu = FunctionalBlock("gelu", name="gelu_block")
    relu = FunctionalBlock("relu", name="relu_block")
    square = FunctionalBlock("square", name="square_block")
    power = FunctionalBlock("pow", name="pow_block")
    # All read the inputs (in [0, 1]): |up(x)| < 4 can't beat a bias of 10.
    merged = L.Concatenate()([b(inputs) for b in (gelu, relu, square, power)])
    model = keras.Model(inputs, L.Dense(2, name="out")(merged))
    planted = [(gelu, GELU_DEAD), (relu, RELU_DEAD)]
    for block, units in planted + [(square, RELU_DEAD), (power, RELU_DEAD)]:
        bias = np.full(16, 10.0, "float32")  # far from 0: no death by chance
        bias[units] = -1e4
        block.up.bias.assign(bias)
    x = _rng(1).uniform(0, 1, (BATCH, 6)).astype("float32")
    y = np.zeros((BATCH, 2), "float32")
    return model, x, y, {"gelu": GELU_DEAD, "relu": RELU_DEAD}


def timedistributed():
    """Timestep 0 is all zeros: units with a small negative bias are off
    there only; the truth is over every timestep."""
    inputs = keras.Input((STEPS, 6))
    td = L.TimeDistributed(L.Dense(8, activation="relu"), name="td")
    model = keras.Model(inputs, L.Dense(2, name="out")(L.Flatten()(td(inputs))))
    rng = _rng(2)
    kernel = np.abs(rng.normal(0, 0.3, (6, 8))).astype("float32")
    bias = np.full(8, 0.1, "float32")
    bias[[6, 7]] = -0.05
    bias[5] = -1e4
    td.layer.set_weights([kernel, bias])
    x = rng.uniform(0.5, 1.0, (BATCH, STEPS, 6)).astype("float32")
    x[:, 0] = 0
    act = np.maximum(x @ kernel + bias, 0)
    return (
        model,
        x,
        np.zeros((BATCH, 2), "float32"),
        {
            "dead": _dead(act),
            "dead_at_step_0": _dead(act[:, 0]),
            "count": BATCH * STEPS,
        },
    )


def shared():
    """One Dense on inputs A and B = -A: its units die on different calls."""
    a, b = keras.Input((6,), name="a"), keras.Input((6,), name="b")
    dense = L.Dense(8, activation="relu", name="shared")
    merged = L.Concatenate()([dense(a), dense(b)])
    model = keras.Model([a, b], L.Dense(2, name="out")(merged))
    rng = _rng(3)
    kernel = rng.normal(0, 1, (6, 8)).astype("float32")
    kernel[:, 1] = -np.abs(kernel[:, 1])  # off on A, on on B
    kernel[:, 4] = np.abs(kernel[:, 4])  # on on A, off on B
    bias = np.zeros(8, "float32")
    bias[6] = -1e4  # off on both
    dense.set_weights([kernel, bias])
    xa = rng.uniform(0.1, 1.0, (BATCH, 6)).astype("float32")
    x = {"a": xa, "b": -xa}
    return (
        model,
        x,
        np.zeros((BATCH, 2), "float32"),
        {
            "dead_a": _dead(np.maximum(xa @ kernel + bias, 0)),
            "dead_b": _dead(np.maximum(-xa @ kernel + bias, 0)),
        },
    )


def recurrent():
    """Bidirectional(LSTM) + GRU; the forward LSTM's unit SATURATED has a
    constant output (input, output gates 1, forget gate 0, candidate 1)."""
    inputs = keras.Input((STEPS, 4))
    bi = L.Bidirectional(L.LSTM(6, return_sequences=True), name="bi")
    gru = L.GRU(5, name="gru")
    model = keras.Model(inputs, L.Dense(2, name="out")(gru(bi(inputs))))
    lstm = bi.forward_layer
    kernel, recurrent_kernel, bias = lstm.get_weights()
    for gate, value in enumerate([1e4, -1e4, 1e4, 1e4]):  # i, f, c, o
        column = gate * 6 + SATURATED
        kernel[:, column] = recurrent_kernel[:, column] = 0
        bias[column] = value
    lstm.set_weights([kernel, recurrent_kernel, bias])
    x = _rng(4).normal(0, 1, (BATCH, STEPS, 4)).astype("float32")
    # The GRU's truth: every timestep's output, from a twin that returns them.
    twin = L.GRU(5, return_sequences=True)
    h = keras.Model(inputs, bi.output).predict(x, verbose=0)
    twin.build(h.shape)
    twin.set_weights(gru.get_weights())
    sequence = keras.ops.convert_to_numpy(twin(h))
    truth = codec.decode_snapshot(
        stats.snapshot_np(sequence), metadata.snapshot_plugin_data(with_gradients=False)
    )
    return (
        model,
        x,
        np.zeros((BATCH, 2), "float32"),
        {
            "gru": {k: v.tolist() for k, v in truth.items()},
            "saturated": SATURATED,
            "count": BATCH * STEPS,
        },
    )


def moe():
    """keras-hub's Qwen-MoE: its routed experts (an einsum over stacked
    kernels inside one layer's ``call``) and its shared expert (Dense
    layers)."""
    model = keras_hub.models.QwenMoeBackbone(
        num_layers=1,
        **SMALL_DECODER,
        moe_intermediate_dim=12,
        shared_expert_intermediate_dim=20,
        num_experts=4,
        top_k=2,
    )
    x = {
        "token_ids": _rng(2).integers(1, 50, (BATCH, 8)),
        "padding_mask": np.ones((BATCH, 8), bool),
    }
    return model, x, np.zeros((BATCH, 8, 16), "float32"), {}


def _dead(act) -> list[int]:
    return np.flatnonzero(act.reshape(-1, act.shape[-1]).max(axis=0) <= 0).tolist()


def main(out_dir: str) -> dict:
    keras.utils.set_random_seed(0)
    builds = {"llama": llama, "blocks": blocks, "td": timedistributed}
    builds.update({"shared": shared, "rnn": recurrent, "moe": moe})
    result = {name: _fit(build, out_dir, name) for name, build in builds.items()}
    result["mixed"] = mixed(out_dir)
    result["backend"] = keras.backend.backend()
    return result


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1])))
