"""A CronJob's pages: the workload page and the overview's row say when its next Job reads the current config,
or that it is suspended, or that Driftwatch cannot tell; Run now is offered to an operator of its namespace
only."""

import html
import re
from datetime import UTC, datetime, timedelta

import pytest
from django.urls import reverse

from drift import verdicts
from drift.models import Workload
from tests.facts import Facts, user
from tests.test_views_rows import row_of

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("plain_http")]


@pytest.fixture
def facts():
    return Facts.for_cluster()


@pytest.fixture
def nightly(facts):
    """The pod of CronJob nightly's last Job read job-config through env before it changed: stale."""
    facts.source("job-config", (90, {"LOG_LEVEL": "INFO"}), (10, {"LOG_LEVEL": "DEBUG"}))
    facts.pod("nightly", "nightly-29000000-abcde", [{"source_name": "job-config"}], kind="CronJob")
    facts.run()
    verdicts.facts_changed(facts.cluster)
    return Workload.objects.get(kind="CronJob", name="nightly")


def text(markup: str) -> str:
    return html.unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", markup)).strip())


def page(client, workload):
    return text(client.get(reverse("workload", args=["local", "demo", "CronJob", workload.name])).content.decode())


def next_hour() -> str:
    return (datetime.now(UTC) + timedelta(hours=1)).strftime("%H:00")


def test_the_workload_page_and_the_overview_row_say_when_the_next_job_reads_the_current_config(client, nightly):
    nightly.schedule = {"schedule": "0 * * * *", "timeZone": "", "suspend": False}
    nightly.save()
    client.force_login(user("olga", "operator"))
    said = f"its next Job will read the current config at {next_hour()}"
    assert said in page(client, nightly)
    assert "Run now" in page(client, nightly)
    row = text(row_of(client.get(reverse("overview")).content.decode(), "nightly"))
    assert said in row


def test_a_suspended_cron_job_has_no_next_run(client, nightly):
    nightly.schedule = {"schedule": "0 * * * *", "timeZone": "Europe/Paris", "suspend": True}
    nightly.save()
    client.force_login(user("vera", "viewer"))
    shown = page(client, nightly)
    assert "suspended: no next run" in shown
    assert "Run now" not in shown  # a viewer may not


def test_a_schedule_it_cannot_read_or_never_listed_is_a_clear_cannot_tell(client, nightly):
    client.force_login(user("vera", "viewer"))
    assert "next run: cannot tell (Driftwatch has not listed this CronJob" in page(client, nightly)
    nightly.schedule = {"schedule": "0 0 * * *", "timeZone": "Mars/Olympus", "suspend": False}
    nightly.save()
    assert "next run: cannot tell (unknown time zone 'Mars/Olympus')" in page(client, nightly)


def test_run_now_is_offered_to_an_operator_of_its_namespace_only(client, nightly):
    client.force_login(user("oleg", "operator", namespaces=["local/elsewhere"]))
    assert "Run now" not in page(client, nightly)
    client.force_login(user("olga", "operator", namespaces=["local/demo"]))
    assert "Run now" in page(client, nightly)
