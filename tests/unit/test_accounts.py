"""The administrator's commands: certs create/list/trust/reject and users add/list/remove,
run through the command line's own entry point on real files."""

from __future__ import annotations

import io
import re
import sys
from pathlib import Path

import pytest

from gateway.cli import main
from gateway.security.pki import Pki, create_application_certificate, thumbprint
from gateway.security.users import UserDb


def test_certs_create_list_trust_and_reject(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pki = tmp_path / "certs"
    assert main(["certs", "--pki", str(pki), "create", "--uri", "urn:smx:test", "--host", "smx-1"]) == 0
    assert re.search(r"^created: .*smx\.der \(urn:smx:test, [0-9a-f]{40} ", capsys.readouterr().out)
    assert main(["certs", "--pki", str(pki), "create", "--uri", "urn:smx:test"]) == 0
    assert capsys.readouterr().out.startswith("exists: ")
    assert main(["certs", "--pki", str(pki), "create", "--uri", "urn:other"]) == 1
    assert "BadCertificateUriInvalid" in capsys.readouterr().err
    client, _key = create_application_certificate("urn:client", common_name="UaExpert", organization="Op")
    Pki(pki).reject(client)
    assert main(["certs", "--pki", str(pki), "list"]) == 0
    listing = capsys.readouterr().out
    assert listing.splitlines()[0].startswith("own:")
    assert f"rejected: {thumbprint(client)}  O=Op,CN=UaExpert" in listing
    assert main(["certs", "--pki", str(pki), "trust", thumbprint(client)[:12]]) == 0
    assert "trusted/certs" in capsys.readouterr().out
    assert main(["certs", "--pki", str(pki), "reject", thumbprint(client)]) == 0
    assert main(["certs", "--pki", str(pki), "trust", "0000"]) == 1
    assert "no certificate in rejected/certs" in capsys.readouterr().err


def test_users_add_list_remove(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    users = tmp_path / "users"
    monkeypatch.setattr(sys, "stdin", io.StringIO("a-long-password\n"))
    assert (
        main(["users", "--file", str(users), "add", "scada", "--role", "operator", "--password-stdin"]) == 0
    )
    thumb = "ab" * 20
    assert main(["users", "--file", str(users), "add", "vpp", "--role", "viewer", "--no-password",
                 "--certificate", thumb]) == 0  # fmt: skip
    assert main(["users", "--file", str(users), "list"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"^scada\s+operator\s+password$", out, re.M)
    assert re.search(r"^vpp\s+viewer\s+certificate$", out, re.M)
    assert "a-long-password" not in users.read_text()
    assert UserDb.load(users).users["scada"].password_hash.startswith("scrypt$")
    monkeypatch.setattr(sys, "stdin", io.StringIO("short\n"))
    assert main(["users", "--file", str(users), "add", "x", "--role", "admin", "--password-stdin"]) == 1
    assert "at least 10 characters" in capsys.readouterr().err
    assert main(["users", "--file", str(users), "remove", "vpp"]) == 0
    assert main(["users", "--file", str(users), "remove", "vpp"]) == 1
    assert "no user 'vpp'" in capsys.readouterr().err
    assert list(UserDb.load(users).users) == ["scada"]
