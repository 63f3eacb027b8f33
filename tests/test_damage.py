"""Damaged event files: named (file, byte, what was skipped), the rest served.

Real event files written by TensorBoard's own writer, then damaged on disk
the way disks and killed writers do: one flipped bit, a bad length header,
a file cut off inside a record.
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
from tensorboard.summary.writer.record_writer import RecordWriter
from werkzeug.test import Client

from tb_deadneurons.board import records
from tb_deadneurons.format import tfrecord
from tests.support import EventWriter, relu_batch
from tests.test_plugin_routes import get, make_app

STEPS = list(range(10))
DAMAGED_STEP = 5


def record_offsets(path: str) -> list[int]:
    """Byte offsets of the records of a (whole) TFRecord file."""
    data, offsets, pos = open(path, "rb").read(), [], 0
    while pos + 12 <= len(data):
        offsets.append(pos)
        pos += 12 + struct.unpack("<Q", data[pos : pos + 8])[0] + 4
    return offsets


def _write(run_dir: str) -> str:
    rng = np.random.default_rng(11)
    with EventWriter(run_dir) as w:
        for step in STEPS:
            w.snapshot("dense", step, relu_batch(rng, 32, 8, [4]))
    (name,) = os.listdir(run_dir)
    return os.path.join(run_dir, name)


def _patch(path: str, position: int, mask: int) -> None:
    with open(path, "r+b") as f:
        f.seek(position)
        byte = f.read(1)[0]
        f.seek(position)
        f.write(bytes([byte ^ mask]))


def write_damaged(logdir: str) -> dict[str, tuple[str, int]]:
    """Runs ``flipped``, ``badlength``, ``cut`` (old), ``writing`` (fresh):
    run -> (event file relative to logdir, byte of the damaged record)."""
    out = {}
    for run in ("flipped", "badlength", "cut", "writing"):
        path = _write(os.path.join(logdir, run))
        # Record 0 is the file_version event: snapshot of step s is record s+1.
        offsets = record_offsets(path)
        at = offsets[DAMAGED_STEP + 1] if run in ("flipped", "badlength") else 0
        if run == "flipped":
            _patch(path, at + 12 + 40, 0x10)  # a bit inside the event's bytes
        elif run == "badlength":
            _patch(path, at + 1, 0x01)  # the length no longer matches its CRC
        else:
            at = offsets[-1]
            os.truncate(path, at + 20)
        if run == "cut":
            old = time.time() - 2 * records.MOVED_ON_SECONDS
            os.utime(path, (old, old))
        out[run] = (os.path.relpath(path, logdir), at)
    return out


@pytest.fixture(scope="module")
def damaged(tmp_path_factory):
    logdir = str(tmp_path_factory.mktemp("damaged"))
    return logdir, write_damaged(logdir)


def test_runs_names_each_damaged_file_and_byte(damaged):
    logdir, where = damaged
    warnings = get(Client(make_app(logdir)), "runs")["warnings"]
    text = "\n".join(warnings)
    name, at = where["flipped"]
    assert f"event file {name}, byte {at}: record data fails its CRC" in text
    assert "4 events after it, steps 6..9" in text  # what the Python loader drops
    name, at = where["badlength"]
    assert f"event file {name}, byte {at}: bad length header" in text
    assert "neither loader reads" in text
    name, at = where["cut"]
    assert f"event file {name}, byte {at}: ends inside a record" in text
    assert where["writing"][0] not in text  # may still be being written


def test_everything_readable_is_still_served(damaged):
    logdir, _ = damaged
    client = Client(make_app(logdir))
    for run, steps in (
        ("flipped", STEPS[:DAMAGED_STEP]),
        ("badlength", STEPS[:DAMAGED_STEP]),
        ("cut", STEPS[:-1]),
    ):
        body = get(client, f"timeline?run={run}&tag=dense")
        assert body["steps"] == steps and body["dead_now"] == [4]


def test_report_lists_the_damage_and_still_checks(damaged):
    logdir, where = damaged
    result = subprocess.run(
        [sys.executable, "-m", "tb_deadneurons.cli", "report", logdir, "--json"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    body = json.loads(result.stdout)
    assert body["runs"]["flipped"]["layers"]["dense"]["steps"] == STEPS[:5]
    name, at = where["flipped"]
    assert any(w.startswith(f"event file {name}, byte {at}:") for w in body["warnings"])


def test_scanner_reads_on_where_a_file_grew_and_sees_new_damage(tmp_path):
    path = _write(str(tmp_path / "run"))
    scanner = records.Scanner(str(tmp_path))
    assert scanner.warnings() == []
    size = os.path.getsize(path)
    with open(path, "ab") as f:
        writer = RecordWriter(f)
        writer.write(b"not an event, but a valid record")
        writer.write(b"this one gets a flipped bit")
    _patch(path, os.path.getsize(path) - 10, 0x04)
    warnings = scanner.warnings()
    assert len(warnings) == 2
    assert f"byte {size}: record is not an Event" in warnings[0]
    assert "record data fails its CRC" in warnings[1]
    assert scanner.warnings("run") == warnings and scanner.warnings("other") == []


def test_background_scanner_answers_at_once_then_names_the_damage(damaged, monkeypatch):
    logdir, where = damaged
    monkeypatch.setattr(records, "SYNC_BYTES", 0)  # every unread byte is "big"
    scanner = records.Scanner(logdir, background=True)
    first = scanner.warnings()
    assert first[-1].startswith("checking ") and "event files" in first[-1]
    deadline = time.monotonic() + 60
    while scanner.warnings()[-1].startswith("checking "):
        assert time.monotonic() < deadline, "background scan never finished"
        time.sleep(0.05)
    name, at = where["flipped"]
    assert any(f"event file {name}, byte {at}:" in w for w in scanner.warnings())


def test_crc_matches_tensorboards_and_finds_a_flip_among_many(tmp_path):
    from tensorboard.compat.tensorflow_stub.pywrap_tensorflow import masked_crc32c

    rng = np.random.default_rng(2)
    datas = [rng.bytes(300) for _ in range(100)] + [b"", b"x", rng.bytes(7)]
    assert [tfrecord.masked_crc(d) for d in datas] == [masked_crc32c(d) for d in datas]
    run_dir = str(tmp_path / "many")
    with EventWriter(run_dir) as w:
        for step in range(100):
            w.snapshot("dense", step, relu_batch(rng, 16, 8))
    (name,) = os.listdir(run_dir)
    path = os.path.join(run_dir, name)
    at = record_offsets(path)[71]
    _patch(path, at + 30, 0x01)
    (warning,) = records.Scanner(str(tmp_path)).warnings()
    assert f"byte {at}: record data fails its CRC" in warning


def test_records_across_read_blocks_are_read_whole_and_damage_placed_exactly(tmp_path):
    # Wide snapshots (~70 KB each) over three of the scanner's 4 MiB read
    # blocks: records straddle block ends, where the buffer is cut and read on.
    rng = np.random.default_rng(5)
    run_dir = str(tmp_path / "wide")
    with EventWriter(run_dir) as w:
        for step in range(180):
            w.snapshot("wide", step, relu_batch(rng, 4, 10_000))
    (name,) = os.listdir(run_dir)
    path = os.path.join(run_dir, name)
    offsets = record_offsets(path)
    assert os.path.getsize(path) > 3 * (4 << 20)
    scan = records.scan_file(path)
    assert [step for _, step in scan.events] == list(range(180))
    assert not scan.damage and scan.offset == os.path.getsize(path)
    at = next(o for o in offsets if o > 2 * (4 << 20) + 1000)
    _patch(path, at + 40, 0x10)
    (warning,) = records.Scanner(str(tmp_path)).warnings()
    assert f"byte {at}: record data fails its CRC" in warning
