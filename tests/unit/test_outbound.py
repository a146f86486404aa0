"""The outbound address policy: checked on the address connected to, after resolution."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from gateway_core.outbound import OutboundPolicy, OutboundRefusedError, outbound_client

REFUSED_URLS = [
    "http://127.0.0.1/",
    "http://10.1.2.3/",
    "http://192.168.0.1/",
    "http://172.16.0.1/",
    "http://169.254.169.254/latest/meta-data/",
    "http://[::1]/",
    "http://[fe80::1]/",
    "http://[::ffff:127.0.0.1]/",
    "http://0.0.0.0/",
    "http://224.0.0.1/",
    "http://100.64.0.1/",
    "http://localhost/",
    "http://api.localhost/",
    "ftp://example.com/",
    "file:///etc/passwd",
]


@pytest.mark.parametrize("url", REFUSED_URLS)
def test_request_time_check_refuses_non_public_literals(url: str) -> None:
    with pytest.raises(OutboundRefusedError) as raised:
        OutboundPolicy().check_url(url)
    assert raised.value.status_code == 400
    assert "PMP_" not in raised.value.message


@pytest.mark.parametrize("url", ["https://example.com/hook", "http://8.8.8.8:8080/x"])
def test_request_time_check_accepts_public_destinations(url: str) -> None:
    OutboundPolicy().check_url(url)


def test_allow_setting_opens_cidrs_and_host_names() -> None:
    policy = OutboundPolicy.from_setting(" 10.0.0.0/8, hooks.internal ,*.corp.example,::1")
    for url in [
        "http://10.9.9.9/",
        "http://hooks.internal/",
        "http://a.b.corp.example/",
        "http://[::1]:8080/",
    ]:
        policy.check_url(url)
    with pytest.raises(OutboundRefusedError):
        policy.check_url("http://192.168.1.1/")
    assert not policy.allows_address("other.internal", "192.168.1.1")
    assert policy.allows_address("hooks.internal", "192.168.1.1")


@pytest.fixture
async def loopback_port() -> AsyncIterator[int]:
    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(
            b"HTTP/1.1 302 Found\r\nlocation: http://8.8.8.8/\r\ncontent-length: 0\r\n\r\n"
        )
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    yield server.sockets[0].getsockname()[1]
    server.close()
    await server.wait_closed()


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
async def test_client_refuses_loopback_after_resolution(loopback_port: int, host: str) -> None:
    async with outbound_client(OutboundPolicy()) as http:
        with pytest.raises(OutboundRefusedError) as raised:
            await http.get(f"http://{host}:{loopback_port}/")
    assert "127.0.0.1" not in raised.value.message or host == "127.0.0.1"


async def test_client_connects_to_allowed_range_without_following_redirects(
    loopback_port: int,
) -> None:
    async with outbound_client(OutboundPolicy.from_setting("127.0.0.1/32")) as http:
        response = await http.get(f"http://localhost:{loopback_port}/")
    assert response.status_code == 302  # not followed


async def test_client_ignores_proxy_settings_from_the_environment(
    loopback_port: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{loopback_port}")
    monkeypatch.setenv("ALL_PROXY", f"http://127.0.0.1:{loopback_port}")
    async with outbound_client(OutboundPolicy(), connect_timeout_s=1.0) as http:
        with pytest.raises(OutboundRefusedError):
            await http.get("http://10.255.255.1/")
