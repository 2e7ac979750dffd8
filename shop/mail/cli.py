"""`flask mail send-pending`: send what the outbox holds (cron, or after an SMTP outage)."""

from __future__ import annotations

import click
from flask.cli import AppGroup

from shop.mail import outbox

mail_cli = AppGroup("mail", help="Order e-mails: the outbox.")


@mail_cli.command("send-pending")
@click.option("--now", "ignore_schedule", is_flag=True, help="Also the e-mails whose next retry is later.")
@click.option("--limit", default=500, show_default=True, type=click.IntRange(1, 100_000))
def send_pending(ignore_schedule: bool, limit: int) -> None:
    """Send the pending e-mails that are due; exit 1 if any failed (they stay pending, to be retried)."""
    report = outbox.send_due(limit=limit, ignore_schedule=ignore_schedule)
    for error in report.errors:
        click.echo(error, err=True)
    click.echo(f"sent {report.sent}, failed {report.failed}")
    if report.failed or (report.errors and not report.sent):
        raise SystemExit(1)
