"""The OPC UA node cache: the standard nodes on disk, made whole or not at all."""

from __future__ import annotations

import logging
import os
import sys
import time
from pathlib import Path

import pytest
from asyncua import Server, ua

from gateway.opcua.node_cache import SHELF, STALE_S, init_server, shelf_folder


def _names(folder: Path) -> list[str]:
    return sorted(os.listdir(folder))


async def _server_state(server: Server) -> tuple[str, int]:
    """What a client relies on from the standard nodes: the server's state and namespace 0."""
    state = await server.get_node(ua.ObjectIds.Server_ServerStatus_State).read_value()
    namespaces = await server.get_namespace_array()
    return str(state), len(namespaces)


async def test_first_start_makes_the_cache_and_later_starts_read_it(tmp_path: Path) -> None:
    first = Server()
    await init_server(first, str(tmp_path))
    folder = shelf_folder(tmp_path)
    assert (folder / SHELF).exists()
    assert not [name for name in _names(tmp_path) if name.startswith(".building-")]
    made = {p.name: p.stat().st_mtime_ns for p in folder.iterdir()}
    # Built by a child process: even the first start reads its standard nodes from disk.
    assert type(first.iserver.aspace._nodes).__name__ == "LazyLoadingDict"

    later = Server()
    started = time.perf_counter()
    await init_server(later, str(tmp_path))
    took = time.perf_counter() - started
    assert await _server_state(later) == await _server_state(first)
    # Read from the cache, not built again (the files are the first start's).
    assert {p.name: p.stat().st_mtime_ns for p in folder.iterdir()} == made
    assert type(later.iserver.aspace._nodes).__name__ == "LazyLoadingDict"
    assert took < 2.0, took  # building takes seconds; reading the shelf's index does not


async def test_an_unreadable_cache_is_rebuilt_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    folder = shelf_folder(tmp_path)
    folder.mkdir(parents=True)
    (folder / SHELF).write_bytes(b"\x00garbage from a broken card")
    server = Server()
    with caplog.at_level(logging.WARNING, logger="gateway.opcua.node_cache"):
        await init_server(server, str(tmp_path))
    assert "unreadable" in caplog.text
    state, _ = await _server_state(server)
    assert state  # the server has its standard nodes
    reader = Server()
    await init_server(reader, str(tmp_path))  # the rebuilt cache reads
    assert await _server_state(reader) == await _server_state(server)


async def test_interrupted_builds_and_other_versions_are_cleared(tmp_path: Path) -> None:
    stale = tmp_path / ".building-old"
    stale.mkdir()
    (stale / "nodes.dat").write_bytes(b"half")
    old = time.time() - STALE_S - 60
    os.utime(stale, (old, old))
    fresh = tmp_path / ".building-now"  # another gateway building right now
    fresh.mkdir()
    other = tmp_path / "asyncua-0.9.0-py39"
    other.mkdir()
    await init_server(Server(), str(tmp_path))
    assert not stale.exists()
    assert not other.exists()
    assert fresh.exists()
    assert shelf_folder(tmp_path).is_dir()


async def test_no_cache_configured_writes_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    server = Server()
    await init_server(server, "")
    assert _names(tmp_path) == []
    assert (await _server_state(server))[0]


async def test_a_cache_folder_that_cannot_be_made_leaves_the_nodes_in_memory(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    server = Server()
    await init_server(server, str(blocker / "cache"))
    assert (await _server_state(server))[0]


async def test_a_failed_build_leaves_the_nodes_in_memory_and_no_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(sys, "executable", "/bin/false")  # the builder process fails
    server = Server()
    with caplog.at_level(logging.WARNING, logger="gateway.opcua.node_cache"):
        await init_server(server, str(tmp_path))
    assert "the builder exited with 1" in caplog.text
    assert (await _server_state(server))[0]
    assert _names(tmp_path) == []  # no half-built cache left for the next start
