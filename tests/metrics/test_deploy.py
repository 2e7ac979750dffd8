"""The shipped deploy/ files name metrics and options that exist: a renamed metric or flag breaks here, not at 3 a.m."""

from __future__ import annotations

import re
import shlex

import pytest

from shop import PROJECT_ROOT
from shop.sync.cli import sync_cli
from tests.metrics.support import AUTH, TOKEN, samples

DEPLOY = PROJECT_ROOT / "deploy"


def test_every_metric_the_alert_rules_use_is_exported(make_app):
    response = make_app(METRICS_TOKEN=TOKEN).test_client().get("/metrics", headers=AUTH)
    exported = {name for name, _ in samples(response.get_data(as_text=True))}
    used = set(re.findall(r"\bshop_[a-z_]*[a-z]\b", (DEPLOY / "prometheus" / "alerts.yml").read_text()))
    assert len(used) >= 4
    # a counter nobody incremented yet has no sample; it is declared all the same
    declared = exported | {"shop_first_sign_in_provisionings_total"}
    assert used <= declared, used - declared
    assert "shop_first_sign_in_provisionings_total" in response.get_data(as_text=True)


def commands() -> list[list[str]]:
    """Every `flask sync-clerk …` command line in deploy/."""
    found = []
    for path in DEPLOY.rglob("*"):
        if path.is_file():
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
