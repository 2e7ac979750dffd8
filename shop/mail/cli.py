"""`flask mail send-pending`: send what the outbox holds (cron, or after an SMTP outage); `flask mail
retry`: send failed e-mails again once their cause is fixed."""

from __future__ import annotations

import click
from flask.cli import AppGroup

from shop.inputs import MAX_DATABASE_ID
from shop.mail import outbox

mail_cli = AppGroup("mail", help="Order e-mails: the outbox.")
SEND_LIMIT = 500


@mail_cli.command("send-pending")
@click.option("--now", "ignore_schedule", is_flag=True, help="Also the e-mails whose next retry is later.")
@click.option("--limit", default=SEND_LIMIT, show_default=True, type=click.IntRange(1, 100_000))
def send_pending(ignore_schedule: bool, limit: int) -> None:
    """Send the pending e-mails that are due; exit 1 if any failed (they stay pending, to be retried).
    One that cannot be built is marked failed at once and said so, and the others go on."""
    if not _sent(outbox.send_due(limit=limit, ignore_schedule=ignore_schedule)):
        raise SystemExit(1)


@mail_cli.command("retry")
@click.argument("mail_ids", nargs=-1, type=click.IntRange(1, MAX_DATABASE_ID))  # BIGINT: no overflow in SQL
@click.option("--all-failed", is_flag=True, help="Every failed e-mail.")
def retry(mail_ids: tuple[int, ...], all_failed: bool) -> None:
    """Make failed e-mails (by id, or every one) pending again with fresh attempts, then send what is
    due; exit 1 if an id is unknown or not failed, or if an e-mail still could not be built or sent."""
    if bool(mail_ids) == all_failed:
        raise click.UsageError("Give MAIL_ID… or --all-failed (one of the two).")
    result = outbox.retry_failed(None if all_failed else mail_ids)
    for mail_id in result.unknown:
        click.echo(f"mail {mail_id}: no such e-mail", err=True)
    for mail_id, status in result.not_failed.items():
        click.echo(f"mail {mail_id}: {status}, not failed: only a failed e-mail is sent again", err=True)
    refused = bool(result.unknown or result.not_failed)
    if not result.retried:
        click.echo("No failed e-mails." if all_failed else "Nothing retried.")
        raise SystemExit(1 if refused else 0)
    click.echo(f"pending again: {', '.join(f'mail {mail_id}' for mail_id in result.retried)}")
    report = outbox.send_due(limit=max(SEND_LIMIT, len(result.retried)))
    if not _sent(report) or report.unbuildable or refused:  # asked to send, and one still cannot be built
        raise SystemExit(1)


def _sent(report: outbox.SendReport) -> bool:
    """Print what a run did; False when it failed (a send not accepted, or nothing could be sent)."""
    for line in [*report.unbuildable, *report.errors]:
        click.echo(line, err=True)
    given_up = f", could not be built {len(report.unbuildable)}" if report.unbuildable else ""
    click.echo(f"sent {report.sent}, failed {report.failed}{given_up}")
    return not (report.failed or (report.errors and not report.sent))
