"""Which modules the PyTorch monitor watches; a GPT-2 with planted dead units."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch
from torch import nn

from tb_deadneurons.format import codec, metadata
from tb_deadneurons.torch import DeadNeuronMonitor

GPT2_DEAD = {0: [5, 77], 1: [120]}  # block -> FFN units planted dead


def _dead(codes) -> list[int]:
    layout = metadata.snapshot_plugin_data()
    active = codec.decode_snapshot(codes, layout)[metadata.ACTIVE_FRACTION]
    return [int(u) for u in (active == 0).nonzero()[0]]


def test_gpt2_ffn_activations_are_watched_and_planted_units_found(tmp_path):
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    config = GPT2Config(n_layer=2, n_embd=32, n_head=2, vocab_size=100, n_positions=32)
    model = GPT2LMHeadModel(config)
    with torch.no_grad():
        for block, units in GPT2_DEAD.items():
            model.transformer.h[block].mlp.c_fc.bias[units] = -1e4
    ids = torch.randint(0, 100, (8, 16))
    with DeadNeuronMonitor(model, str(tmp_path), probe_data={"input_ids": ids}) as m:
        assert list(m.watched) == [f"transformer.h.{b}.mlp.act" for b in (0, 1)]
        for block, units in GPT2_DEAD.items():
            codes = m.last_snapshot[f"transformer.h.{block}.mlp.act"]
            assert codes.shape == (7, 128)  # units on the last axis
            assert _dead(codes) == units


class Shared(nn.Module):
    """One ReLU module used twice, then a functional tanh at the output."""

    def __init__(self):
        super().__init__()
        self.a, self.b, self.out = nn.Linear(4, 6), nn.Linear(6, 5), nn.Linear(5, 2)
        self.act = nn.ReLU()

    def forward(self, x):
        return torch.tanh(self.out(self.act(self.b(self.act(self.a(x))))))


def test_a_module_called_twice_gives_one_series_per_call(tmp_path):
    m = DeadNeuronMonitor(Shared(), str(tmp_path), probe_data=torch.randn(16, 4))
    assert {t: c.shape[1] for t, c in m.last_snapshot.items()} == {
        "act": 6,
        "act@2": 5,
    }
    m.close()


def test_modules_take_names_suffixes_and_objects(tmp_path):
    model = nn.Sequential(nn.Linear(4, 6), nn.Sequential(nn.Linear(6, 3), nn.ReLU()))
    model.append(nn.Linear(3, 2))
    model.append(nn.Sigmoid())
    x = torch.randn(16, 4)
    by_default = DeadNeuronMonitor(model, str(tmp_path), probe_data=x)
    assert list(by_default.watched) == ["1.1"]  # the output Sigmoid is left out
    named = DeadNeuronMonitor(model, str(tmp_path), x, modules=["0", "1.1", model[3]])
    assert list(named.watched) == ["0", "1.1", "3"]  # named: even the output
    suffix = DeadNeuronMonitor(model, str(tmp_path), x, modules=["1", "2:input"])
    assert list(suffix.watched) == ["1", "2:input"]
    assert suffix.watched["2:input"] is model[2]
    np.testing.assert_array_equal(  # what 2 reads is what 1.1 makes
        suffix.last_snapshot["2:input"], by_default.last_snapshot["1.1"]
    )
    for m in (by_default, named, suffix):
        m.close()


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(every_n_steps=0), "every_n_steps"),
        (dict(epsilon=-1.0), "epsilon"),
        (dict(revive_every=1.5), "revive_every"),
        (dict(revive_tau=float("nan")), "revive_tau"),
        (dict(log_dir=""), "log_dir"),
        (dict(modules=["nope"]), "modules: 'nope' is not a module"),
        (dict(modules="0"), "modules must be a non-empty list"),
        (dict(probe_data=torch.zeros(0, 4)), "probe_data has no samples"),
        (dict(probe_data=torch.zeros(3, 5)), "probe_data does not fit"),
        (dict(gradients=True), "gradients=True needs"),
        (dict(start_step=-1), "start_step"),
    ],
)
def test_bad_arguments_raise_value_error_naming_them(tmp_path, kwargs, message):
    model = nn.Sequential(nn.Linear(4, 6), nn.ReLU(), nn.Linear(6, 2))
    args = {"log_dir": str(tmp_path), "probe_data": torch.randn(8, 4), **kwargs}
    with pytest.raises(ValueError, match=message):
        DeadNeuronMonitor(model, **args)


def test_step_after_close_raises(tmp_path):
    model = nn.Sequential(nn.Linear(4, 6), nn.ReLU(), nn.Linear(6, 2))
    monitor = DeadNeuronMonitor(model, str(tmp_path), probe_data=torch.randn(8, 4))
    monitor.close()
    monitor.close()  # closing twice is fine
    with pytest.raises(ValueError, match=r"step\(\) called after close"):
        monitor.step()


def test_a_model_without_non_linearity_raises_saying_what_to_do(tmp_path):
    model = nn.Sequential(nn.Linear(4, 6), nn.Linear(6, 2))
    with pytest.raises(ValueError, match=r"no unit found.*pass modules="):
        DeadNeuronMonitor(model, str(tmp_path), probe_data=torch.randn(8, 4))


def test_the_torch_writer_imports_neither_tensorflow_nor_keras(tmp_path):
    code = f"""
import sys, torch
from tb_deadneurons.torch import DeadNeuronMonitor, revive
nn = torch.nn
model = nn.Sequential(nn.Linear(4, 6), nn.ReLU(), nn.Linear(6, 2))
with DeadNeuronMonitor(model, {str(tmp_path)!r}, probe_data=torch.randn(8, 4)) as m:
    m.step(torch.tensor(0.5))
revive(model, model[0], [1])
print(sorted(n for n in ("tensorflow", "keras") if n in sys.modules))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
