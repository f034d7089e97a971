"""The local stack's own endpoints refuse what another web page could make a browser do."""

from __future__ import annotations

import json

import pytest

from infra.local.control import own_hosts, refuse_browsers, refuse_foreign, refuse_foreign_host

HOSTS = own_hosts("127.0.0.1", 3000)


def refusal(method: str, **headers: str) -> str | None:
    answer = refuse_foreign(method, {k.replace("_", "-"): v for k, v in headers.items()}, HOSTS)
    if answer is None:
        return None
    status, _, body = answer
    assert status == 403
    return str(json.loads(body)["message"])


@pytest.mark.parametrize("host", ["127.0.0.1:3000", "localhost:3000", "[::1]:3000"])
def test_the_stacks_own_pages_and_tools_pass(host: str) -> None:
    assert refusal("GET", host=host) is None
    assert refusal("POST", host=host) is None  # curl, the CLI: no Origin
    assert refusal("POST", host=host, origin=f"http://{host}", sec_fetch_site="same-origin") is None


def test_a_post_from_another_origin_is_refused() -> None:
    message = refusal("POST", host="127.0.0.1:3000", origin="https://evil.example")
    assert message is not None
    assert "evil.example" in message
    # another port on loopback is another origin
    assert refusal("POST", host="127.0.0.1:3000", origin="http://127.0.0.1:8080") is not None
    # a browser that sends no Origin still marks the fetch as cross-site
    assert refusal("POST", host="127.0.0.1:3000", sec_fetch_site="cross-site") is not None


def test_a_link_from_elsewhere_still_opens_a_page() -> None:
    assert refusal("GET", host="127.0.0.1:3000", sec_fetch_site="cross-site") is None


@pytest.mark.parametrize("host", ["evil.example:3000", "127.0.0.1:3001", ""])
def test_a_foreign_host_name_is_refused_even_for_reading(host: str) -> None:
    # DNS rebinding: a page on evil.example re-pointed at 127.0.0.1 sends its own Host
    assert refusal("GET", host=host) is not None


def test_a_chosen_bind_address_is_accepted_as_a_host() -> None:
    hosts = own_hosts("192.0.2.10", 3000)
    assert refuse_foreign("GET", {"host": "192.0.2.10:3000"}, hosts) is None
    assert refuse_foreign("GET", {"host": "localhost:3000"}, hosts) is None


def test_moto_answers_programs_but_not_web_pages() -> None:
    hosts = own_hosts("127.0.0.1", 5000)
    sdk = {"host": "127.0.0.1:5000", "x-amz-target": "DynamoDB_20120810.ListTables"}
    assert refuse_browsers(sdk, hosts) is None
    assert refuse_browsers({"host": "localhost:5000", "sec-fetch-site": "none"}, hosts) is None
    # a page's fetch (CORS) and an <img> or form from another site are refused
    assert refuse_browsers({**sdk, "origin": "https://evil.example"}, hosts) is not None
    assert refuse_browsers({**sdk, "sec-fetch-site": "cross-site"}, hosts) is not None
    # so is the console's own origin: nothing in a browser talks to moto
    assert refuse_browsers({**sdk, "sec-fetch-site": "same-site"}, hosts) is not None
    assert refuse_browsers({"host": "evil.example:5000"}, hosts) is not None


def test_the_api_stage_only_checks_the_host() -> None:
    assert (
        refuse_foreign_host({"host": "127.0.0.1:3000", "origin": "https://a.example"}, HOSTS)
        is None
    )
    assert refuse_foreign_host({"host": "evil.example:3000"}, HOSTS) is not None


def test_another_site_may_link_to_the_console_but_not_embed_it() -> None:
    host = {"host": "127.0.0.1:3000", "sec-fetch-site": "cross-site"}
    assert refusal("GET", **host, sec_fetch_dest="document") is None
    for element in ("image", "iframe", "script", "empty"):
        assert refusal("GET", **host, sec_fetch_dest=element) is not None
    # the console's own pages embed nothing cross-site: same-origin requests pass
    assert (
        refusal("GET", host="127.0.0.1:3000", sec_fetch_site="same-origin", sec_fetch_dest="image")
        is None
    )
