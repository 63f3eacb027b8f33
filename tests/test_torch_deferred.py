"""On CUDA the PyTorch monitor reads a snapshot without waiting for the steps
queued before it (``torch.transfer.HostCopy``: pinned memory, non-blocking
copy, an event); the rows are read at a later ``step``, ``close`` or
``last_snapshot``, and are the masked statistics from the start.

The deferral itself is device-independent and runs here on the CPU
(``_defer`` set, as on CUDA); the CUDA copy runs where a GPU is present.
The written snapshots and losses must be those of an immediate monitor, at
the same steps, NaN/Inf included.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tb_deadneurons.format import metadata
from tb_deadneurons.torch import DeadNeuronMonitor
from tests import events

STEPS, EVERY = 23, 5


def _run(tmp_path, name, defer, device="cpu", nan_unit=None):
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Linear(6, 16), torch.nn.ReLU(), torch.nn.Linear(16, 3)
    ).to(device)
    x, y = torch.randn(64, 6, device=device), torch.randint(0, 3, (64,), device=device)
    if nan_unit is not None:
        with torch.no_grad():  # one hidden unit reads a NaN weight
            model[0].weight[nan_unit, 0] = float("nan")
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    run = str(tmp_path / name)
    monitor = DeadNeuronMonitor(model, run, probe_data=x[:32], every_n_steps=EVERY)
    monitor._defer = defer
    held = []  # steps after which a snapshot was still on its way
    for i in range(STEPS):
        loss = torch.nn.functional.cross_entropy(model(x[32:]), y[32:])
        opt.zero_grad()
        loss.backward()
        if nan_unit is None:
            opt.step()
        else:  # NaN gradients: move the weights by hand, the same in each run
            with torch.no_grad():
                model[0].bias += 0.05
        monitor.step(loss)
        if monitor._pending is not None:
            held.append(i + 1)
    monitor.close()
    acc = events.load(run)
    tags = acc.Tags()["scalars"]
    losses = [(e.step, e.value) for t in tags for e in acc.Scalars(t)]
    return events.snapshots(run), losses, held, monitor


def _same(a, b):
    assert a.keys() == b.keys()
    for tag in a:
        assert [s for s, _ in a[tag]] == [s for s, _ in b[tag]]
        for (_, x), (_, y) in zip(a[tag], b[tag], strict=True):
            assert x.keys() == y.keys()
            for stat in x:
                np.testing.assert_array_equal(x[stat], y[stat], err_msg=stat)


def test_deferred_snapshots_are_the_immediate_ones_at_the_same_steps(tmp_path):
    now, now_loss, now_held, _ = _run(tmp_path, "now", defer=False)
    later, later_loss, later_held, _ = _run(tmp_path, "later", defer=True)
    assert now_held == []
    # Each periodic snapshot waited one step; the last one, for close().
    assert later_held == [5, 10, 15, 20]
    _same(now, later)
    assert [s for s, _ in now["1"]] == [0, 5, 10, 15, 20, 23]
    assert now_loss == later_loss
    assert [s for s, _ in later_loss] == [5, 10, 15, 20, 23]


def test_deferred_snapshots_mask_nan_in_one_pass(tmp_path):
    now, _, _, _ = _run(tmp_path, "now", defer=False, nan_unit=3)
    later, _, _, _ = _run(tmp_path, "later", defer=True, nan_unit=3)
    _same(now, later)
    last = later["1"][-1][1]
    assert last[metadata.NONFINITE][3] > 0
    assert np.isfinite(np.delete(last[metadata.MEAN], 3)).all()


def test_last_snapshot_waits_for_the_one_on_its_way(tmp_path):
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2)
    )
    monitor = DeadNeuronMonitor(
        model, str(tmp_path), probe_data=torch.randn(16, 4), every_n_steps=2
    )
    monitor._defer = True
    with torch.no_grad():
        model[0].bias.fill_(-100.0)  # every hidden unit dead from now on
    monitor.step()
    monitor.step()
    assert monitor._pending is not None
    codes = monitor.last_snapshot["1"]  # read now, not at the next step
    assert monitor._pending is None
    assert codes.shape == (len(metadata.BASE_STATS), 8)
    monitor.close()
    ((_, newest),) = events.snapshots(str(tmp_path))["1"][-1:]
    assert (newest[metadata.ACTIVE_FRACTION] == 0).all()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_on_cuda_the_monitor_defers_and_matches_an_immediate_one(tmp_path):
    now, now_loss, now_held, m = _run(tmp_path, "now", defer=False, device="cuda")
    later, later_loss, later_held, _ = _run(
        tmp_path, "later", defer=True, device="cuda"
    )
    probe = torch.randn(4, 6, device="cuda")
    with DeadNeuronMonitor(m.model, str(tmp_path / "default"), probe) as default:
        assert default._defer  # CUDA defers by default
    assert later_held == [5, 10, 15, 20]
    _same(now, later)
    assert now_loss == later_loss
