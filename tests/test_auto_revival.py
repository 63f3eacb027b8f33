"""Automatic revival from the callback, seen by the report CLI."""

import json

import keras
import numpy as np
import pytest

import tb_deadneurons
from tb_deadneurons import cli
from tests import events

PLANTED = [0, 3, 5]


def _model_with_dead_units():
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input((10,)),
            keras.layers.Dense(16, activation="relu", name="hidden"),
            keras.layers.Dense(3, activation="softmax", name="out"),
        ]
    )
    kernel, bias = model.get_layer("hidden").get_weights()
    bias[PLANTED] = -1e4
    model.get_layer("hidden").set_weights([kernel, bias])
    model.compile(keras.optimizers.Adam(1e-3), "sparse_categorical_crossentropy")
    return model


def test_dead_units_are_revived_logged_and_reported(tmp_path, capsys):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(128, 10)).astype("float32")
    y = rng.integers(0, 3, size=128)
    model = _model_with_dead_units()
    cb = tb_deadneurons.DeadNeuronCallback(
        tmp_path, x[:64], every_n_batches=2, revive_every=4
    )
    model.fit(x, y, batch_size=16, epochs=1, callbacks=[cb], verbose=0)
    assert cb.revivals and cb.revivals[0][:2] == (4, "hidden")
    assert set(PLANTED) <= set(cb.revivals[0][2])
    series = dict(events.snapshots(str(tmp_path / "train"))["hidden"])
    assert np.all(series[2]["active_fraction"][PLANTED] == 0)
    assert np.all(series[6]["active_fraction"][PLANTED] > 0)
    capsys.readouterr()
    assert cli.main(["report", str(tmp_path), "--json"]) == 0
    layer = json.loads(capsys.readouterr().out)["runs"]["train"]["layers"]["hidden"]
    assert set(PLANTED) <= set(layer["revived_units"])
    assert not set(PLANTED) & set(layer["dead_now"])


def test_revive_every_must_be_a_positive_integer(tmp_path):
    with pytest.raises(ValueError, match="revive_every"):
        tb_deadneurons.DeadNeuronCallback(tmp_path, np.zeros((2, 3)), revive_every=0)
    with pytest.raises(ValueError, match="revive_tau"):
        tb_deadneurons.DeadNeuronCallback(tmp_path, np.zeros((2, 3)), revive_tau=-1)
