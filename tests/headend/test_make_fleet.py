"""``make fleet`` (issue 17, point 5): the launcher brings a local fleet up, its sites come
online in the head-end's database, and Ctrl-C/SIGTERM leaves no process behind."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import sys
from pathlib import Path

import aiohttp
import pytest

from headend.storage.sqlite import SqliteRepository
from tests.support.broker import require_mosquitto
from tools import fleet as tool

ROOT = Path(__file__).resolve().parents[2]


def test_without_mosquitto_it_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    monkeypatch.setattr(tool, "mosquitto_binary", lambda: None)
    assert tool.main(["--var", str(tmp_path / "fleet")]) == 2
    assert capsys.readouterr().err.strip() == "mosquitto not found: apt-get install mosquitto"


def test_a_folder_it_did_not_make_is_left_alone(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    (tmp_path / "precious").write_text("keep me")
    assert tool.main(["--var", str(tmp_path)]) == 2
    assert (tmp_path / "precious").exists()
    assert "not a fleet folder" in capsys.readouterr().err


def processes_mentioning(text: str) -> list[int]:
    """Processes whose command line contains ``text`` (the fleet's folder is in each child's)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                if text.encode() in (entry / "cmdline").read_bytes():
                    found.append(int(entry.name))
    return found


async def sites(var: Path) -> list[tuple[str, str]]:
    """The sites table of the fleet's head-end: (publisher, state)."""
    repo = SqliteRepository(var / "headend.sqlite")
    await repo.open()
    try:
        return [(s.publisher, s.state) for s in await repo.sites()]
    finally:
        await repo.close()


@pytest.mark.slow
async def test_the_sites_come_online_and_sigterm_stops_everything(tmp_path: Path) -> None:
    require_mosquitto()
    var = tmp_path / "fleet"
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tools.fleet", "--var", str(var), "--minutes", "5", "--http", "127.0.0.1:0",
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, start_new_session=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )  # fmt: skip
    assert process.stdout is not None
    lines: list[str] = []
    try:
        async with asyncio.timeout(150):
            while not any(line.startswith("all 3 sites online") for line in lines):
                raw = await process.stdout.readline()
                assert raw, "the launcher ended early:\n" + "".join(lines)
                lines.append(raw.decode())
        (page,) = [
            line.removeprefix("fleet page: ").strip() for line in lines if line.startswith("fleet page: ")
        ]
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+/", page), page
        # The page's API shows them online too, each with its time zone.
        async with aiohttp.ClientSession() as http, http.get(page + "api/sites") as resp:
            assert resp.status == 200
            shown = [(s["publisher"], s["state"], s["timezone"]) for s in await resp.json()]
        assert [(p, st) for p, st, _z in shown] == [(f"smx-{n}", "online") for n in (1, 2, 3)]
        assert len({z for _p, _s, z in shown}) == 3
        webs = [
            line for line in lines if line.startswith("gateway smx-") and " web http://127.0.0.1:" in line
        ]
        assert len(webs) == 3
        # The sites table says so (SQLite in WAL mode: readable while the head-end writes).
        assert await sites(var) == [(f"smx-{n}", "online") for n in (1, 2, 3)]
        process.send_signal(signal.SIGTERM)
        async with asyncio.timeout(60):
            rest, _ = await process.communicate()
        assert process.returncode == 0, rest.decode()
    finally:
        if process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            await process.wait()
    # No orphans: every child's command line names the fleet's folder.
    assert processes_mentioning(str(var)) == []
    # Stopped in order (the gateways first): they said goodbye to the head-end.
    assert await sites(var) == [(f"smx-{n}", "disabled") for n in (1, 2, 3)]
