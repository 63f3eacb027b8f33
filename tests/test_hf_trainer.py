"""The Hugging Face Trainer callback writes into the Trainer's TensorBoard run.

Planted truth: a tiny GPT-2 built from a config whose ``c_fc`` biases are
-100 on chosen units: those units' GELU output is exactly 0 on every token
(and no gradient moves them), so they are dead from step 0 to the end, and
no other unit is.
"""

from __future__ import annotations

import glob
import os
import warnings

import pytest
import torch
import transformers

from tb_deadneurons import api
from tb_deadneurons.torch.transformers import OFF_DIR, DeadNeuronCallback

PLANTED = {0: [3, 17, 90], 1: [5, 64]}  # layer -> dead c_fc units
EVERY = 3
MAX_STEPS = 7
SNAPSHOT_STEPS = [0, 3, 6, 7]


def _model():
    torch.manual_seed(0)
    config = transformers.GPT2Config(
        vocab_size=64, n_positions=16, n_embd=32, n_layer=2, n_head=2
    )
    model = transformers.GPT2LMHeadModel(config)
    with torch.no_grad():
        for layer, units in PLANTED.items():
            model.transformer.h[layer].mlp.c_fc.bias[units] = -100.0
    return model


def _train(output_dir: str, report_to, **callback_kwargs):
    ids = torch.randint(0, 64, (96, 16), generator=torch.Generator().manual_seed(1))
    data = [{"input_ids": row, "labels": row} for row in ids]
    args = transformers.TrainingArguments(
        output_dir,
        max_steps=MAX_STEPS,
        per_device_train_batch_size=8,
        logging_steps=1,
        report_to=report_to,
        use_cpu=True,
        save_strategy="no",
        disable_tqdm=True,
    )
    callback = DeadNeuronCallback(
        {"input_ids": ids[:16]}, every_n_steps=EVERY, **callback_kwargs
    )
    trainer = transformers.Trainer(
        model=_model(), args=args, train_dataset=data, callbacks=[callback]
    )
    trainer.train()
    return trainer


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = str(tmp_path_factory.mktemp("hf"))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        _train(out, ["tensorboard"], scalars=True, alert_above=0.02)
    alerts = [str(w.message) for w in caught if "alert_above" in str(w.message)]
    return out, alerts


def _tags(layer: int) -> str:
    return f"transformer.h.{layer}.mlp.act"


def test_snapshots_land_in_the_trainers_tensorboard_run(trained):
    out, _ = trained
    runs = glob.glob(os.path.join(out, "runs", "*"))
    assert len(runs) == 1  # one run: the Trainer's SummaryWriter's directory
    files = os.listdir(runs[0])
    assert any(f.endswith(".deadneurons") for f in files)
    assert any(not f.endswith(".deadneurons") for f in files)  # the Trainer's
    logs = api.load(os.path.join(out, "runs"))
    (run,) = logs.layers
    assert set(logs.layers[run]) == {_tags(0), _tags(1)}
    for layer, units in PLANTED.items():
        found = logs.layers[run][_tags(layer)]
        assert found.steps.tolist() == SNAPSHOT_STEPS
        assert found.dead_now == units
        assert all(found.died_at()[u] == 0 for u in units)


def test_the_trainers_train_loss_is_the_loss_and_no_restart_is_warned(trained):
    out, _ = trained
    logs = api.load(os.path.join(out, "runs"))
    assert not any("steps go back" in w for w in logs.warnings), logs.warnings
    from tb_deadneurons.board import reader

    provider, _ = reader.local_data_provider(os.path.join(out, "runs"))
    rd = reader.Reader(provider, "", downsample=reader.ALL_SAMPLES)
    (run,) = logs.layers
    loss = rd.loss(run)
    assert loss.tag == "train/loss" and loss.step_unit == "batch"
    assert loss.steps == list(range(1, MAX_STEPS + 1))
    # The callback writes no loss of its own next to the Trainer's.
    assert "deadneurons/loss" not in {t["tag"] for t in rd.scalar_tags(run)}


def test_scalars_and_alerts_pass_through_to_the_monitor(trained):
    from tbparse import SummaryReader

    out, alerts = trained
    frame = SummaryReader(os.path.join(out, "runs")).scalars
    tag = f"deadneurons/{_tags(0)}/dead_fraction"
    dead = frame[frame.tag == tag]
    assert dead.step.tolist() == SNAPSHOT_STEPS
    assert dead.value.tolist() == [3 / 128] * len(SNAPSHOT_STEPS)
    # 3 of 128 units is above 2 %, 2 of 128 is not: one alert, layer 0's.
    assert len(alerts) == 1 and repr(_tags(0)) in alerts[0]


def test_without_tensorboard_reporting_it_warns_and_writes_its_own_run(tmp_path):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        _train(str(tmp_path), [])
    messages = [
        str(w.message) for w in caught if "DeadNeuronCallback" in str(w.message)
    ]
    assert len(messages) == 1 and "does not report to TensorBoard" in messages[0]
    logs = api.load(str(tmp_path / OFF_DIR))
    layer = logs.layers["."][_tags(0)]
    assert layer.dead_now == PLANTED[0]
    assert layer.steps.tolist() == SNAPSHOT_STEPS


def test_bad_every_n_steps_is_a_value_error_naming_it():
    with pytest.raises(ValueError, match="every_n_steps"):
        DeadNeuronCallback({"input_ids": torch.zeros(2, 4, dtype=torch.long)}, 0)
