"""The publisher's disk ring buffer: :mod:`zastava.diskbuffer` (shared with the webhook's decision spool)."""

from ...diskbuffer import (
    RECORD_HEADER_SIZE,
    BufferRecord,
    DiskBuffer,
    DiskBufferError,
    DiskBufferFull,
    Gap,
    encode_record,
    iter_records,
)

__all__ = [
    "RECORD_HEADER_SIZE",
    "BufferRecord",
    "DiskBuffer",
    "DiskBufferError",
    "DiskBufferFull",
    "Gap",
    "encode_record",
    "iter_records",
]
