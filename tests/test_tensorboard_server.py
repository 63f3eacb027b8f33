"""The real ``tensorboard`` CLI finds the plugin and serves every snapshot."""

from __future__ import annotations

import json
import os
import time
import urllib.error
import urllib.parse
import urllib.request

import numpy as np
import pytest

from tests.support import EventWriter, relu_batch, tensorboard_server
from tests.test_damage import STEPS as DAMAGE_STEPS
from tests.test_damage import write_damaged
from tests.test_restarts import RERUN_DEAD, write_restarts
from tests.test_restarts import STEPS as RERUN_STEPS

SNAPSHOTS = 300  # above TensorBoard's own 10 / 100 samples per tag


@pytest.fixture(scope="module")
def logdir(tmp_path_factory):
    path = tmp_path_factory.mktemp("tb")
    rng = np.random.default_rng(3)
    with EventWriter(os.path.join(path, "long", "train")) as w:
        for step in range(SNAPSHOTS):
            dead = [0, 5] + ([6] if step >= 200 else [])
            w.snapshot("dense", step * 5, relu_batch(rng, 16, 8, dead))
            w.scalar("batch_loss", step * 5, 1.0 / (step + 1))
    write_restarts(str(path))
    write_damaged(str(path))
    return str(path)


def _get(url: str):
    with urllib.request.urlopen(url, timeout=30) as response:
        return json.load(response)


def _wait_for(base: str, path: str, ready, timeout: float = 60):
    """GETs ``base + path`` until ``ready(body)``: the server loads lazily."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            body = _get(base + path)
            if ready(body):
                return body
        except urllib.error.HTTPError:
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"{path} not ready: {body}")
        time.sleep(0.5)


@pytest.mark.parametrize("load_fast", [False, True], ids=["python", "rust"])
def test_tensorboard_lists_plugin_and_timeline_keeps_every_snapshot(logdir, load_fast):
    with tensorboard_server(logdir, load_fast=load_fast) as base:
        listing = _wait_for(
            base, "/data/plugins_listing", lambda b: b["deadneurons"]["enabled"]
        )
        entry = listing["deadneurons"]
        assert entry["tab_name"] == "Dead Neurons"
        assert entry["loading_mechanism"]["module_path"].endswith("/index.js")
        query = urllib.parse.urlencode({"run": "long/train", "tag": "dense"})
        timeline = _wait_for(
            base,
            "/data/plugin/deadneurons/timeline?" + query,
            lambda b: len(b["steps"]) == SNAPSHOTS,
        )
        assert timeline["steps"] == [s * 5 for s in range(SNAPSHOTS)]
        assert timeline["dead_now"] == [0, 5, 6]
        assert timeline["died_at"][6] == 1000
        runs = _get(base + "/data/plugin/deadneurons/runs")
        long = next(r for r in runs["runs"] if r["run"] == "long/train")
        assert long["layers"][0]["snapshots"] == SNAPSHOTS
        loss = _get(base + "/data/plugin/deadneurons/loss?run=long%2Ftrain")
        assert loss["tag"] == "batch_loss" and len(loss["steps"]) == SNAPSHOTS
        _check_restarts_and_damage(base, runs, load_fast)


def _check_restarts_and_damage(base: str, runs: dict, load_fast: bool) -> None:
    """Both loaders: the re-run alone is shown; damage is named, the rest
    served (the Python loader stops at a bad record; the Rust one reads on)."""
    rerun = _get(base + "/data/plugin/deadneurons/timeline?run=rerun&tag=dense")
    assert rerun["steps"] == RERUN_STEPS and rerun["dead_now"] == RERUN_DEAD
    warnings = "\n".join(runs["warnings"])
    assert "run rerun: steps go back" in warnings
    assert "record data fails its CRC" in warnings and "bad length header" in warnings
    flipped = _get(base + "/data/plugin/deadneurons/timeline?run=flipped&tag=dense")
    expected = DAMAGE_STEPS if load_fast else DAMAGE_STEPS[:5]
    assert flipped["steps"] == expected and flipped["dead_now"] == [4]


def test_samples_per_plugin_zero_keeps_every_snapshot(logdir):
    # 0 is "keep all" in TensorBoard's flag; we must not read it as "none".
    flag, kept = "0", SNAPSHOTS
    with tensorboard_server(
        logdir, f"--samples_per_plugin=deadneurons={flag}", load_fast=True
    ) as base:
        query = urllib.parse.urlencode({"run": "long/train", "tag": "dense"})
        timeline = _wait_for(
            base,
            "/data/plugin/deadneurons/timeline?" + query,
            lambda b: len(b["steps"]) >= kept,
        )
        assert len(timeline["steps"]) == kept
        assert timeline["steps"][-1] == (SNAPSHOTS - 1) * 5
