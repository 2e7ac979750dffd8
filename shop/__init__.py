"""The Flask storefront whose shoppers sign in with Clerk, with a PostgreSQL mirror of Clerk's users."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from flask import Flask

from shop import config, security, static_files
from shop.config import ConfigError
from shop.database import DIRECT_BIND

__all__ = ["ConfigError", "create_app"]

PROJECT_ROOT = Path(__file__).resolve().parent.parent
log = logging.getLogger("shop")
# What the app says while it boots (which database, the stand-in's warning): useful above a server's
# "Running on", noise above the output of `flask seed` or `flask users list`.
boot_log = logging.getLogger("shop.boot")


def create_app(test_config: Mapping[str, Any] | None = None) -> Flask:
    """Build the app. `test_config` replaces the environment (settings by their env names) and
    may carry Flask options such as TESTING; with None, settings come from os.environ."""
    app = Flask(
        __name__,
        instance_path=str(PROJECT_ROOT / "instance"),
        template_folder=str(PROJECT_ROOT / "templates"),
        static_folder=str(PROJECT_ROOT / "static"),
    )
    env: Mapping[str, Any] = os.environ if test_config is None else test_config
    app.testing = bool(env.get("TESTING", False))
    Path(app.instance_path).mkdir(parents=True, exist_ok=True)

    app.config.update(
        config.load(env, production=not (app.debug or app.testing), instance_path=Path(app.instance_path))
    )
    configure_logging(app)
    configure_database(app)
    register_extensions(app)
    register_blueprints(app)
    register_commands(app)
    register_error_handlers(app)
    register_template_context(app)
    security.register(app)
    static_files.register(app)  # ?v=<content hash> on static URLs, kept a year by browsers
    return app


def configure_logging(app: Flask) -> None:
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    log.setLevel(logging.DEBUG if app.debug else logging.INFO)
    # pgserver echoes initdb's whole output at INFO; Alembic lists every plugin it sets up.
    for chatty in ("pgserver", "alembic.runtime.plugins"):
        logging.getLogger(chatty).setLevel(logging.WARNING)
    boot_log.setLevel(logging.ERROR if is_one_shot_command() else logging.NOTSET)


def is_one_shot_command() -> bool:
    """`flask seed`, `flask db upgrade`, `flask users list`…: a command that prints its own output and exits."""
    return Path(sys.argv[0]).name == "flask" and sys.argv[1:2] != ["run"]


def configure_database(app: Flask) -> None:
    url = app.config["DATABASE_URL"]
    if url is None:
        from devtools import embedded_postgres  # development only: production requires DATABASE_URL

        url = embedded_postgres.start(Path(app.instance_path) / "pgdata")
        boot_log.info("Database: embedded PostgreSQL in %s (make stop stops it)", Path(app.instance_path) / "pgdata")
    else:
        boot_log.info("Database: %s", config.describe_database_url(url))
    url, behind_pooler = config.without_pooler_flag(url)
    app.config["SQLALCHEMY_DATABASE_URI"] = url
    connect_args: dict[str, Any] = {"connect_timeout": 5}
    direct_url = app.config["DATABASE_URL_DIRECT"]
    if direct_url:
        # A direct URL of its own means DATABASE_URL is pooled; migrations and the sync's lock use
        # it (shop.database.session_engine), through a small pool of their own.
        direct_url, _ = config.without_pooler_flag(direct_url)
        behind_pooler = behind_pooler or direct_url != url
        app.config.setdefault("SQLALCHEMY_BINDS", {})[DIRECT_BIND] = {
            "url": direct_url,
            "pool_pre_ping": True,
            "pool_size": 1,
            "max_overflow": 2,
            "hide_parameters": True,
            "connect_args": {"connect_timeout": 5},
        }
    app.config["SHOP_DATABASE_POOLED"] = behind_pooler
    if behind_pooler:
        # A transaction-mode pooler (pgbouncer, Neon's -pooler host) hands each transaction to any
        # server connection: psycopg's server-side prepared statements would not be there next time.
        connect_args["prepare_threshold"] = None
        boot_log.info("Database: behind a transaction-mode pooler, server-side prepared statements off")
    app.config.setdefault(
        "SQLALCHEMY_ENGINE_OPTIONS",
        {
            "pool_pre_ping": True,  # a connection the server dropped is replaced before use, not failed on
            "pool_size": 5,
            "max_overflow": 10,
            "pool_recycle": 1800,
            "pool_timeout": 10,
            # Bound values (e-mails, payloads) stay out of error messages and logs.
            "hide_parameters": True,
            "connect_args": connect_args,
        },
    )


def register_extensions(app: Flask) -> None:
    from shop import models, read_only_commit  # noqa: F401  (the tables must be known to db.metadata and Alembic)
    from shop.extensions import csrf, db, migrate
    from shop.mail import models as mail_models  # noqa: F401  (the outbox)
    from shop.revoked_sessions import RevokedSession  # noqa: F401  (Clerk sessions refused from the next request)
    from shop.store import erasure
    from shop.store import models as store_models  # noqa: F401  (products, carts, orders)

    db.init_app(app)
    read_only_commit.register(app)
    erasure.register()  # a tombstone (shop.mirror) erases the store's carts and address books too
    migrate.init_app(app, db, directory=str(PROJECT_ROOT / "migrations"))
    csrf.init_app(app)


def register_blueprints(app: Flask) -> None:
    from shop import admin, api, auth, inputs, metrics, payments, storefront, webhooks

    inputs.register(app)  # first: the blueprints' routes name its URL converters

    app.register_blueprint(auth.bp)  # first: its before_request hook loads the signed-in user
    app.register_blueprint(api.bp)
    app.register_blueprint(webhooks.bp)
    app.register_blueprint(admin.bp)
    app.register_blueprint(storefront.bp)  # the catalogue, cart, checkout, orders; `flask seed`
    app.register_blueprint(payments.bp)  # Stripe: the webhook, the return page; `flask payments sweep`
    metrics.register(app)  # GET /metrics, and the request counters it shows
    if app.config["SHOP_DEV_AUTH"]:
        from devtools import clerk_standin  # development and tests only: production refuses SHOP_DEV_AUTH

        clerk_standin.configure(app)
        boot_log.warning("The local Clerk stand-in is ON (SHOP_DEV_AUTH): sign-in is simulated, for development only.")
    if app.config["SHOP_DEV_STRIPE"]:
        from devtools import stripe_standin  # development and tests only: production refuses SHOP_DEV_STRIPE

        stripe_standin.configure(app)
        boot_log.warning(
            "The local Stripe stand-in is ON (SHOP_DEV_STRIPE): payments are simulated, for development only."
        )


def register_commands(app: Flask) -> None:
    from shop import models
    from shop.extensions import db
    from shop.mail.cli import mail_cli
    from shop.store.cli import orders_cli
    from shop.sync.cli import sync_cli

    app.cli.add_command(sync_cli)
    app.cli.add_command(mail_cli)
    app.cli.add_command(orders_cli)  # `flask orders export`

    @app.shell_context_processor
    def shell_context() -> dict[str, Any]:
        from shop.store import models as store

        return {
            "db": db,
            "User": models.User,
            "Role": models.Role,
            "WebhookEvent": models.WebhookEvent,
            "Product": store.Product,
            "Cart": store.Cart,
            "CartItem": store.CartItem,
            "Order": store.Order,
            "OrderItem": store.OrderItem,
            "OrderStatus": store.OrderStatus,
            "PaymentStatus": store.PaymentStatus,
            "Address": store.Address,
        }


def register_error_handlers(app: Flask) -> None:
    from shop import errors

    errors.register(app)


def register_template_context(app: Flask) -> None:
    from shop import images
    from shop.clerk import frontend

    images.register(app)  # `image_src`: which profile-image URLs may reach <img src>

    @app.context_processor
    def frontend_context() -> dict[str, Any]:
        return {**frontend.template_context(app.config), "dev_stripe": app.config["SHOP_DEV_STRIPE"]}
