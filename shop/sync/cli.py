"""`flask sync-clerk sync|status|user`: reconcile the mirror with Clerk, report drift, re-sync one user."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import NoReturn

import click
from flask.cli import AppGroup
from sqlalchemy.exc import SQLAlchemyError

from shop.clerk.api import ClerkAPI, ClerkAPIError, clerk_api
from shop.clerk.users import NotAClerkUser
from shop.database import DirectURLMissing
from shop.mirror import Change
from shop.sync import service
from shop.webhooks.service import describe_error

EXIT_FAILED = 1
EXIT_LOCKED = 75  # EX_TEMPFAIL: try again later

sync_cli = AppGroup("sync-clerk", help="Reconcile the user mirror with Clerk's Backend API.")


def _fail(message: str, code: int = EXIT_FAILED) -> NoReturn:
    click.echo(f"Error: {message}", err=True)
    raise SystemExit(code)


def _api() -> ClerkAPI:
    try:
        return clerk_api()
    except ClerkAPIError as exc:
        _fail(str(exc))


class _Bar:
    """click's progress bar, on a terminal."""

    def __init__(self) -> None:
        self.bar = None

    def start(self, total: int) -> None:
        self.bar = click.progressbar(length=max(total, 1), label="Listing Clerk users", show_pos=True)
        self.bar.__enter__()

    def advance(self, listed: int) -> None:
        if self.bar is not None:
            self.bar.update(listed)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.__exit__(None, None, None)


