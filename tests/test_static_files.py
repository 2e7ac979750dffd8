"""Static files named by their content and kept a year (shop/static_files.py), and Clerk's components
bundle only where a page mounts one (issue 21, item 7). nginx's side: tests/test_proxy.py; what a
browser then downloads: tests/e2e/test_page_weight.py."""

from __future__ import annotations

import hashlib

import pytest
from flask import url_for

from shop import PROJECT_ROOT
from shop.clerk.frontend import clerk_js_url, clerk_ui_url
from shop.static_files import IMMUTABLE, Fingerprints
from tests.support import TEST_FRONTEND_API

STATIC = PROJECT_ROOT / "static"


def fingerprint(name: str) -> str:
    return hashlib.sha256((STATIC / name).read_bytes()).hexdigest()[:12]


def test_pages_name_static_files_by_their_content(app, client, runner):
    assert runner.invoke(args=["seed"]).exit_code == 0
    html = client.get("/").get_data(as_text=True)
    for name in ("css/shop.css", "js/shop.js", "favicon.svg", "products/ceramic-mug.svg"):
        assert f'/static/{name}?v={fingerprint(name)}"' in html, name
    with app.test_request_context():  # any url_for, not only the templates'
        assert url_for("static", filename="js/account.js") == f"/static/js/account.js?v={fingerprint('js/account.js')}"
        assert url_for("static", filename="no/such/file.css") == "/static/no/such/file.css"  # a 404 anyway


def test_a_fingerprinted_file_is_kept_a_year_anything_else_is_revalidated(client):
    answer = client.get(f"/static/css/shop.css?v={fingerprint('css/shop.css')}")
    assert answer.status_code == 200
    assert answer.headers["Cache-Control"] == IMMUTABLE
    assert answer.data == (STATIC / "css" / "shop.css").read_bytes()

    # No version, or another release's (a page from a newer instance during a rolling deploy): not pinned.
    for path in ("/static/css/shop.css", "/static/css/shop.css?v=0123456789ab", "/static/css/shop.css?v="):
        answer = client.get(path)
        assert answer.status_code == 200, path
        assert answer.headers["Cache-Control"] == "no-cache", path
        assert client.get(path, headers={"If-None-Match": answer.headers["ETag"]}).status_code == 304, path


@pytest.mark.parametrize(
    "path",
    [
        "/static/no-such-file.css?v=0123456789ab",
        "/static/css?v=0123456789ab",  # a directory
        "/static/../shop/__init__.py?v=0123456789ab",
        "/static/%2e%2e/shop/__init__.py?v=0123456789ab",
        "/static/css/shop%00.css?v=0123456789ab",
        "/static/css/shop.css?v=%00",
        "/static/css/shop.css?v=" + "f" * 5000,
    ],
)
def test_odd_static_requests_are_refused_without_an_error(client, path):
    answer = client.get(path)
    assert answer.status_code < 500, path
    assert answer.headers.get("Cache-Control") != IMMUTABLE, path


def test_an_edited_file_gets_a_new_fingerprint(tmp_path):
    (tmp_path / "site.css").write_text("a{}")
    (tmp_path / "folder").mkdir()
    prints = Fingerprints(tmp_path)
    first = prints.of("site.css")
    assert first == hashlib.sha256(b"a{}").hexdigest()[:12]
    (tmp_path / "site.css").write_text("a{color:red}")
    assert prints.of("site.css") == hashlib.sha256(b"a{color:red}").hexdigest()[:12]
    for outside in ("folder", "missing.css", "../site.css", "/etc/hostname", "site\0.css", ""):
        assert prints.of(outside) is None, outside


def test_clerks_components_bundle_only_on_pages_that_mount_one(client, sign_in):
    ui, clerk_js = clerk_ui_url(TEST_FRONTEND_API), clerk_js_url(TEST_FRONTEND_API)
    assert ui in client.get("/sign-in").get_data(as_text=True)
    home = client.get("/").get_data(as_text=True)
    assert clerk_js in home and ui not in home  # clerk-js still starts on every page

    sign_in()
    assert ui in client.get("/account").get_data(as_text=True)
    for path in ("/", "/products/no-such-product", "/cart", "/orders", "/sign-out"):
        page = client.get(path).get_data(as_text=True)
        assert clerk_js in page and ui not in page, path
