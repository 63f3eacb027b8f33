"""``revive_select="utility"`` in the Keras callback: the same rule, the same
records as the PyTorch monitor (tests/test_revive_utility.py)."""

from __future__ import annotations

import keras
import numpy as np
import pytest

import tb_deadneurons
from tb_deadneurons import api

LOW = [2, 5]
UTILITY = {
    "revive_every": 10,
    "revive_select": "utility",
    "revive_rate": 0.065,
    "revive_maturity": 15,
}


def _model():
    """6 -> 8 ReLU -> 3; units ``LOW`` alive with outgoing weights x 1e-3."""
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input((6,)),
            keras.layers.Dense(8, activation="relu", bias_initializer="ones"),
            keras.layers.Dense(3),
        ]
    )
    out = model.layers[1]
    kernel = keras.ops.convert_to_numpy(out.kernel).copy()
    kernel[LOW] *= 1e-3
    out.kernel.assign(kernel)
    model.compile(keras.optimizers.SGD(1e-3, momentum=0.9), "mse")
    return model


def test_utility_selection_replaces_lowest_utility_units_and_logs_them(tmp_path):
    model = _model()
    x = np.random.default_rng(0).normal(size=(35, 6)).astype("float32")
    y = np.zeros((35, 3), "float32")
    cb = tb_deadneurons.DeadNeuronCallback(
        str(tmp_path), x, every_n_batches=5, **UTILITY
    )
    model.fit(x, y, batch_size=1, epochs=1, callbacks=[cb], verbose=0, shuffle=False)
    # As the PyTorch monitor: nothing before maturity, the two least useful
    # at step 20, four others at step 30 while LOW are protected.
    (s1, tag, first), (s2, _, second) = cb.revivals
    assert (s1, first) == (20, LOW)
    assert s2 == 30 and len(second) == 4 and not set(second) & set(LOW)
    (layer,) = api.load(str(tmp_path)).layers["train"].values()
    assert layer.tag == tag
    assert layer.revivals == [{"step": s, "units": u} for s, _, u in cb.revivals]


@pytest.mark.parametrize(
    ("settings", "named"),
    [
        ({"revive_select": "lowest"}, "revive_select"),
        ({"revive_rate": -0.1}, "revive_rate"),
        ({"revive_maturity": "100"}, "revive_maturity"),
    ],
)
def test_bad_selection_arguments_raise_naming_them(tmp_path, settings, named):
    with pytest.raises(ValueError, match=named):
        tb_deadneurons.DeadNeuronCallback(str(tmp_path), np.zeros((2, 6)), **settings)
