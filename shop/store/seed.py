"""The demo catalogue that `flask seed` loads: 14 products, with images shipped in static/products/, and
two shipping rates."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Boolean, func, literal_column, select
from sqlalchemy.dialects.postgresql import insert

from shop.extensions import db
from shop.store.models import Product, ShippingRate


@dataclass(frozen=True)
class DemoProduct:
    slug: str
    name: str
    description: str
    price_cents: int
    stock: int
    currency: str = "EUR"

    @property
    def image(self) -> str:
        return f"products/{self.slug}.svg"


DEMO_PRODUCTS = [
    DemoProduct("ceramic-mug", "Ceramic mug", "A heavy stoneware mug, glazed in teal. Holds 350 ml.", 1450, 40),
    DemoProduct("linen-tote", "Linen tote bag", "Washed linen, long handles, an inside pocket for keys.", 2200, 25),
    DemoProduct("dot-notebook", "Dot-grid notebook", "A5, 160 pages of 100 g paper that fountain pens love.", 1800, 60),
    DemoProduct("fountain-pen", "Fountain pen", "Steel nib (medium), a converter and two ink cartridges.", 3900, 12),
    DemoProduct("desk-plant", "Desk plant", "A small snake plant in a 9 cm terracotta pot. Hard to kill.", 1600, 18),
    DemoProduct("wool-socks", "Wool socks", "Merino blend, ribbed cuff; sizes 39–46.", 1500, 50),
    DemoProduct("tea-sampler", "Tea sampler", "Six loose-leaf teas in tins: green, black, oolong, herbal.", 2400, 30),
    DemoProduct("soy-candle", "Soy candle", "Fig and cedar, cotton wick, about 40 hours.", 1900, 22),
    DemoProduct("city-poster", "City poster", "A 50×70 cm risograph print of a city at dusk.", 2900, 15),
    DemoProduct("water-bottle", "Steel water bottle", "Double-walled, keeps water cold for a day. 750 ml.", 2700, 35),
    DemoProduct("cotton-cap", "Cotton cap", "Six panels, an adjustable strap, washed cotton.", 2100, 28),
    DemoProduct("playing-cards", "Playing cards", "A linen-finish deck with a hand-drawn court.", 1200, 45),
    DemoProduct("pencil-set", "Pencil set", "Twelve graphite pencils from 4H to 8B in a tin.", 1100, 55),
    DemoProduct("enamel-pin", "Enamel pin", "A hard-enamel shopping-bag pin with a rubber clutch.", 800, 3),
]


def seed(*, reset: bool = False) -> tuple[int, int]:
    """Insert the demo products that are missing, matched by slug; commits. Returns (added, reset).

    Products that exist are left as the staff made them (price, stock, active), so running it
    again (as `make run` does) changes nothing. With reset=True they get their demo values back.
    """
    rows = [
        {
            "slug": p.slug,
            "name": p.name,
            "description": p.description,
            "price_cents": p.price_cents,
            "currency": p.currency,
            "stock": p.stock,
            "active": True,
            "image": p.image,
        }
        for p in DEMO_PRODUCTS
    ]
    statement = insert(Product).values(rows)
    if reset:
        new = statement.excluded
        statement = statement.on_conflict_do_update(
            index_elements=[Product.slug],
            set_={**{column: new[column] for column in rows[0] if column != "slug"}, "updated_at": func.now()},
        )
    else:
        statement = statement.on_conflict_do_nothing(index_elements=[Product.slug])
    # xmax is 0 on a freshly inserted row version
    fresh_rows = list(db.session.scalars(statement.returning(literal_column("xmax = 0", Boolean))))
    db.session.commit()
    added = sum(fresh_rows)
    return added, len(fresh_rows) - added


# Standard is free from €50, so the demo shows both a paid and a free shipping line.
DEMO_SHIPPING_RATES = [
    {
        "name": "Standard",
        "price_cents": 490,
        "currency": "EUR",
        "delivery_estimate": "2–4 days",
        "free_above_cents": 5000,
    },
    {
        "name": "Express",
        "price_cents": 990,
        "currency": "EUR",
        "delivery_estimate": "next day",
        "free_above_cents": None,
    },
]


def seed_shipping_rates() -> int:
    """Add the demo rates whose name no rate has yet (staff's edits, even a deactivation, are kept); commits.
    Returns how many were added."""
    names = set(db.session.scalars(select(ShippingRate.name)))
    missing = [rate for rate in DEMO_SHIPPING_RATES if rate["name"] not in names]
    db.session.add_all(ShippingRate(**rate) for rate in missing)
    db.session.commit()
    return len(missing)
