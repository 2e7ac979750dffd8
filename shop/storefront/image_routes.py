"""The product images staff uploaded (shop.images, shop.store.catalogue), served from PostgreSQL.

The URL names the image's SHA-256, so what it serves never changes: it is cached for a year by
browsers and any proxy (`immutable`: not even revalidated on reload), with the hash as its strong
ETag. It reads nobody's session (shop.auth.session.SKIPPED_ENDPOINTS), so a signed-in shopper's
request is answered the same way and cached the same way.
"""

from __future__ import annotations

from flask import Response, abort, request

from shop.images import SHA256_HEX
from shop.static_files import IMMUTABLE
from shop.store import catalogue
from shop.storefront import bp

EXTENSIONS = {"image/png": "png", "image/jpeg": "jpg", "image/webp": "webp"}


@bp.get("/images/<string(length=64):digest>")
def product_image(digest: str):
    if not SHA256_HEX.fullmatch(digest):
        abort(404)
    if request.if_none_match.contains(digest):  # the browser holds these very bytes: no need to read them
        not_modified = Response(status=304)
        not_modified.set_etag(digest)
        not_modified.headers["Cache-Control"] = IMMUTABLE
        return not_modified
    image = catalogue.uploaded_image(digest)
    if image is None:
        abort(404)
    response = Response(image.data, mimetype=image.content_type)
    response.set_etag(image.sha256)  # strong: the same bytes, always
    response.headers["Cache-Control"] = IMMUTABLE
    # Never sniffed as anything else (security.py sets it on every answer; said here too, as it matters
    # most here), and shown, not downloaded, when opened on its own.
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Content-Disposition"] = f'inline; filename="{image.sha256}.{EXTENSIONS[image.content_type]}"'
    return response.make_conditional(request)
