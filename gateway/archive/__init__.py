"""The archive (DESIGN §5): append-only, human-readable day files per meter and stream.

:mod:`gateway.archive.files` is the file layer, :mod:`gateway.archive.minutes` folds the
1-second values into minute records; the history backend and the backfill build on them.
"""

from __future__ import annotations

from gateway.archive.files import (
    FORMAT_VERSION,
    ArchiveReader,
    ArchiveWriter,
    AsyncArchive,
    Column,
    Record,
)
from gateway.archive.minutes import MinuteAggregator

__all__ = [
    "FORMAT_VERSION",
    "ArchiveReader",
    "ArchiveWriter",
    "AsyncArchive",
    "Column",
    "MinuteAggregator",
    "Record",
]
