"""Staff see the whole mirrored user: /admin/users/<id> (metadata, phone, ban, lock, opt-in) and the
users list's opted-in filter."""

import html
import re

import pytest

from shop.models import Role
from tests.support import clerk_user, deleted_event, event


@pytest.fixture
def staff(app, sign_in):
    staff = app.test_client()
    sign_in("user_admin", as_client=staff, role=Role.ADMIN, email="admin@example.com")
    return staff


def shopper(clerk_id, **fields):
    return event("user.created", clerk_user(clerk_id, email=f"{clerk_id}@example.com", **fields))


def text_of(response) -> str:
    assert response.status_code == 200, response.status_code
    return html.unescape(response.get_data(as_text=True))


def test_the_user_page_shows_metadata_phone_ban_lock_and_opt_in(staff, deliver, user_id):
    deliver(
        shopper(
            "user_rich",
            public_metadata={"plan": "pro"},
            private_metadata={"note": "<script>alert(1)</script>"},
            unsafe_metadata={"marketing_opt_in": True},
            phone_numbers=[{"id": "idn_p", "phone_number": "+15555550199"}],
            primary_phone_number_id="idn_p",
            banned=True,
            locked=True,
        )
    )

    response = staff.get(f"/admin/users/{user_id('user_rich')}")
    body = response.get_data(as_text=True)
    page = text_of(response)

    assert '"plan": "pro"' in page and '"marketing_opt_in": true' in page
    assert "<script>alert(1)</script>" not in body  # metadata is escaped, never markup
    assert "+15555550199" in page
    assert "Banned" in page and "Locked" in page and "Yes, the shopper opted in" in page
    assert "never use it to decide what anyone may do" in page


def test_metadata_the_mirror_refused_reads_not_kept(staff, deliver, user_id):
    deliver(shopper("user_big", public_metadata={"big": "x" * 9000}))
    page = text_of(staff.get(f"/admin/users/{user_id('user_big')}"))
    assert re.search(r'data-testid="admin-user-public_metadata">Not kept\.', page)


def test_a_deleted_users_page_shows_nothing_personal(staff, deliver, user_id):
    deliver(shopper("user_gone", public_metadata={"plan": "pro"}, first_name="Gone"))
    deliver(deleted_event("user_gone"))
    page = text_of(staff.get(f"/admin/users/{user_id('user_gone')}"))
    assert "Deleted in Clerk" in page and '"plan"' not in page and "Gone" not in page


def test_an_unknown_user_is_404_and_shoppers_cannot_see_the_page(app, staff, sign_in, deliver, user_id):
    assert staff.get("/admin/users/999999").status_code == 404
    deliver(shopper("user_nosy"))
    nosy = app.test_client()
    sign_in("user_nosy", as_client=nosy)
    assert nosy.get(f"/admin/users/{user_id('user_nosy')}").status_code in (403, 404)


def test_the_users_list_filters_on_the_opt_in_and_shows_bans(staff, deliver):
    deliver(shopper("user_yes", first_name="Yara", unsafe_metadata={"marketing_opt_in": True}))
    deliver(shopper("user_no", first_name="Noah", unsafe_metadata={"marketing_opt_in": False}))
    deliver(shopper("user_banned", first_name="Bram", banned=True))

    everyone = text_of(staff.get("/admin/users"))
    opted_in = text_of(staff.get("/admin/users?opted_in=1"))

    assert "Yara" in everyone and "Noah" in everyone and "Banned" in everyone
    assert "Yara" in opted_in and "Noah" not in opted_in and "Bram" not in opted_in
