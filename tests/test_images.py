"""Profile images from Clerk reach `<img src>` only as https URLs (or, while the local stand-in is on,
as its own avatars, served by this app): shop.images.image_src, and the page header that uses it."""

from __future__ import annotations

import re

import pytest
import requests
from sqlalchemy import select

from shop import mirror
from shop.clerk.users import UserSnapshot
from shop.extensions import db
from shop.images import image_src
from shop.models import User
from tests.support import live_server, wait_for

CLERK_IMAGE = "https://img.clerk.com/eyJ0eXBlIjoicHJveHkiLCJzcmMiOiJodHRwczovL2V4YW1wbGUifQ"
STANDIN_DESCRIPTOR = "eyJ0eXBlIjoiZGVmYXVsdCIsImluaXRpYWxzIjoiQUwifQ"
STANDIN_AVATAR = f"http://127.0.0.1:5000/dev-clerk/img/{STANDIN_DESCRIPTOR}"
AVATAR_IMG = re.compile(rb'<img class="avatar" src="([^"]*)"')


@pytest.mark.parametrize(
    ("url", "rendered"),
    [
        (CLERK_IMAGE, CLERK_IMAGE),
        ("https://lh3.googleusercontent.com/a/ACg8ocJ=s1000-c", "https://lh3.googleusercontent.com/a/ACg8ocJ=s1000-c"),
        ("HTTPS://img.clerk.com/abc", "https://img.clerk.com/abc"),  # the scheme's case does not matter
        ("https://img.clerk.com:443/abc?size=64#x", "https://img.clerk.com:443/abc?size=64#x"),
    ],
)
def test_https_urls_are_kept(url, rendered):
    assert image_src(url) == rendered
    assert image_src(url, standin=True) == rendered


@pytest.mark.parametrize(
    "url",
    [
        "javascript:alert(document.cookie)",
        "JavaScript:alert(1)",
        "  javascript:alert(1)",  # browsers strip leading spaces before reading the scheme
        "java\tscript:alert(1)",  # … and remove tabs and newlines inside it
        "java\nscript:alert(1)",
        "\x00javascript:alert(1)",
        "\x1fjavascript:alert(1)",
        "vbscript:msgbox(1)",
        "data:image/svg+xml;base64,PHN2ZyBvbmxvYWQ9YWxlcnQoMSk+",
        "http://img.clerk.com/abc",  # plain http: a pixel anyone on the path can swap
        "//evil.example/x.png",  # takes the page's scheme, any host
        "/dev-clerk/img/abc",  # a path: not a URL Clerk sends
        " https://img.clerk.com/abc",
        "https://img.clerk.com/abc\n",
        "https://img.clerk.com/a\x7fb",
        "https://img.clerk.com/\u00e9",
        "https:\\\\evil.example\\x.png",  # browsers read backslashes as slashes in https URLs
        "https://user:pass@evil.example/x.png",
        "https:///no-host",
        "https://img.clerk.com:port/x",
        "https://[::1/x",
        "https://img.clerk.com/" + "a" * 5000,
        "",
        None,
        42,
        ["https://img.clerk.com/abc"],
    ],
)
def test_anything_else_is_refused(url):
    assert image_src(url) is None
    assert image_src(url, standin=True) is None


@pytest.mark.parametrize(
    ("url", "standin", "rendered"),
    [
        (STANDIN_AVATAR, True, f"/dev-clerk/img/{STANDIN_DESCRIPTOR}"),
        # Stored with the host of the sign-in request; always rendered as this app's own path.
        (f"http://localhost:8000/dev-clerk/img/{STANDIN_DESCRIPTOR}", True, f"/dev-clerk/img/{STANDIN_DESCRIPTOR}"),
        (STANDIN_AVATAR, False, None),  # the stand-in is off: a plain-http URL like any other
        (f"{STANDIN_AVATAR}?x=1", True, None),
        ("http://127.0.0.1:5000/dev-clerk/img/../../admin", True, None),
        ("http://127.0.0.1:5000/dev-clerk/img/", True, None),
        (f"javascript:/dev-clerk/img/{STANDIN_DESCRIPTOR}", True, None),
        (f"//127.0.0.1/dev-clerk/img/{STANDIN_DESCRIPTOR}", True, None),
    ],
)
def test_the_standins_own_avatars_only_while_it_is_on(url, standin, rendered):
    assert image_src(url, standin=standin) == rendered


# --- through a real signed-in page ----------------------------------------------------------------------


@pytest.fixture
def signed_in_with_image(app, client, tokens):
    """A mirrored user whose Clerk image_url is `url`, signed in on `client` with a valid `__session`."""

    def sign_in(url: str, clerk_id: str = "user_pictured"):
        with app.app_context():
            mirror.apply_snapshot(
                db.session.connection(),
                UserSnapshot.of(
                    clerk_id, f"{clerk_id}@example.com", 1, first_name="Zed", last_name="Pictured", image_url=url
                ),
            )
            db.session.commit()
        client.set_cookie("__session", tokens.mint(clerk_id))

    return sign_in


def header_of(client) -> bytes:
    response = client.get("/")
    assert response.status_code == 200 and b"Zed Pictured" in response.data  # signed in
    return response.data


def test_the_header_shows_a_clerk_image(client, signed_in_with_image):
    signed_in_with_image(CLERK_IMAGE)
    assert AVATAR_IMG.findall(header_of(client)) == [CLERK_IMAGE.encode()]


@pytest.mark.parametrize(
    "url",
    [
        "javascript:alert(document.cookie)",
        "  javascript:alert(1)",
        "java\tscript:alert(1)",
        "data:image/svg+xml;base64,PHN2ZyBvbmxvYWQ9YWxlcnQoMSk+",
        "http://img.clerk.com/abc",
        "//evil.example/x.png",
        STANDIN_AVATAR,  # SHOP_DEV_AUTH is off in this app
    ],
)
def test_the_header_falls_back_to_the_initial(client, signed_in_with_image, url):
    signed_in_with_image(url)
    page = header_of(client)
    assert AVATAR_IMG.findall(page) == []
    assert b'<span class="avatar avatar-initial" aria-hidden="true">Z</span>' in page
    assert url.strip().encode() not in page and b"script:alert" not in page


def test_with_the_standin_on_its_avatar_is_shown_and_served(make_app, tmp_path):
    app = make_app(SHOP_DEV_AUTH="1", SHOP_DEV_CLERK_DIR=str(tmp_path))
    with live_server(app) as url:
        browser = requests.Session()
        signed_in = browser.post(f"{url}/dev-clerk/sign-in", json={"email": "zed@example.com", "first_name": "Zed"})
        assert signed_in.status_code == 200
        clerk_id = signed_in.json()["user"]["id"]

        def mirrored() -> User | None:
            with app.app_context():
                return db.session.scalar(select(User).where(User.clerk_id == clerk_id, User.image_url.is_not(None)))

        stored = wait_for(mirrored, what="the stand-in's user.created webhook").image_url
        assert stored.startswith(f"{url}/dev-clerk/img/")  # plain http, with the host of the sign-in
        page = browser.get(f"{url}/")
        assert page.status_code == 200 and "Zed" in page.text
        (src,) = AVATAR_IMG.findall(page.content)
        assert src.decode() == stored.removeprefix(url)  # this app's own path
        avatar = browser.get(f"{url}{src.decode()}")
        assert avatar.status_code == 200 and avatar.headers["Content-Type"].startswith("image/svg+xml")
