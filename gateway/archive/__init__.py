"""The archive (DESIGN §5): append-only, human-readable day files per meter and stream.

:mod:`gateway.archive.files` is the file layer; the history backend and the backfill build
on it.
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

__all__ = ["FORMAT_VERSION", "ArchiveReader", "ArchiveWriter", "AsyncArchive", "Column", "Record"]
