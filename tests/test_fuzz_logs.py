"""A seeded fuzz over damaged real logs and crafted summaries (issue 17).

Hundreds of runs, each a real event file (TensorBoard's own writer, our
numpy twin) mutated the way disks and killed writers damage files (bit
flips, cuts, zero fills, duplicated, reordered and foreign records, garbage,
absurd length headers, CRC-valid events with corrupted bytes) or holding a
crafted summary (wrong dtype, shape, metadata). They are read through the
in-process backend on both of TensorBoard's readers (the Python loader and
the Rust data server), the report and ``api.load``: no 5xx, exit 0/1/2 and
no traceback, no exception at all from ``api.load``. Every case is seeded:
a failure names the run, whose number is its seed.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import shutil
import subprocess
import tempfile
import time
import urllib.parse

import grpc
import numpy as np
import pytest
from tensorboard.backend import application
from tensorboard.compat.proto import event_pb2, summary_pb2
from tensorboard.data import grpc_provider, server_ingester
from tensorboard.plugins import base_plugin
from tensorboard.util import tensor_util
from werkzeug.test import Client

from tb_deadneurons import api
from tb_deadneurons.board import plugin, records
from tb_deadneurons.format import metadata, tfrecord
from tests.support import EventWriter
from tests.test_faults import header, report, safe_app, write_run

CASES = 240  # mutated real files (seeds 0..CASES-1)
ABSURD = 16  # runs with an absurd length header (Python loader side only)
# Corrupting the loss records' bytes can make a loss that is not a float
# scalar: the reader skips such a loss with a warning, so those records are
# mutated too.
MUTATE_LOSS_RECORDS = True


def _records(data: bytes) -> list[bytes]:
    """The whole records of a TFRecord file, framed."""
    out, pos = [], 0
    while pos + tfrecord.HEADER <= len(data):
        end = pos + tfrecord.HEADER + int.from_bytes(data[pos : pos + 8], "little")
        end += tfrecord.FOOTER
        out.append(data[pos:end])
        pos = end
    return out


def _corrupt_payload(record: bytes, rng: random.Random) -> bytes:
    """The record's event bytes with a few bytes changed, framed anew with
    valid CRCs: what a reader must decode as it finds it."""
    data = bytearray(record[tfrecord.HEADER : -tfrecord.FOOTER])
    for _ in range(rng.randint(1, 4)):
        data[rng.randrange(len(data))] = rng.randrange(256)
    return tfrecord.frame(bytes(data))


def _is_loss(record: bytes) -> bool:
    event = event_pb2.Event.FromString(record[tfrecord.HEADER : -tfrecord.FOOTER])
    return any(v.tag == "batch_loss" for v in event.summary.value)


def mutate(data: bytes, rng: random.Random) -> tuple[str, bytes]:
    """(the kind of mutation, the mutated file) for one seeded case."""
    recs = _records(data)
    kind = rng.choice(
        [
            "flip",
            "cut",
            "zeros",
            "duplicate",
            "reorder",
            "garbage",
            "foreign",
            "payload",
            "payload",
            "none",
        ]
    )
    raw = bytearray(data)
    if kind == "flip":
        for _ in range(rng.randint(1, 3)):
            raw[rng.randrange(len(raw))] ^= 1 << rng.randrange(8)
    elif kind == "cut":
        del raw[rng.randrange(len(raw)) :]
    elif kind == "zeros":
        at = rng.randrange(len(raw))
        raw[at : at + rng.randint(1, 64)] = bytes(len(raw[at : at + 64]))
    elif kind in ("duplicate", "reorder"):
        i, j = rng.randrange(1, len(recs)), rng.randrange(1, len(recs))
        if kind == "duplicate":
            recs.insert(j, recs[i])
        else:
            recs[i], recs[j] = recs[j], recs[i]
        raw = bytearray(b"".join(recs))
    elif kind == "garbage":
        at = rng.randrange(len(raw))
        raw[at:at] = rng.randbytes(rng.randint(1, 200))
    elif kind == "foreign":  # a CRC-valid record that is not an Event
        recs.insert(rng.randrange(1, len(recs) + 1), tfrecord.frame(rng.randbytes(30)))
        raw = bytearray(b"".join(recs))
    elif kind == "payload":
        choices = [
            i
            for i in range(1, len(recs))
            if MUTATE_LOSS_RECORDS or not _is_loss(recs[i])
        ]
        i = rng.choice(choices)
        recs[i] = _corrupt_payload(recs[i], rng)
        raw = bytearray(b"".join(recs))
    return kind, bytes(raw)


def _summary(tag: str, tensor, content: bytes | None = None) -> summary_pb2.Summary:
    meta = metadata.create_summary_metadata(None, None)
    if content is not None:
        meta.plugin_data.content = content
    s = summary_pb2.Summary()
    s.value.add(tag=tag, metadata=meta, tensor=tensor_util.make_tensor_proto(tensor))
    return s


def crafted() -> dict[str, list[summary_pb2.Summary]]:
    """Runs of odd snapshot summaries, each event well framed."""
    codes = np.full((len(metadata.stat_names(False)), 4), 128, np.uint8)
    future = metadata.create_summary_metadata(None, None).plugin_data.content
    newer = metadata.parse_plugin_metadata(future)
    newer.version = 99
    revival = metadata.create_revival_metadata("dense")
    floats = summary_pb2.Summary()
    floats.value.add(
        tag="_revivals/dense",
        metadata=revival,
        tensor=tensor_util.make_tensor_proto(np.array([0.5, 2.5])),
    )
    return {
        "float_tensor": [_summary("dense", codes.astype(np.float32))],
        "strings": [_summary("dense", np.array([b"a", b"b"]))],
        "scalar": [_summary("dense", np.uint8(3))],
        "rank3": [_summary("dense", codes[None])],
        "no_units": [_summary("dense", codes[:, :0])],
        "few_rows": [_summary("dense", codes[:2])],
        "bad_meta": [_summary("dense", codes, b"\xff\xfe not a proto")],
        "newer_meta": [_summary("dense", codes, newer.SerializeToString())],
        "all_zero": [_summary("dense", np.zeros_like(codes))] * 3,
        "float_revival": [_summary("dense", codes), floats],
        "units_change": [_summary("dense", codes), _summary("dense", codes[:, :2])],
    }


def write_fuzz(root: str) -> dict[str, str]:
    """Writes every case under ``root``: run name -> what was done to it.
    Runs with absurd length headers go under ``absurd/``, the rest under
    ``common/`` (what the Rust data server can load at all)."""
    with tempfile.TemporaryDirectory() as scratch:
        base = open(write_run(os.path.join(scratch, "base")), "rb").read()
    cases = {}
    for seed in range(CASES):
        rng = random.Random(seed)
        kind, data = mutate(base, rng)
        run = f"common/f{seed:03d}"
        _put(root, run, seed, data, old=rng.random() < 0.5)
        cases[run] = kind
    for seed in range(ABSURD):
        rng = random.Random(10_000 + seed)
        recs = _records(base)
        at = rng.randrange(1, len(recs) + 1)
        recs.insert(at, header(rng.choice([2**63, 2**40, 2**31 + 5, 2**64 - 1])))
        _put(root, f"absurd/a{seed:02d}", seed, b"".join(recs), old=True)
        cases[f"absurd/a{seed:02d}"] = "absurd"
    for name, summaries in crafted().items():
        with EventWriter(os.path.join(root, "common", name)) as w:
            for step, s in enumerate(summaries):
                w.add(step, s)
        cases[f"common/{name}"] = "crafted"
    return cases


def _put(root: str, run: str, seed: int, data: bytes, old: bool) -> None:
    os.makedirs(os.path.join(root, run))
    path = os.path.join(root, run, f"events.out.tfevents.1700000000.fuzz.{seed}.0")
    with open(path, "wb") as f:
        f.write(data)
    if old:  # half the cut files are left by a writer long gone
        then = time.time() - 2 * records.MOVED_ON_SECONDS
        os.utime(path, (then, then))


@contextlib.contextmanager
def rust_app(logdir: str):
    """Our plugin in TensorBoard's WSGI app over the Rust data server
    (``--load_fast=true``'s reader), loading ``logdir`` once."""
    binary = server_ingester.get_server_binary()
    port_file = os.path.join(tempfile.mkdtemp(), "port")
    proc = subprocess.Popen(
        [
            binary.path,
            f"--logdir={logdir}",
            "--reload=once",
            "--samples-per-plugin=deadneurons=all",
            "--port=0",
            f"--port-file={port_file}",
            "--die-after-stdin",
        ],
        stdin=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while not (os.path.exists(port_file) and open(port_file).read().endswith("\n")):
            assert proc.poll() is None and time.monotonic() < deadline
            time.sleep(0.1)
        channel = grpc.insecure_channel(f"localhost:{int(open(port_file).read())}")
        provider = grpc_provider.GrpcDataProvider(
            logdir, grpc_provider.make_stub(channel)
        )
        _wait_loaded(provider)
        context = base_plugin.TBContext(
            data_provider=provider, logdir=logdir, sampling_hints={}
        )
        the_plugin = plugin.DeadNeuronsLoader().load(context)
        yield application.TensorBoardWSGI([the_plugin], data_provider=provider)
        assert proc.poll() is None, "the data server died"
    finally:
        proc.stdin.close()
        proc.wait(timeout=30)
        shutil.rmtree(os.path.dirname(port_file), ignore_errors=True)


def _wait_loaded(provider) -> None:
    """Until the data server's run list stops changing (it loads once)."""
    from tensorboard import context

    seen, stable, deadline = None, 0, time.monotonic() + 90
    while stable < 3 and time.monotonic() < deadline:
        runs = len(provider.list_runs(context.RequestContext(), experiment_id=""))
        stable, seen = (stable + 1 if runs == seen else 0), runs
        time.sleep(0.3)


def _every_route(client: Client, runs: list[str]) -> dict[int, int]:
    """Asks each route for each run; fails on a 5xx. Returns status counts."""
    statuses: dict[int, int] = {}
    listing = client.get("/data/plugin/deadneurons/runs")
    assert listing.status_code == 200, listing.get_data(as_text=True)
    tags = {
        r["run"]: [t["tag"] for t in r["layers"]] for r in listing.get_json()["runs"]
    }
    for run in runs:
        queries = [f"loss?{urllib.parse.urlencode({'run': run})}"]
        for tag in tags.get(run, ["dense"]):
            q = urllib.parse.urlencode({"run": run, "tag": tag})
            queries += [f"timeline?{q}", f"unit?{q}&unit=0", f"timeline?{q}&rows=4"]
        for query in queries:
            response = client.get("/data/plugin/deadneurons/" + query)
            assert response.status_code < 500, (query, response.get_data(as_text=True))
            statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
    return statuses


@pytest.fixture(scope="module")
def fuzzed(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("fuzz"))
    return root, write_fuzz(root)


def test_python_loader_backend_never_gives_5xx(fuzzed):
    root, cases = fuzzed
    statuses = _every_route(Client(safe_app(root)), sorted(cases))
    assert statuses.get(200, 0) > len(cases)  # most of what is readable is served


def test_rust_data_server_backend_never_gives_5xx(fuzzed):
    root, cases = fuzzed
    common = os.path.join(root, "common")
    with rust_app(common) as app:
        runs = [
            run.split("/", 1)[1] for run in sorted(cases) if run.startswith("common/")
        ]
        statuses = _every_route(Client(app), runs)
    assert statuses.get(200, 0) > len(runs)


def test_report_checks_or_says_why_without_a_traceback(fuzzed):
    root, cases = fuzzed
    for args in ((root, "--json"), (os.path.join(root, "common"),)):
        result = report(*args)
        assert result.returncode in (0, 1, 2), result.stderr
        assert "Traceback" not in result.stderr, result.stderr
    body = json.loads(report(root, "--json").stdout)
    assert body["schema"] == 2 and len(body["runs"]) > len(cases) // 2


def test_api_load_reads_everything_readable_and_never_raises(fuzzed):
    root, cases = fuzzed
    logs = api.load(root)
    assert len(logs.layers) > len(cases) // 2
    # Unmutated copies are read whole, with no warning about their files.
    for run in (r for r, kind in cases.items() if kind == "none"):
        assert logs.layers[run]["dense"].steps.tolist() == list(range(6))
        assert not [w for w in logs.warnings if f"{run}/" in w], run
    # Every absurd length header is named, with its file and byte.
    absurd = [w for w in logs.warnings if "length header says" in w]
    assert len(absurd) == ABSURD
