"""The Keras callback on all three Keras 3 backends, with the same answers.

A backend is fixed when Keras is imported, so each backend runs in its own
subprocess (``tests/keras_backend_run.py``: the planted model and the
README example, bundled to keep CI time low); the logs are read back here.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from tensorboard.util import tensor_util

from tb_deadneurons.format.metadata import LOSS_TAG
from tests import events
from tests.keras_backend_run import DEAD_CHANNELS, DEAD_DENSE

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BACKENDS = ["tensorflow", "jax", "torch"]


def _run(backend: str, path) -> dict:
    env = {**os.environ, "KERAS_BACKEND": backend, "CUDA_VISIBLE_DEVICES": ""}
    proc = subprocess.run(
        [sys.executable, "-m", "tests.keras_backend_run", str(path)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


class _Runs(dict):
    """backend → (the run's JSON report, its output directory), run once
    each, when first asked for."""

    def __init__(self, factory):
        super().__init__()
        self._factory = factory

    def __missing__(self, backend):
        path = self._factory.mktemp(backend)
        self[backend] = (_run(backend, path), path)
        return self[backend]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    return _Runs(tmp_path_factory)


@pytest.mark.parametrize("backend", BACKENDS)
def test_planted_units_are_found_on_every_backend(runs, backend):
    report, path = runs[backend]
    assert report["backend"] == backend
    assert report["watched"] == ["dense", "relu"]
    snaps = events.snapshots(str(path / "planted" / "train"))
    # 4 batches, every 2: before the first step, at 2 and at 4.
    assert [s for s, _ in snaps["dense"]] == [0, 2, 4]
    for _, stats in snaps["dense"]:
        assert np.flatnonzero(stats["active_fraction"] == 0).tolist() == DEAD_DENSE
        assert np.any(stats["grad_mean_abs"] > 0)
    for _, stats in snaps["relu"]:
        assert np.flatnonzero(stats["active_fraction"] == 0).tolist() == DEAD_CHANNELS
    # The README example ran and wrote snapshots of both hidden layers.
    assert len(events.snapshots(str(path / "logs" / "example" / "train"))) == 2


@pytest.mark.parametrize("backend", BACKENDS)
def test_every_snapshot_sees_the_weights_of_its_step(runs, backend):
    snaps = events.snapshots(str(runs[backend][1] / "moving" / "train"))["dense"]
    assert [s for s, _ in snaps] == [0, 1, 2, 3, 4]
    means = [stats["mean"] for _, stats in snaps]
    for before, after in zip(means, means[1:], strict=False):
        assert not np.array_equal(before, after)


@pytest.mark.parametrize("backend", BACKENDS)
def test_the_logged_loss_is_keras_running_loss_at_its_step(runs, backend):
    report, path = runs[backend]
    run = events.load(str(path / "planted" / "train"))
    logged = {
        e.step: float(tensor_util.make_ndarray(e.tensor_proto))
        for e in run.Tensors(LOSS_TAG)
    }
    # Step k is the state after k batches: Keras's loss at the end of batch k-1.
    keras_loss = report["keras_loss"]
    assert sorted(logged) == [2, 4] and len(keras_loss) == 4
    for step, loss in logged.items():
        assert loss == pytest.approx(keras_loss[step - 1], rel=1e-6), step
    assert logged[2] != pytest.approx(logged[4], rel=1e-6)


@pytest.mark.parametrize("backend", ["jax", "torch"])
def test_jax_and_torch_backends_never_import_tensorflow(runs, backend):
    assert runs[backend][0]["tensorflow_imported"] is False


def test_every_backend_writes_the_same_first_snapshot(runs):
    """Same weights, same probe: the same codes (within one code for float
    rounding at a code boundary), gradient row included."""
    first = {}
    for backend in BACKENDS:
        snaps = events.snapshots(str(runs[backend][1] / "planted" / "train"))
        first[backend] = {tag: series[0][1] for tag, series in snaps.items()}
    for backend in ("jax", "torch"):
        for tag, stats in first["tensorflow"].items():
            for name, values in stats.items():
                np.testing.assert_allclose(
                    first[backend][tag][name],
                    values,
                    rtol=0.06,
                    atol=1e-6,
                    err_msg=f"{backend} {tag} {name}",
                )


@pytest.mark.parametrize("backend", BACKENDS)
def test_statistics_reduced_on_the_backend_give_the_numpy_codes(runs, backend):
    """The compiled probe's own reductions (``keras/probe.py``) against
    ``snapshot_np`` of the same tensors: channels-last conv + BN with dL/da,
    channels-first, NaN/Inf, float16 and bfloat16 layers."""
    cases = runs[backend][0]["device_stats"]
    assert sorted(cases) == sorted(
        [
            "planted",
            "numpy_fallback",
            "channels_first",
            "nonfinite",
            "mixed_float16",
            "mixed_bfloat16",
        ]
    )
    for case, tags in cases.items():
        for tag, (exact_wrong, largest, _) in tags.items():
            # Sums may differ in their last bit, across a code boundary.
            assert (exact_wrong, largest <= 1) == (0, True), (case, tag)
    # Units 1 (NaN, +Inf) and 5 (+Inf only) have non-finite values.
    assert cases["nonfinite"]["r"][2] == 2
