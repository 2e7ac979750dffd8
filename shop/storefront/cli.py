"""`flask seed`: the demo catalogue (idempotent)."""

from __future__ import annotations

import click

from shop.store.seed import DEMO_PRODUCTS, DEMO_SHIPPING_RATES, seed, seed_shipping_rates
from shop.storefront import bp


@bp.cli.command("seed")
@click.option("--reset", is_flag=True, help="Also give existing demo products their demo price, stock and text back.")
def seed_command(reset: bool) -> None:
    """Load the demo catalogue: adds missing demo products and shipping rates, leaves the others as they are."""
    added, reset_count = seed(reset=reset)
    kept = len(DEMO_PRODUCTS) - added - reset_count
    parts = [f"{added} added"]
    if reset:
        parts.append(f"{reset_count} reset")
    else:
        parts.append(f"{kept} already there")
    click.echo(f"Demo catalogue: {len(DEMO_PRODUCTS)} products ({', '.join(parts)}).")
    rates = seed_shipping_rates()
    click.echo(f"Shipping rates: {len(DEMO_SHIPPING_RATES)} demo rates ({rates} added).")
