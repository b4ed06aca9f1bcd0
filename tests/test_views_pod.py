"""The pod page: each environment variable and file a container got from a ConfigMap or Secret, what it
runs against what the source holds now, and the difference; Secrets as "hidden", never their values."""

import re

import pytest
from django.urls import reverse

from tests.facts import Facts, user, value_hash

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("plain_http")]

OLD_CONF = 'server {\n    listen 80;\n    set $x "a";\n}'
NEW_CONF = 'server {\n    listen 8080;\n    set $x "a";\n}'


@pytest.fixture
def pod(client):
    client.force_login(user("vera", "viewer"))
    facts = Facts.for_cluster()
    old_env = {"log_level": "INFO", "mode": "fast", "greeting": "<b>hi</b>"}
    facts.source("env-config", (90, old_env), (10, {**old_env, "log_level": "DEBUG"}))
    facts.source("app-config", (90, {"app.conf": OLD_CONF}), (10, {"app.conf": NEW_CONF}))
    facts.source("db", (90, {"password": "hunter2"}), (10, {"password": "hunter3"}), kind="Secret")
    facts.source("kube-root-ca.crt", (120, {"ca.crt": "cert"}))
    consumes = [
        {"source_name": "env-config", "mode": "envFrom", "env_prefix": "APP_", "shadowed_env": ["APP_mode"]},
        {"source_name": "env-config", "mode": "env", "keys": ["log_level"], "env_names": {"LEVEL": "log_level"}},
        {
            "source_kind": "Secret",
            "source_name": "db",
            "mode": "env",
            "keys": ["password"],
            "env_names": {"DB_PASSWORD": "password"},
        },
        {
            "source_name": "app-config",
            "mode": "subPath",
            "keys": ["app.conf"],
            "mount_path": "/etc/app/app.conf",
            "sub_path": "app.conf",
        },
        {
            "source_name": "kube-root-ca.crt",
            "mode": "projected",
            "mount_path": "/var/run/secrets/kubernetes.io/serviceaccount",
        },
    ]
    facts.pod("web", "web-1", consumes)
    facts.run()
    return client.get(reverse("pod", args=["local", "demo", "web-1"]))


def section(response, title):
    content = response.content.decode()
    part = content.split(f">{title}</h2>")[1].split("</section>")[0]
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", part))


def test_it_shows_each_variable_running_against_current(pod):
    env = section(pod, "Environment")
    assert "app APP_log_level ConfigMap env-config key log_level INFO DEBUG differs stale" in env
    assert "app LEVEL ConfigMap env-config key log_level INFO DEBUG differs stale" in env
    # The container's own env overrides APP_mode, so envFrom's value for it is not what the container sees.
    assert "APP_mode" not in env


def test_secret_values_are_hidden_and_only_their_difference_shown(pod):
    env = section(pod, "Environment")
    assert "DB_PASSWORD Secret db key password hidden ( #1 ) hidden ( #2 ) differs stale" in env
    assert re.search(r'hidden \(<span class="version" title="resourceVersion \d+">#1</span>\)', pod.content.decode())
    for secret_value in ("hunter2", "hunter3"):
        assert secret_value not in pod.content.decode()


def test_a_file_is_diffed_line_by_line(pod):
    files = section(pod, "Files")
    assert "/etc/app/app.conf ConfigMap app-config key app.conf" in files
    html = pod.content.decode()
    assert '<td class="code old">    listen 80;</td>' in html
    assert '<td class="code new">    listen 8080;</td>' in html
    assert "set $x &quot;a&quot;;" in html


def test_values_are_escaped(pod):
    html = pod.content.decode()
    assert "<code>&lt;b&gt;hi&lt;/b&gt;</code>" in html
    assert "<b>hi</b>" not in html
    assert "APP_greeting ConfigMap env-config key greeting <b>hi</b> <b>hi</b> same stale" in section(
        pod, "Environment"
    ).replace("&lt;", "<").replace("&gt;", ">")


def test_the_service_account_volume_is_folded_away(pod):
    html = pod.content.decode()
    assert "kube-root-ca.crt" not in html.split("<details")[0]
    assert "kube-root-ca.crt (service-account token volume)" in html


def test_an_unknown_pod_is_404(client):
    client.force_login(user("vera", "viewer"))
    assert client.get(reverse("pod", args=["local", "demo", "nope"])).status_code == 404


def test_a_file_too_large_to_diff_is_summarised_with_a_link_to_the_downloads(client):
    client.force_login(user("olga", "viewer"))
    facts = Facts.for_cluster()
    big_old = "server {\n    listen 80;\n}\n" * 4_000
    big_new = big_old.replace("listen 80;", "listen 8080;")
    facts.source("big-config", (90, {"nginx.conf": big_old}), (10, {"nginx.conf": big_new}))
    subpath = {"source_name": "big-config", "mode": "subPath", "keys": ["nginx.conf"],
               "mount_path": "/etc/nginx/nginx.conf", "sub_path": "nginx.conf"}  # fmt: skip
    facts.pod("web", "web-1", [subpath], started_minutes_ago=30)
    facts.run()
    response = client.get(reverse("pod", args=["local", "demo", "web-1"]))
    files = section(response, "Files")
    assert "Too large to compare line by line here (12000 and 12000 lines" in files
    assert "listen 8080" not in response.content.decode()
    assert reverse("source", args=["local", "demo", "configmaps", "big-config"]) in response.content.decode()


