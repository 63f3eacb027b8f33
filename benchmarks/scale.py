"""Scale benchmark: a 7B-class decoder's FFN layers in TensorBoard (issue 11).

Writes 32 layers x 11,008 units x 500 snapshots with the numpy twin
(``summary.activations_pb`` + ``events.EventWriter``; ~1.2 GB) into a
directory under /tmp, then, for each loader (``--load_fast=false`` and the
Rust data server), side by side with an empty log dir:

- RSS of the ``tensorboard`` process tree, loaded minus empty;
- ``./runs`` cold (first call after loading) and warm;
- ``./timeline`` for one 11,008-unit layer: full matrix, the overview
  (``rows``/``cols``) and a zoom into 512 units -- bytes and warm time.

``--writer`` also times the TF op ``summary.activations`` on one layer's
output (batch 8 x 512 tokens) against that layer's forward matmul
(``[4096, 4096] @ [4096, 11008]``), alternating the two.

``--browser`` also times, in Chromium, request-to-drawn of the widest
layer's overview and of a zoom into 512 units (the dashboard's own
``performance.measure``).

Usage: nice -n 10 python benchmarks/scale.py [--logdir DIR] [--keep]
       [--layers 32] [--units 11008] [--snapshots 500] [--no-server]
       [--writer] [--browser] [--loaders python,rust]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
import urllib.error
import urllib.request

import numpy as np

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
sys.path.insert(0, ROOT)

from benchmarks.backend import _rss_kib, launch_tensorboard  # noqa: E402
from tb_deadneurons import summary  # noqa: E402
from tb_deadneurons.format import events  # noqa: E402

RUN = "bench"
DONE_TAG = "bench_done"  # written last: once listed, everything before is loaded
OVERVIEW = "rows=400&cols=500"
ZOOM = "unit_start=5000&unit_stop=5512&rows=512&cols=500"


def tag_of(layer: int) -> str:
    return f"decoder/layer_{layer:02d}/mlp"


def write_log(logdir: str, layers: int, units: int, snapshots: int) -> None:
    """ReLU outputs of 16 tokens per snapshot, through the numpy twin, with a
    growing block of planted dead units (zero output) per layer."""
    rng = np.random.default_rng(0)
    base = [
        np.maximum(rng.normal(0.3, 1.0, (16, units)), 0).astype(np.float32)
        for _ in range(8)
    ]
    with events.EventWriter(os.path.join(logdir, RUN)) as writer:
        for step in range(snapshots):
            for layer in range(layers):
                data = base[(step + layer) % len(base)].copy()
                dead = min(units, layer * 7 + int(units * 0.2 * step / snapshots))
                data[:, :dead] = 0
                summ = summary.activations_pb(
                    tag_of(layer), data, layer_class="Dense", activation="relu"
                )
                writer.add_summary(summ, step * 10)
        writer.scalar(DONE_TAG, 1.0, (snapshots - 1) * 10)


def _get(port: int, path: str, timeout: float = 600):
    """(seconds, body bytes) of one GET, or (seconds, None) on an HTTP error."""
    url = f"http://127.0.0.1:{port}/{path}"
    t = time.perf_counter()
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            body = r.read()
    except urllib.error.HTTPError as e:
        e.read()
        return time.perf_counter() - t, None
    return time.perf_counter() - t, body


def _start(logdir: str, load_fast: bool):
    proc, port = launch_tensorboard(logdir, load_fast)
    deadline = time.time() + 120
    while time.time() < deadline:
        try:
            if _get(port, "data/plugins_listing", timeout=5)[1] is not None:
                return proc, port
        except OSError:
            time.sleep(0.5)
    proc.terminate()
    raise RuntimeError("tensorboard did not start")


def _wait_loaded(port: int, timeout: float = 1800) -> float:
    """Seconds until the scalar written last is listed (all loaded)."""
    t = time.perf_counter()
    while time.perf_counter() - t < timeout:
        _, body = _get(port, "data/plugin/scalars/tags")
        if body and DONE_TAG in json.loads(body).get(RUN, {}):
            return time.perf_counter() - t
        time.sleep(1)
    raise RuntimeError("log not loaded in time")


def _timed(port: int, path: str, repeats: int = 5):
    """(cold s, warm min s, warm median s, bytes) of GET ``path``; None if 4xx."""
    cold, body = _get(port, path)
    if body is None:
        return None
    warm = [_get(port, path)[0] for _ in range(repeats)]
    return cold, min(warm), statistics.median(warm), len(body)


def _empty_rss(load_fast: bool) -> float:
    empty = tempfile.mkdtemp(prefix="deadneurons_empty_")
    proc, _ = _start(empty, load_fast)
    try:
        time.sleep(5)
        return _rss_kib(proc.pid) / 1024
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        shutil.rmtree(empty, ignore_errors=True)


def bench_loader(
    logdir: str, layers: int, snapshots: int, load_fast: bool, browser: bool
) -> None:
    name = "Rust data server" if load_fast else "Python loader"
    empty = _empty_rss(load_fast)
    proc, port = _start(logdir, load_fast)
    try:
        load_s = _wait_loaded(port)
        time.sleep(3)
        loaded = _rss_kib(proc.pid) / 1024
        print(f"{name}: loaded in {load_s:.0f} s")
        print(
            f"  RSS {loaded:.0f} MiB loaded - {empty:.0f} MiB empty = "
            f"{loaded - empty:.0f} MiB (target <= 2048)"
        )
        runs = _timed(port, "data/plugin/deadneurons/runs", repeats=3)
        found = json.loads(_get(port, "data/plugin/deadneurons/runs")[1])["runs"]
        full = [x for x in found[0]["layers"] if x["snapshots"] == snapshots]
        print(
            f"  ./runs cold {runs[0] * 1e3:.0f} ms (target <= 1500), warm "
            f"{runs[1] * 1e3:.0f} ms; {len(full)}/{layers} layers with "
            f"{snapshots} snapshots"
        )
        base = f"data/plugin/deadneurons/timeline?run={RUN}&tag={tag_of(layers // 2)}"
        for label, query in (("full", ""), ("overview", OVERVIEW), ("zoom", ZOOM)):
            got = _timed(port, base + (f"&{query}" if query else ""))
            if got is None:
                print(f"  ./timeline {label}: not supported by this server (4xx)")
                continue
            print(
                f"  ./timeline {label:8s} {got[3] / 1e6:6.2f} MB, cold "
                f"{got[0] * 1e3:4.0f} ms, warm min {got[1] * 1e3:4.0f} ms, "
                f"median {got[2] * 1e3:4.0f} ms"
            )
        if browser:
            bench_browser(port, tag_of(layers - 1))
        after = _rss_kib(proc.pid) / 1024
        print(f"  RSS after these requests: {after - empty:.0f} MiB over empty")
    finally:
        proc.terminate()
        proc.wait(timeout=60)


def _measured(frame, name: str, action=None, timeout_ms: int = 120000) -> float:
    """ms of the dashboard's own measure ``name`` (request to drawn) after
    ``action()``; without an action, of the first one."""
    if action is not None:
        frame.evaluate("performance.clearMeasures()")
        action()
    frame.wait_for_function(
        "n => performance.getEntriesByName(n).length > 0", arg=name, timeout=timeout_ms
    )
    return frame.evaluate("n => performance.getEntriesByName(n)[0].duration", name)


def bench_browser(port: int, tag: str) -> None:
    """Chromium: request-to-drawn of a wide layer's overview (first view and
    a threshold change) and of a zoom into 512 units (a click on a row)."""
    from playwright.sync_api import sync_playwright

    from tests.browser.conftest import CHROMIUM_ARGS, FRAME

    name = f"deadneurons timeline {RUN}/{tag}"
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=shutil.which("chromium"), args=CHROMIUM_ARGS
        )
        page = browser.new_page(viewport={"width": 1500, "height": 1000})
        page.goto(f"http://127.0.0.1:{port}/#deadneurons")
        page.wait_for_selector(FRAME, timeout=120000)
        frame = page.locator(FRAME).element_handle().content_frame()
        locate = page.frame_locator(FRAME)
        view = locate.locator(f"[data-testid=layer-view][data-tag='{tag}']")
        first = _measured(frame, name, lambda: None, timeout_ms=600000)
        tau = _measured(
            frame,
            name,
            lambda: locate.locator("[data-testid=tau]").select_option("0.025"),
        )
        canvas = view.locator("[data-testid=heatmap]")
        canvas.scroll_into_view_if_needed()
        box = canvas.bounding_box()
        zoom = _measured(
            frame,
            name,
            lambda: page.mouse.click(
                box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
            ),
        )
        again = _measured(
            frame, name, lambda: view.locator("[data-testid=zoom-out]").click()
        )
        bar = view.locator("[data-testid=zoom-bar]").inner_text()
        browser.close()
    print(
        f"  Chromium, {tag}: request to drawn {first:.0f} ms on first view, "
        f"{tau:.0f} ms after a tau change (target <= 500); zoom into 512 units "
        f"{zoom:.0f} ms (target <= 300); back to all units {again:.0f} ms"
    )
    print(f"    zoom bar after zooming out: {bar[:60]!r}")


def bench_writer(units: int = 11008, hidden: int = 4096, tokens: int = 4096):
    """The op's cost per snapshot relative to the layer's forward matmul."""
    import tensorflow as tf

    rng = np.random.default_rng(0)
    x = tf.constant(rng.normal(size=(tokens, hidden)).astype(np.float32))
    w = tf.constant((rng.normal(size=(hidden, units)) * 0.02).astype(np.float32))
    out = tf.nn.relu(tf.matmul(x, w))
    logdir = tempfile.mkdtemp(prefix="deadneurons_writer_")
    writer = tf.summary.create_file_writer(logdir)
    matmul = tf.function(lambda: tf.reduce_sum(tf.matmul(x, w)[:1, :1]))

    @tf.function
    def snapshot(step):
        with writer.as_default():
            return summary.activations("ffn", out, step=step)

    times = {"matmul": [], "op": []}
    try:
        for i in range(3):  # alternate, first round is warm-up
            step = tf.constant(i, tf.int64)
            for name, fn, args in (("matmul", matmul, ()), ("op", snapshot, (step,))):
                t = time.perf_counter()
                np.asarray(fn(*args))
                if i:
                    times[name].append(time.perf_counter() - t)
        writer.flush()
    finally:
        shutil.rmtree(logdir, ignore_errors=True)
    mm, op = min(times["matmul"]), min(times["op"])
    print(
        f"writer: [{tokens}, {hidden}] @ [{hidden}, {units}] matmul {mm * 1e3:.0f} ms, "
        f"summary.activations on its [{tokens}, {units}] output {op * 1e3:.0f} ms: "
        f"op / matmul = {op / mm:.3f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--logdir", default="/tmp/deadneurons_scale")
    parser.add_argument("--keep", action="store_true", help="keep the log")
    parser.add_argument("--layers", type=int, default=32)
    parser.add_argument("--units", type=int, default=11008)
    parser.add_argument("--snapshots", type=int, default=500)
    parser.add_argument("--no-server", action="store_true")
    parser.add_argument("--writer", action="store_true")
    parser.add_argument("--browser", action="store_true", help="Chromium timings")
    parser.add_argument("--loaders", default="python,rust")
    args = parser.parse_args()
    if args.writer:
        bench_writer(units=args.units)
    if args.no_server:
        return
    try:
        if not os.path.isdir(os.path.join(args.logdir, RUN)):
            t = time.perf_counter()
            write_log(args.logdir, args.layers, args.units, args.snapshots)
            print(f"wrote the log in {time.perf_counter() - t:.0f} s")
        size = sum(
            os.path.getsize(os.path.join(d, f))
            for d, _, fs in os.walk(args.logdir)
            for f in fs
        )
        cells = args.layers * args.units * args.snapshots
        print(
            f"log: {args.layers} x {args.units} x {args.snapshots} = {cells / 1e6:.0f}"
            f" M unit-steps, {size / 1e9:.2f} GB ({size / cells:.2f} B/unit-step)"
        )
        for loader in args.loaders.split(","):
            bench_loader(
                args.logdir, args.layers, args.snapshots, loader == "rust", args.browser
            )
    finally:
        if not args.keep:
            shutil.rmtree(args.logdir, ignore_errors=True)


if __name__ == "__main__":
    main()
