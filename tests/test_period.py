"""The default snapshot period is fitted to the measured cost; a given one is kept.

Real writers on real models: a probe batch far costlier than a training
step (20,000 samples through a 512-wide layer against steps of one sample)
moves the PyTorch monitor and the Keras callback off 100 at the 100th step,
to the cap; a cheap probe keeps 100; a period passed by the user is never
changed. The fitting rule itself is checked on its numbers.
"""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch

from tb_deadneurons.analysis import period
from tests import events


@pytest.mark.parametrize(
    ("snapshot_ms", "step_ms", "every"),
    [
        (2.0, 1.0, 100),  # 2 % at 100: within the budget
        (2.1, 1.0, 200),
        (4.0, 1.0, 200),
        (8.0, 1.0, 500),
        (10.0, 1.0, 500),
        (10.1, 1.0, 1000),
        (500.0, 1.0, 1000),  # capped: a run keeps a timeline
        (5.0, 0.0, 100),
    ],
)
def test_the_fitted_period_is_the_smallest_choice_within_the_budget(
    snapshot_ms, step_ms, every
):
    assert period.fitted(snapshot_ms / 1e3, step_ms / 1e3) == every


def test_a_given_period_is_checked_and_never_refitted():
    with pytest.raises(ValueError, match="every_n_steps"):
        period.Period("every_n_steps", 0)
    given = period.Period("every_n_steps", 100)
    for step in range(1, 101):
        given.tick(step)
    assert given.snapshot_took(10.0, "writer") == 100


def test_too_few_timed_steps_keep_the_default():
    auto = period.Period("every_n_steps", None)
    for step in (1, 2, 3):
        auto.tick(step)
    assert auto.snapshot_took(10.0, "writer") == period.DEFAULT_EVERY


def _train_torch(tmp_path, probe_n: int, batch: int, steps: int, **kwargs):
    from tb_deadneurons.torch import DeadNeuronMonitor

    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Linear(8, 512), torch.nn.ReLU(), torch.nn.Linear(512, 2)
    )
    opt = torch.optim.SGD(model.parameters(), lr=1e-3)
    x, y = torch.randn(max(probe_n, batch), 8), torch.randint(0, 2, (batch,))
    run = str(tmp_path / "run")
    with DeadNeuronMonitor(model, run, probe_data=x[:probe_n], **kwargs) as monitor:
        for _ in range(steps):
            loss = torch.nn.functional.cross_entropy(model(x[:batch]), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            monitor.step(loss)
    ((tag, snaps),) = events.snapshots(run).items()
    return monitor.every_n_steps, [step for step, _ in snaps]


def test_a_costly_probe_moves_the_torch_default_period_and_says_so(tmp_path, caplog):
    with caplog.at_level(logging.INFO, logger="tb_deadneurons"):
        every, steps = _train_torch(tmp_path, probe_n=20_000, batch=1, steps=1050)
    assert every == period.MAX_AUTO_EVERY
    assert steps == [0, 100, 1000, 1050]
    (line,) = [r.getMessage() for r in caplog.records if "snapshots every" in r.message]
    assert line.startswith("DeadNeuronMonitor: snapshots every 1000 steps")


def test_a_cheap_probe_keeps_the_default_and_a_given_period_is_kept(tmp_path):
    every, steps = _train_torch(tmp_path / "cheap", probe_n=4, batch=4096, steps=250)
    assert (every, steps) == (100, [0, 100, 200, 250])
    every, steps = _train_torch(
        tmp_path / "given", probe_n=20_000, batch=1, steps=250, every_n_steps=100
    )
    assert (every, steps) == (100, [0, 100, 200, 250])


def test_a_costly_probe_moves_the_keras_default_period(tmp_path):
    import keras

    from tb_deadneurons.keras import DeadNeuronCallback

    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [keras.Input((8,)), keras.layers.Dense(512, activation="relu", name="hidden"),
         keras.layers.Dense(2)]
    )  # fmt: skip
    model.compile("sgd", "sparse_categorical_crossentropy")
    rng = np.random.default_rng(0)
    x = rng.normal(size=(20_000, 8)).astype("float32")
    y = rng.integers(0, 2, size=1050)
    callback = DeadNeuronCallback(str(tmp_path), probe_data=x)
    model.fit(x[:1050], y, batch_size=1, epochs=1, verbose=0, callbacks=[callback])
    assert callback.every_n_batches == period.MAX_AUTO_EVERY
    steps = [step for step, _ in events.snapshots(str(tmp_path / "train"))["hidden"]]
    assert steps == [0, 100, 1000, 1050]


def test_a_step_ticked_twice_is_timed_once():
    auto = period.Period("every_n_steps", None)
    for step in (1, 2, 3, 4, 5, 5, 6, 7, 8, 9, 10, 11, 12):
        auto.tick(step)  # a writer's second hook at step 5 (HF's on_log)
    assert auto.snapshot_took(10.0, "writer") == period.MAX_AUTO_EVERY


def test_a_period_set_on_the_writer_is_kept_and_checked(tmp_path):
    from tb_deadneurons.torch import DeadNeuronMonitor

    model = torch.nn.Sequential(
        torch.nn.Linear(8, 512), torch.nn.ReLU(), torch.nn.Linear(512, 2)
    )
    x = torch.randn(20_000, 8)
    run = str(tmp_path / "run")
    with DeadNeuronMonitor(model, run, probe_data=x) as monitor:
        with pytest.raises(ValueError, match="every_n_steps"):
            monitor.every_n_steps = 0
        for step in range(1, 131):
            model(x[:1]).sum().backward()
            if step == 20:
                monitor.every_n_steps = 50  # costly probe: not refitted
            monitor.step()
    assert monitor.every_n_steps == 50
    ((_, snaps),) = events.snapshots(run).items()
    assert [step for step, _ in snaps] == [0, 50, 100, 130]
