"""timm EfficientNet-B0 and MobileNetV3 channels (``BatchNormAct2d``).

timm hard-imports torchvision, and PyPI's torchvision does not load beside
the main venv's CPU torch, so the models run in a second interpreter (torch
2.14.1 + torchvision 0.29.1 + timm, never TensorFlow) that the environment
variable ``TB_DEADNEURONS_TIMM_PYTHON`` names; ``tests/torch_timm_run.py``
does the work. Without it the test is skipped locally and fails under
``CI=true``: a skip there would hide a broken feature.
"""

from __future__ import annotations

import json
import os
import subprocess

import pytest

PYTHON = os.environ.get("TB_DEADNEURONS_TIMM_PYTHON", "")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def timm_run(tmp_path_factory):
    if not (PYTHON and os.path.exists(PYTHON)):
        message = f"TB_DEADNEURONS_TIMM_PYTHON={PYTHON!r}: no timm interpreter"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    env = {**os.environ, "PYTHONPATH": ROOT}
    out = subprocess.run(
        [PYTHON, "-m", "tests.torch_timm_run", str(tmp_path_factory.mktemp("t"))],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=ROOT,
        env=env,
    )
    assert out.returncode == 0, out.stderr[-4000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("name", ["efficientnet_b0", "mobilenetv3_small_100"])
def test_every_timm_series_is_as_wide_as_its_channels(timm_run, name):
    series = timm_run[name]["series"]
    assert len(series) >= 20
    wrong = {t: s for t, s in series.items() if s["width"] != s["channels"]}
    assert wrong == {}
    # BatchNormAct2d's act (the old guess took its image width): all there.
    assert sum(t.endswith("bn1.act") for t in series) >= 10


@pytest.mark.parametrize("name", ["efficientnet_b0", "mobilenetv3_small_100"])
def test_planted_timm_channels_are_found_dead(timm_run, name):
    ((tag, planted),) = timm_run[name]["planted"].items()
    assert timm_run[name]["series"][tag]["dead"] == planted
