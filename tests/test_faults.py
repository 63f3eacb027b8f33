"""Faults found by fuzzing and live runs (issue 17), one regression each.

Real event files written by TensorBoard's own writer, damaged on disk the
way a disk or a killed writer does, read through TensorBoard's own loaders
(the in-process backend, the report, ``api.load``).
"""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
import time
import warnings

import numpy as np
import pytest
from tensorboard.backend import application
from tensorboard.plugins import base_plugin
from werkzeug.test import Client

from tb_deadneurons import api, summary
from tb_deadneurons.board import plugin, reader, records
from tb_deadneurons.format import metadata, tfrecord
from tests.support import EventWriter, relu_batch

STEPS = list(range(6))
DEAD = [2]


def write_run(run_dir: str) -> str:
    """A healthy run (snapshots of 8 units, unit 2 dead; a loss): its file."""
    rng = np.random.default_rng(3)
    with EventWriter(run_dir) as w:
        for step in STEPS:
            w.snapshot("dense", step, relu_batch(rng, 32, 8, DEAD))
            w.scalar("batch_loss", step, 1.0 / (step + 1))
    (name,) = os.listdir(run_dir)
    return os.path.join(run_dir, name)


def header(length: int) -> bytes:
    """A TFRecord length header with a valid CRC."""
    raw = struct.pack("<Q", length)
    return raw + struct.pack("<I", tfrecord.masked_crc(raw))


def age(path: str, seconds: float) -> None:
    old = time.time() - seconds
    os.utime(path, (old, old))


def safe_app(logdir: str):
    """TensorBoard's WSGI app with our plugin over ``logdir``, the Python
    loader fed as ``api.load`` feeds it (``reader.local_data_provider``: cut
    before what TensorBoard's own reader cannot survive; see docs/routes.md).
    """
    ends = records.Scanner(logdir).readable_ends()
    provider, _ = reader.local_data_provider(logdir, ends)
    context = base_plugin.TBContext(
        data_provider=provider, logdir=logdir, sampling_hints={}
    )
    the_plugin = plugin.DeadNeuronsLoader().load(context)
    return application.TensorBoardWSGI([the_plugin], data_provider=provider)


def report(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "tb_deadneurons.cli", "report", *args],
        capture_output=True,
        text=True,
        timeout=300,
    )


def _get(client, route):
    response = client.get("/data/plugin/deadneurons/" + route)
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_json()


# --- absurd lengths: damage named with file and byte, never read ----------


@pytest.mark.parametrize("length", [2**63, 2**40], ids=["2^63", "2^40"])
def test_absurd_length_header_is_named_and_the_rest_served(tmp_path, length):
    path = write_run(str(tmp_path / "run"))
    at = os.path.getsize(path)
    with open(path, "ab") as f:
        f.write(header(length) + b"\0" * 40)
    name = os.path.relpath(path, tmp_path)
    expected = f"event file {name}, byte {at}: length header says {length} bytes"
    # The scanner does not read it (was OverflowError / MemoryError).
    (warning,) = records.Scanner(str(tmp_path)).warnings()
    assert warning.startswith(expected)
    client = Client(safe_app(str(tmp_path)))
    assert any(w.startswith(expected) for w in _get(client, "runs")["warnings"])
    body = _get(client, "timeline?run=run&tag=dense")
    assert body["steps"] == STEPS and body["dead_now"] == DEAD
    # api.load, in this process (which may have imported TensorFlow, whose
    # reader dies on such a header), reads everything before it.
    logs = api.load(str(tmp_path))
    assert logs.layers["run"]["dense"].steps.tolist() == STEPS
    result = report(str(tmp_path), "--json")
    assert result.returncode == 0, result.stderr
    assert any(w.startswith(expected) for w in json.loads(result.stdout)["warnings"])


def test_a_record_running_past_the_end_is_never_read_whole(tmp_path):
    path = write_run(str(tmp_path / "run"))
    with open(path, "ab") as f:
        f.write(header(1 << 30) + b"x" * 10)  # 1 GiB said, 10 bytes there
    scan = records.scan_file(path)
    assert scan.partial == 22 and not scan.damage  # a writer may be writing it


