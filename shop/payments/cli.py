"""`flask payments sweep`: give back the stock of checkouts nobody finished (cron, every few minutes)."""

from __future__ import annotations

import click

from shop.payments import bp, checkout

payments_cli = bp.cli  # `flask payments …`
payments_cli.short_help = "Stripe payments: the sweep of expired checkouts."


@payments_cli.command("sweep")
def sweep() -> None:
    """Expire the Checkout Sessions past their expires_at and give their stock back (once)."""
    counts = checkout.sweep()
    click.echo(f"released {counts['released']}, paid meanwhile {counts['paid']}, still waiting {counts['waiting']}")
