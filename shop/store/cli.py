"""`flask orders export`: the orders of a date range as CSV, for the books (the admin's download, by cron)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import click
from flask.cli import AppGroup

from shop.store import exports

orders_cli = AppGroup("orders", help="Orders: the CSV export for the books.")
DATE = click.DateTime(formats=["%Y-%m-%d"])


@orders_cli.command("export")
@click.option("--from", "start", type=DATE, required=True, help="First day, such as 2026-12-01 (UTC).")
@click.option("--to", "end", type=DATE, required=True, help="Last day, included, such as 2026-12-31 (UTC).")
@click.option(
    "--output",
    type=click.Path(dir_okay=False, writable=True, path_type=Path),
    help="Write the CSV to this file (replaced if it exists) instead of standard output.",
)
def export(start: datetime, end: datetime, output: Path | None) -> None:
    """One row per order line, the order's amounts on its first line only; UTF-8 with a byte order mark."""
    try:
        rows = exports.order_lines_csv(start.date(), end.date())
    except exports.ExportError as exc:
        raise click.BadParameter(str(exc), param_hint="'--to'") from None
    if output is None:
        for row in rows:
            # Bytes, not text (click.echo writes them to the binary stream): the terminal's or cron's encoding
            # (ASCII under LANG=C) must not decide the file's.
            click.echo(row.encode(), nl=False)
        return
    count = -1  # the header is not an order line
    with output.open("w", encoding="utf-8", newline="") as file:  # newline="": the csv module writes CRLF itself
        for row in rows:
            file.write(row)
            count += 1
    click.echo(f"{count} order line(s) written to {output}.", err=True)