# --- a CRC-valid record that is not an Event: skipped and named ------------


def test_record_that_is_not_an_event_is_skipped_and_everything_else_read(tmp_path):
    path = write_run(str(tmp_path / "run"))
    at = os.path.getsize(path)
    with open(path, "ab") as f:
        f.write(tfrecord.frame(b"\xff\xff\xff\xff not an event"))
    with EventWriter(str(tmp_path / "run")) as w:  # a later file reads on
        w.snapshot("dense", 9, relu_batch(np.random.default_rng(1), 32, 8, DEAD))
    name = os.path.relpath(path, tmp_path)
    logs = api.load(str(tmp_path))  # was DecodeError for the whole log dir
    assert logs.layers["run"]["dense"].steps.tolist() == STEPS + [9]
    assert any(
        w.startswith(f"event file {name}, byte {at}: record is not an Event; skipped")
        for w in logs.warnings
    )
    result = report(str(tmp_path))
    assert result.returncode == 0 and "Traceback" not in result.stderr


# --- a file ending inside a record: damage only once its writer moved on ---


def _cut(tmp_path) -> tuple[str, int]:
    path = write_run(str(tmp_path / "run"))
    size = os.path.getsize(path)
    os.truncate(path, size - 7)  # inside the last record
    return path, size - 7


def test_cut_file_is_reported_only_after_the_moved_on_age(tmp_path):
    assert records.MOVED_ON_SECONDS >= 5 * 120  # writers flush every 120 s
    path, _ = _cut(tmp_path)
    age(path, 300)  # a long evaluation pause: the writer is still alive
    assert records.Scanner(str(tmp_path)).warnings() == []
    assert records.Scanner(str(tmp_path), moved_on_seconds=299).warnings() != []
    age(path, records.MOVED_ON_SECONDS + 1)
    (warning,) = records.Scanner(str(tmp_path)).warnings()
    assert "ends inside a record" in warning and "moved on" in warning


def test_cut_file_is_reported_when_a_later_file_was_started_after_it(tmp_path):
    path, _ = _cut(tmp_path)
    age(path, 60)
    later = tmp_path / "run" / f"events.out.tfevents.{int(time.time())}.host.1.0"
    later.write_bytes(b"")
    (warning,) = records.Scanner(str(tmp_path)).warnings()
    assert "ends inside a record" in warning
    # A file started before the cut file's last change (a second writer
    # running beside it, as keras.callbacks.TensorBoard beside ours) is not.
    os.rename(
        later, tmp_path / "run" / f"events.out.tfevents.{int(time.time()) - 3600}.h.1.0"
    )
    assert records.Scanner(str(tmp_path)).warnings() == []


def test_moved_on_age_comes_from_the_environment_and_is_checked(tmp_path, monkeypatch):
    path, _ = _cut(tmp_path)
    age(path, 5)
    monkeypatch.setenv(records.MOVED_ON_ENV, "4")
    assert records.Scanner(str(tmp_path)).warnings() != []
    for bad in ("-1", "nan", "soon"):
        monkeypatch.setenv(records.MOVED_ON_ENV, bad)
        with pytest.raises(ValueError, match=records.MOVED_ON_ENV):
            records.Scanner(str(tmp_path))
    with pytest.raises(ValueError, match="moved_on_seconds"):
        records.Scanner(str(tmp_path), moved_on_seconds=float("inf"))


# --- a live PyTorch run: paused is not damage; cut off and left is ---------

