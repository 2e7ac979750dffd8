"""Stripe and mail settings: validated at start, one clear sentence per problem."""

import pytest

from shop.config import ConfigError
from tests.test_config import load

PRODUCTION = {"DATABASE_URL": "postgres://h/db", "SECRET_KEY": "x"}


def test_development_without_stripe_key_runs_the_standin_and_production_does_not():
    assert load({})["SHOP_DEV_STRIPE"] is True
    production = load(PRODUCTION, production=True)
    assert (production["SHOP_DEV_STRIPE"], production["STRIPE_SECRET_KEY"]) == (False, None)
    assert load({"STRIPE_SECRET_KEY": "sk_test_abc"})["SHOP_DEV_STRIPE"] is False


@pytest.mark.parametrize(
    ("env", "production", "message"),
    [
        ({"STRIPE_SECRET_KEY": "pk_test_abc"}, False, "STRIPE_SECRET_KEY must start with sk_test_"),
        ({"STRIPE_WEBHOOK_SECRET": "whsec_ok not_a_secret"}, False, "STRIPE_WEBHOOK_SECRET (secret 2) must start"),
        ({"SHOP_DEV_STRIPE": "1"}, True, "stand-in, which is for development only"),
        ({"SHOP_DEV_STRIPE": "1", "STRIPE_SECRET_KEY": "sk_live_abc"}, False, "cannot be used with a live Stripe key"),
        ({"STRIPE_API_BASE": "ftp://x"}, False, "STRIPE_API_BASE must be an http(s) URL"),
        ({"MAIL_URL": "http://mail.example.com"}, False, "MAIL_URL must look like smtp://"),
        ({"MAIL_URL": "smtp://mail.example.com:port"}, False, "MAIL_URL has a port that is not a number"),
        ({"SMTP_HOST": "mail.example.com", "SMTP_PORT": "x"}, False, "SMTP_PORT must be a port number"),
        ({"SMTP_HOST": "mail.example.com", "SMTP_SECURITY": "maybe"}, False, "SMTP_SECURITY must be"),
    ],
)
def test_bad_settings_are_named(env, production, message):
    with pytest.raises(ConfigError) as error:
        load({**(PRODUCTION if production else {}), **env}, production=production)
    assert any(message in problem for problem in error.value.problems), error.value.problems


def test_rotation_keeps_every_secret():
    assert load({"STRIPE_WEBHOOK_SECRET": " whsec_new  whsec_old "})["STRIPE_WEBHOOK_SECRETS"] == [
        "whsec_new",
        "whsec_old",
    ]


def test_mail_url_and_smtp_settings():
    mail = load({"MAIL_URL": "smtps://user%40x:p%3Ass@mail.example.com"})["MAIL_SMTP"]
    assert mail == {
        "host": "mail.example.com",
        "port": 465,
        "ssl": True,
        "starttls": False,
        "username": "user@x",
        "password": "p:ss",
    }
    assert load({"MAIL_URL": "smtp://mail.example.com"})["MAIL_SMTP"]["starttls"] is True
    smtp = load({"SMTP_HOST": "mail.example.com", "SMTP_PORT": "2525", "SMTP_SECURITY": "none"})["MAIL_SMTP"]
    assert (smtp["port"], smtp["starttls"], smtp["ssl"]) == (2525, False, False)
    assert load({})["MAIL_SMTP"] is None
