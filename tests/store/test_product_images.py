"""Product images staff upload, through the admin's product form: kept in PostgreSQL as a new file
drawn from the pixels (shop.images.prepare_upload, attacked in tests/test_images.py), served under
their SHA-256 with their own Content-Type, never sniffed, cached for a year; refused with one sentence
on the form, and never taken from anyone but staff or without the form's CSRF token."""

from __future__ import annotations

import hashlib
import io
import re

import pytest
from sqlalchemy import func, select

from shop.extensions import db
from shop.images import FILE_TOO_LARGE, NOT_AN_IMAGE, UPLOAD_MAX_BYTES
from shop.models import Role
from shop.store import cart
from shop.store.models import Product, ProductImage
from tests.store.conftest import csrf_token_from
from tests.test_images import SCRIPT, SVG, decoded, image_bytes, png_header_only

IMG_SRC = re.compile(r'<img src="([^"]+)" alt="Desk lamp"')
PRODUCT = {
    "name": "Desk lamp",
    "slug": "desk-lamp",
    "description": "A lamp.",
    "price": "30.00",
    "currency": "EUR",
    "stock": "4",
    "active": "y",
}


@pytest.fixture
def staff(app, sign_in):
    staff = app.test_client()
    sign_in("user_admin", as_client=staff, role=Role.ADMIN, email="admin@example.com")
    return staff


def upload(client, path: str, data: bytes | None, filename: str = "lamp.png", **fields: str):
    """The product form at `path` as a browser sends it (multipart), with `data` as the image file."""
    form: dict = {"csrf_token": csrf_token_from(client, path), **PRODUCT, **fields}
    if data is not None:
        form["image_file"] = (io.BytesIO(data), filename)
    return client.post(path, data=form, content_type="multipart/form-data")


def stored(app) -> tuple[list[str | None], int]:
    """Every product's uploaded image (by slug), and how many images are stored."""
    with app.app_context():
        shown = list(db.session.scalars(select(Product.image_sha256).order_by(Product.slug)))
        count = db.session.scalar(select(func.count()).select_from(ProductImage))
        db.session.rollback()
        return shown, count


def test_an_uploaded_image_is_shown_on_every_page_and_served_as_itself(app, staff, client, sign_in):
    original = image_bytes("PNG", (400, 300)) + b"<html>" + SCRIPT  # a polyglot: HTML after the image's end
    response = upload(staff, "/admin/products/new", original, filename="Lamp.PNG")
    assert response.status_code == 302, response.get_data(as_text=True)
    ([digest], count) = stored(app)
    assert count == 1 and re.fullmatch(r"[0-9a-f]{64}", digest)
    src = f"/images/{digest}"

    # The product's page, the catalogue, and the staff's form (the preview of what is shown now).
    assert IMG_SRC.findall(client.get("/products/desk-lamp").get_data(as_text=True)) == [src]
    assert f'<img src="{src}" alt=""' in client.get("/").get_data(as_text=True)
    form_page = staff.get("/admin/products/1").get_data(as_text=True)
    assert f'<img src="{src}" alt="Desk lamp, as the shop shows it now"' in form_page
    assert "Now shown: the uploaded image." in form_page

    image = client.get(src)
    assert image.status_code == 200
    assert image.headers["Content-Type"] == "image/png"
    assert image.headers["X-Content-Type-Options"] == "nosniff"
    assert image.headers["Content-Disposition"] == f'inline; filename="{digest}.png"'
    assert image.headers["ETag"] == f'"{digest}"'  # strong: the hash of these very bytes
    assert image.headers["Cache-Control"] == "public, max-age=31536000, immutable"
    assert hashlib.sha256(image.data).hexdigest() == digest and SCRIPT not in image.data
    assert decoded(image.data).size == (400, 300)

    again = client.get(src, headers={"If-None-Match": f'"{digest}"'})
    assert again.status_code == 304 and not again.data
    # A signed-in shopper's request is cached the same way: the image is nobody's own.
    shopper = sign_in("user_shopper")
    assert client.get(src).headers["Cache-Control"] == "public, max-age=31536000, immutable"
    # The cart's line shows the same image.
    with app.app_context():
        cart.add(shopper.id, quantity=1, slug="desk-lamp")
        db.session.commit()
    assert f'<img class="line-image" src="{src}"' in client.get("/cart").get_data(as_text=True)

    for unknown in ("0" * 64, "A" * 64, "../" * 21 + "x", digest[:63]):
        assert client.get(f"/images/{unknown}").status_code == 404


