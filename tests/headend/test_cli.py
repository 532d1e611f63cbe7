"""smx-headend: check-config, the storage chosen by the configuration, the DSN's password."""

from __future__ import annotations

from pathlib import Path

import pytest

from headend.cli import _with_password, main, repository
from headend.config import parse_config
from headend.storage.postgres import PostgresRepository
from headend.storage.sqlite import SqliteRepository


def test_check_config_says_ok_or_names_the_mistake(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    good = tmp_path / "good.toml"
    good.write_text('profile = "demo"\n[storage]\npath = "var/h.sqlite"\n')
    assert main(["check-config", str(good)]) == 0
    assert "OK, storage sqlite" in capsys.readouterr().out
    bad = tmp_path / "bad.toml"
    bad.write_text('[broker]\nurl = "mqtt://broker:1883"\n')
    assert main(["check-config", str(bad)]) == 2
    assert "plain MQTT only in the demo profile" in capsys.readouterr().err


def test_the_configured_backend_and_the_password_from_its_file(tmp_path: Path) -> None:
    sqlite = parse_config({"profile": "demo", "storage": {"path": str(tmp_path / "db" / "h.sqlite")}}, "x")
    assert isinstance(repository(sqlite), SqliteRepository)
    assert (tmp_path / "db").is_dir()
    secret = tmp_path / "pw"
    secret.write_text("s3cr:et/\n")
    pg = parse_config(
        {
            "profile": "demo",
            "storage": {
                "backend": "postgresql",
                "dsn": "postgresql://smx@db:5433/smx",
                "password_file": str(secret),
            },
        },
        "x",
    )
    assert isinstance(repository(pg), PostgresRepository)
    assert (
        _with_password("postgresql://smx@db:5433/smx", "s3cr:et/")
        == "postgresql://smx:s3cr%3Aet%2F@db:5433/smx"
    )
    assert _with_password("postgresql://smx@db/smx", "") == "postgresql://smx@db/smx"


def test_a_stopped_instance_says_what_it_did(tmp_path: Path) -> None:
    from gateway.clock import SystemClock
    from headend.cli import summary
    from headend.service import Headend

    config = parse_config({"profile": "demo"}, "x")
    headend = Headend(config, SqliteRepository(tmp_path / "h.sqlite"), SystemClock(), name="h-1")
    headend.counters.messages, headend.counters.accepted, headend.counters.rows = 12, 10, 40
    headend.counters.refused[("smx-x", "json")] += 2
    assert summary(headend) == (
        "SMX head-end h-1 stopped: 12 messages, 10 accepted, 40 rows in 0 batches, 0 acks, "
        "0 replay requests, 2 refused"
    )
