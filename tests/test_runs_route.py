"""./runs reads one layer per run in full and the others' newest snapshot,
with the same answer as reading every layer; kept until the run changes."""

from __future__ import annotations

import os

import numpy as np
from tensorboard.backend.event_processing import data_provider
from tensorboard.backend.event_processing import plugin_event_multiplexer as pem

from tb_deadneurons.board import plugin, reader, routes
from tests.support import EventWriter, relu_batch

# A re-run from step 30 on: TensorBoard's rule keeps 0, 10, 20, 30 ... 90.
FIRST, RERUN = range(0, 60, 10), range(30, 100, 10)


class CountingProvider(data_provider.MultiplexerDataProvider):
    """TensorBoard's own provider, noting each read_tensors' downsample."""

    def __init__(self, logdir: str):
        self.multiplexer = pem.EventMultiplexer(
            tensor_size_guidance={"deadneurons": plugin.DEFAULT_SAMPLES}
        )
        self.logdir = logdir
        self.reload()
        super().__init__(self.multiplexer, logdir)
        self.reads: list[int] = []

    def reload(self) -> None:
        self.multiplexer.AddRunsFromDirectory(self.logdir)
        self.multiplexer.Reload()

    def read_tensors(self, ctx=None, *, downsample=None, **kwargs):
        self.reads.append(downsample)
        return super().read_tensors(ctx, downsample=downsample, **kwargs)


def _write(run_dir: str, steps, dead_of_step, tags=("a", "b", "c")) -> None:
    rng = np.random.default_rng(len(run_dir) + steps[0])
    with EventWriter(run_dir) as w:
        for step in steps:
            for i, tag in enumerate(tags):
                w.snapshot(tag, step, relu_batch(rng, 32, 8 + i, dead_of_step(step)))


def _logdir(tmp_path) -> str:
    run = os.path.join(tmp_path, "run")
    _write(run, FIRST, lambda s: [0])
    _write(run, RERUN, lambda s: range(s // 30))
    _write(run, range(0, 90, 20), lambda s: [1, 2], tags=("d_other_period",))
    return str(tmp_path)


def _every_layer_in_full(rd: reader.Reader) -> list[dict]:
    """The entries as reading every series in full gives them."""
    layers, _ = rd.layers()
    out = []
    for tag, layer in layers["run"].items():
        series = rd.series("run", tag)
        out.append(routes._layer_entry(series, layer, series.steps))
    return out


def test_runs_reads_one_layer_in_full_and_agrees_with_reading_all(tmp_path):
    provider = CountingProvider(_logdir(tmp_path))
    rd = reader.Reader(provider, "")
    body = routes.runs_impl(rd, routes.RunsCache())
    full_reads = [d for d in provider.reads if d != 1]
    # the reference layer "a" and "d_other_period", whose newest step differs
    assert len(full_reads) == 2 and provider.reads.count(1) == 3
    entries = body["runs"][0]["layers"]
    assert entries == _every_layer_in_full(rd)
    a, b, c, d = entries
    assert (a["snapshots"], a["first_step"], a["last_step"]) == (10, 0, 90)
    assert b["dead_count_now"] == 3 and c["units"] == 10
    assert (d["snapshots"], d["last_step"], d["dead_count_now"]) == (5, 80, 2)


def test_runs_answer_is_kept_until_the_run_changes(tmp_path):
    logdir = _logdir(tmp_path)
    provider = CountingProvider(logdir)
    rd, cache = reader.Reader(provider, ""), routes.RunsCache()
    first = routes.runs_impl(rd, cache)
    provider.reads.clear()
    assert routes.runs_impl(rd, cache) == first and provider.reads == []
    _write(os.path.join(logdir, "run"), [100], lambda s: range(4))
    provider.reload()
    a, b, c, d = routes.runs_impl(rd, cache)["runs"][0]["layers"]
    assert provider.reads
    assert (a["snapshots"], a["last_step"], b["snapshots"]) == (11, 100, 11)
    assert b["dead_count_now"] == 4 and d["snapshots"] == 5
