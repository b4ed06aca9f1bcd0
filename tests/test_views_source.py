"""The ConfigMap and Secret pages: the version timeline, a side-by-side key-level diff of any two versions
(the seed's multi-server nginx.conf diffed line by line, shown as text), Secrets as keys only, and who
consumes which version."""

import html
import re
from pathlib import Path

import pytest
import yaml
from django.urls import reverse

from drift.models import Source, SourceVersion
from tests.facts import Facts, user

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("plain_http")]

SEED = Path(__file__).resolve().parent.parent / "deploy" / "demo" / "30-nginx-config.yaml"
NGINX_CONF = next(doc for doc in yaml.safe_load_all(SEED.read_text()) if doc["kind"] == "ConfigMap")["data"][
    "nginx.conf"
]
XHEADER_LINE = next(line for line in NGINX_CONF.splitlines() if 'set $xheader "";' in line)
CANARY_LINE = XHEADER_LINE.replace('set $xheader "";', 'set $canary "1";')
EDITED_CONF = NGINX_CONF.replace("worker_connections 1024", "worker_connections 2048").replace(
    XHEADER_LINE, f"{XHEADER_LINE}\n{CANARY_LINE}"
)
SCRIPT = '<script>alert("owned")</script>'


@pytest.fixture
def facts(client):
    client.force_login(user("vera", "viewer"))
    facts = Facts.for_cluster()
    facts.source(
        "nginx-config",
        (90, {"nginx.conf": NGINX_CONF, "motd": "hello"}),
        (10, {"nginx.conf": EDITED_CONF, "motd": "hello", "banner": SCRIPT}),
    )
    facts.pod(
        "nginx",
        "nginx-a",
        [
            {
                "source_name": "nginx-config",
                "mode": "subPath",
                "keys": ["nginx.conf"],
                "mount_path": "/etc/nginx/nginx.conf",
                "sub_path": "nginx.conf",
            }
        ],
    )
    facts.run()
    return facts


def source_page(client, name="nginx-config", kinds="configmaps", headers=None, **query):
    return client.get(reverse("source", args=["local", "demo", kinds, name]), query, headers=headers or {})


def diff_rows(content: str) -> list[tuple[str, str, str]]:
    """(tag, left, right) per side-by-side row, unescaped."""
    rows = re.findall(
        r'<tr class="(\w+)">\s*<td class="ln">[^<]*</td><td class="code old">(.*?)</td>\s*<td class="ln">[^<]*</td><td class="code new">(.*?)</td>',
        content,
        re.S,
    )
    return [(tag, html.unescape(left), html.unescape(right)) for tag, left, right in rows]


def test_it_diffs_the_seeds_nginx_conf_line_by_line_side_by_side(client, facts):
    content = source_page(client).content.decode()
    rows = diff_rows(content)
    assert ("changed", "events { worker_connections 1024; }", "events { worker_connections 2048; }") in rows
    assert ("added", "", CANARY_LINE) in rows
    assert ("equal", XHEADER_LINE, XHEADER_LINE) in rows
    # Long unchanged stretches are folded, not dropped silently.
    assert re.search(r"… \d+ unchanged lines …", content)
    assert "Unchanged: motd" in content


def test_every_value_is_shown_as_text(client, facts):
    content = source_page(client, full="1").content.decode()
    # Every line of the seed's nginx.conf, quotes, $variables and ~* included, comes back as the same text.
    nginx_conf = content.split("<code>nginx.conf</code>")[1]
    shown = [right for tag, _, right in diff_rows(nginx_conf) if tag in ("equal", "changed", "added")]
    assert shown == EDITED_CONF.splitlines()
    assert "if ($cookie_special_employee_cookie ~* &quot;dogfood&quot;) {" in content
    assert "more_clear_input_headers &#x27;l5d-ctx-*&#x27;" in content
    # A value that looks like markup is text too: the added key shows it, escaped, and never as a tag.
    assert "&lt;script&gt;alert(&quot;owned&quot;)&lt;/script&gt;" in content
    assert SCRIPT not in content


def test_any_two_versions_can_be_compared(client, facts):
    backwards = source_page(client, a=2, b=1).content.decode()
    assert ("changed", "events { worker_connections 2048; }", "events { worker_connections 1024; }") in diff_rows(
        backwards
    )
    assert '<span class="badge removed">removed</span>' in backwards  # banner, going back
    same = source_page(client, a=1, b=1).content.decode()
    assert "nothing to compare" in same


def test_htmx_swaps_only_the_diff(client, facts):
    response = client.get(
        reverse("source", args=["local", "demo", "configmaps", "nginx-config"]),
        {"a": 1, "b": 2},
        headers={"HX-Request": "true", "HX-Target": "version-diff"},
    )
    assert response.content.decode().lstrip().startswith('<div id="version-diff"')
    assert b"<html" not in response.content


