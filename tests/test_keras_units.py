"""Units the traced Keras probe finds, with planted ground truth, on every
Keras backend: keras-hub Llama's gated FFN product, functional activations
inside a block's ``call``, ``TimeDistributed`` over every timestep, a Dense
shared by two inputs (``shared``, ``shared@2``), Bidirectional(LSTM) + GRU
over every timestep, a saturated LSTM unit.

Each backend runs ``tests/keras_units_run.py`` in its own subprocess (a
backend is fixed when Keras is imported); the logs are read back here.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from tb_deadneurons.analysis import classify
from tests import events

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BACKENDS = ["tensorflow", "jax", "torch"]
FFN = "transformer_layer_{}/feedforward_output_dense:input"


def _run(backend: str, path) -> dict:
    env = {**os.environ, "KERAS_BACKEND": backend, "CUDA_VISIBLE_DEVICES": ""}
    proc = subprocess.run(
        [sys.executable, "-m", "tests.keras_units_run", str(path)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=1500,  # jax compiles each model; the CI machine is shared
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module", params=BACKENDS)
def run(request, tmp_path_factory):
    path = tmp_path_factory.mktemp(request.param)
    truth = _run(request.param, path)
    assert truth["backend"] == request.param
    return truth, path


def _series(path, model) -> dict:
    """tag -> (steps, {stat: [T, U] array}) as the writer logged them."""
    out = {}
    for tag, snaps in events.snapshots(str(path / model / "train")).items():
        steps = [s for s, _ in snaps]
        out[tag] = (
            steps,
            {k: np.stack([st[k] for _, st in snaps]) for k in snaps[0][1]},
        )
    return out


def _count_is(stats, expected) -> None:
    """Counts are stored to +-9 % (docs/format.md): near ``expected``, far
    from what one timestep or one call would give."""
    np.testing.assert_allclose(stats["count"], expected, rtol=0.1)


def _dead(steps, stats) -> list[list[int]]:
    """Today's classifier's dead units at every snapshot."""
    dead = classify.classify(stats, steps).dead
    return [np.flatnonzero(row).tolist() for row in dead]


def test_llama_gate_zero_and_up_zero_units_are_dead_in_layer_0_only(run):
    truth, path = run[0]["llama"], run[1]
    series = _series(path, "llama")
    assert sorted(series) == truth["watched"] == [FFN.format(0), FFN.format(1)]
    steps, first = series[FFN.format(0)]
    assert steps == [0, 2]  # 2 batches, every 2
    assert first["count"].shape[1] == 32  # intermediate_dim: the product's width
    _count_is(first, truth["count"])  # batch x sequence
    assert _dead(steps, first) == [truth["dead"]] * len(steps)
    assert np.all(first["max_abs"][:, truth["dead"]] == 0)
    assert _dead(*series[FFN.format(1)]) == [[]] * len(steps)
    _, data = events.plugin_data(str(path / "llama" / "train"), FFN.format(0))
    assert (data.layer_class, data.activation) == ("Dense", "silu_gated")


def test_functional_gelu_and_relu_in_a_blocks_call_are_watched(run):
    truth, path = run[0]["blocks"], run[1]
    series = _series(path, "blocks")
    blocks = ["gelu_block", "pow_block", "relu_block", "square_block"]
    assert sorted(series) == [f"{b}/down:input" for b in blocks]
    assert _dead(*series["gelu_block/down:input"])[0] == truth["gelu"]
    for block in ("relu_block", "square_block", "pow_block"):  # relu(x) ** 2 too
        assert _dead(*series[f"{block}/down:input"])[0] == truth["relu"]
    _, data = events.plugin_data(
        str(path / "blocks" / "train"), "gelu_block/down:input"
    )
    assert data.activation == "gelu"


def test_timedistributed_covers_every_timestep(run):
    truth, path = run[0]["td"], run[1]
    series = _series(path, "td")
    assert sorted(series) == ["td"]
    steps, stats = series["td"]
    # Timestep 0 alone would show [5, 6, 7]; over every timestep only 5.
    assert truth["dead_at_step_0"] == [5, 6, 7]
    assert _dead(steps, stats) == [truth["dead"]] * len(steps) == [[5]] * len(steps)
    _count_is(stats, truth["count"])  # batch x timesteps


def test_a_shared_dense_gives_one_series_per_call(run):
    truth, path = run[0]["shared"], run[1]
    series = _series(path, "shared")
    assert sorted(series) == ["shared", "shared@2"]
    assert truth["dead_a"] != truth["dead_b"]
    assert _dead(*series["shared"])[0] == truth["dead_a"]
    assert _dead(*series["shared@2"])[0] == truth["dead_b"]


def test_rnn_outputs_cover_every_timestep_and_a_saturated_unit_is_dead(run):
    truth, path = run[0]["rnn"], run[1]
    series = _series(path, "rnn")
    assert sorted(series) == ["bi/backward_lstm", "bi/forward_lstm", "gru"]
    for tag in series:
        _count_is(series[tag][1], truth["count"])
    steps, forward = series["bi/forward_lstm"]
    assert _dead(steps, forward)[0] == [truth["saturated"]]
    assert forward["std"][0, truth["saturated"]] < 1e-4 * np.median(forward["std"][0])
    assert forward["max_abs"][0, truth["saturated"]] > 0.5  # tanh(1), not off
    assert _dead(*series["bi/backward_lstm"])[0] == []
    # The GRU returns its last output only; the series is every timestep's.
    gru = series["gru"][1]
    for name, values in truth["gru"].items():
        np.testing.assert_allclose(gru[name][0], values, rtol=0.1, err_msg=name)


@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"])
def test_mixed_precision_with_gradients_fits_and_finds_the_planted_units(run, policy):
    truth, path = run[0]["mixed"], run[1]
    snaps = events.snapshots(str(path / policy / "train"))
    assert sorted(snaps) == ["dense", "relu"]
    assert [s for s, _ in snaps["dense"]] == [0, 2, 4]
    for _, stats in snaps["dense"]:
        assert np.flatnonzero(stats["active_fraction"] == 0).tolist() == truth["dense"]
        assert np.any(stats["grad_mean_abs"] > 0)
    for _, stats in snaps["relu"]:
        assert np.flatnonzero(stats["active_fraction"] == 0).tolist() == truth["relu"]


def test_routed_experts_are_named_unwatched_and_the_shared_expert_watched(run):
    # Qwen-MoE's experts layer carries an ``activation`` attribute: its
    # output (the experts' down projections, hidden_dim wide) was once
    # watched as if it were the activation's units.
    truth = run[0]["moe"]
    block = "transformer_layer_0/qwen_sparse_moe_block"
    assert truth["watched"] == [
        f"{block}/shared_expert_dense/feedforward_output_dense:input"
    ]
    assert len(truth["warned"]) == 1
    assert f"'{block}/experts (silu_gated, read by einsum)'" in truth["warned"][0]
    # No other model warns: an LSTM's recurrent kernel reads its own state.
    assert {k: v["warned"] for k, v in run[0].items() if "warned" in v} == {
        name: [] for name in ("llama", "blocks", "td", "shared", "rnn")
    } | {"moe": truth["warned"]}
