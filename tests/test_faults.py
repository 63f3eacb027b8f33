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

import numpy as np
import pytest
from tensorboard.backend import application
from tensorboard.plugins import base_plugin
from werkzeug.test import Client

from tb_deadneurons import api
from tb_deadneurons.board import plugin, reader, records
from tb_deadneurons.format import tfrecord
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