def test_the_timeline_says_what_each_version_changed_and_when_it_was_recreated(client, facts):
    old_lineage = Source.objects.get(name="nginx-config")
    facts.source("nginx-config", (5, {"nginx.conf": EDITED_CONF}))  # deleted and created again: new uid
    Source.objects.filter(pk=old_lineage.pk).update(deleted_at=facts.at(6))
    content = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", source_page(client).content.decode()))
    assert "#3 resourceVersion 102" in content and "current" in content
    assert "recreated (new uid" in content
    assert "added: banner changed: nginx.conf" in content
    assert "removed: banner, motd" in content
    assert "first version seen" in content


def test_it_lists_consumers_and_the_version_they_run(client, facts):
    content = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", source_page(client).content.decode()))
    consumers = content.split("Consumers")[1]
    assert "Deployment/nginx nginx-a app subPath /etc/nginx/nginx.conf #1 stale" in consumers


def test_a_secret_page_shows_keys_and_what_changed_never_values(client, facts):
    facts.source(
        "db",
        (90, {"password": "hunter2", "user": "app"}),
        (10, {"password": "hunter3", "user": "app", "token": "t0k3n"}),
        kind="Secret",
    )
    response = source_page(client, "db", "secrets")
    content = response.content.decode()
    assert "A Secret's values are never stored or shown" in content
    assert re.search(r"<code>password</code> <span class=\"badge changed\">changed</span>", content)
    assert re.search(r"<code>token</code> <span class=\"badge added\">added</span>", content)
    assert "Unchanged: user" in content
    assert "Secret value changed; values are not shown." in content
    for secret_value in ("hunter2", "hunter3", "t0k3n"):
        assert secret_value not in content
    for version in SourceVersion.objects.filter(source__kind="Secret"):
        assert version.data == {}
        for key_hash in version.key_hashes.values():
            assert key_hash not in content  # not even the hashes


def test_an_unknown_source_is_404(client, facts):
    assert source_page(client, "nope").status_code == 404
    assert source_page(client, "nginx-config", "secrets").status_code == 404


def large_conf(blocks: int, port: int) -> str:
    block = ["server {", f"    listen {port};", "    server_name example.com;", "}", ""]
    return "\n".join(block * blocks)


@pytest.fixture
def large(facts):
    """A ConfigMap with a history of big values, the last two past the diff caps."""
    facts.source(
        "huge-config",
        (300, {"nginx.conf": large_conf(2_000, 70)}),
        (200, {"nginx.conf": large_conf(2_000, 80)}),
        (100, {"nginx.conf": large_conf(3_000, 80)}),
        (10, {"nginx.conf": large_conf(3_000, 8080)}),
    )
    return SourceVersion.objects.filter(source__name="huge-config").order_by("first_seen")


def test_a_diff_past_the_caps_is_summarised_with_a_download_of_both_versions(client, large):
    content = source_page(client, "huge-config").content.decode()
    text = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", content))
    assert (
        "Too large to compare line by line here: #3 has 14999 lines (164.1 KB), #4 has 14999 lines (169.9 KB)" in text
    )
    assert "listen 8080" not in content  # no line of the values on the page
    old, new = large[2], large[3]
    for version in (old, new):
        link = reverse("source-download", args=["local", "demo", "huge-config", version.pk, "nginx.conf"])
        assert f'href="{link}"' in content
        response = client.get(link)
        assert response.status_code == 200
        assert response["Content-Disposition"] == (
            f'attachment; filename="huge-config-rv{version.resource_version}-nginx.conf.txt"'
        )
        assert response.content.decode() == version.data["nginx.conf"]


def test_a_diff_under_the_caps_of_a_big_value_is_shown_line_by_line(client, large):
    rows = diff_rows(source_page(client, "huge-config", a=1, b=2).content.decode())
    assert len([row for row in rows if row[0] == "changed"]) == 2_000
    assert ("changed", "    listen 70;", "    listen 80;") in rows


def test_the_page_reads_the_data_of_the_two_compared_versions_only(client, large):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as queries:
        assert source_page(client, "huge-config").status_code == 200
    reading_data = [q["sql"] for q in queries.captured_queries if '"drift_sourceversion"."data"' in q["sql"]]
    assert len(reading_data) == 1
    assert (
        f"IN ({large[2].pk}, {large[3].pk})" in reading_data[0]
        or f"IN ({large[3].pk}, {large[2].pk})" in (reading_data[0])
    )


def test_downloads_are_for_configmap_versions_of_that_page_only(client, facts):
    facts.source("db", (90, {"password": "hunter2"}), kind="Secret")
    secret_version = SourceVersion.objects.get(source__name="db")
    nginx = SourceVersion.objects.filter(source__name="nginx-config").first()

    def download(name: str, pk: int, key: str, namespace: str = "demo") -> int:
        return client.get(reverse("source-download", args=["local", namespace, name, pk, key])).status_code

    assert download("nginx-config", nginx.pk, "nginx.conf") == 200
    assert download("db", secret_version.pk, "password") == 404  # a Secret has no values
    assert download("other", nginx.pk, "nginx.conf") == 404  # the id must belong to the named ConfigMap
    assert download("nginx-config", nginx.pk, "nginx.conf", namespace="shop") == 404
    assert download("nginx-config", nginx.pk, "no-such-key") == 404
    client.logout()
    assert download("nginx-config", nginx.pk, "nginx.conf") == 302  # to the login page


