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
    assert dense["dead_units"] == sorted(BORN_DEAD + list(KILLED_AT))
    assert dense["dead_count_now"] == len(dense["dead_units"])
    assert dense["grad_dormant_units"] is None and dense["grad_dormant_count"] is None
    assert len(dense["mean_abs"]) == len(STEPS)
    expected = {str(u): 0 for u in BORN_DEAD}
    expected.update({str(u): s for u, s in KILLED_AT.items()})
    assert dense["died_at"] == expected
    assert dense["revived_units"] == [REVIVED]
    assert len(dense["dead_count"]) == len(STEPS) == len(dense["dormant_count"])
    assert set(dense["dormant_units"]) >= set(dense["dead_units"])
    assert body["runs"]["odd"]["layers"]["dense"]["steps"] == [0, 1, 2, 3, 4, 9]
    assert any("run odd, tag dense, step 5" in w for w in body["warnings"])


# Schema 2 of the --json contract, key by key: changing a name or adding a
# key without raising report.SCHEMA (and keeping an alias) turns this red.
SCHEMA_2_TOP = ["schema", "runs", "warnings", "deprecated"]
SCHEMA_2_LAYER = [
    "units",
    "steps",
    "dead_count",
    "dormant_count",
    "grad_dormant_count",
    "dead_units",
    "dormant_units",
    "grad_dormant_units",
    "revived_units",
    "dead_count_now",
    "mean_abs",
    "died_at",
    "revivals",
    "hints",
    "dead_now",  # deprecated alias of dead_units (schema 1)
]


def test_json_report_is_schema_2_with_the_old_names_as_aliases(logdir):
    body = json.loads(report(logdir, "--json").stdout)
    assert list(body) == SCHEMA_2_TOP and body["schema"] == 2
    assert body["deprecated"] == {"dead_now": "dead_units"}
    for run in body["runs"].values():
        for layer in run["layers"].values():
            assert list(layer) == SCHEMA_2_LAYER
            assert layer["dead_now"] == layer["dead_units"]
    # One naming style: every per-unit list ends in _units, except the aliases.
    lists = [k for k in SCHEMA_2_LAYER if k.endswith(("_units", "_now"))]
    assert [k for k in lists if not k.endswith("_units")] == ["dead_count_now"] + [
        k for k in body["deprecated"]
    ]


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


@pytest.mark.parametrize("json_flag", [(), ("--json",)], ids=["text", "json"])
def test_plain_keras_logs_give_one_error_line_on_stderr_only(tmp_path, json_flag):
    from tests.support import EventWriter

    with EventWriter(str(tmp_path / "train")) as w:  # what keras' TensorBoard logs
        for step in range(3):
            w.scalar("epoch_loss", step, 1.0 / (step + 1))
    result = report(str(tmp_path), *json_flag)
    assert result.returncode == 2 and result.stdout == ""
    (line,) = result.stderr.splitlines()
    assert "no dead-neuron snapshot series found" in line


def test_version_and_help_with_exit_statuses():
    from tb_deadneurons import __version__

    cli = [sys.executable, "-m", "tb_deadneurons.cli"]
    version = subprocess.run([*cli, "--version"], capture_output=True, text=True)
    assert version.returncode == 0
    assert version.stdout.strip() == f"tb-deadneurons {__version__}"
    helped = subprocess.run([*cli, "report", "--help"], capture_output=True, text=True)
    assert helped.returncode == 0
    text = helped.stdout
    assert "exit status:" in text
    assert all(f"\n  {code}  " in text for code in "012"), text


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
    assert grads["grad_dormant_units"] == [2, 5] and grads["dead_units"] == []
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
