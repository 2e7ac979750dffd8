"""The dashboard's mirror-health panel: the figures of shop.health, each with what to do about it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from shop.health import PROVISIONING_WINDOW_HOURS, MirrorHealth

# A quiet endpoint is only suspicious while users sign in for the first time without it: a
# provisioning means a user.created that had not arrived.
QUIET_WEBHOOK_HOURS = 6
REPLAY_ADVICE = "Fix the cause shown on each event, then replay them (here, or `flask webhooks replay --failed`)."


@dataclass(frozen=True)
class Figure:
    title: str
    value: str
    detail: str
    advice: str | None  # what to do; None when nothing is needed
    warn: bool = False
    link: tuple[str, dict[str, str]] | None = None  # an admin page that shows more: (endpoint, arguments)


def ago(then: datetime | None, now: datetime) -> str:
    if then is None:
        return "never"
    seconds = max((now - then).total_seconds(), 0)
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size:
            count = int(seconds // size)
            return f"{count} {unit}{'s' if count > 1 else ''} ago"
    return "just now"


def figures(health: MirrorHealth) -> list[Figure]:
    now, clerk = health.checked_at, health.webhooks["clerk"]
    last = clerk.last_accepted_at
    quiet = last is None or (now - last).total_seconds() > QUIET_WEBHOOK_HOURS * 3600
    lost = quiet and health.provisioned_recently > 0
    return [
        Figure(
            "Last Clerk webhook",
            ago(clerk.last_accepted_at, now),
            "The newest delivery from Clerk that was received and processed.",
            "Webhooks seem to have stopped while new users sign in: check the endpoint in Clerk's dashboard "
            "(Webhooks), replay missed messages from Svix's portal, then run `flask sync-clerk sync`."
            if lost
            else None,
            warn=lost,
            link=("admin.webhooks_list", {}),
        ),
        Figure(
            "Failed webhook events",
            str(clerk.failed),
            "Deliveries that could not be processed; Svix retries them for about a day.",
            REPLAY_ADVICE if clerk.failed else None,
            warn=clerk.failed > 0,
            link=("admin.webhooks_list", {"status": "failed"}),
        ),
        Figure(
            f"First sign-ins in {PROVISIONING_WINDOW_HOURS} h",
            str(health.provisioned_recently),
            "Users fetched from Clerk at their first sign-in because their webhook had not arrived yet. "
            "A few are normal (the sign-in raced the webhook); many mean webhooks are being lost.",
            "Compare with the last webhook above; if it is old, webhooks are not arriving." if lost else None,
            warn=lost,
        ),
        _last_sync(health, now),
    ]


def _last_sync(health: MirrorHealth, now: datetime) -> Figure:
    run = health.last_sync
    title = "Last sync with Clerk"
    if run is None:
        return Figure(
            title,
            "never",
            "`flask sync-clerk sync` repairs whatever webhooks missed.",
            "Schedule it nightly: deploy/ has a systemd timer and a Kubernetes CronJob.",
            warn=True,
        )
    if not run.ok:
        return Figure(
            title,
            f"failed {ago(run.finished_at, now)}",
            run.error or f"{run.failed} users could not be read or repaired.",
            "Run `flask sync-clerk sync` by hand to see the whole report, fix the cause, and run it again.",
            warn=True,
        )
    drift = f"repaired {run.created} missing, {run.updated} stale, {run.tombstoned} gone"
    return Figure(
        title,
        ago(run.finished_at, now),
        f"Completed: {drift}." if run.drift else "Completed: Clerk and the mirror agreed, nothing to repair.",
        "The sync had to repair users the webhooks had missed: check the last webhook and the failed events."
        if run.drift
        else None,
        warn=run.drift > 0,
    )
