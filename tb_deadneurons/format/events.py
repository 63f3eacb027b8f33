"""Writes snapshot series into a run directory without TensorFlow.

The writer of every framework that is not TensorFlow (Keras on the jax and
torch backends, the PyTorch monitor, notebooks) goes through ``EventWriter``:
TensorBoard's own ``EventFileWriter`` and the numpy side of the format
(``metadata``, ``codec``). Like the TF op, it stores a series' metadata in
its first event only (TensorBoard keeps that one and ignores the rest).
``BackgroundWriter`` is the same writer with its writes on a thread, for a
training loop that should not wait for the disk.
"""

from __future__ import annotations

import atexit
import itertools
import os
import socket
import threading
import time

import numpy as np
from tensorboard.compat.proto import event_pb2, summary_pb2
from tensorboard.util import tensor_util

from tb_deadneurons.format import checks, metadata, tfrecord

_file_ids = itertools.count()


class _EventFile:
    """An event file, as ``EventFileWriter`` writes it, with plain ``open``.

    ``EventFileWriter`` creates its directory and file through
    ``tensorboard.compat.tf``, which imports TensorFlow whenever it is
    installed: seconds and hundreds of MB for a PyTorch or jax user. Local
    paths only (no ``gs://``). The name ends in ``.deadneurons`` and the file
    is created exclusively, so it never clobbers another writer's file.
    """

    def __init__(self, run_dir: str, filename_suffix: str):
        while True:
            name = (
                f"events.out.tfevents.{int(time.time()):010d}.{socket.gethostname()}"
                f".{os.getpid()}.{next(_file_ids)}.deadneurons{filename_suffix}"
            )
            try:
                self._file = open(os.path.join(run_dir, name), "xb")
                break
            except FileExistsError:
                continue
        self.add_event(
            event_pb2.Event(wall_time=time.time(), file_version="brain.Event:2")
        )
        self.flush()

    def add_event(self, event: event_pb2.Event) -> None:
        self._file.write(tfrecord.frame(event.SerializeToString()))

    def flush(self) -> None:
        self._file.flush()

    def close(self) -> None:
        if not self._file.closed:
            self._file.close()


class EventWriter:
    """Appends snapshot, revival and scalar events to one run directory.

    Args:
      run_dir: the run's directory (created if missing); a new event file is
        opened in it, next to any other writer's files.
      filename_suffix: appended to the event file's name.
    """

    def __init__(self, run_dir, filename_suffix: str = ""):
        if not isinstance(run_dir, (str, os.PathLike)) or not os.fspath(run_dir):
            raise ValueError(f"run_dir must be a non-empty path; got {run_dir!r}")
        self.run_dir = os.fspath(run_dir)
        os.makedirs(self.run_dir, exist_ok=True)
        self._writer = _EventFile(self.run_dir, filename_suffix)
        self._described: set[str] = set()

    def add_summary(self, summ: summary_pb2.Summary, step: int) -> None:
        """Writes ``summ`` at ``step``, dropping metadata a tag already has."""
        for value in summ.value:
            if value.tag in self._described:
                value.ClearField("metadata")
            elif value.HasField("metadata"):
                self._described.add(value.tag)
        self._writer.add_event(
            event_pb2.Event(step=int(step), wall_time=time.time(), summary=summ)
        )

    def snapshot(self, tag: str, codes: np.ndarray, step: int, **layer_info) -> None:
        """Writes encoded ``uint8 [num_stats, units]`` codes as a snapshot.

        ``layer_info`` are ``metadata.create_summary_metadata``'s keyword
        arguments (``with_gradients``, ``epsilon``, ``layer_class``, ...).
        """
        summ = summary_pb2.Summary()
        value = summ.value.add(
            tag=tag,
            tensor=tensor_util.make_tensor_proto(np.asarray(codes, np.uint8)),
        )
        if tag not in self._described:
            value.metadata.CopyFrom(
                metadata.create_summary_metadata(None, None, **layer_info)
            )
        self.add_summary(summ, step)

    def scalar(self, tag: str, value: float, step: int) -> None:
        """Writes a plain scalar (the Scalars dashboard's kind)."""
        summ = summary_pb2.Summary()
        summ.value.add(tag=tag, simple_value=float(value))
        self._writer.add_event(
            event_pb2.Event(step=int(step), wall_time=time.time(), summary=summ)
        )

    def flush(self) -> None:
        self._writer.flush()

    def close(self) -> None:
        self._writer.close()

    def __enter__(self) -> EventWriter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


# Calls a BackgroundWriter holds unwritten before the caller waits for the thread.
DEFAULT_MAX_PENDING = 256
# Seconds between the writer thread's turns: each turn writes every call
# queued since the last. Waking the thread for each call instead (a queue
# item per call) cost 1-3 ms per snapshot on a 2-core machine, in the hand-offs
# of the GIL between the two threads: more than the writes themselves.
DEFAULT_INTERVAL_S = 0.5


