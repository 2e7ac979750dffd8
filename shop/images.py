"""Which images may reach `<img src>`: profile-image URLs from Clerk, and product images staff upload.

Profile images (`image_src`)
----------------------------

`image_url` comes from Clerk (webhooks, the Backend API), and a user or a compromised integration
can make it anything: a `javascript:` or `data:` URL, a plain-`http:` tracking pixel, `//host`
(which takes the page's scheme). Browsers also drop leading spaces and control characters and
remove tabs and newlines inside a URL before reading its scheme, so a check on the raw text can be
fooled by `" javascript:"` or `"java\\tscript:"`. The rule is therefore strict and positive: only
printable ASCII, no backslash, scheme `https` (any case), a host, no user name. Everything else is
refused (None), and templates fall back to the user's initial.

While the local Clerk stand-in is on (SHOP_DEV_AUTH), its default avatars are also accepted: it
serves them itself under `/dev-clerk/img/<descriptor>` and stores them with the host of the
sign-in request (devtools/clerk_standin/routes.py `_avatar_url`). They are rendered as that
same-origin path, so whatever host the stored URL names, the browser asks this app.

Product images (`prepare_upload`, `product_image_src`)
-----------------------------------------------------
An upload is judged by its bytes, never by its name or the Content-Type the browser sent: the first
bytes must be PNG's, JPEG's or WebP's signature (so SVG, which can carry script served from the
shop's own origin, never passes, whatever it is called), the header's dimensions are checked before
a pixel is decoded (a 100,000 x 100,000 PNG of a few KB would take 40 GB), and then the whole image
is decoded (a truncated or damaged file fails here). What is kept is not the upload but a new
encoding of its pixels, in the same format: whatever rode along (HTML appended after the image, a
script in a JPEG comment, EXIF with the camera's GPS position, a colour profile of any size) is gone,
and the image is at most STORED_MAX_SIDE pixels on its longer side (product pages show it at 400 CSS
pixels). shop.store.catalogue stores it in PostgreSQL under its SHA-256; the storefront serves it.
"""

from __future__ import annotations

import hashlib
import io
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from flask import Flask, url_for
from PIL import Image, ImageOps

MAX_URL_LENGTH = 4096
_PRINTABLE_ASCII = re.compile(r"[!-~]+")  # no space, no control character, nothing beyond ASCII
STANDIN_AVATAR = re.compile(r"/dev-clerk/img/[A-Za-z0-9_-]{1,2048}")


def image_src(url: Any, *, standin: bool = False) -> str | None:
    """The URL to put in `<img src>` for a profile image, or None when it must not be rendered."""
    if not isinstance(url, str) or not url or len(url) > MAX_URL_LENGTH:
        return None
    if not _PRINTABLE_ASCII.fullmatch(url) or "\\" in url:
        return None
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018  (raises on a port that is not a number, as browsers refuse it)
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    standin_avatar = scheme in ("http", "https") and STANDIN_AVATAR.fullmatch(parts.path)
    if standin and standin_avatar and not parts.query and not parts.fragment:
        return parts.path
    if scheme != "https" or not parts.hostname or "@" in parts.netloc:
        return None
    return "https" + url[len(parts.scheme) :]  # `HTTPS://…` is https too; written the usual way


# --- product images uploaded by staff ---------------------------------------------------------------------

UPLOAD_MAX_BYTES = 5 * 1024 * 1024  # a phone's photo fits; the admin's product form allows this much
MAX_SIDE = 6000  # pixels, either side of an upload
MAX_PIXELS = 24_000_000  # decoded as RGBA that is 96 MB, once, in one admin request
STORED_MAX_SIDE = 1200  # what is kept: twice the 400 CSS pixels a product page shows it at, for sharp screens
PLACEHOLDER = "products/placeholder.svg"
# Pillow's name of each format accepted, and the Content-Type it is served with.
CONTENT_TYPES = {"PNG": "image/png", "JPEG": "image/jpeg", "WEBP": "image/webp"}
UPLOAD_EXTENSIONS = ("png", "jpg", "jpeg", "webp")
_ENCODER_OPTIONS: dict[str, dict[str, Any]] = {
    "PNG": {"optimize": True},
    "JPEG": {"quality": 88, "optimize": True},
    "WEBP": {"quality": 88, "method": 4},
}
SHA256_HEX = re.compile(r"[0-9a-f]{64}")

FILE_TOO_LARGE = f"Image: at most {UPLOAD_MAX_BYTES // (1024 * 1024)} MB; make the file smaller and upload it again."
NOT_AN_IMAGE = "Image: this file is not a PNG, JPEG or WebP image; choose a photo saved in one of those formats."
DAMAGED = "Image: this file is damaged or incomplete; save or export the image again and upload the new file."
TOO_LARGE = (
    f"Image: at most {MAX_SIDE:,} pixels on a side and {MAX_PIXELS // 1_000_000} megapixels; "
    "make it smaller and upload it again."
)


