"""``tb-deadneurons report`` verdicts at their edges, run in-process through
the real CLI entry (``cli.main``) on real event files: ``--fail-above`` 0 and
1 are limits a gate may use, the revival line counts units, and the notebook
API refuses a bad definition up front (mutation testing, issue 9 item 7)."""

from __future__ import annotations

import os

import numpy as np
import pytest

from tb_deadneurons import api, cli, summary
from tests.support import EventWriter, relu_batch


@pytest.fixture(scope="module")
def logdir(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("verdicts"))
    rng = np.random.default_rng(11)
    with EventWriter(os.path.join(path, "sick")) as w:
        for step in (0, 10, 20):
            data = relu_batch(rng, 32, 8, [3])
            w.snapshot("dense", step, data, layer_class="Dense", activation="relu")
        w.add(15, summary.revivals_pb("dense", [3, 5]))
        w.add(18, summary.revivals_pb("dense", [3]))
    with EventWriter(os.path.join(path, "healthy")) as w:
        for step in (0, 10, 20):
            w.snapshot("dense", step, relu_batch(rng, 32, 8))
    return path


def _report(capsys, *args: str):
    status = cli.main(["report", *args])
    out = capsys.readouterr()
    return status, out.out, out.err


def test_fail_above_zero_fails_on_any_dead_unit_and_passes_a_healthy_run(
    logdir, capsys
):
    status, _, err = _report(capsys, logdir, "--run", "sick", "--fail-above", "0")
    assert status == 1 and "run sick, layer dense: 12.5% dead > 0.0%" in err
    status, _, err = _report(capsys, logdir, "--run", "healthy", "--fail-above", "0")
    assert status == 0, err


def test_fail_above_one_is_a_valid_limit_that_nothing_exceeds(logdir, capsys):
    status, out, err = _report(capsys, logdir, "--fail-above", "1")
    assert status == 0 and err == ""
    assert "run sick" in out and "run healthy" in out


def test_text_report_counts_revived_units_over_all_reinitialisations(logdir, capsys):
    status, out, _ = _report(capsys, logdir, "--run", "sick")
    assert status == 0
    assert "revived dense: 3 units in 2 re-initialisations (steps 15..18)" in out


def test_notebook_api_names_a_bad_definition_even_without_layers(tmp_path, logdir):
    with pytest.raises(ValueError, match="definition"):
        api.load(str(tmp_path), definition="zombie")
    layer = api.load(logdir, run="sick").layers["sick"]["dense"]
    assert (layer.layer_class, layer.activation) == ("Dense", "relu")
