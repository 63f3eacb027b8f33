"""The TFRecord framing of event files: one home for it (writer and scanner).

A record is ``uint64 length, uint32 masked_crc(length), data,
uint32 masked_crc(data)``, little-endian, with TFRecord's masked CRC-32C.
The CRC comes from ``google_crc32c`` (C, hardware-accelerated: GB/s, where
TensorBoard's pure-Python CRC manages a few MB/s -- what made a first scan
of a large log dir, and each snapshot written without TensorFlow, slow).
"""

from __future__ import annotations

import struct

import google_crc32c

HEADER = 12  # uint64 length + uint32 masked CRC of the length
FOOTER = 4  # uint32 masked CRC of the data
_MASK_DELTA = 0xA282EAD8


def masked_crc(data: bytes) -> int:
    """TFRecord's masked CRC-32C of ``data``."""
    crc = google_crc32c.value(data)
    return (((crc >> 15) | (crc << 17)) + _MASK_DELTA) & 0xFFFFFFFF


def frame(data: bytes) -> bytes:
    """``data`` framed as one TFRecord."""
    length = struct.pack("<Q", len(data))
    return b"".join(
        (
            length,
            struct.pack("<I", masked_crc(length)),
            data,
            struct.pack("<I", masked_crc(data)),
        )
    )
