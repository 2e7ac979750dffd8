"""The address book at /account/addresses: add, edit, delete, choose the default; nobody reaches
another's; bad input is a 400 with the field named; a tombstone erases the book."""

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from shop.extensions import db
from shop.store.models import Address
from tests.store.conftest import csrf_token_from
from tests.support import deleted_event

HOME = {"name": "Ada Lovelace", "line1": "12 Rue de la Paix", "postal_code": "75002", "city": "Paris", "country": "fr"}
WORK = {**HOME, "line1": "1 Avenue de l'Opéra", "postal_code": "75001"}


def book(app, clerk_id):
    from shop.models import User

    with app.app_context():
        rows = db.session.execute(
            select(Address.line1, Address.is_default, Address.country)
            .join(User, User.id == Address.user_id)
            .where(User.clerk_id == clerk_id)
            .order_by(Address.id)
        ).all()
        db.session.rollback()
        return [tuple(row) for row in rows]


def add(client, fields, **extra):
    token = csrf_token_from(client, "/account/addresses")
    return client.post("/account/addresses", data={"csrf_token": token, **fields, **extra})


def ids(app):
    with app.app_context():
        return db.session.scalars(select(Address.id).order_by(Address.id)).all()


def test_add_edit_default_and_delete(app, client, sign_in):
    sign_in("user_book")
    assert add(client, HOME).status_code == 302
    assert add(client, WORK).status_code == 302
    assert book(app, "user_book") == [("12 Rue de la Paix", True, "FR"), ("1 Avenue de l'Opéra", False, "FR")]
    home, work = ids(app)
    token = csrf_token_from(client, "/account/addresses")
    client.post(f"/account/addresses/{work}/default", data={"csrf_token": token})
    assert book(app, "user_book") == [("12 Rue de la Paix", False, "FR"), ("1 Avenue de l'Opéra", True, "FR")]
    edit = f"/account/addresses/{home}/edit"
    assert client.post(edit, data={"csrf_token": token, **HOME, "line1": "13 Rue de la Paix"}).status_code == 302
    client.post(f"/account/addresses/{work}/delete", data={"csrf_token": token})
    assert book(app, "user_book") == [("13 Rue de la Paix", True, "FR")]  # the default moved to the one left
    page = client.get("/account/addresses").get_data(as_text=True)
    assert "13 Rue de la Paix" in page and "Default" in page


def test_bad_input_is_a_400_naming_the_field(app, client, sign_in):
    sign_in("user_typo")
    for fields in (
        {**HOME, "country": "France"},
        {**HOME, "city": ""},
        {**HOME, "line1": "x" * 201},
    ):
        response = add(client, fields)
        assert response.status_code == 400
        assert "field-error" in response.get_data(as_text=True)
    assert add(client, {**HOME, "name": "A\x00da"}).status_code == 400  # the app-wide NUL rule (shop.inputs)
    assert book(app, "user_typo") == []
    assert client.post("/account/addresses", data=HOME).status_code == 400  # no CSRF token


def test_nobody_reaches_anothers_addresses(app, client, sign_in):
    other = app.test_client()
    sign_in("user_owner", as_client=other)
    add(other, HOME)
    [theirs] = ids(app)
    sign_in("user_intruder")
    token = csrf_token_from(client, "/account/addresses")
    assert client.get(f"/account/addresses/{theirs}/edit").status_code == 404
    assert client.post(f"/account/addresses/{theirs}/edit", data={"csrf_token": token, **WORK}).status_code == 404
    assert client.post(f"/account/addresses/{theirs}/default", data={"csrf_token": token}).status_code == 404
    assert client.post(f"/account/addresses/{theirs}/delete", data={"csrf_token": token}).status_code == 404
    assert "12 Rue de la Paix" not in client.get("/account/addresses").get_data(as_text=True)
    assert book(app, "user_owner") == [("12 Rue de la Paix", True, "FR")]


def test_a_deleted_user_loses_the_address_book(app, client, sign_in, deliver):
    sign_in("user_gone")
    add(client, HOME)
    assert deliver(deleted_event("user_gone")).json == {"status": "processed"}
    assert book(app, "user_gone") == []


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(fields=st.fixed_dictionaries({key: st.text(max_size=250) for key in HOME}))
def test_any_typed_address_is_saved_or_refused_never_a_500(client, sign_in, fields):
    sign_in("user_fuzz")
    assert add(client, fields).status_code in (302, 400)