LIVE_RUN = """
import os, sys, time, torch
from torch.utils.tensorboard import SummaryWriter
from tb_deadneurons.board import records
from tb_deadneurons.torch import DeadNeuronMonitor

logdir = sys.argv[1]
torch.manual_seed(0)
model = torch.nn.Sequential(
    torch.nn.Linear(20, 64), torch.nn.ReLU(), torch.nn.Linear(64, 3)
)
opt = torch.optim.Adam(model.parameters())
x, y = torch.randn(512, 20), torch.randint(0, 3, (512,))
writer = SummaryWriter(logdir)  # flushes every 120 s, as the README shows
(name,) = os.listdir(logdir)
path = os.path.join(logdir, name)  # the writer's file
monitor = DeadNeuronMonitor(model, writer, probe_data=x[:64], every_n_steps=5)
for step in range(1, 5001):
    i = (step * 32) % 480
    loss = torch.nn.functional.cross_entropy(model(x[i : i + 32]), y[i : i + 32])
    opt.zero_grad()
    loss.backward()
    opt.step()
    writer.add_scalar("loss", loss.item(), step)
    monitor.step(loss)
    # Pause (evaluation, a checkpoint) where the file on disk ends inside a
    # record, as a writer between two flushes leaves it.
    if step % 5 == 0 and records.scan_file(path).partial:
        break
print("paused", path, flush=True)
time.sleep(600)
"""


def test_live_summary_writer_paused_is_no_damage_but_cut_off_and_left_is(tmp_path):
    logdir = str(tmp_path / "torch")
    script = tmp_path / "live.py"
    script.write_text(LIVE_RUN)
    child = subprocess.Popen(
        [sys.executable, str(script), logdir], stdout=subprocess.PIPE, text=True
    )
    try:
        line = child.stdout.readline().split()
        assert line[:1] == ["paused"], line
        path = line[1]
        scan = records.scan_file(path)
        assert scan.partial > 0  # the file ends inside a record
        time.sleep(6)  # paused; the age below stands for TensorBoard's 120 s flush
        env = dict(os.environ, **{records.MOVED_ON_ENV: "30"})
        paused = subprocess.run(
            [sys.executable, "-m", "tb_deadneurons.cli", "report", logdir],
            capture_output=True,
            text=True,
            timeout=300,
            env=env,
        )
        assert paused.returncode == 0, paused.stderr
        assert "ends inside a record" not in paused.stdout + paused.stderr
        assert records.Scanner(logdir, moved_on_seconds=30).warnings() == []
        # The monitor's layer (the ReLU, module "1") is tabled.
        assert any(row.split()[:1] == ["1"] for row in paused.stdout.splitlines())
    finally:
        child.kill()  # cut off: the rest of the record is never written
        child.wait(timeout=30)
    time.sleep(2.5)  # ... and left
    name = os.path.relpath(path, logdir)
    expected = f"event file {name}, byte {records.scan_file(path).offset}: ends inside"
    (warning,) = records.Scanner(logdir, moved_on_seconds=2).warnings()
    assert warning.startswith(expected)
    env = dict(os.environ, **{records.MOVED_ON_ENV: "2"})
    left = subprocess.run(
        [sys.executable, "-m", "tb_deadneurons.cli", "report", logdir],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert left.returncode == 0 and expected in left.stdout


def test_an_encoding_whose_codes_leave_float32_is_named_and_dropped(tmp_path):
    """Codes whose values overflow float32 or round to 0 (a live unit read as
    dead) come from a damaged or foreign writer: each such stat is named and
    dropped, never decoded to inf or 0, and nothing warns on the console."""
    rng = np.random.default_rng(5)
    w = EventWriter(str(tmp_path / "run"))
    for step in range(3):
        summ = summary.activations_pb("dense", relu_batch(rng, 32, 8, [4]))
        if step == 0:
            content = summ.value[0].metadata.plugin_data
            data = metadata.parse_plugin_metadata(content.content)
            names = list(data.stat_names)
            data.encodings[names.index("mean_abs")].log2_min = 200.0
            data.encodings[names.index("std")].log2_min = -400.0
            content.content = data.SerializeToString()
        w.add(step, summ)
    w.close()
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        logs = api.load(str(tmp_path))
    text = "\n".join(logs.warnings)
    for name in ("mean_abs", "std"):
        assert f"stat {name} not decodable (its codes reach beyond float32)" in text
    for name in ("active_fraction", "max_abs", "count"):
        assert f"stat {name} not decodable" not in text
    # Without mean_abs the layer cannot be classified: said, not guessed.
    assert "no active_fraction / mean_abs rows; not classified" in text
    assert logs.layers == {}
