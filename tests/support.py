"""Shared test helpers: real event files, a real ``tensorboard`` process.

No mocks: logs are written with TensorBoard's own ``EventFileWriter`` and our
real numpy twin, and the server is the real ``tensorboard`` CLI.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

import numpy as np
from tensorboard.compat.proto import event_pb2, summary_pb2
from tensorboard.summary.writer.event_file_writer import EventFileWriter

from tb_deadneurons import summary


def report_layers(logdir: str, *args: str) -> dict:
    """``tb-deadneurons report --json`` on ``logdir`` (one run at its root):
    layer tag -> the report's layer entry."""
    out = subprocess.run(
        [sys.executable, "-m", "tb_deadneurons.cli", "report", "--json", logdir, *args],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)["runs"]["."]["layers"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class EventWriter:
    """Writes summaries to one run directory with TensorBoard's own writer."""

    def __init__(self, run_dir: str):
        os.makedirs(run_dir, exist_ok=True)
        self._writer = EventFileWriter(run_dir)

    def add(self, step: int, summ: summary_pb2.Summary, wall_time: float | None = None):
        self._writer.add_event(
            event_pb2.Event(step=step, wall_time=wall_time or time.time(), summary=summ)
        )

    def snapshot(self, tag: str, step: int, data, **kwargs):
        self.add(step, summary.activations_pb(tag, data, **kwargs))

    def scalar(self, tag: str, step: int, value: float):
        s = summary_pb2.Summary()
        s.value.add(tag=tag, simple_value=float(value))
        self.add(step, s)

    def close(self):
        self._writer.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def relu_batch(rng: np.random.Generator, n: int, units: int, dead=()) -> np.ndarray:
    """ReLU outputs of ``units`` units over ``n`` samples; ``dead`` units are 0."""
    a = np.maximum(rng.normal(0.5, 1.0, size=(n, units)), 0.0).astype(np.float32)
    a[:, list(dead)] = 0.0
    return a


@contextlib.contextmanager
def tensorboard_server(logdir: str, *extra: str, load_fast: bool = False, timeout=90):
    """Runs the real ``tensorboard`` CLI on a free port; yields its base URL.

    ``extra`` are more command-line flags (e.g. ``--path_prefix=/tb``); the
    base URL includes the path prefix when one is given.
    """
    port = free_port()
    exe = shutil.which("tensorboard")
    cmd = [exe] if exe else [sys.executable, "-m", "tensorboard.main"]
    cmd += [
        "--logdir",
        logdir,
        "--port",
        str(port),
        "--host",
        "127.0.0.1",
        f"--load_fast={'true' if load_fast else 'false'}",
        "--reload_interval=1",
        *extra,
    ]
    prefix = ""
    for flag in extra:
        if flag.startswith("--path_prefix="):
            prefix = flag.split("=", 1)[1].rstrip("/")
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    base = f"http://127.0.0.1:{port}{prefix}"
    try:
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"tensorboard exited: {proc.stdout.read()}")
            try:
                with urllib.request.urlopen(base + "/data/plugins_listing", timeout=5):
                    break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                if time.monotonic() > deadline:
                    raise RuntimeError("tensorboard did not come up") from None
                time.sleep(0.3)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
