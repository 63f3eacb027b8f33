"""Backend benchmark: ``./timeline`` per layer vs. the bare floor, and memory.

A synthetic log (default 50 layers x 1,024 units x 500 snapshots) is loaded
by TensorBoard's ``EventMultiplexer`` + ``MultiplexerDataProvider`` and
served by ``TensorBoardWSGI``. For every layer, warm, side by side:

- route: GET ``./timeline`` through the WSGI app (read, decode, classify,
  encode JSON);
- floor: ``np.stack`` of the same snapshot arrays already in memory;
- read floor: ``read_tensors`` through the data provider plus ``np.stack``
  (what any reader pays before doing work).

Then a real ``tensorboard`` process (Python loader and Rust data server)
loads the log and its resident memory (RSS, with children) is printed.

Usage: python benchmarks/backend.py [--layers 50] [--units 1024]
       [--snapshots 500] [--repeats 3] [--no-server]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from tb_deadneurons import summary  # noqa: E402
from tb_deadneurons.board import plugin, reader
from tb_deadneurons.format import metadata
from tests.support import EventWriter, free_port  # noqa: E402


def write_log(logdir: str, layers: int, units: int, snapshots: int) -> None:
    """Real snapshots of a few ReLU batches per layer, recycled across steps
    with a growing share of dead units (codes zeroed as the writer would)."""
    from tensorboard.compat.proto import event_pb2, summary_pb2
    from tensorboard.util import tensor_util

    rng = np.random.default_rng(0)
    dead_rows = [
        i
        for i, n in enumerate(metadata.stat_names(False))
        if n not in (metadata.COUNT, metadata.NONFINITE)
    ]
    base = [
        summary.snapshot_np(np.maximum(rng.normal(0.3, 1.0, (8, units)), 0))
        for _ in range(8)
    ]
    meta = metadata.create_summary_metadata(None, None)
    with EventWriter(os.path.join(logdir, "bench")) as w:
        for step in range(snapshots):
            for layer in range(layers):
                codes = base[(step + layer) % len(base)].copy()
                dead = int(units * 0.3 * step / snapshots) + layer  # deaths grow
                codes[np.ix_(dead_rows, np.arange(min(dead, units)))] = 0
                value = summary_pb2.Summary.Value(
                    tag=f"layer_{layer:02d}",
                    tensor=tensor_util.make_tensor_proto(codes),
                )
                if step == 0:  # TensorBoard keeps the first event's metadata
                    value.metadata.CopyFrom(meta)
                w._writer.add_event(
                    event_pb2.Event(
                        step=step * 10,
                        wall_time=time.time(),
                        summary=summary_pb2.Summary(value=[value]),
                    )
                )


def _app(logdir: str):
    from tensorboard.backend import application
    from tensorboard.backend.event_processing import data_provider
    from tensorboard.backend.event_processing import plugin_event_multiplexer as pem
    from tensorboard.plugins import base_plugin

    mux = pem.EventMultiplexer(tensor_size_guidance={metadata.PLUGIN_NAME: 0})
    mux.AddRunsFromDirectory(logdir)
    mux.Reload()
    provider = data_provider.MultiplexerDataProvider(mux, logdir)
    ctx = base_plugin.TBContext(data_provider=provider, logdir=logdir)
    app = application.TensorBoardWSGI(
        [plugin.DeadNeuronsPlugin(ctx)], data_provider=provider
    )
    return app, provider


def _best(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def bench_routes(logdir: str, layers: int, units: int, snapshots: int, repeats: int):
    from tensorboard import context
    from tensorboard.data import provider as provider_lib
    from werkzeug.test import Client

    t = time.perf_counter()
    app, provider = _app(logdir)
    print(f"EventMultiplexer load: {time.perf_counter() - t:.1f} s")
    client = Client(app)
    ctx = context.RequestContext()
    route_t, floor_t, read_t, sizes = [], [], [], []
    for layer in range(layers):
        tag = f"layer_{layer:02d}"
        url = f"/data/plugin/deadneurons/timeline?run=bench&tag={tag}"

        def read(tag=tag):
            return provider.read_tensors(
                ctx,
                experiment_id="",
                plugin_name=metadata.PLUGIN_NAME,
                downsample=reader.ALL_SAMPLES,
                run_tag_filter=provider_lib.RunTagFilter(runs=["bench"], tags=[tag]),
            )["bench"][tag]

        arrays = [d.numpy for d in read()]
        body = client.get(url).get_data()  # warm-up
        assert len(arrays) == snapshots, len(arrays)
        sizes.append(len(body))
        route_t.append(_best(lambda url=url: client.get(url).get_data(), repeats))
        floor_t.append(_best(lambda a=arrays: np.stack(a), repeats))
        read_t.append(_best(lambda r=read: np.stack([d.numpy for d in r()]), repeats))
    route, floor, readf = (statistics.median(x) for x in (route_t, floor_t, read_t))
    cells = units * snapshots
    print(f"layers={layers} units={units} snapshots={snapshots} (median over layers)")
    print(f"  ./timeline via WSGI       {route * 1e3:8.2f} ms")
    print(
        f"  floor: np.stack in memory {floor * 1e3:8.2f} ms  ratio {route / floor:.1f}x"
    )
    print(
        f"  read_tensors + np.stack   {readf * 1e3:8.2f} ms  ratio {route / readf:.2f}x"
    )
    print(
        f"  response {statistics.median(sizes)} bytes = "
        f"{statistics.median(sizes) / cells:.3f} bytes per unit-step (target <= 1.5)"
    )


def _rss_kib(pid: int) -> int:
    """RSS of ``pid`` and its descendants, KiB (Linux /proc)."""
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        try:
            with open(f"/proc/{p}/status") as f:
                total += next(int(x.split()[1]) for x in f if x.startswith("VmRSS"))
            for task in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{task}/children") as f:
                    todo += [int(c) for c in f.read().split()]
        except (OSError, StopIteration):
            pass
    return total


def launch_tensorboard(logdir: str, load_fast: bool):
    """``(process, port)`` of a ``tensorboard`` on ``logdir`` that loads once
    (``--reload_interval=0``) with the loader ``load_fast`` picks."""
    port = free_port()
    exe = shutil.which("tensorboard") or "tensorboard"
    proc = subprocess.Popen(
        [exe, "--logdir", logdir, "--port", str(port), "--host", "127.0.0.1"]
        + [f"--load_fast={str(load_fast).lower()}", "--reload_interval=0"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    return proc, port


def bench_server(logdir: str, layers: int, snapshots: int, load_fast: bool) -> float:
    """Starts ``tensorboard`` on ``logdir``, waits until ./runs shows every
    snapshot of every layer, and returns its RSS (MiB, with children)."""
    proc, port = launch_tensorboard(logdir, load_fast)
    url = f"http://127.0.0.1:{port}/data/plugin/deadneurons/runs"
    t = time.perf_counter()
    try:
        while time.perf_counter() - t < 900:
            try:
                with urllib.request.urlopen(url, timeout=300) as r:
                    body = json.load(r)
                found = body["runs"][0]["layers"] if body["runs"] else []
                if len(found) == layers and all(
                    x["snapshots"] == snapshots for x in found
                ):
                    break
            except OSError:
                pass
            time.sleep(2)
        time.sleep(2)  # let the loader settle after the last batch
        return _rss_kib(proc.pid) / 1024
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def bench_memory(logdir: str, layers: int, units: int, snapshots: int) -> None:
    empty = tempfile.mkdtemp(prefix="deadneurons_empty_")
    try:
        for load_fast in (False, True):
            name = "Rust data server" if load_fast else "Python loader"
            base = bench_server(empty, 0, 0, load_fast)
            full = bench_server(logdir, layers, snapshots, load_fast)
            per = (full - base) * 2**20 / (layers * units * snapshots)
            print(
                f"tensorboard RSS ({name}): {full:.0f} MiB loaded, {base:.0f} MiB "
                f"with an empty logdir: {full - base:.0f} MiB for the log "
                f"({per:.1f} B/unit-step)"
            )
    finally:
        shutil.rmtree(empty, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layers", type=int, default=50)
    parser.add_argument("--units", type=int, default=1024)
    parser.add_argument("--snapshots", type=int, default=500)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-server", action="store_true")
    args = parser.parse_args()
    logdir = tempfile.mkdtemp(prefix="deadneurons_bench_")
    try:
        t = time.perf_counter()
        write_log(logdir, args.layers, args.units, args.snapshots)
        size = sum(
            os.path.getsize(os.path.join(d, f))
            for d, _, fs in os.walk(logdir)
            for f in fs
        )
        print(
            f"wrote {size / 2**20:.0f} MiB in {time.perf_counter() - t:.0f} s "
            f"({size / (args.layers * args.units * args.snapshots):.2f} B/unit-step)"
        )
        bench_routes(logdir, args.layers, args.units, args.snapshots, args.repeats)
        if not args.no_server:
            bench_memory(logdir, args.layers, args.units, args.snapshots)
    finally:
        shutil.rmtree(logdir, ignore_errors=True)


if __name__ == "__main__":
    main()
