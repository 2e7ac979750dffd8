"""The banners that say a stand-in is on sit in a labelled landmark of their own: screen-reader users who
move from landmark to landmark meet them (axe's `region` rule), and a real setup shows none."""

import re

import pytest

ASIDE = re.compile(r'<aside aria-label="Development mode">(.*?)</aside>', re.S)


@pytest.mark.parametrize(
    ("overrides", "said"),
    [
        ({"SHOP_DEV_AUTH": "1", "SHOP_DEV_STRIPE": "1"}, ["Local Clerk stand-in is on", "Local Stripe stand-in is on"]),
        ({"SHOP_DEV_AUTH": "1", "SHOP_DEV_STRIPE": "0"}, ["Local Clerk stand-in is on"]),
        ({"SHOP_DEV_AUTH": "0", "SHOP_DEV_STRIPE": "1"}, ["Local Stripe stand-in is on"]),
    ],
)
def test_each_stand_in_that_is_on_is_named_inside_the_landmark(make_app, overrides, said):
    page = make_app(**overrides).test_client().get("/").get_data(as_text=True)
    [inside] = ASIDE.findall(page)
    assert [name for name in ("Local Clerk stand-in is on", "Local Stripe stand-in is on") if name in inside] == said
    assert page.count("stand-in is on") == len(said)  # nowhere outside it


def test_no_banner_and_no_empty_landmark_without_a_stand_in(make_app):
    page = make_app(SHOP_DEV_AUTH="0", SHOP_DEV_STRIPE="0").test_client().get("/").get_data(as_text=True)
    assert "Development mode" not in page and "stand-in is on" not in page