class _Lines:
    """Plain lines for logs and cron mail: one at least every tenth of the way or every 10 s."""

    def __init__(self) -> None:
        self.total = self.done = self.shown = 0
        self.last = time.monotonic()

    def start(self, total: int) -> None:
        self.total = total
        click.echo(f"Clerk has {total} users; listing them oldest first, {service.PAGE_SIZE} per page.")

    def advance(self, listed: int) -> None:
        self.done += listed
        step = max(self.total // 10, 1)
        if self.done - self.shown >= step or time.monotonic() - self.last >= 10:
            click.echo(f"listed {self.done}/{self.total} users")
            self.shown, self.last = self.done, time.monotonic()

    def close(self) -> None:
        pass


@contextmanager
def _progress() -> Iterator[service.Progress]:
    progress = _Bar() if sys.stdout.isatty() else _Lines()
    try:
        yield progress
    finally:
        progress.close()


def _ids(title: str, ids: list[str], limit: int) -> None:
    click.echo(f"{title}: {len(ids)}")
    for clerk_id in ids[:limit]:
        click.echo(f"  {clerk_id}")
    if len(ids) > limit:
        click.echo(f"  … and {len(ids) - limit} more (--limit)")


@sync_cli.command("sync", short_help="Reconcile every user with Clerk (create, update, tombstone).")
@click.option("--dry-run", is_flag=True, help="Report what would change; write nothing.")
@click.option(
    "--batch-size",
    default=service.DEFAULT_BATCH_SIZE,
    show_default=True,
    type=click.IntRange(1, service.MAX_BATCH_SIZE),
    help="Users written per transaction.",
)
@click.option(
    "--max-tombstones",
    default=service.DEFAULT_MAX_TOMBSTONES,
    show_default=True,
    type=click.IntRange(0),
    help="Refuse to tombstone when more live users than this are missing from Clerk's listing.",
)
def sync_command(dry_run: bool, batch_size: int, max_tombstones: int) -> None:
    """Bring every user of the mirror up to what Clerk holds: create, update, tombstone."""
    api = _api()
    try:
        with service.sync_lock(), _progress() as progress:
            report = service.sync(
                api, batch_size=batch_size, dry_run=dry_run, max_tombstones=max_tombstones, progress=progress
            )
    except service.SyncAlreadyRunning as exc:
        _fail(str(exc), EXIT_LOCKED)
    except DirectURLMissing as exc:
        _fail(str(exc))
    except SQLAlchemyError as exc:
        _fail(f"The database is unreachable ({describe_error(exc)}); check DATABASE_URL.")
    click.echo(f"Listed {report.listed} users in {report.pages} pages (Clerk counted {report.clerk_count}).")
    if report.missing:
        click.echo(f"Checked {report.missing} live users missing from the listing one by one with Clerk.")
    for error in report.errors:
        click.echo(f"Error: {error}", err=True)
    prefix = "Dry run, nothing written: " if dry_run else ""
    click.echo(f"{prefix}{report.summary()}")
    if not report.ok:
        raise SystemExit(EXIT_FAILED)
    if dry_run:
        pending = report.created + report.updated + report.tombstoned
        click.echo(
            f"{pending} users would change; run without --dry-run to apply." if pending else "Nothing to change."
        )
    else:
        live, _ = service.mirror_counts()
        click.echo(f"Consistent: the mirror has {live} live users.")


@sync_cli.command("status", short_help="Counts and drift between Clerk and the mirror; writes nothing.")
@click.option("--details", is_flag=True, help="List every user Clerk has (one call per 500) and show who differs.")
@click.option("--limit", default=20, show_default=True, type=click.IntRange(0), help="Ids shown per kind of drift.")
def status_command(details: bool, limit: int) -> None:
    """Clerk's user count against the mirror's; with --details, who differs. Writes nothing."""
    api = _api()
    try:
        if details:
            with _progress() as progress:
                report = service.status(api, details=True, progress=progress)
        else:
            report = service.status(api)
    except SQLAlchemyError as exc:
        _fail(f"The database is unreachable ({describe_error(exc)}); check DATABASE_URL.")
    clerk = "unknown" if report.clerk_count is None else str(report.clerk_count)
    click.echo(f"Clerk:  {clerk} users")
    click.echo(f"Mirror: {report.mirror_live} live users, {report.mirror_tombstones} tombstones")
    if report.drift is not None:
        if report.drift == 0:
            click.echo("Counts: equal")
        else:
            more = "Clerk" if report.drift > 0 else "the mirror"
            click.echo(f"Counts: {more} has {abs(report.drift)} more; `flask sync-clerk sync` repairs it")
    if details and not report.errors:
        _ids("Missing locally (in Clerk, not in the mirror)", report.missing_locally, limit)
        _ids("Stale locally (Clerk has newer data)", report.stale, limit)
        _ids("Live locally but gone from Clerk (Clerk answers 404)", report.gone_from_clerk, limit)
        if report.unconfirmed:
            _ids("Live locally, not in Clerk's listing (not checked one by one)", report.unconfirmed, limit)
        if report.tombstoned_but_in_clerk:
            _ids("Tombstoned locally but still in Clerk (never revived)", report.tombstoned_but_in_clerk, limit)
        click.echo(f"In sync: {report.in_sync}")
    for error in report.errors:
        click.echo(f"Error: {error}", err=True)
    click.echo(f"API calls: {report.api_calls}")
    if report.errors:
        raise SystemExit(EXIT_FAILED)


@sync_cli.command("user", short_help="Re-sync one user by Clerk id.")
@click.argument("user_id")
@click.option("--dry-run", is_flag=True, help="Report what would change; write nothing.")
def user_command(user_id: str, dry_run: bool) -> None:
    """Re-sync one user (USER_ID is Clerk's user_…) through the same path as the full sync."""
    api = _api()
    try:
        change, in_clerk = service.sync_user(api, user_id, dry_run=dry_run)
    except ClerkAPIError as exc:
        _fail(str(exc))
    except NotAClerkUser as exc:
        _fail(f"{user_id}: {exc}.")
    except SQLAlchemyError as exc:
        _fail(f"The database is unreachable ({describe_error(exc)}); check DATABASE_URL.")
    if change is None:
        _fail(f"{user_id}: Clerk has no such user and neither has the mirror; check the id.")
    would = "would be " if dry_run and change in (Change.CREATED, Change.UPDATED, Change.TOMBSTONED) else ""
    where = "in Clerk" if in_clerk else "Clerk answers 404"
    click.echo(f"{user_id}: {would}{change.value} ({where})")
