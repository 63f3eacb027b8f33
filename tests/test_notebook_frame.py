"""``api.Logs.to_dataframe``: the long table a notebook gets, row for row the
arrays of ``api.load`` (mutation testing, issue 9 item 7)."""

from __future__ import annotations

import os

import numpy as np

from tb_deadneurons import api
from tests.support import EventWriter, relu_batch


def test_dataframe_rows_follow_step_then_unit_with_a_fresh_index(tmp_path):
    rng = np.random.default_rng(5)
    for run, dead in (("a", [1]), ("b", [0, 2])):
        with EventWriter(os.path.join(tmp_path, run)) as w:
            for step in (0, 10):
                w.snapshot("dense", step, relu_batch(rng, 32, 3, dead))
    logs = api.load(str(tmp_path))
    frame = logs.to_dataframe()
    assert frame.index.tolist() == list(range(2 * 2 * 3))
    for run in ("a", "b"):
        layer = logs.layers[run]["dense"]
        rows = frame[frame.run == run]
        assert rows.step.tolist() == [0, 0, 0, 10, 10, 10]
        assert rows.unit.tolist() == [0, 1, 2, 0, 1, 2]
        assert rows.dead.tolist() == layer.result.dead.reshape(-1).tolist()
        assert rows.dormant.tolist() == layer.result.dormant.reshape(-1).tolist()
        np.testing.assert_array_equal(
            rows.active_fraction, layer.stats["active_fraction"].reshape(-1)
        )
    assert frame[frame.run == "b"].groupby("unit").dead.all().tolist() == [
        True,
        False,
        True,
    ]


def test_dataframe_of_a_log_dir_without_snapshots_is_empty_with_key_columns(
    tmp_path,
):
    frame = api.load(str(tmp_path)).to_dataframe()
    assert len(frame) == 0
    assert list(frame.columns) == ["run", "tag", "step", "unit"]
