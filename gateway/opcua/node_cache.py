"""The standard OPC UA nodes read from disk on demand, not held in memory.

asyncua builds the standard address space (OPC 10000-5, some 15,000 nodes) in memory at
every start: about 52 MiB and 2.4 s on the development box, more than half of what a
Raspberry Pi class gateway has to spare. asyncua can instead read these nodes from a
``shelve`` file as clients touch them (``InternalServer.load_standard_address_space``
with a shelf path); the few the server and its clients use are then kept in memory.

asyncua writes that file in place, so a power cut while it is written would leave a
truncated address space for every later start. Here the file is written into a fresh
folder beside the cache and the folder is renamed into place only once the files are on
disk: a cache folder either exists whole or not at all, and two gateways starting at the
same time each build their own and one of them wins. The first start builds it in a child
process (``python -m gateway.opcua.node_cache``), so the gateway itself never holds the
standard nodes in memory. The folder is named after the
asyncua and Python versions whose nodes and pickles it holds.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import sys
import tempfile
import time
from importlib.metadata import version
from pathlib import Path

from asyncua import Server

log = logging.getLogger(__name__)

#: The shelf's name inside its folder (dbm adds its own suffixes: .dat/.dir, .db, none).
SHELF = "nodes"
#: A build folder this old was left by a build that did not finish (a power cut).
STALE_S = 600.0


def shelf_folder(cache: str | Path) -> Path:
    """Where the shelf of this asyncua and Python lives under ``cache``."""
    python = f"py{sys.version_info.major}{sys.version_info.minor}"
    return Path(cache) / f"asyncua-{version('asyncua')}-{python}"


async def init_server(server: Server, cache: str) -> None:
    """``server.init()`` with the standard nodes from the cache under ``cache`` ("" for
    none): made on the first start (which still holds them in memory), read afterwards."""
    if not cache:
        await server.init()
        return
    folder = shelf_folder(cache)
    if folder.is_dir():
        try:
            await server.init(folder / SHELF)
            return
        except Exception as err:
            log.warning("the OPC UA node cache %s is unreadable (%s): building it again", folder, err)
            await asyncio.to_thread(shutil.rmtree, folder, True)
    await _init_and_build(server, folder)


async def _init_and_build(server: Server, folder: Path) -> None:
    try:
        folder.parent.mkdir(parents=True, exist_ok=True)
        await asyncio.to_thread(_remove_leftovers, folder)
        building = Path(tempfile.mkdtemp(prefix=".building-", dir=folder.parent))
    except OSError as err:
        log.warning("cannot make the OPC UA node cache in %s (%s): standard nodes stay in memory",
                    folder.parent, err)  # fmt: skip
        await server.init()
        return
    try:
        # A child process fills the standard nodes and writes them to the shelf, so that
        # not even the first start holds them in this process's memory.
        child = await asyncio.create_subprocess_exec(
            sys.executable, "-m", __name__, str(building / SHELF),
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        _, said = await child.communicate()
        if child.returncode != 0:
            raise OSError(
                f"the builder exited with {child.returncode}: {said.decode(errors='replace')[-300:]}"
            )
        await asyncio.to_thread(_seal, building, folder)
    except OSError as err:
        log.warning("cannot make the OPC UA node cache %s (%s): standard nodes stay in memory", folder, err)
        await server.init()
        return
    finally:
        await asyncio.to_thread(shutil.rmtree, building, True)
    await server.init(folder / SHELF)


async def _build(shelf: Path) -> None:
    """asyncua fills the standard nodes, then writes them to the (missing) shelf."""
    await Server().init(shelf)


def _remove_leftovers(folder: Path) -> None:
    """Folders of an interrupted build (older than :data:`STALE_S`) and of other asyncua or
    Python versions (an upgrade) are of no use to anybody."""
    now = time.time()
    for path in folder.parent.iterdir():
        if path.name.startswith(".building-"):
            if now - path.stat().st_mtime > STALE_S:
                shutil.rmtree(path, ignore_errors=True)
        elif path.name.startswith("asyncua-") and path != folder:
            shutil.rmtree(path, ignore_errors=True)


def _seal(building: Path, folder: Path) -> None:
    """Flush the shelf's files, then rename the folder into place (atomic; first one wins)."""
    shelf = building / SHELF
    if not shelf.exists():
        # asyncua looks for the shelf's own name or name.db; dbm.dumb writes name.dat and
        # name.dir. An empty file of the name makes asyncua open it; dbm still recognises
        # the dumb database by its two files.
        shelf.touch()
    for path in building.iterdir():
        with path.open("rb") as f:
            os.fsync(f.fileno())
    try:
        building.rename(folder)
    except OSError:
        if not folder.is_dir():
            raise
        return  # another gateway sealed the same cache first
    directory = os.open(folder.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)
    log.info("made the OPC UA node cache %s: later starts read the standard nodes from it", folder)


if __name__ == "__main__":
    asyncio.run(_build(Path(sys.argv[1])))