class BackgroundWriter:
    """``EventWriter``'s interface; the writes run on one background thread.

    Each call returns once it is queued. The thread wakes every
    ``interval_s`` seconds and writes (and flushes, where asked) every call
    queued since its last turn, in call order; so an open file lags the
    calls by at most about ``interval_s``. At most ``max_pending`` calls wait
    unwritten: a caller that outpaces the disk wakes the thread and waits
    for room, so nothing is ever dropped. ``wait()`` blocks until every
    queued call is written; ``close()`` writes them all, closes the file and
    joins the thread (also run at interpreter exit for a writer never
    closed). A write that failed on the thread is raised, once, by the next
    call, ``wait()`` or ``close()``; the calls after it are still written.
    Snapshot codes are copied and summaries are copied when queued, so the
    caller may reuse its buffers.

    Raises:
      ValueError: a bad ``run_dir``, ``max_pending`` or ``interval_s`` (at
        once), or a call after ``close()``.
    """

    def __init__(
        self,
        run_dir,
        filename_suffix: str = "",
        *,
        max_pending: int = DEFAULT_MAX_PENDING,
        interval_s: float = DEFAULT_INTERVAL_S,
    ):
        if isinstance(max_pending, bool) or not isinstance(max_pending, int):
            raise ValueError(f"max_pending must be an int >= 1; got {max_pending!r}")
        if max_pending < 1:
            raise ValueError(f"max_pending must be an int >= 1; got {max_pending!r}")
        interval_s = checks.positive_float("interval_s", interval_s)
        writer = EventWriter(run_dir, filename_suffix)
        self.run_dir = writer.run_dir
        # The thread and the exit hook hold the shared state, never self, so
        # an unreferenced writer can still be collected.
        self._state = _Pending(max_pending, interval_s)
        self._thread = threading.Thread(
            target=_drain, args=(self._state, writer), daemon=True
        )
        self._thread.name = f"deadneurons-writer:{self.run_dir}"
        self._thread.start()
        self._exit_hook = _exit_hook(self._state, self._thread)
        atexit.register(self._exit_hook)

    def add_summary(self, summ: summary_pb2.Summary, step: int) -> None:
        """Queues ``EventWriter.add_summary`` of a copy of ``summ``."""
        copied = summary_pb2.Summary()
        copied.CopyFrom(summ)
        self._put("add_summary", copied, int(step))

    def snapshot(self, tag: str, codes: np.ndarray, step: int, **layer_info) -> None:
        """Queues ``EventWriter.snapshot`` of a copy of ``codes``."""
        self._put("snapshot", tag, np.array(codes, np.uint8), int(step), **layer_info)

    def scalar(self, tag: str, value: float, step: int) -> None:
        """Queues ``EventWriter.scalar``."""
        self._put("scalar", tag, float(value), int(step))

    def flush(self) -> None:
        """Queues a flush of everything queued so far (does not wait)."""
        self._put("flush")

    def wait(self) -> None:
        """Blocks until every queued call is written; raises a failed one."""
        self._state.wait_written()
        self._raise_error()

    def close(self) -> None:
        """Writes everything queued, closes the file; raises a failed write."""
        if self._exit_hook is not None:
            atexit.unregister(self._exit_hook)
            self._exit_hook()
            self._exit_hook = None
        self._raise_error()

    def __enter__(self) -> BackgroundWriter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _put(self, method: str, *args, **kwargs) -> None:
        self._raise_error()
        if self._exit_hook is None:
            raise ValueError(f"BackgroundWriter.{method}() called after close()")
        self._state.put((method, args, kwargs))

    def _raise_error(self) -> None:
        if self._state.errors:
            raise self._state.errors.pop(0)


class _Pending:
    """The calls queued for the writer thread, and what it has done."""

    def __init__(self, max_pending: int, interval_s: float):
        self.max_pending, self.interval_s = max_pending, interval_s
        self.calls: list = []
        self.errors: list[BaseException] = []
        self.cond = threading.Condition()
        self.busy = self.urgent = self.closing = False

    def put(self, call) -> None:
        with self.cond:
            if len(self.calls) >= self.max_pending:
                self.urgent = True
                self.cond.notify_all()
                self.cond.wait_for(lambda: len(self.calls) < self.max_pending)
            self.calls.append(call)

    def wait_written(self) -> None:
        with self.cond:
            self.urgent = True
            self.cond.notify_all()
            self.cond.wait_for(lambda: not (self.calls or self.busy))

    def take(self) -> tuple[list, bool]:
        """The thread's turn: the calls to write now, and whether to stop."""
        with self.cond:
            self.cond.wait_for(lambda: self.urgent or self.closing, self.interval_s)
            calls, self.calls = self.calls, []
            self.busy, self.urgent = bool(calls), False
            self.cond.notify_all()  # room for a caller waiting in put()
            return calls, self.closing and not calls

    def done(self) -> None:
        with self.cond:
            self.busy = False
            self.cond.notify_all()


def _drain(state: _Pending, writer: EventWriter) -> None:
    """The writer thread: writes the queued calls each turn until closed."""
    while True:
        calls, stop = state.take()
        if stop:
            writer.close()
            return
        for method, args, kwargs in calls:
            try:
                getattr(writer, method)(*args, **kwargs)
            except Exception as e:  # surfaced by the caller's next call
                state.errors.append(e)
        state.done()


def _exit_hook(state: _Pending, thread: threading.Thread):
    """Writes what is queued, stops and joins the thread (once)."""

    def close() -> None:
        if thread.is_alive():
            with state.cond:
                state.closing = True
                state.cond.notify_all()
            thread.join()

    return close
