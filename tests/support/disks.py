"""A full disk for real: a 64 KiB tmpfs mounted for one test and filled to the last byte
(the archive recorder's and the market profile store's full-disk tests). Mounting needs
root, as CI has; elsewhere the test is skipped, not faked."""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest


@contextlib.contextmanager
def tiny_disk(path: Path) -> Iterator[Path]:
    """A 64 KiB tmpfs mounted at ``path`` (made here) for the block; skips the test where it cannot be."""
    if os.geteuid() != 0:
        pytest.skip("mounting a 64 KiB tmpfs to fill needs root (CI runs as root)")
    path.mkdir()
    result = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(path)], capture_output=True
    )
    if result.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {result.stderr.decode().strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=True)


def fill(disk: Path) -> Path:
    """Fill the disk to the last byte; return the file that holds the space."""
    filler = disk / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT)
    try:
        with contextlib.suppress(OSError):
            while True:
                os.write(fd, b"\0" * 512)
    finally:
        os.close(fd)
    return filler
