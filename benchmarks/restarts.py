"""Restarted run vs. clean run of the same size: ``./runs`` and ``./timeline``.

Two log dirs with the same number of snapshot events on disk:

- clean: one run, ``2 * S`` snapshots per layer at steps 0..2S-1;
- restarted: the same run written twice into one directory (a re-run), S
  snapshots per layer at steps 0..S-1 each time (two event files), so the
  reader sets the first S aside by TensorBoard's rule.

Both are loaded by TensorBoard's ``EventMultiplexer`` (Python loader, every
snapshot kept) and served by ``TensorBoardWSGI`` with our plugin. Timed side
by side, alternating, each a median of ``--repeats``:

- ``./runs`` cold: a fresh plugin (empty runs cache, first file scan: the
  CRC check of every record);
- ``./runs`` warm: the same plugin again (cached entries, one stat per file);
- ``./timeline`` of every layer;
- the file scan alone (``records.Scanner``, cold): damage and restart check.

Prints restarted/clean ratios. Usage:
  python benchmarks/restarts.py [--layers 8] [--units 256] [--snapshots 200]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from tensorboard.backend import application  # noqa: E402
from tensorboard.backend.event_processing import data_provider  # noqa: E402
from tensorboard.backend.event_processing import (  # noqa: E402
    plugin_event_multiplexer as pem,
)
from tensorboard.plugins import base_plugin  # noqa: E402
from werkzeug.test import Client  # noqa: E402

from tb_deadneurons import summary  # noqa: E402
from tb_deadneurons.board import plugin, records
from tb_deadneurons.format import metadata
from tests.support import EventWriter  # noqa: E402


def write(logdir: str, layers: int, units: int, attempts: list[range]) -> None:
    """One run ``r``; each attempt a new event file over its steps."""
    rng = np.random.default_rng(0)
    batches = [np.maximum(rng.normal(0.3, 1, (16, units)), 0) for _ in range(4)]
    pbs = [summary.activations_pb(f"layer{i}", batches[i % 4]) for i in range(layers)]
    for n, steps in enumerate(attempts):
        with EventWriter(os.path.join(logdir, "r")) as w:
            for step in steps:
                for pb in pbs:
                    w.add(step, pb)
        if n + 1 < len(attempts):
            time.sleep(1.1)  # a new file name (seconds) per attempt


def plugin_client(logdir: str, multiplexer) -> Client:
    provider = data_provider.MultiplexerDataProvider(multiplexer, logdir)
    context = base_plugin.TBContext(
        data_provider=provider, logdir=logdir, sampling_hints={"deadneurons": 0}
    )
    the_plugin = plugin.DeadNeuronsLoader().load(context)
    return Client(application.TensorBoardWSGI([the_plugin], data_provider=provider))


def _size(logdir: str) -> int:
    return sum(
        os.path.getsize(os.path.join(root, f))
        for root, _, files in os.walk(logdir)
        for f in files
    )


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def measure(logdir: str, multiplexer, layers: int) -> dict[str, float]:
    """Seconds for cold/warm ./runs, every layer's ./timeline, a bare scan."""
    client = plugin_client(logdir, multiplexer)
    base = "/data/plugin/deadneurons/"
    out = {
        "cold": timed(lambda: client.get(base + "runs")),
        "warm": timed(lambda: client.get(base + "runs")),
        "timeline": timed(
            lambda: [
                client.get(f"{base}timeline?run=r&tag=layer{i}") for i in range(layers)
            ]
        ),
    }
    out["scan"] = timed(lambda: records.Scanner(logdir).warnings())
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--layers", type=int, default=8)
    parser.add_argument("--units", type=int, default=256)
    parser.add_argument("--snapshots", type=int, default=200, help="S")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    s = args.snapshots
    root = tempfile.mkdtemp()
    dirs = {"clean": os.path.join(root, "clean"), "restarted": os.path.join(root, "re")}
    try:
        write(dirs["clean"], args.layers, args.units, [range(2 * s)])
        write(dirs["restarted"], args.layers, args.units, [range(s), range(s)])
        muxes = {}
        for name, d in dirs.items():
            muxes[name] = pem.EventMultiplexer(
                tensor_size_guidance={metadata.PLUGIN_NAME: 0}
            )
            muxes[name].AddRunsFromDirectory(d)
            muxes[name].Reload()
        kinds = ("cold", "warm", "timeline", "scan")
        times = {(n, k): [] for n in dirs for k in kinds}
        for _ in range(args.repeats):
            for name, d in dirs.items():  # alternate: clean, restarted, ...
                for kind, seconds in measure(d, muxes[name], args.layers).items():
                    times[name, kind].append(seconds)
        mib = {n: _size(d) / 2**20 for n, d in dirs.items()}
        print(
            f"{args.layers} layers x {args.units} units, {2 * s} snapshot events "
            f"per layer on disk (clean {mib['clean']:.1f} MiB, restarted "
            f"{mib['restarted']:.1f} MiB); median of {args.repeats} (Python loader)"
        )
        for kind in kinds:
            clean = statistics.median(times["clean", kind])
            restarted = statistics.median(times["restarted", kind])
            label = {
                "cold": "./runs (cold)",
                "warm": "./runs (warm)",
                "timeline": f"./timeline x{args.layers}",
                "scan": "file scan alone",
            }[kind]
            print(
                f"{label:18s} clean {clean * 1e3:8.1f} ms   restarted "
                f"{restarted * 1e3:8.1f} ms   ratio {restarted / clean:.2f}"
            )
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