@pytest.mark.parametrize(
    ("data", "filename", "sentence"),
    [
        (SVG, "lamp.png", NOT_AN_IMAGE),  # an SVG called .png: its content decides
        (SVG, "lamp.svg", NOT_AN_IMAGE),
        (image_bytes("PNG"), "lamp.html", NOT_AN_IMAGE),  # a real PNG, but a name no image has
        (b"", "lamp.png", "Image: the file is empty; choose a PNG, JPEG or WebP image."),
        (image_bytes("JPEG", (200, 200))[:300], "lamp.jpg", "Image: this file is damaged or incomplete"),
        (png_header_only(100_000, 100_000), "bomb.png", "Image: at most 6,000 pixels on a side"),
        (b"\xff\xd8\xff" + b"\0" * UPLOAD_MAX_BYTES, "huge.jpg", FILE_TOO_LARGE),
    ],
    ids=["svg-called-png", "svg", "wrong-extension", "empty", "truncated", "bomb", "over-5-mb"],
)
def test_a_refused_upload_is_one_sentence_on_the_form_and_nothing_is_saved(app, staff, data, filename, sentence):
    response = upload(staff, "/admin/products/new", data, filename=filename)
    page = response.get_data(as_text=True)
    assert response.status_code == 200
    errors = re.findall(r'<div id="image_file-error"><p class="field-error">([^<]*)</p></div>', page)
    assert len(errors) == 1 and errors[0].startswith(sentence.replace("'", "&#39;")), page
    assert 'aria-invalid="true"' in page
    assert stored(app) == ([], 0)


def test_only_staff_with_the_forms_token_can_upload(app, staff, client, sign_in, make_product):
    png = image_bytes("PNG")
    mug = make_product("mug")
    signed_out = app.test_client()
    sign_in("user_shopper")  # a shopper, with a valid CSRF token of their own

    def post(who, path: str, token: str | None):
        form = {**PRODUCT, "image_file": (io.BytesIO(png), "lamp.png")}
        return who.post(path, data={**form, "csrf_token": token} if token else form, content_type="multipart/form-data")

    for path in ("/admin/products/new", f"/admin/products/{mug}"):
        assert post(client, path, csrf_token_from(client, "/")).status_code == 403
        assert post(staff, path, None).status_code == 400
        assert post(signed_out, path, csrf_token_from(signed_out, "/")).headers["Location"].startswith("/sign-in")
    assert stored(app) == ([None], 0)


def test_a_body_past_the_forms_limit_is_refused_without_a_500(app, staff):
    response = upload(staff, "/admin/products/new", b"\xff\xd8\xff" + b"\0" * (3 * UPLOAD_MAX_BYTES))
    assert response.status_code == 413
    assert stored(app) == ([], 0)


def test_replacing_or_removing_an_image_keeps_the_path_and_frees_what_no_product_shows(app, staff, client):
    first, second = image_bytes("PNG"), image_bytes("JPEG")
    upload(staff, "/admin/products/new", first, image="products/ceramic-mug.svg")
    upload(staff, "/admin/products/new", first, slug="lamp-two", name="Lamp two")  # the same bytes: one row
    ([one, two], count) = stored(app)
    assert one == two and count == 1

    upload(staff, "/admin/products/1", second, filename="lamp.jpg", seen_stock="4")
    ([new, two], count) = stored(app)
    assert new != two and count == 2  # the old image is still shown by lamp-two: kept
    assert client.get(f"/images/{new}").headers["Content-Type"] == "image/jpeg"

    upload(staff, "/admin/products/2", None, slug="lamp-two", name="Lamp two", seen_stock="4", remove_image_file="y")
    assert stored(app) == ([new, None], 1)  # nothing shows the first image any more: deleted

    # Saving the form without a file keeps the upload; removing it shows the path typed in again.
    upload(staff, "/admin/products/1", None, image="products/ceramic-mug.svg", seen_stock="4")
    assert stored(app) == ([new, None], 1)
    upload(staff, "/admin/products/1", None, image="products/ceramic-mug.svg", seen_stock="4", remove_image_file="y")
    assert stored(app) == ([None, None], 0)
    page = client.get("/products/desk-lamp").get_data(as_text=True)
    assert [src.split("?")[0] for src in IMG_SRC.findall(page)] == ["/static/products/ceramic-mug.svg"]
    assert "Now shown: static/products/ceramic-mug.svg." in staff.get("/admin/products/1").get_data(as_text=True)
