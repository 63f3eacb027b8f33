"""One-byte codes for snapshot statistics (numpy only).

A snapshot tensor is ``uint8`` of shape ``[num_stats, units]``; each row is
encoded as its ``RowEncoding`` says. The encodings keep what classification
needs exactly -- an exact 0 (never active, zero magnitude), an exact 1 (always
active) -- and store magnitudes on a log scale with a few percent of relative
error, which is what keeps a snapshot at about one byte per unit and
statistic on disk.

``tf.stats`` (behind the ``summary.activations`` op) computes the same codes
in-graph; a test pins the two together.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from tb_deadneurons.format.proto import plugin_data_pb2

Kind = plugin_data_pb2.RowEncoding

FRACTION_SCALE = 255.0
MAX_CODE = 255
SIGNED_MAX_CODE = 127
SIGN_BIT = 128


def fraction() -> plugin_data_pb2.RowEncoding:
    """A ``UNIT_FRACTION`` encoding."""
    return plugin_data_pb2.RowEncoding(kind=Kind.UNIT_FRACTION)


def log(log2_min: float, steps_per_octave: float) -> plugin_data_pb2.RowEncoding:
    """A ``LOG`` encoding covering ``2**log2_min`` and up."""
    return plugin_data_pb2.RowEncoding(
        kind=Kind.LOG, log2_min=log2_min, steps_per_octave=steps_per_octave
    )


def signed_log(log2_min: float, steps_per_octave: float) -> plugin_data_pb2.RowEncoding:
    """A ``SIGNED_LOG`` encoding: sign bit plus a 7-bit ``LOG`` code."""
    return plugin_data_pb2.RowEncoding(
        kind=Kind.SIGNED_LOG, log2_min=log2_min, steps_per_octave=steps_per_octave
    )


class Columns(NamedTuple):
    """Per-row encoding parameters as ``[rows, 1]`` columns (float32, bool),
    so that rows with different encodings are encoded in one pass."""

    log2_min: np.ndarray
    steps: np.ndarray
    max_code: np.ndarray
    fraction: np.ndarray
    signed: np.ndarray


def columns(encodings) -> Columns:
    """The ``Columns`` of one ``RowEncoding`` per row.

    Raises:
      ValueError: an encoding kind is unknown.
    """
    kinds = [e.kind for e in encodings]
    for kind in kinds:
        if kind not in (Kind.UNIT_FRACTION, Kind.LOG, Kind.SIGNED_LOG):
            raise ValueError(f"unknown row encoding kind: {kind!r}")

    def col(values, dtype=np.float32):
        return np.array(values, dtype).reshape(-1, 1)

    return Columns(
        log2_min=col([e.log2_min for e in encodings]),
        steps=col([e.steps_per_octave or 1.0 for e in encodings]),
        max_code=col(
            [SIGNED_MAX_CODE if k == Kind.SIGNED_LOG else MAX_CODE for k in kinds]
        ),
        fraction=col([k == Kind.UNIT_FRACTION for k in kinds], bool),
        signed=col([k == Kind.SIGNED_LOG for k in kinds], bool),
    )


def encode_columns(values: np.ndarray, cols: Columns) -> np.ndarray:
    """Encodes finite float32 ``[rows, n]`` values, row ``i`` as ``cols`` row
    ``i`` says, to ``uint8`` codes (the one implementation of the codes;
    ``tf.stats`` has the in-graph twin)."""
    values = np.asarray(values, dtype=np.float32)
    v = np.clip(values, 0.0, 1.0)
    mid = np.clip(np.floor(v * np.float32(FRACTION_SCALE) + np.float32(0.5)), 1, 254)
    fraction = np.where(v <= 0, 0, np.where(v >= 1, MAX_CODE, mid))
    magnitude = np.abs(values)
    with np.errstate(divide="ignore", invalid="ignore"):
        pos = (np.log2(magnitude) - cols.log2_min) * cols.steps
    # fmax / fmin drop a NaN: NaN -> 1, -inf -> 1, +inf -> the top code.
    codes = np.fmin(np.fmax(np.floor(pos + np.float32(0.5)) + 1, 1), cols.max_code)
    codes = np.where(magnitude > 0, codes, 0)
    codes += np.where(cols.signed & (values < 0), SIGN_BIT, 0)
    return np.where(cols.fraction, fraction, codes).astype(np.uint8)


def encode(values: np.ndarray, enc: plugin_data_pb2.RowEncoding) -> np.ndarray:
    """Encodes finite float32 ``values`` (any shape) to ``uint8`` codes.

    Raises:
      ValueError: the encoding kind is unknown.
    """
    values = np.asarray(values, dtype=np.float32)
    flat = encode_columns(values.reshape(1, -1), columns([enc]))
    return flat.reshape(values.shape)


def decode(codes: np.ndarray, enc: plugin_data_pb2.RowEncoding) -> np.ndarray:
    """Decodes ``uint8`` codes to float64 values.

    Raises:
      ValueError: the encoding kind is unknown (e.g. from a newer writer).
    """
    codes = np.asarray(codes).astype(np.int64)
    if enc.kind == Kind.UNIT_FRACTION:
        return codes / FRACTION_SCALE
    if enc.kind in (Kind.LOG, Kind.SIGNED_LOG):
        magnitude = codes & (SIGN_BIT - 1) if enc.kind == Kind.SIGNED_LOG else codes
        steps = enc.steps_per_octave or 1.0
        values = np.where(
            magnitude > 0, np.exp2(enc.log2_min + (magnitude - 1) / steps), 0.0
        )
        if enc.kind == Kind.SIGNED_LOG:
            values = np.where(codes & SIGN_BIT, -values, values)
        return values
    raise ValueError(f"unknown row encoding kind: {enc.kind!r}")


def decode_snapshot(tensor: np.ndarray, plugin_data) -> dict[str, np.ndarray]:
    """Decodes a ``[num_stats, units]`` snapshot to ``{stat name: values}``.

    Raises:
      ValueError: the tensor is not 2-D uint8 with one row per stat name, or
        a row's encoding is unknown.
    """
    tensor = np.asarray(tensor)
    names = list(plugin_data.stat_names)
    if tensor.dtype != np.uint8 or tensor.ndim != 2 or tensor.shape[0] != len(names):
        raise ValueError(
            f"expected uint8 [{len(names)}, units], got {tensor.dtype} "
            f"{list(tensor.shape)}"
        )
    return {
        name: decode(tensor[i], plugin_data.encodings[i])
        for i, name in enumerate(names)
    }
