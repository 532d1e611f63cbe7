"""Fixtures of the integration tests: each test in its own directory, the shared PKI removed
at the end. The helpers that run the gateway are in :mod:`tests.support.harness`."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.support.harness import remove_shared_pki


@pytest.fixture(scope="session", autouse=True)
def _remove_shared_pki() -> Iterator[None]:
    yield
    remove_shared_pki()


@pytest.fixture(autouse=True)
def _archive_in_tmp(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test runs in its own directory, so the archive (``var/archive``) starts empty
    and is removed with the test's temporary directory."""
    monkeypatch.chdir(tmp_path)
