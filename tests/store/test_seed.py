"""`flask seed`: at least 12 demo products with images that ship in static/, idempotent; `make run` runs it."""

import re

from sqlalchemy import select

from shop import PROJECT_ROOT
from shop.extensions import db
from shop.store.models import Product
from shop.store.seed import DEMO_PRODUCTS


def products(app) -> dict[str, tuple]:
    with app.app_context():
        rows = db.session.execute(select(Product.slug, Product.name, Product.price_cents, Product.stock, Product.image))
        return {row.slug: tuple(row) for row in rows}


def test_seed_loads_the_demo_with_shipped_images(app, runner, client):
    result = runner.invoke(args=["seed"])
    assert result.exit_code == 0, result.output
    assert f"{len(DEMO_PRODUCTS)} added" in result.output
    loaded = products(app)
    assert len(loaded) >= 12
    for slug, (*_, image) in loaded.items():
        assert (PROJECT_ROOT / "static" / image).is_file(), image
        assert client.get(f"/static/{image}").status_code == 200
        assert client.get(f"/products/{slug}").status_code == 200


def test_seed_is_idempotent_and_keeps_the_staffs_changes(app, runner):
    runner.invoke(args=["seed"])
    with app.app_context():
        db.session.execute(db.update(Product).where(Product.slug == "ceramic-mug").values(price_cents=1, stock=2))
        db.session.commit()
    before = products(app)
    result = runner.invoke(args=["seed"])
    assert result.exit_code == 0
    assert "0 added" in result.output and f"{len(DEMO_PRODUCTS)} already there" in result.output
    assert products(app) == before
    runner.invoke(args=["seed", "--reset"])
    assert products(app)["ceramic-mug"][2:4] == (1450, 40)


def test_make_run_seeds_before_serving():
    makefile = (PROJECT_ROOT / "Makefile").read_text()
    run = re.search(r"^run:.*\n((?:\t.*\n)+)", makefile, re.MULTILINE).group(1)
    assert run.index("seed") < run.index(" run ")


def test_flask_shell_preloads_the_store_models(app):
    with app.app_context():
        context = app.make_shell_context()
    assert {"Product", "Order", "OrderItem", "Cart", "CartItem", "OrderStatus"} <= set(context)
    assert context["Order"] is not None and {"db", "User", "Role"} <= set(context)
