"""X-Forwarded-For and -Proto are believed only from the proxy (FORWARDED_ALLOW_IPS). The same
through real nginx and gunicorn: tests/test_proxy.py."""

from __future__ import annotations

import pytest

from shop.config import ConfigError


@pytest.fixture
def echo_app(make_app):
    def make(**overrides):
        app = make_app(**overrides)

        @app.get("/test/peer")
        def peer():
            from flask import request

            return {"address": request.remote_addr, "scheme": request.scheme}

        return app

    return make


FORWARDED = {"X-Forwarded-For": "198.51.100.7", "X-Forwarded-Proto": "https"}


def test_the_proxy_on_this_machine_is_believed(echo_app):
    client = echo_app().test_client()
    answer = client.get("/test/peer", headers=FORWARDED, environ_base={"REMOTE_ADDR": "127.0.0.1"})
    assert answer.get_json() == {"address": "198.51.100.7", "scheme": "https"}


def test_anyone_else_is_not(echo_app):
    client = echo_app().test_client()
    answer = client.get("/test/peer", headers=FORWARDED, environ_base={"REMOTE_ADDR": "203.0.113.9"})
    assert answer.get_json() == {"address": "203.0.113.9", "scheme": "http"}


def test_a_proxy_network_can_be_named(echo_app):
    client = echo_app(FORWARDED_ALLOW_IPS="10.0.0.0/8, 192.0.2.1").test_client()
    inside = client.get("/test/peer", headers=FORWARDED, environ_base={"REMOTE_ADDR": "10.1.2.3"})
    assert inside.get_json()["address"] == "198.51.100.7"
    local = client.get("/test/peer", headers=FORWARDED, environ_base={"REMOTE_ADDR": "127.0.0.1"})
    assert local.get_json()["address"] == "127.0.0.1"  # no longer the default once the setting is given


def test_a_bad_address_is_one_clear_sentence(make_app):
    with pytest.raises(ConfigError) as raised:
        make_app(FORWARDED_ALLOW_IPS="10.0.0.0/8, proxy.internal")
    assert raised.value.problems == [
        "FORWARDED_ALLOW_IPS has 'proxy.internal', which is not an IP address or network (like 10.0.0.0/8)."
    ]
