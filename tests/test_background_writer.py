"""BackgroundWriter: EventWriter's events, written on a thread, none lost."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
from tensorboard.util import tensor_util

from tb_deadneurons.format import events as events_lib
from tests import events


def _codes(step: int) -> np.ndarray:
    return np.full((7, 5), step % 256, np.uint8)


def _written(run_dir: str, tag: str = "dense") -> list[tuple[int, np.ndarray]]:
    acc = events.load(run_dir)
    if tag not in acc.Tags()["tensors"]:
        return []
    return [
        (e.step, tensor_util.make_ndarray(e.tensor_proto)) for e in acc.Tensors(tag)
    ]


@pytest.mark.parametrize("max_pending", [1, 100_000])
def test_close_drains_every_queued_snapshot_in_order(tmp_path, max_pending):
    writer = events_lib.BackgroundWriter(str(tmp_path), max_pending=max_pending)
    for step in range(300):
        writer.snapshot("dense", _codes(step), step, layer_class="Dense")
        writer.scalar("deadneurons/loss", 1.0 / (step + 1), step)
        writer.flush()
    writer.close()
    written = _written(str(tmp_path))
    assert [s for s, _ in written] == list(range(300))
    for step, codes in written:
        np.testing.assert_array_equal(codes, _codes(step))
    assert len(events.load(str(tmp_path)).Scalars("deadneurons/loss")) == 300
    meta, data = events.plugin_data(str(tmp_path), "dense")
    assert data.layer_class == "Dense"


def test_queued_codes_are_copies_the_caller_may_reuse(tmp_path):
    buffer = np.zeros((7, 3), np.uint8)
    with events_lib.BackgroundWriter(str(tmp_path)) as writer:
        for step in range(50):
            buffer[:] = step
            writer.snapshot("dense", buffer, step)
    assert [int(c[0, 0]) for _, c in _written(str(tmp_path))] == list(range(50))


def test_wait_makes_the_events_readable_without_closing(tmp_path):
    writer = events_lib.BackgroundWriter(str(tmp_path))
    writer.snapshot("dense", _codes(3), 3)
    writer.flush()
    writer.wait()
    assert [s for s, _ in _written(str(tmp_path))] == [3]
    writer.close()


def test_an_open_writer_writes_each_turn_not_each_call(tmp_path):
    slow = events_lib.BackgroundWriter(str(tmp_path / "slow"), interval_s=60.0)
    fast = events_lib.BackgroundWriter(str(tmp_path / "fast"), interval_s=0.05)
    for writer in (slow, fast):
        writer.snapshot("dense", _codes(3), 3)
        writer.flush()
    time.sleep(1.0)
    # The thread's turn comes every interval_s, never at each call ...
    assert _written(str(tmp_path / "slow")) == []
    # ... and writes the calls queued since its last turn, file left open.
    assert [s for s, _ in _written(str(tmp_path / "fast"))] == [3]
    slow.wait()
    assert [s for s, _ in _written(str(tmp_path / "slow"))] == [3]
    slow.close()
    fast.close()


def test_a_failed_write_is_raised_by_the_next_call_and_the_rest_are_kept(tmp_path):
    writer = events_lib.BackgroundWriter(str(tmp_path))
    writer.snapshot("bad", _codes(0), 0, no_such_field=1)
    with pytest.raises(TypeError, match="no_such_field"):
        writer.wait()
    writer.snapshot("dense", _codes(1), 1)
    writer.close()
    assert [s for s, _ in _written(str(tmp_path))] == [1]
    with pytest.raises(ValueError, match=r"snapshot\(\) called after close"):
        writer.snapshot("dense", _codes(2), 2)


def test_a_writer_never_closed_is_drained_at_interpreter_exit(tmp_path):
    script = textwrap.dedent(
        f"""
        import numpy as np
        from tb_deadneurons.format.events import BackgroundWriter
        w = BackgroundWriter({str(tmp_path)!r}, max_pending=4)
        for step in range(200):
            w.snapshot("dense", np.full((7, 5), step % 256, np.uint8), step)
        """
    )
    subprocess.run([sys.executable, "-c", script], check=True, timeout=120)
    assert [s for s, _ in _written(str(tmp_path))] == list(range(200))


@pytest.mark.parametrize("bad", [0, -3, 2.5, True, None])
def test_max_pending_must_be_a_positive_int(tmp_path, bad):
    with pytest.raises(ValueError, match=f"max_pending must be an int >= 1; got {bad}"):
        events_lib.BackgroundWriter(str(tmp_path), max_pending=bad)


@pytest.mark.parametrize("bad", [0, -1.0, float("inf"), float("nan"), "1", True])
def test_interval_must_be_a_positive_number(tmp_path, bad):
    with pytest.raises(ValueError, match="interval_s must be a finite number > 0"):
        events_lib.BackgroundWriter(str(tmp_path), interval_s=bad)