def test_the_timeline_says_who_wrote_each_version_and_with_which_client(client):
    from drift.models import SourceVersion
    from tests.facts import Facts, user

    client.force_login(user("vera", "viewer"))
    facts = Facts.for_cluster()
    facts.source("team-config", (30, {"a": "1"}), (20, {"a": "2"}), (10, {"a": "3"}))
    _first, second, third = SourceVersion.objects.filter(source__name="team-config").order_by("first_seen")
    SourceVersion.objects.filter(pk=second.pk).update(changed_by="alice@example.com", client="kubectl-patch")
    SourceVersion.objects.filter(pk=third.pk).update(client="argocd-controller")
    page = " ".join(client.get("/clusters/local/demo/configmaps/team-config/").content.decode().split())
    assert 'by <strong class="author">alice@example.com</strong> via kubectl-patch' in page
    assert 'by client argocd-controller <span class="muted">(no person known)</span>' in page


def test_a_field_manager_that_looks_like_a_person_is_shown_as_an_unrecognised_client(client):
    from drift.models import SourceVersion
    from tests.facts import Facts, user

    client.force_login(user("vera", "viewer"))
    facts = Facts.for_cluster()
    facts.source("team-config", (30, {"a": "1"}), (20, {"a": "2"}), (10, {"a": "3"}))
    _first, second, third = SourceVersion.objects.filter(source__name="team-config").order_by("first_seen")
    # `kubectl --field-manager=bob@example.com`: any client may name itself so.
    SourceVersion.objects.filter(pk=second.pk).update(client="bob@example.com")
    SourceVersion.objects.filter(pk=third.pk).update(changed_by="alice@example.com", client="bob@example.com")
    page = " ".join(client.get("/clusters/local/demo/configmaps/team-config/").content.decode().split())
    assert 'by unrecognised client &quot;bob@example.com&quot; <span class="muted">(no person known)</span>' in page
    assert (
        'by <strong class="author">alice@example.com</strong> via unrecognised client &quot;bob@example.com&quot;'
        in page
    )
    assert "by client bob@example.com" not in page


@pytest.mark.parametrize(
    ("name", "flagged"),
    [("app-config-5m4g2t9kbh", True), ("app-config", False), ("app-config-abcdefghij", False), ("x-5m4g2t9kb", False)],
    ids=["kustomize-hash", "plain", "not-the-hash-alphabet", "nine-characters"],
)
def test_an_in_place_edit_of_a_content_addressed_config_map_is_flagged(client, facts, name, flagged):
    facts.source(name, (90, {"a": "1"}), (10, {"a": "2"}))
    content = source_page(client, name=name).content.decode()
    assert ('id="in-place-edit"' in content) is flagged
    if flagged:
        assert "edited in place (#2," in re.sub(r"\s+", " ", content)


def test_a_content_addressed_config_map_never_edited_is_only_noted(client, facts):
    facts.source("app-config-5m4g2t9kbh", (90, {"a": "1"}))
    content = source_page(client, name="app-config-5m4g2t9kbh").content.decode()
    assert 'id="in-place-edit"' not in content
    assert "ends in a content hash" in content


def test_the_timeline_and_the_consumers_refresh_themselves_and_the_comparison_stays(client, facts):
    from urllib.parse import unquote

    from drift import verdicts

    verdicts.after_cycle(facts.cluster, facts.run())
    html = source_page(client, a=1, b=1).content.decode()
    found = re.search(r'<section id="source-live" [^>]*hx-get="[^"?]+\?stamp=([^"]+)" hx-trigger="every 5s"', html)
    assert found, "the timeline polls itself"
    stamp = unquote(found.group(1).replace("&amp;", "&"))
    headers = {"HX-Request": "true", "HX-Target": "source-live"}
    assert source_page(client, stamp=stamp, headers=headers).status_code == 204  # nothing new

    facts.source("nginx-config", (0.5, {"nginx.conf": EDITED_CONF}))  # deleted and created again: a version #3
    polled = source_page(client, stamp=stamp, headers=headers)
    assert polled.status_code == 200
    body = polled.content.decode()
    assert body.lstrip().startswith('<section id="source-live"') and "<html" not in body
    assert ">#3</span>" in body
    # The consumers come along out of band; the comparison the reader chose is not in the answer, so it stays.
    assert '<section id="source-consumers" class="card" aria-labelledby="consumers-title" hx-swap-oob="true">' in body
    assert 'id="version-diff"' not in body
    # On the full page the consumers are drawn once, in place.
    assert html.count('id="source-consumers"') == 1 and "hx-swap-oob" not in html
