"""``tb-deadneurons report``: tables, JSON and exit codes on real event files."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.test_plugin_routes import BORN_DEAD, KILLED_AT, REVIVED, STEPS, write_logs


def report(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "tb_deadneurons.cli", "report", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture(scope="module")
def logdir(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("report"))
    write_logs(path)
    return path


def test_text_report_tables_each_planted_layer(logdir):
    result = report(logdir, "--run", "planted/train")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "run planted/train"
    assert lines[1].split()[:3] == ["layer", "units", "dead"]
    dense = next(line.split() for line in lines if line.split()[0] == "dense")
    # units, dead now, dormant now, grad-dormant now, first death, revived,
    # worst step (dead)
    assert dense[1:3] == ["16", "4"] and dense[3] == "(25.0%)"
    assert dense[6] == "-"  # no gradient row logged
    assert dense[7] == "0" and dense[8] == "1"
    assert dense[9:] == ["240", "(4)"]  # first step with the most dead units
    tanh = next(line.split() for line in lines if line.split()[0] == "tanh")
    assert tanh[1:3] == ["6", "1"]


def test_json_report_has_the_planted_units_and_death_steps(logdir):
    result = report(logdir, "--json")
    assert result.returncode == 0, result.stderr
    body = json.loads(result.stdout)
    dense = body["runs"]["planted/train"]["layers"]["dense"]
    assert dense["units"] == 16 and dense["steps"] == STEPS
    assert dense["dead_now"] == sorted(BORN_DEAD + list(KILLED_AT))
    assert (
        dense["dead_count_now"] == len(dense["dead_now"]) and "dead_units" not in dense
    )
    assert dense["grad_dormant_units"] is None and dense["grad_dormant_count"] is None
    assert len(dense["mean_abs"]) == len(STEPS)
    expected = {str(u): 0 for u in BORN_DEAD}
    expected.update({str(u): s for u, s in KILLED_AT.items()})
    assert dense["died_at"] == expected
    assert dense["revived_units"] == [REVIVED]
    assert len(dense["dead_count"]) == len(STEPS) == len(dense["dormant_count"])
    assert set(dense["dormant_units"]) >= set(dense["dead_now"])
    assert body["runs"]["odd"]["layers"]["dense"]["steps"] == [0, 1, 2, 3, 4, 9]
    assert any("run odd, tag dense, step 5" in w for w in body["warnings"])


def test_tau_option_changes_dormant_units(logdir):
    body = json.loads(report(logdir, "--json", "--tau", "5").stdout)
    assert len(body["runs"]["planted/train"]["layers"]["dense"]["dormant_units"]) == 16


def test_fail_above_exits_1_only_when_a_layer_is_deader(logdir):
    calm = report(logdir, "--run", "planted/train", "--fail-above", "0.3")
    assert calm.returncode == 0, calm.stderr
    # dense is 4/16 = 25.0 % dead: at the limit is within it
    exact = report(logdir, "--run", "planted/train", "--fail-above", "0.25")
    assert exact.returncode == 0, exact.stderr
    alarm = report(logdir, "--run", "planted/train", "--fail-above", "0.2")
    assert alarm.returncode == 1
    assert "layer dense: 25.0% dead > 20.0%" in alarm.stderr
    assert "tanh" not in alarm.stderr


@pytest.mark.parametrize(
    "args, message",
    [
        (("/no/such/logdir",), "does not exist"),
        (("{logdir}", "--run", "nope"), "no snapshot series in run 'nope'"),
        (("{logdir}", "--fail-above", "2"), "--fail-above"),
        (("{logdir}", "--tau", "nan"), "--tau"),
    ],
)
def test_usage_errors_exit_2_with_one_line(logdir, args, message):
    result = report(*(a.format(logdir=logdir) for a in args))
    assert result.returncode == 2
    assert result.stdout == ""
    assert len(result.stderr.strip().splitlines()) == 1 and message in result.stderr


@pytest.mark.parametrize("json_flag", [(), ("--json",)], ids=["text", "json"])
def test_log_dir_without_snapshots_cannot_pass_a_gate(tmp_path, json_flag):
    (tmp_path / "events.out.tfevents.1.host").write_bytes(b"not a record at all")
    result = report(str(tmp_path), "--fail-above", "0.2", *json_flag)
    assert result.returncode == 2
    assert "no dead-neuron snapshot series found" in result.stderr
    assert "Traceback" not in result.stderr


def test_text_report_escapes_control_characters_in_names(tmp_path):
    from tests.test_plugin_routes import LONG_TAG, write_more_logs

    write_more_logs(str(tmp_path))
    result = report(str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert "\x1b" not in result.stdout and "\\x1b[31mred\\nforged row" in result.stdout
    assert not any(line.startswith("forged row") for line in result.stdout.splitlines())
    assert "grads" in result.stdout and LONG_TAG[:3] not in result.stdout
    dense = next(line.split() for line in result.stdout.splitlines() if "dense" in line)
    assert dense[0] == "dense"
    body = json.loads(report(str(tmp_path), "--json").stdout)
    grads = body["runs"]["grads"]["layers"]["dense"]
    assert grads["grad_dormant_units"] == [2, 5] and grads["dead_now"] == []
    assert grads["grad_dormant_count"] == [2, 2, 2, 2]


def test_console_script_runs_the_report(logdir):
    result = subprocess.run(
        ["tb-deadneurons", "report", logdir, "--json"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "planted/train" in json.loads(result.stdout)["runs"]
