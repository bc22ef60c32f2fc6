"""Without API keys the API answers loopback clients only; with keys, only valid keys."""

from __future__ import annotations

from unittest import mock

import pytest
from aiohttp import web
from aiohttp.test_utils import make_mocked_request

from adapters.web.auth import WebAuth


def request_from(address: str, headers: dict[str, str] | None = None) -> web.Request:
    transport = mock.Mock()
    transport.get_extra_info.side_effect = lambda name, default=None: (
        (address, 50000) if name == "peername" else default
    )
    return make_mocked_request("POST", "/api/v1/chat", headers=headers or {}, transport=transport)


@pytest.mark.parametrize("address", ["127.0.0.1", "::1"])
async def test_without_keys_loopback_clients_are_the_local_user(address: str) -> None:
    sender = await WebAuth({}, local_user="ada").sender(request_from(address))
    assert sender.id == "web:local:ada" and sender.name == "ada"


@pytest.mark.parametrize("address", ["10.0.0.5", "192.168.1.20", "2001:db8::1"])
async def test_without_keys_other_clients_are_refused(address: str) -> None:
    with pytest.raises(web.HTTPUnauthorized) as refused:
        await WebAuth({}, local_user="ada").sender(request_from(address))
    assert "switchboard apikey create" in (refused.value.text or "")


async def test_with_keys_the_key_decides_even_on_loopback() -> None:
    auth = WebAuth({"k" * 20: "bob"}, local_user="ada")
    with pytest.raises(web.HTTPUnauthorized):
        await auth.sender(request_from("127.0.0.1"))
    with pytest.raises(web.HTTPUnauthorized):
        await auth.sender(request_from("127.0.0.1", {"Authorization": "Basic " + "k" * 20}))
    sender = await auth.sender(request_from("10.0.0.5", {"Authorization": "Bearer " + "k" * 20}))
    assert sender.id == "web:local:bob"
