"""Reads our snapshots back with TensorBoard's own ``EventAccumulator``."""

from __future__ import annotations

import numpy as np
from tensorboard.backend.event_processing import event_accumulator
from tensorboard.util import tensor_util

from tb_deadneurons.format import codec, metadata


def load(run_dir: str) -> event_accumulator.EventAccumulator:
    acc = event_accumulator.EventAccumulator(
        run_dir, size_guidance={"tensors": 0, "scalars": 0}
    )
    acc.Reload()
    return acc


def snapshots(run_dir: str) -> dict[str, list[tuple[int, dict[str, np.ndarray]]]]:
    """Tag → [(step, {stat: values})] for every snapshot series in a run."""
    acc = load(run_dir)
    out = {}
    for tag in acc.Tags()["tensors"]:
        meta = acc.SummaryMetadata(tag)
        if meta.plugin_data.plugin_name != metadata.PLUGIN_NAME:
            continue
        data = metadata.parse_plugin_metadata(meta.plugin_data.content)
        if data.kind != data.SNAPSHOT:
            continue
        out[tag] = [
            (
                e.step,
                codec.decode_snapshot(tensor_util.make_ndarray(e.tensor_proto), data),
            )
            for e in acc.Tensors(tag)
        ]
    return out


def plugin_data(run_dir: str, tag: str):
    meta = load(run_dir).SummaryMetadata(tag)
    return meta, metadata.parse_plugin_metadata(meta.plugin_data.content)
