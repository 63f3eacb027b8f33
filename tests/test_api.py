"""The notebook API: arrays, classification, DataFrame, third-party decoding."""

from __future__ import annotations

import os

import numpy as np
import pytest
from tbparse import SummaryReader
from tensorboard.backend.event_processing import event_accumulator

from tb_deadneurons import api
from tests.test_plugin_routes import GRAD_ZERO, write_more_logs


@pytest.fixture(scope="module")
def logdir(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("api"))
    write_more_logs(path)
    return path


def test_load_gives_arrays_per_run_and_layer_with_their_classification(logdir):
    logs = api.load(logdir, run="grads")
    assert list(logs.layers) == ["grads"]
    layer = logs.layers["grads"]["dense"]
    assert layer.steps.tolist() == [0, 1, 2, 3] and layer.units == 8
    assert layer.stats["active_fraction"].shape == (4, 8)
    assert layer.result.grad_dormant_now == GRAD_ZERO and layer.dead_now == []
    assert layer.died_at() == [None] * 8
    expected = layer.stats["mean_abs"].mean(axis=1)  # equal counts per unit
    np.testing.assert_allclose(layer.mean_abs, expected, rtol=1e-6)


def test_dataframe_has_a_row_per_step_and_unit_matching_the_arrays(logdir):
    logs = api.load(logdir)
    frame = logs.to_dataframe()
    grads = frame[(frame.run == "grads") & (frame.tag == "dense")]
    assert len(grads) == 4 * 8
    layer = logs.layers["grads"]["dense"]
    at = grads.set_index(["step", "unit"])
    assert at.loc[(3, 2), "grad_dormant"] and not at.loc[(3, 1), "grad_dormant"]
    assert at.loc[(1, 6), "mean_abs"] == layer.stats["mean_abs"][1, 6]
    naneps = frame[frame.run == "naneps"]
    assert naneps[naneps.unit == 1].dead.all() and naneps.grad_dormant.isna().all()
    assert {"active_fraction", "std", "count", "dormant"} <= set(frame.columns)


def test_load_refuses_a_bad_threshold_naming_it(logdir):
    with pytest.raises(ValueError, match="tau"):
        api.load(logdir, tau=-1)
    with pytest.raises(ValueError, match="grad_mean_abs"):
        api.load(logdir, run="eps", definition="grad_dormant")


def test_decode_snapshot_reads_what_event_accumulator_and_tbparse_return(logdir):
    run_dir = os.path.join(logdir, "grads")
    acc = event_accumulator.EventAccumulator(run_dir, size_guidance={"tensors": 0})
    acc.Reload()
    meta = acc.SummaryMetadata("dense")
    event = acc.Tensors("dense")[2]
    from_proto = api.decode_snapshot(event.tensor_proto, meta)
    layer = api.load(logdir, run="grads").layers["grads"]["dense"]
    for name, values in from_proto.items():
        np.testing.assert_allclose(values, layer.stats[name][2], rtol=1e-6)
    frame = SummaryReader(run_dir).tensors
    value = frame[frame.step == 2].value.iloc[0]  # uint8 codes, no names
    from_tbparse = api.decode_snapshot(value, meta.plugin_data.content)
    assert from_tbparse.keys() == from_proto.keys()
    np.testing.assert_array_equal(from_tbparse["grad_mean_abs"][GRAD_ZERO], 0)
    meta.plugin_data.plugin_name = "scalars"
    with pytest.raises(ValueError, match="plugin 'scalars'"):
        api.decode_snapshot(value, meta)
