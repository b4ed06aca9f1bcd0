"""A workload of a kind Driftwatch does not know, named by its pods as their controller (an operator's custom
resource): its page offers "Restart the stale pods only" (its operator replaces an evicted pod) and no Roll out;
a bare Pod's page offers neither. The command line takes such a kind only when Driftwatch recorded that workload."""

import html
import re

import pytest
from django.core.management import CommandError, call_command
from django.urls import reverse

from drift import verdicts
from tests.facts import Facts, user

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("plain_http")]


def text(markup: str) -> str:
    return html.unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", markup)).strip())


@pytest.fixture
def facts():
    facts = Facts.for_cluster()
    facts.source("db-config", (90, {"LOG_LEVEL": "INFO"}), (10, {"LOG_LEVEL": "DEBUG"}))
    facts.pod("pg", "pg-1", [{"source_name": "db-config"}], kind="Cluster")
    facts.pod("lonely", "lonely", [{"source_name": "db-config"}], kind="Pod")
    facts.run()
    verdicts.facts_changed(facts.cluster)
    return facts


def page(client, kind, name):
    return text(client.get(reverse("workload", args=["local", "demo", kind, name])).content.decode())


def test_an_operator_owned_workload_offers_the_eviction_action_only(client, facts):
    client.force_login(user("olga", "operator"))
    shown = page(client, "Cluster", "pg")
    assert "Restart the stale pods only" in shown
    assert "Roll out Cluster/pg" not in shown
    bare = page(client, "Pod", "lonely")
    assert "Restart the stale pods only" not in bare and "Roll out Pod/lonely" not in bare


def test_a_viewer_is_not_offered_the_eviction_action(client, facts):
    client.force_login(user("vera", "viewer"))
    assert "Restart the stale pods only" not in page(client, "Cluster", "pg")


def test_the_command_line_names_a_kind_it_knows_nothing_of(facts):
    with pytest.raises(
        CommandError, match=r"unknown kind 'gizmo'.* operator-owned workload .* \(none named gizmo/pg\)"
    ):
        call_command("rollout", "gizmo/pg", "-n", "demo", "--pods", "stale", "--actor", "olga")