class ImageRefused(ValueError):
    """An upload that is not kept; the message is one sentence for the form."""


@dataclass(frozen=True, slots=True)
class PreparedImage:
    """An upload re-encoded from its pixels: what is stored and served."""

    data: bytes
    content_type: str
    width: int
    height: int
    sha256: str


def sniff(data: bytes) -> str | None:
    """The format the first bytes announce (Pillow's name), or None for anything else."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "PNG"
    if data.startswith(b"\xff\xd8\xff"):
        return "JPEG"
    if len(data) >= 12 and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WEBP"
    return None


def prepare_upload(data: bytes) -> PreparedImage:
    """The image to keep from an upload's bytes, or ImageRefused saying why not."""
    if not data:
        raise ImageRefused("Image: the file is empty; choose a PNG, JPEG or WebP image.")
    if len(data) > UPLOAD_MAX_BYTES:
        raise ImageRefused(FILE_TOO_LARGE)
    kind = sniff(data)
    if kind is None:
        raise ImageRefused(NOT_AN_IMAGE)
    try:
        # Only the announced format's decoder may read it: none of Pillow's other parsers is reachable.
        with Image.open(io.BytesIO(data), formats=[kind]) as image:
            _check_dimensions(*image.size)
            image.verify()  # every chunk's checksum, through the end marker (PNG): a cut file fails here
        with Image.open(io.BytesIO(data), formats=[kind]) as image:  # verify() leaves it unusable: again
            if kind == "JPEG":  # decode at 1/2, 1/4 or 1/8 scale when that still covers what is kept
                image.draft("RGB", (STORED_MAX_SIDE, STORED_MAX_SIDE))
            image.load()  # every pixel: a truncated JPEG or WebP fails here
            kept, width, height = _redrawn(image, kind)
    except ImageRefused:
        raise
    except Image.DecompressionBombError:  # Pillow's own bound, far past ours: the header announced billions
        raise ImageRefused(TOO_LARGE) from None
    except Exception:  # whatever a decoder raises on hostile bytes (OSError, SyntaxError, ValueError, ...)
        raise ImageRefused(DAMAGED) from None
    if len(kept) > UPLOAD_MAX_BYTES:  # a PNG of noise can grow when encoded again
        raise ImageRefused("Image: this picture is too detailed to keep as PNG; upload it as JPEG or WebP.")
    return PreparedImage(kept, CONTENT_TYPES[kind], width, height, hashlib.sha256(kept).hexdigest())


def _check_dimensions(width: int, height: int) -> None:
    """Before any pixel is decoded: the header's size is all a decompression bomb has to lie about."""
    if width < 1 or height < 1:
        raise ImageRefused(DAMAGED)
    if width > MAX_SIDE or height > MAX_SIDE or width * height > MAX_PIXELS:
        raise ImageRefused(TOO_LARGE)


def _redrawn(image: Image.Image, kind: str) -> tuple[bytes, int, int]:
    """The decoded pixels in a new file of the same format, without anything else the upload carried."""
    try:
        image = ImageOps.exif_transpose(image)  # a phone's photo stands upright once its EXIF is gone
    except Exception:  # unreadable EXIF: the pixels are fine, kept as they are
        image = image.copy()
    if image.mode.startswith("I"):  # 16-bit grey PNG: scaled to 8 bits (a plain conversion clips it to white)
        image = image.convert("I").point(lambda value: value * (1 / 257)).convert("L")
    has_alpha = image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in image.info
    image = image.convert("RGBA" if has_alpha and kind != "JPEG" else "RGB")
    image.thumbnail((STORED_MAX_SIDE, STORED_MAX_SIDE), Image.Resampling.LANCZOS)
    # Pillow writes some of `info` back (a JPEG's comment, a PNG's colour profile): nothing rides along.
    image.info.clear()
    out = io.BytesIO()
    image.save(out, kind, **_ENCODER_OPTIONS[kind])
    return out.getvalue(), image.width, image.height


def product_image_src(product: Any) -> str:
    """A product's `<img src>`: the image staff uploaded (served under its SHA-256 by the storefront),
    else the file under static/ they named, else the placeholder."""
    digest = getattr(product, "image_sha256", None)
    if isinstance(digest, str) and SHA256_HEX.fullmatch(digest):
        return url_for("store.product_image", digest=digest)
    return url_for("static", filename=getattr(product, "image", None) or PLACEHOLDER)


def register(app: Flask) -> None:
    """The `image_src` template filter: `{% set src = user.image_url | image_src %}`, None when refused;
    and `product_image_src(product)`, a product's image."""
    standin = bool(app.config.get("SHOP_DEV_AUTH"))
    app.add_template_filter(lambda url: image_src(url, standin=standin), "image_src")
    app.add_template_global(product_image_src, "product_image_src")
