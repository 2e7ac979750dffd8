"""`flask webhooks list` and `flask webhooks replay`: the delivery history and re-processing."""

from __future__ import annotations

import click
from sqlalchemy import select

from shop.extensions import db
from shop.models import WebhookEvent, WebhookStatus
from shop.webhooks import bp, history
from shop.webhooks.inbox import OUTCOMES, replay, sources

webhooks_cli = bp.cli  # `flask webhooks …`
webhooks_cli.short_help = "Webhook history (Clerk and Stripe) and replay."


@webhooks_cli.command("list")
@click.option("--status", type=click.Choice([s.value for s in WebhookStatus]), help="Only events in this status.")
@click.option("--limit", default=20, show_default=True, type=click.IntRange(1, 10_000))
@click.option("--source", help="Only this source's events: clerk or stripe.")
def list_events(status: str | None, limit: int, source: str | None) -> None:
    """Show the latest webhook deliveries (both sources), newest first."""
    if source is not None and source not in sources():  # the sources register when the app is built
        raise click.BadParameter(f"{source!r} is not one of {', '.join(sources())}.", param_hint="--source")
    events = history.latest(limit=limit, status=status, source=source)
    if not events:
        click.echo("No webhook events.")
        return
    for event in events:
        line = (
            f"{event.created_at:%Y-%m-%d %H:%M:%S}  {event.source:<6}  {event.status:<9}  {event.type or '-':<20}  "
            f"{event.svix_id}  {event.clerk_user_id or '-'}  attempts={event.attempts}"
        )
        if event.error:
            line += f"  error={event.error[:120]}"
        click.echo(line)


@webhooks_cli.command("replay")
@click.argument("svix_ids", nargs=-1)
@click.option("--failed", "all_failed", is_flag=True, help="Replay every failed event.")
def replay_command(svix_ids: tuple[str, ...], all_failed: bool) -> None:
    """Re-process stored events (by svix-id or Stripe evt_ id, or every failed one) once their cause is fixed."""
    if bool(svix_ids) == all_failed:
        raise click.UsageError("Give SVIX_ID… or --failed (one of the two).")
    query = select(WebhookEvent)
    if all_failed:
        query = query.where(WebhookEvent.status == WebhookStatus.FAILED).order_by(WebhookEvent.created_at)
    else:
        query = query.where(WebhookEvent.svix_id.in_(svix_ids))
    stored = db.session.execute(
        query.with_only_columns(WebhookEvent.source, WebhookEvent.svix_id, WebhookEvent.payload)
    ).all()
    db.session.rollback()  # process() owns the transactions from here
    missing = set(svix_ids) - {svix_id for _, svix_id, _ in stored}
    for svix_id in sorted(missing):
        click.echo(f"{svix_id}: no such webhook event", err=True)
    failures = len(missing)
    for source, svix_id, payload in stored:
        result = replay(source, svix_id, payload)
        click.echo(f"{svix_id}: {result}")
        if result not in OUTCOMES:
            failures += 1
    if not stored and not missing:
        click.echo("No failed webhook events.")
    if failures:
        raise SystemExit(1)
