"""The built wheel, installed without TensorFlow, serves the dashboard.

An editable install serves the checkout's files and so hides package data the
wheel forgets; this test builds the wheel from a clean copy of the sources,
installs it into a fresh virtual environment (no system site-packages, so no
TensorFlow), starts that environment's ``tensorboard`` and loads the
dashboard's entry module, a static module and ``./runs`` over HTTP.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
import zipfile

import numpy as np

from tests.support import EventWriter, free_port, relu_batch

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Without git (an unpacked archive): everything but build outputs, caches and
# virtual environments a checkout may hold (.ci/run builds two inside it).
_NOT_SOURCES = shutil.ignore_patterns(
    ".git", "build", "dist", "*.egg-info", "__pycache__", ".*_cache", "artifacts",
    "runs", "node_modules", "venv", "venv-*", ".venv",
)  # fmt: skip
PLUGIN = "data/plugin/deadneurons"


def _copy_sources(dst) -> None:
    """Copy the checkout's sources: the files git tracks or would track.

    A wheel built from a copy of everything could pick up files the sources
    no longer have, and copying a checkout's virtual environments (gigabytes,
    still being written by the running suite) failed CI once.
    """
    listed = subprocess.run(
        ["git", "-C", REPO, "ls-files", "-z", "--cached", "--others"]
        + ["--exclude-standard"],
        capture_output=True,
    )  # fmt: skip
    if listed.returncode != 0:
        shutil.copytree(REPO, dst, ignore=_NOT_SOURCES)
        return
    for name in filter(None, listed.stdout.decode().split("\0")):
        path = os.path.join(REPO, name)
        if os.path.isfile(path):
            os.makedirs(os.path.dirname(os.path.join(dst, name)), exist_ok=True)
            shutil.copy2(path, os.path.join(dst, name))


def _build_wheel(tmp_path) -> str:
    src = tmp_path / "src"
    _copy_sources(src)
    out = tmp_path / "wheel"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps"]
        + ["--no-build-isolation", "-w", str(out), str(src)],
        check=True,
        timeout=120,
    )
    (wheel,) = out.iterdir()
    return str(wheel)


def _venv_with(tmp_path, wheel: str) -> str:
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    import tensorboard

    # The viewer's dependencies come from the package index (pip's cache);
    # tensorboard pinned to the version the rest of the suite runs.
    subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", wheel]
        + [f"tensorboard=={tensorboard.__version__}"],
        check=True,
        timeout=300,
    )
    return str(venv / "bin")


def _get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.read()


def _serve(bindir: str, logdir: str, cwd: str):
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH",)}
    proc = subprocess.Popen(
        [os.path.join(bindir, "tensorboard"), "--logdir", logdir]
        + ["--port", str(port), "--host", "127.0.0.1", "--load_fast=false"],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        assert proc.poll() is None, f"tensorboard exited: {proc.stdout.read()}"
        try:
            _get(base + "/data/plugins_listing")
            return proc, base
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            assert time.monotonic() < deadline, "tensorboard did not come up"
            time.sleep(0.3)


def test_wheel_without_tensorflow_serves_the_dashboard(tmp_path):
    wheel = _build_wheel(tmp_path)
    names = zipfile.ZipFile(wheel).namelist()
    for name in sorted(os.listdir(os.path.join(REPO, "static"))):
        assert f"tb_deadneurons/static/{name}" in names
    package = os.path.join(REPO, "tb_deadneurons")
    for folder, _, files in os.walk(package):
        for py in (f for f in files if f.endswith(".py")):
            path = os.path.relpath(os.path.join(folder, py), REPO)
            assert path.replace(os.sep, "/") in names, f"{path} is not in the wheel"
    assert "tb_deadneurons/format/proto/plugin_data.proto" in names
    bindir = _venv_with(tmp_path, wheel)
    python = os.path.join(bindir, "python")
    probe = subprocess.run(
        [python, "-c", "import importlib.util as u, tb_deadneurons.board.plugin as p;"
         "print(u.find_spec('tensorflow') is None, p.STATIC_DIR)"],
        cwd=tmp_path, check=True, capture_output=True, text=True,
    )  # fmt: skip
    no_tf, static_dir = probe.stdout.split()
    assert no_tf == "True", "TensorFlow leaked into the wheel's environment"
    assert static_dir.startswith(str(tmp_path / "venv"))

    logdir = tmp_path / "logs"
    rng = np.random.default_rng(0)
    with EventWriter(str(logdir / "run")) as w:
        for step in (0, 10):
            w.snapshot("dense", step, relu_batch(rng, 32, 6, dead=[2]))
    proc, base = _serve(bindir, str(logdir), str(tmp_path))
    try:
        listing = json.loads(_get(base + "/data/plugins_listing"))
        assert listing["deadneurons"]["enabled"]
        with open(os.path.join(REPO, "static", "index.js"), "rb") as f:
            assert _get(f"{base}/{PLUGIN}/index.js") == f.read()
        with open(os.path.join(REPO, "static", "app.js"), "rb") as f:
            assert _get(f"{base}/{PLUGIN}/static/app.js") == f.read()
        runs = json.loads(_get(f"{base}/{PLUGIN}/runs"))["runs"]
        assert [(r["run"], [la["tag"] for la in r["layers"]]) for r in runs] == [
            ("run", ["dense"])
        ]
    finally:
        proc.terminate()
        proc.wait(timeout=15)
