"""Writes snapshot series into a run directory without TensorFlow.

The writer of every framework that is not TensorFlow (Keras on the jax and
torch backends, the PyTorch monitor, notebooks) goes through ``EventWriter``:
TensorBoard's own ``EventFileWriter`` and the numpy side of the format
(``metadata``, ``codec``). Like the TF op, it stores a series' metadata in
its first event only (TensorBoard keeps that one and ignores the rest).
"""

from __future__ import annotations

import itertools
import os
import socket
import time

import numpy as np
from tensorboard.compat.proto import event_pb2, summary_pb2
from tensorboard.util import tensor_util

from tb_deadneurons.format import metadata, tfrecord

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
