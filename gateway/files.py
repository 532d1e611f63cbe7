"""Writing a small file whole, so that a power cut leaves the old content or the new one.

The data goes to ``<name>.tmp`` (created with ``mode``, never wider for a moment), is
synced, renamed over the file, and the directory is synced so the rename itself lasts.
Profiles, external values, the users file and private keys are written this way.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path


def replace_file(
    path: Path, data: bytes, *, mode: int = 0o644, before_replace: Callable[[], None] | None = None
) -> None:
    """Write ``data`` as the whole content of ``path``; OSError (nothing changed) on failure.

    ``before_replace`` runs once the new content is safely on disk and before it takes the
    file's name (to keep the old file aside, say).
    """
    tmp = path.with_name(path.name + ".tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        if before_replace is not None:
            before_replace()
        os.replace(tmp, path)
    except OSError:
        tmp.unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