def test_it_says_which_version_each_container_started_with_and_who_wrote_it(pod, client):
    from drift.models import SourceVersion

    SourceVersion.objects.filter(source__name="env-config").update(
        changed_by="alice@example.com", client="kubectl-patch", author_confidence="likely"
    )
    SourceVersion.objects.filter(source__name="app-config").update(client="helm")
    page = _text(client.get(reverse("pod", args=["local", "demo", "web-1"])))
    assert (
        "app started with ConfigMap env-config #1 , written by alice@example.com via kubectl-patch 1 h 30 min ago"
        in page
    )
    assert "started with ConfigMap app-config #1 , written by helm (client; no person known) 1 h 30 min ago" in page


def _text(response) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", response.content.decode()))


def _started_with_number(text: str, source: str) -> int:
    found = re.search(rf"started with ConfigMap {source} (?:version )?#(\d+)", text)
    assert found, text
    return int(found.group(1))


def test_started_with_is_the_version_current_at_the_start_not_a_later_one_with_the_same_content(client):
    """The issue's env pod that "started with #12" when #12 only repeated #1: the container started 70 minutes
    ago, between #1 (INFO) and #2 (DEBUG); #3 wrote INFO again 20 minutes ago. It runs INFO, so it is fresh;
    but what it started with is #1, and the page says #3 repeated it."""
    client.force_login(user("vera", "viewer"))
    facts = Facts.for_cluster()
    facts.source("env-config", (90, {"log_level": "INFO"}), (60, {"log_level": "DEBUG"}), (20, {"log_level": "INFO"}))
    facts.pod("env-demo", "env-demo-1", [{"source_name": "env-config", "mode": "envFrom"}], started_minutes_ago=70)
    facts.run()
    text = _text(client.get(reverse("pod", args=["local", "demo", "env-demo-1"])))
    assert _started_with_number(text, "env-config") == 1
    assert "the same content was written again as #3" in text


def test_a_volume_started_with_the_old_version_and_reads_the_new_one_since_the_kubelet_wrote_it(client):
    """The issue's volume pod, started at 08:23:50, that "started with #2, written at 09:10:18"."""
    from drift.models import Consumption, Observation

    client.force_login(user("vera", "viewer"))
    facts = Facts.for_cluster()
    facts.source("special-config", (90, {"special.how": "very"}), (10, {"special.how": "extremely"}))
    volume = {"source_name": "special-config", "mode": "volume", "mount_path": "/etc/config"}
    facts.pod("volume-demo", "volume-demo-1", [volume], started_minutes_ago=30)
    written = facts.at(9)
    Observation.objects.create(
        consumption=Consumption.objects.get(source_name="special-config"), observed_at=facts.at(1), ok=True,
        key_hashes={"special.how": value_hash("extremely")}, volume_written_at=written, watching=True,
    )  # fmt: skip
    facts.run()
    text = _text(client.get(reverse("pod", args=["local", "demo", "volume-demo-1"])))
    assert _started_with_number(text, "special-config") == 1
    assert "reads #2 since the kubelet wrote it" in text
    assert "(kubelet)" in text


def _poll(client, name, stamp):
    return client.get(
        reverse("pod", args=["local", "demo", name]),
        {"stamp": stamp},
        headers={"HX-Request": "true", "HX-Target": "pod-body"},
    )


def _stamp(response) -> str:
    found = re.search(
        r'<div id="pod-body" hx-get="[^"?]+\?stamp=([^"]+)" hx-trigger="every 5s"', response.content.decode()
    )
    assert found, "the body polls itself"
    from urllib.parse import unquote

    return unquote(found.group(1).replace("&amp;", "&"))


def test_the_page_refreshes_itself_when_something_changes_and_only_then(client):
    from drift import verdicts
    from drift.models import Pod

    client.force_login(user("vera", "viewer"))
    facts = Facts.for_cluster()
    source = facts.source("env-config", (90, {"log_level": "INFO"}))
    facts.pod("env-demo", "env-demo-1", [{"source_name": "env-config", "mode": "envFrom"}], started_minutes_ago=30)
    verdicts.after_cycle(facts.cluster, facts.run())
    stamp = _stamp(client.get(reverse("pod", args=["local", "demo", "env-demo-1"])))
    assert stamp
    assert _poll(client, "env-demo-1", stamp).status_code == 204  # nothing new: htmx keeps the page

    # The ConfigMap changes: the next poll brings the body, and only the body, with the stale verdict.
    from drift.models import SourceVersion

    SourceVersion.objects.create(
        source=source, content_hash="new", resource_version="999", first_seen=facts.at(1),
        key_hashes={"log_level": value_hash("DEBUG")}, data={"log_level": "DEBUG"},
    )  # fmt: skip
    verdicts.source_changed(facts.cluster, "demo", "ConfigMap", "env-config")
    changed = _poll(client, "env-demo-1", stamp)
    assert changed.status_code == 200
    body = changed.content.decode()
    assert body.lstrip().startswith('<div id="pod-body"') and "<html" not in body
    assert "DEBUG" in body and "stale" in body
    assert _stamp(changed) != stamp

    # Once the pod is gone nothing more can change: the body comes without its poll.
    Pod.objects.filter(name="env-demo-1").update(deleted_at=facts.at(0))
    gone = _poll(client, "env-demo-1", _stamp(changed)).content.decode()
    assert "gone since" in gone
    assert "hx-trigger" not in gone.split(">", 1)[0]
