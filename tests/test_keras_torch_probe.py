"""Keras on the torch backend: the probe records no autograd graph unless
dL/da is asked for (the backend is fixed per process: a subprocess)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

SCRIPT = textwrap.dedent(
    """
    import json
    import keras, numpy as np, torch
    from tb_deadneurons.keras import probe as probe_lib

    grad_modes = []

    class Spy(keras.layers.Layer):
        def call(self, x):
            grad_modes.append(torch.is_grad_enabled())
            return x

    x = np.random.default_rng(0).normal(size=(16, 4)).astype("float32")
    y = np.zeros(16, "int64")
    model = keras.Sequential([
        keras.Input((4,)), keras.layers.Dense(8, activation="relu", name="h"),
        Spy(), keras.layers.Dense(3, name="out"),
    ])
    model.compile(loss="sparse_categorical_crossentropy")
    result = {}
    for gradients in (False, True):
        probe = probe_lib.Probe(model, x, y, gradients=gradients)
        grad_modes.clear()
        tags = sorted(probe())
        result[str(gradients)] = [list(grad_modes), tags]
    print(json.dumps(result))
    """
)


def test_torch_backend_probe_runs_under_no_grad_unless_gradients():
    env = {**os.environ, "KERAS_BACKEND": "torch", "CUDA_VISIBLE_DEVICES": ""}
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result == {"False": [[False], ["h"]], "True": [[True], ["h"]]}
