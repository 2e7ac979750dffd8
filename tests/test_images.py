"""Profile images from Clerk reach `<img src>` only as https URLs (or, while the local stand-in is on,
as its own avatars, served by this app): shop.images.image_src, and the page header that uses it.
Product images staff upload are kept only as a new PNG, JPEG or WebP drawn from a whole image's
pixels: shop.images.prepare_upload (the form and the serving route: tests/store/test_product_images.py)."""

from __future__ import annotations

import hashlib
import io
import re
import struct
import zlib
from typing import Any

import pytest
import requests
from PIL import Image, PngImagePlugin
from sqlalchemy import select

from shop import mirror
from shop.clerk.users import UserSnapshot
from shop.extensions import db
from shop.images import (
    DAMAGED,
    FILE_TOO_LARGE,
    MAX_SIDE,
    NOT_AN_IMAGE,
    STORED_MAX_SIDE,
    TOO_LARGE,
    UPLOAD_MAX_BYTES,
    ImageRefused,
    image_src,
    prepare_upload,
)
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


# --- product images uploaded by staff: shop.images.prepare_upload ---------------------------------------------
# Every file here is made on the spot with Pillow (or by hand, where Pillow would refuse to write it).


def image_bytes(kind: str = "PNG", size: tuple[int, int] = (40, 30), mode: str = "RGB", **save: Any) -> bytes:
    """A real image: a two-colour picture (so a re-encoding has something to keep)."""
    image = Image.new(mode, size, "navy" if mode != "I;16" else 60000)
    if mode != "I;16":
        image.paste("orange", (0, 0, size[0] // 2, size[1]))
    out = io.BytesIO()
    image.save(out, kind, **save)
    return out.getvalue()


def half(data: bytes) -> bytes:
    return data[: len(data) // 2]


def png_header_only(width: int, height: int) -> bytes:
    """A PNG that announces `width` x `height` and carries almost no data: what a decompression bomb
    (or a lie about its size) looks like before a pixel is decoded."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return PNG_SIGNATURE + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
SCRIPT = b"<script>alert(document.domain)</script>"
SVG = b'<svg xmlns="http://www.w3.org/2000/svg" onload="alert(document.domain)"><rect width="9" height="9"/></svg>'


def decoded(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


@pytest.mark.parametrize(
    ("kind", "content_type"), [("PNG", "image/png"), ("JPEG", "image/jpeg"), ("WEBP", "image/webp")]
)
def test_png_jpeg_and_webp_are_kept_as_what_they_are(kind, content_type):
    kept = prepare_upload(image_bytes(kind))
    assert (kept.content_type, kept.width, kept.height) == (content_type, 40, 30)
    assert decoded(kept.data).format == kind and decoded(kept.data).size == (40, 30)
    assert kept.sha256 == hashlib.sha256(kept.data).hexdigest()


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "Image: the file is empty"),
        (SVG, NOT_AN_IMAGE),  # whatever it is called: an SVG can carry script served from the shop's origin
        (b'<?xml version="1.0"?>' + SVG, NOT_AN_IMAGE),
        (b"GIF89a" + b"\0" * 64, NOT_AN_IMAGE),  # a real format, not one of the three
        (b"<html>" + SCRIPT, NOT_AN_IMAGE),
        (PNG_SIGNATURE + b"<html>" + SCRIPT, DAMAGED),  # the right first bytes, then no image at all
        (b"\xff\xd8\xff" + SCRIPT, DAMAGED),
        (b"RIFF\0\0\0\0WEBP" + SCRIPT, DAMAGED),
        (half(image_bytes("PNG", (200, 200))), DAMAGED),  # cut short, as by an interrupted copy
        (image_bytes("PNG", (200, 200))[:-12], DAMAGED),  # every pixel there, the end marker missing
        (half(image_bytes("JPEG", (200, 200))), DAMAGED),
        (half(image_bytes("WEBP", (200, 200))), DAMAGED),
        (png_header_only(100_000, 100_000), TOO_LARGE),  # a decompression bomb: 10 gigapixels announced
        (png_header_only(MAX_SIDE + 1, 1), TOO_LARGE),
        (png_header_only(4_900, 4_900), TOO_LARGE),  # each side allowed, 24.01 megapixels in all
        (png_header_only(0, 10), DAMAGED),
        (b"\xff\xd8\xff" + b"\0" * UPLOAD_MAX_BYTES, FILE_TOO_LARGE),
    ],
    ids=[
        "empty", "svg", "svg-with-xml-declaration", "gif", "html", "html-after-png-signature",
        "script-after-jpeg-signature", "script-after-webp-signature", "truncated-png", "png-without-end",
        "truncated-jpeg", "truncated-webp", "bomb", "too-wide", "too-many-pixels", "no-width", "over-5-mb",
    ],
)  # fmt: skip
def test_anything_but_a_whole_png_jpeg_or_webp_is_refused_with_one_sentence(data, message):
    with pytest.raises(ImageRefused) as refused:
        prepare_upload(data)
    assert str(refused.value).startswith(message)
    assert str(refused.value).count(". ") == 0 and str(refused.value).endswith(".")


def test_what_rides_along_an_image_is_not_kept():
    """Polyglots: HTML after a PNG's end, script in a PNG text chunk and in a JPEG comment, the camera's
    GPS position in EXIF. What is kept is a new file drawn from the pixels alone."""
    text = PngImagePlugin.PngInfo()
    text.add_text("Comment", SCRIPT.decode())
    png = image_bytes("PNG", pnginfo=text) + b"<html>" + SCRIPT
    exif = Image.Exif()
    exif[0x8825] = {1: "N", 2: (48.0, 51.0, 24.0)}  # GPSInfo: where the photo was taken
    jpeg = image_bytes("JPEG", comment=SCRIPT, exif=exif.tobytes())
    assert SCRIPT in png and SCRIPT in jpeg and decoded(jpeg).getexif().get_ifd(0x8825)  # the uploads carry them
    for upload in (png, jpeg):
        kept = prepare_upload(upload)
        assert b"script" not in kept.data.lower() and b"html" not in kept.data.lower()
        image = decoded(kept.data)
        assert image.size == (40, 30) and not image.getexif() and "comment" not in image.info
        assert image.getpixel((5, 5))[:3] != image.getpixel((35, 5))[:3]  # the picture itself is there


def test_a_large_photo_is_kept_smaller_and_upright():
    photo = image_bytes("JPEG", (3000, 2000))
    kept = prepare_upload(photo)
    assert (kept.width, kept.height) == (STORED_MAX_SIDE, 800) == decoded(kept.data).size
    assert len(kept.data) < len(photo)
    turned = Image.Exif()
    turned[0x0112] = 6  # Orientation: the camera was held on its side
    kept = prepare_upload(image_bytes("JPEG", (40, 20), exif=turned.tobytes()))
    assert decoded(kept.data).size == (20, 40) and not decoded(kept.data).getexif()


def test_transparency_and_16_bit_grey_survive():
    kept = decoded(prepare_upload(image_bytes("PNG", mode="RGBA")).data)
    assert kept.mode == "RGBA"
    grey = decoded(prepare_upload(image_bytes("PNG", mode="I;16")).data)
    assert grey.getpixel((0, 0))[0] == 233  # 60000 of 65535, scaled to 8 bits: not clipped to white
