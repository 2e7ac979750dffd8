"""What every page hands the browser to start Clerk: the pinned bundles, shop.js first, the load options;
@clerk/ui only on the pages that mount one of Clerk's components (sign-in, account)."""

from __future__ import annotations

import json
from html.parser import HTMLParser

from shop.clerk import frontend


class Scripts(HTMLParser):
    def __init__(self):
        super().__init__()
        self.scripts: list[dict[str, str | None]] = []

    def handle_starttag(self, tag, attrs):
        if tag == "script":
            self.scripts.append(dict(attrs))


def scripts(page: str) -> list[dict[str, str | None]]:
    parser = Scripts()
    parser.feed(page)
    return parser.scripts


def names(tags: list[dict[str, str | None]]) -> list[str]:
    """Each script's file name, without the fingerprint (`?v=…`, shop.static_files)."""
    return [str(tag["src"]).split("?")[0].rsplit("/", 1)[-1] for tag in tags]


def test_every_page_starts_clerk_after_shop_js_and_only_component_pages_load_the_ui_bundle(client):
    for path, components in (("/", False), ("/products/no-such-thing", False), ("/sign-in", True)):
        tags = scripts(client.get(path).get_data(as_text=True))
        expected = ["shop.js", "clerk.browser.js", *(["ui.browser.js"] if components else [])]
        assert names(tags) == expected, path
        shop_js, clerk_js = tags[:2]
        assert shop_js["data-clerk-js-url"] == clerk_js["src"] == frontend.clerk_js_url("clerk.shop.test")
        assert "async" in clerk_js and clerk_js["data-clerk-publishable-key"].startswith("pk_test_")
        if components:
            ui = tags[2]
            assert shop_js["data-clerk-ui-url"] == ui["src"] == frontend.clerk_ui_url("clerk.shop.test")
            assert "async" in ui
        else:
            assert "data-clerk-ui-url" not in shop_js, path
        assert shop_js["data-signed-in"] == "false"
        assert json.loads(shop_js["data-clerk-load-options"]) == frontend.load_options(sign_in_url="/sign-in")


def test_the_bundles_are_clerk_js_6_and_ui_1():
    assert frontend.clerk_js_url("x.test") == "https://x.test/npm/@clerk/clerk-js@6/dist/clerk.browser.js"
    assert frontend.clerk_ui_url("x.test") == "https://x.test/npm/@clerk/ui@1/dist/ui.browser.js"


def test_a_signed_in_page_says_so_to_shop_js(client, sign_in):
    sign_in()
    shop_js = scripts(client.get("/").get_data(as_text=True))[0]
    assert shop_js["data-signed-in"] == "true"


def test_the_standin_replaces_both_bundles(make_app, tmp_path):
    app = make_app(SHOP_DEV_AUTH="1", SHOP_DEV_CLERK_DIR=str(tmp_path))
    tags = scripts(app.test_client().get("/").get_data(as_text=True))
    assert names(tags) == ["shop.js", "clerk-standin.js"]
    assert tags[0]["data-clerk-standin"] == "true" and "data-clerk-js-url" not in tags[0]


def test_without_clerk_no_script_of_clerk_is_loaded(make_app):
    app = make_app(CLERK_PUBLISHABLE_KEY="", SHOP_DEV_AUTH="")
    tags = scripts(app.test_client().get("/").get_data(as_text=True))
    assert names(tags) == ["shop.js"]
    assert not any(name.startswith("data-clerk-js") or name == "data-clerk-standin" for name in tags[0])
