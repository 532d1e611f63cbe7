"""The web page and REST API of a production gateway: HTTPS with the gateway's own
certificate, nothing readable before a login, the page's login dialog in a real Chromium."""

from __future__ import annotations

import base64
import hashlib
import ssl
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
from cryptography.hazmat.primitives import serialization

from gateway.security.pki import Pki, load_certificate
from gateway.security.users import Role
from tests.support.browser import Chromium, require_chromium
from tests.support.harness import PASSWORD, Running, add_user, demo, running_gateway
from tests.support.web_page import NUMBER, VOLTAGE

pytestmark = pytest.mark.asyncio(loop_scope="module")

METER = "meter1"


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def running(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Running]:
    where = tmp_path_factory.mktemp("web-security")
    config = demo()
    security = replace(
        config.security, profile="production", anonymous=False, pki=str(where / "pki"),
        users=str(where / "users"), login_delay_s=0.05,
    )  # fmt: skip
    config = replace(
        config, security=security, web=replace(config.web, https=True),
        archive=replace(config.archive, path=str(where / "archive")),
    )  # fmt: skip
    add_user(config, "viewer", Role.VIEWER)
    async with running_gateway(config, login=Role.OPERATOR) as running:
        await running.gateway.pollers[METER].wait_snapshot()
        yield running


@pytest.fixture(scope="module")
def own_pem(running: Running) -> Path:
    """The gateway's certificate, as the web browser of its installer would be told to trust it."""
    pki = Pki(running.gateway.config.security.pki)
    path = pki.own_certificate.with_suffix(".crt")
    assert path.read_bytes() == load_certificate(pki.own_certificate.read_bytes()).public_bytes(
        serialization.Encoding.PEM
    )
    return path


@pytest.fixture(scope="module")
def own_pin(own_pem: Path) -> str:
    """The certificate's public key pin (base64 SHA-256 of its SubjectPublicKeyInfo)."""
    spki = (
        load_certificate(own_pem.read_bytes())
        .public_key()
        .public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    return base64.b64encode(hashlib.sha256(spki).digest()).decode()


def client_tls(own_pem: Path, **versions: Any) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(own_pem))
    for key, value in versions.items():
        setattr(context, key, value)
    return context


async def test_https_with_the_own_certificate_and_nothing_before_a_login(
    running: Running, own_pem: Path
) -> None:
    url = running.gateway.web_url
    assert url.startswith("https://127.0.0.1:")
    jar = aiohttp.CookieJar(unsafe=True)
    async with aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(ssl=client_tls(own_pem)), cookie_jar=jar
    ) as http:
        async with http.get(url) as page:
            assert page.status == 200  # the page itself: it asks for the login
        for path in (f"api/meters/{METER}/snapshot", "api/meters", "api/external", "api", "api/live"):
            async with http.get(url + path) as refused:
                assert refused.status == 401, path
                assert (await refused.json())["error"] == "log in first (POST /api/login)"
        async with http.get(url + "api/session") as session:
            assert await session.json() == {"user": None, "role": None, "anonymous_read": False}
        async with http.post(url + "api/login", json={"user": "viewer", "password": PASSWORD}) as login:
            assert login.status == 200
            cookie = login.headers["Set-Cookie"]
        assert "Secure" in cookie
        assert "HttpOnly" in cookie
        async with http.get(url + f"api/meters/{METER}/snapshot") as snapshot:
            assert snapshot.status == 200
            assert (await snapshot.json())["meter"] == METER


@pytest.mark.filterwarnings("ignore:ssl.TLSVersion.TLSv1:DeprecationWarning")
async def test_no_plain_http_and_no_tls_below_1_2(running: Running, own_pem: Path) -> None:
    https = running.gateway.web_url
    plain = "http://" + https.removeprefix("https://")
    async with aiohttp.ClientSession() as http:
        with pytest.raises(aiohttp.ClientError):
            async with http.get(plain + "api/session") as answer:
                await answer.read()
    old = client_tls(own_pem, minimum_version=ssl.TLSVersion.TLSv1, maximum_version=ssl.TLSVersion.TLSv1_1)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=old)) as http:
        with pytest.raises(aiohttp.ClientError):
            async with http.get(https + "api/session") as answer:
                await answer.read()


async def test_the_page_asks_for_a_login_first_then_shows_the_values(running: Running, own_pin: str) -> None:
    # Chromium trusts exactly this certificate (its public key pinned), as an installer would.
    pin = own_pin
    async with Chromium.launch(
        require_chromium(), args=[f"--ignore-certificate-errors-spki-list={pin}"]
    ) as browser:
        page = await browser.new_page(1280, 800)
        try:
            await page.goto(running.gateway.web_url)
            assert await page.wait_for("document.querySelector('#login').open")
            assert await page.text("#login-why") == "This gateway shows its data to its users only."
            await page.fill("#login-form input[name=user]", "viewer")
            await page.fill("#login-form input[name=password]", PASSWORD)
            await page.click("#login-form button[type=submit]")
            assert await page.wait_for("document.querySelector('#who').textContent === 'viewer (viewer)'")
            voltage = await page.wait_for(f"{NUMBER}.test({VOLTAGE}) && {VOLTAGE}", timeout=20)
            assert 200 <= float(voltage) <= 260
            assert page.errors == []
        finally:
            await page.close()
