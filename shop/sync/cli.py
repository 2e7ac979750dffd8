"""`flask sync-clerk sync|status|user`: reconcile the mirror with Clerk, check for drift, re-sync one user."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from typing import Any, NoReturn

import click
from flask.cli import AppGroup
from sqlalchemy.exc import SQLAlchemyError

from shop.clerk.api import ClerkAPI, ClerkAPIError, clerk_api
from shop.clerk.users import NotAClerkUser
from shop.clerk_user import sync_user
from shop.database import DirectURLMissing, describe_error
from shop.mirror import Change
from shop.sync import drift, reconcile
from shop.sync.listing import DEFAULT_MAX_TOMBSTONES, PAGE_SIZE, Progress

EXIT_FAILED = 1
EXIT_DRIFT = 1  # status: Clerk and the mirror differ
EXIT_UNCHECKED = 2  # status: Clerk (or the database) could not be reached, so nothing was compared
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
        self.bar: Any = None  # click's ProgressBar, entered by hand: it lives across several calls

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
        click.echo(f"Clerk has {total} users; listing them oldest first, {PAGE_SIZE} per page.")

    def advance(self, listed: int) -> None:
        self.done += listed
        step = max(self.total // 10, 1)
        if self.done - self.shown >= step or time.monotonic() - self.last >= 10:
            click.echo(f"listed {self.done}/{self.total} users")
            self.shown, self.last = self.done, time.monotonic()

    def close(self) -> None:
        pass


@contextmanager
def _progress() -> Iterator[Progress]:
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
    default=reconcile.DEFAULT_BATCH_SIZE,
    show_default=True,
    type=click.IntRange(1, reconcile.MAX_BATCH_SIZE),
    help="Users written per transaction.",
)
@click.option(
    "--max-tombstones",
    default=DEFAULT_MAX_TOMBSTONES,
    show_default=True,
    type=click.IntRange(0),
    help="Refuse to tombstone when more live users than this are missing from Clerk's listing.",
)
@click.option("--if-drift", is_flag=True, help="Compare first (as `status` does); when nothing drifts, write nothing.")
def sync_command(dry_run: bool, batch_size: int, max_tombstones: int, if_drift: bool) -> None:
    """Bring every user of the mirror up to what Clerk holds: create, update, tombstone."""
    api = _api()
    try:
        with reconcile.sync_lock():
            if if_drift and not _drifts(api):
                return
            with _progress() as progress:
                report = reconcile.sync(
                    api, batch_size=batch_size, dry_run=dry_run, max_tombstones=max_tombstones, progress=progress
                )
    except reconcile.SyncAlreadyRunning as exc:
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
        live, _ = drift.mirror_counts()
        click.echo(f"Consistent: the mirror has {live} live users.")


def _drifts(api: ClerkAPI) -> bool:
    """--if-drift: whether a sync is needed; a comparison that cannot be made stops here (exit 2)."""
    report = drift.status(api)
    for error in report.errors:
        click.echo(f"Error: {error}", err=True)
    if report.errors:
        raise SystemExit(EXIT_UNCHECKED)
    if not report.drifted:
        click.echo(f"No drift ({report.in_sync} users agree, {report.api_calls} API calls): nothing written.")
        return False
    click.echo(
        f"Drift: {len(report.missing_locally)} missing, {len(report.stale)} stale, "
        f"{len(report.gone_from_clerk) + len(report.unconfirmed)} gone from Clerk; syncing."
    )
    return True


@sync_cli.command("status", short_help="Drift between Clerk and the mirror, by id; writes nothing. Exit 0/1/2.")
@click.option("--details", is_flag=True, help="Show the ids of the users who differ.")
@click.option("--limit", default=20, show_default=True, type=click.IntRange(0), help="Ids shown per kind of drift.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object on stdout, for machines (ids up to --limit).")
def status_command(details: bool, limit: int, as_json: bool) -> None:
    """Compare every Clerk user with the mirror, by id. Writes nothing.

    Exit 0 when they agree, 1 when they drift (users missing, stale, or live here but gone from
    Clerk: `flask sync-clerk sync` repairs it), 2 when the comparison could not be made (Clerk
    or the database unreachable). Cron, a Kubernetes CronJob or any monitoring can alarm on it.
    """
    try:
        api = clerk_api()
        with _progress() if details and not as_json else nullcontext() as progress:
            report = drift.status(api, progress=progress)
    except ClerkAPIError as exc:  # no CLERK_SECRET_KEY
        report = drift.DriftReport(errors=[str(exc)])
    except SQLAlchemyError as exc:
        problem = f"The database is unreachable ({describe_error(exc)}); check DATABASE_URL."
        report = drift.DriftReport(errors=[problem])
    code = EXIT_UNCHECKED if report.errors else EXIT_DRIFT if report.drifted else 0
    if as_json:
        click.echo(json.dumps(_status_json(report, code, limit)))
    else:
        _print_status(report, details, limit)
    raise SystemExit(code)


def _status_json(report: drift.DriftReport, code: int, limit: int) -> dict[str, object]:
    kinds = {
        "missing_locally": report.missing_locally,
        "stale": report.stale,
        "gone_from_clerk": report.gone_from_clerk,
        "unconfirmed": report.unconfirmed,
        "tombstoned_but_in_clerk": report.tombstoned_but_in_clerk,
    }
    return {
        "result": {0: "in_sync", EXIT_DRIFT: "drift"}.get(code, "unchecked"),
        "exit_code": code,
        "clerk_users": report.clerk_count,
        "mirror_live_users": report.mirror_live,
        "mirror_tombstones": report.mirror_tombstones,
        "in_sync": report.in_sync,
        "counts": {kind: len(ids) for kind, ids in kinds.items()},
        "ids": {kind: ids[:limit] for kind, ids in kinds.items()},
        "api_calls": report.api_calls,
        "errors": report.errors,
    }


def _print_status(report: drift.DriftReport, details: bool, limit: int) -> None:
    clerk = "unknown" if report.clerk_count is None else str(report.clerk_count)
    click.echo(f"Clerk:  {clerk} users")
    click.echo(f"Mirror: {report.mirror_live} live users, {report.mirror_tombstones} tombstones")
    if not report.errors:
        kinds = [
            ("Missing locally (in Clerk, not in the mirror)", report.missing_locally),
            ("Stale locally (Clerk has newer data)", report.stale),
            ("Live locally but gone from Clerk (Clerk answers 404)", report.gone_from_clerk),
            ("Live locally, not in Clerk's listing (not checked one by one)", report.unconfirmed),
            ("Tombstoned locally but still in Clerk (never revived)", report.tombstoned_but_in_clerk),
        ]
        for title, ids in kinds:
            if details:
                _ids(title, ids, limit)
            elif ids:
                click.echo(f"{title}: {len(ids)}")
        click.echo(f"In sync: {report.in_sync}")
        if report.drifted:
            click.echo("Drift: `flask sync-clerk sync` repairs it.")
        else:
            click.echo("No drift: Clerk and the mirror agree.")
    for error in report.errors:
        click.echo(f"Error: {error}", err=True)
    click.echo(f"API calls: {report.api_calls}")


@sync_cli.command("user", short_help="Re-sync one user by Clerk id.")
@click.argument("user_id")
@click.option("--dry-run", is_flag=True, help="Report what would change; write nothing.")
def user_command(user_id: str, dry_run: bool) -> None:
    """Re-sync one user (USER_ID is Clerk's user_…) through the same path as the full sync."""
    api = _api()
    try:
        change, in_clerk = sync_user(api, user_id, dry_run=dry_run)
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
