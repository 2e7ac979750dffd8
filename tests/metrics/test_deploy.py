"""The shipped deploy/ files name metrics and options that exist: a renamed metric or flag breaks here, not at 3 a.m."""

from __future__ import annotations

import re
import shlex

import pytest

from shop import PROJECT_ROOT
from shop.sync.cli import sync_cli
from tests.metrics.support import AUTH, TOKEN, samples

DEPLOY = PROJECT_ROOT / "deploy"
ALERTS = DEPLOY / "prometheus" / "alerts.yml"
OPERATING = PROJECT_ROOT / "docs" / "operating.md"


def test_every_metric_the_alert_rules_use_is_exported(make_app):
    response = make_app(METRICS_TOKEN=TOKEN).test_client().get("/metrics", headers=AUTH)
    exported = {name for name, _ in samples(response.get_data(as_text=True))}
    used = set(re.findall(r"\bshop_[a-z_]*[a-z]\b", ALERTS.read_text()))
    assert len(used) >= 4
    # a counter nobody incremented yet has no sample; it is declared all the same
    declared = exported | {"shop_first_sign_in_provisionings_total"}
    assert used <= declared, used - declared
    assert "shop_first_sign_in_provisionings_total" in response.get_data(as_text=True)


def rules() -> dict[str, str]:
    """Each alert rule's text (its expression, labels, annotations) by its name."""
    parts = re.split(r"^\s*- alert: (\w+)\s*$", ALERTS.read_text(), flags=re.MULTILINE)
    return dict(zip(parts[1::2], parts[2::2], strict=True))


def anchor(heading: str) -> str:
    """A Markdown heading's anchor, as GitHub makes it: lower case, punctuation dropped, spaces to dashes."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def test_every_alert_links_a_runbook_that_exists():
    anchors = {anchor(heading) for heading in re.findall(r"^#+ (.+)$", OPERATING.read_text(), flags=re.MULTILINE)}
    found = rules()
    assert {"ShopClerkWebhooksStopped", "ShopFailedWebhookEvents", "ShopDriftAfterLastSync", "ShopFailedMail"} <= set(
        found
    )
    for name, rule in found.items():
        link = re.search(r"runbook: docs/operating\.md#([\w-]+)", rule)
        assert link, f"{name} has no runbook link"
        assert link.group(1) in anchors, f"{name}: no heading #{link.group(1)} in docs/operating.md"


def test_failed_webhook_events_alert_for_every_source_and_failed_mail_alerts():
    found = rules()
    assert "source=" not in found["ShopFailedWebhookEvents"]  # Stripe's failed events too, not only Clerk's
    assert "by (source)" in found["ShopFailedWebhookEvents"]  # one alert per source, which the summary names
    assert "shop_mail_failed" in found["ShopFailedMail"]


def commands() -> list[list[str]]:
    """Every `flask sync-clerk …` command line in deploy/."""
    found = []
    for path in DEPLOY.rglob("*"):
        if path.is_file() and "__pycache__" not in path.parts:  # deploy/proxy.py's bytecode is no deploy file
            text = path.read_text().replace('", "', " ")  # ["flask", "sync-clerk", …] as one line
            for match in re.finditer(r"flask sync-clerk ([a-z-]+(?: --?[a-z-]+(?: \d+)?)*)", text):
                found.append(shlex.split(match.group(1)))
    return found


@pytest.mark.parametrize("command", commands(), ids=" ".join)
def test_the_scheduled_commands_parse(command):
    name, *args = command
    sync_cli.commands[name].make_context(name, args)  # raises on an unknown option or a bad value


def test_the_commands_are_the_sync_and_the_check():
    assert ["sync", "--max-tombstones", "100"] in commands()
    assert ["status", "--json"] in commands()
