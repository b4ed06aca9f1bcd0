"""Settings come from the environment, and a bad value says how to fix it."""

import os
import re
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.urls import reverse

from dashboard import env
from tests.facts import user

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize(
    ("helper", "value", "message"),
    [
        pytest.param(lambda: env.env_bool("X", False), "maybe", "not a boolean", id="bool"),
        pytest.param(lambda: env.env_int("X", 1), "ten", "not a whole number", id="int"),
        pytest.param(lambda: env.env_int("X", 1, minimum=1), "0", "below its minimum", id="int-minimum"),
        pytest.param(lambda: env.env_database("X", ""), "sqlite:///db.sqlite3", "PostgreSQL only", id="sqlite"),
        pytest.param(lambda: env.env_redis_url("X", ""), "http://localhost", "redis://", id="redis"),
        pytest.param(lambda: env.env_time_zone("X", "UTC"), "Mars/Olympus", "not a known time zone", id="tz"),
        pytest.param(lambda: env.env_networks("X", []), "10.0.0.1/8", "not an address range", id="network-host-bits"),
        pytest.param(lambda: env.env_networks("X", []), "intranet", "not an address range", id="network"),
    ],
)
def test_a_bad_value_raises_improperly_configured(monkeypatch, helper, value, message):
    monkeypatch.setenv("X", value)
    with pytest.raises(ImproperlyConfigured, match=message):
        helper()


@pytest.mark.parametrize(("raw", "expected"), [("1", True), ("TRUE", True), ("off", False), ("", False), (None, True)])
def test_booleans(monkeypatch, raw, expected):
    if raw is None:
        monkeypatch.delenv("X", raising=False)
    else:
        monkeypatch.setenv("X", raw)
    assert env.env_bool("X", True) is expected


def test_lists_and_database_urls(monkeypatch):
    monkeypatch.setenv("X", "a.example, b.example,,")
    assert env.env_list("X", []) == ["a.example", "b.example"]
    monkeypatch.setenv("DB", "postgres://u:p@db.internal:6543/dw")
    database = env.env_database("DB", "")
    assert (database["HOST"], database["PORT"], database["NAME"], database["USER"]) == ("db.internal", 6543, "dw", "u")


def manage(*args, **environment):
    clean = {k: v for k, v in os.environ.items() if k not in {"DEBUG", "SECRET_KEY", "ALLOWED_HOSTS", "HTTPS"}}
    # A checkout where `make demo` ran has its key: these runs see none unless a test gives one.
    clean["DRIFTWATCH_DEMO_KEY_FILE"] = str(ROOT / "artifacts" / "no-such-demo-key")
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env={**clean, **environment}, capture_output=True, text=True
    )


def test_webhooks_may_reach_no_inward_range_unless_one_is_allowed():
    """The suite allows loopback for its receivers (tests/settings.py); an installation starts with nothing."""
    show = "from django.conf import settings as s; print(s.DRIFTWATCH_NOTIFY_ALLOWED_NETWORKS)"
    clean = {k: v for k, v in os.environ.items() if not k.startswith("DRIFTWATCH_NOTIFY_")}
    clean["DJANGO_SETTINGS_MODULE"] = "dashboard.settings"
    default = subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", show], cwd=ROOT, env=clean, capture_output=True, text=True
    )
    assert default.returncode == 0, default.stderr
    assert default.stdout.splitlines()[-1] == "[]"
    allowed = subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", show], cwd=ROOT, capture_output=True, text=True,
        env={**clean, "DRIFTWATCH_NOTIFY_ALLOWED_NETWORKS": "10.20.0.0/16, fd00:20::/64"},
    )  # fmt: skip
    assert allowed.stdout.splitlines()[-1] == "[IPv4Network('10.20.0.0/16'), IPv6Network('fd00:20::/64')]"


def test_check_deploy_is_clean_with_production_settings():
    result = manage(
        "check", "--deploy", "--fail-level", "WARNING",
        DEBUG="false", SECRET_KEY=secrets.token_urlsafe(50), ALLOWED_HOSTS="driftwatch.example.com",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "no issues" in result.stdout


def test_a_bad_setting_stops_manage_py_with_the_fix():
    result = manage("check", DEBUG="perhaps")
    assert result.returncode != 0
    assert "DEBUG='perhaps' is not a boolean" in result.stderr


def test_the_development_secret_key_is_refused_when_debug_is_off():
    refused = manage("check", DJANGO_SETTINGS_MODULE="dashboard.settings")
    assert refused.returncode != 0
    assert "SECRET_KEY is not set" in refused.stderr
    assert "token_urlsafe" in refused.stderr, "the message says how to make one"
    on_a_laptop = manage("check", DJANGO_SETTINGS_MODULE="dashboard.settings", DEBUG="true")
    assert on_a_laptop.returncode == 0, on_a_laptop.stderr


def test_manage_py_in_a_checkout_finds_the_key_the_demo_keeps(tmp_path):
    """Outside the demo, `manage.py changepassword` and the rest worked only with SECRET_KEY exported by hand."""
    key_file = tmp_path / ".demo-secret-key"
    key_file.write_text(secrets.token_urlsafe(50) + "\n")
    shown = manage(
        "shell", "--no-imports", "-c", "from django.conf import settings; print(settings.SECRET_KEY)",
        DJANGO_SETTINGS_MODULE="dashboard.settings", DRIFTWATCH_DEMO_KEY_FILE=str(key_file),
    )  # fmt: skip
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.strip() == key_file.read_text().strip()
    given = manage(
        "shell", "--no-imports", "-c", "from django.conf import settings; print(settings.SECRET_KEY)",
        DJANGO_SETTINGS_MODULE="dashboard.settings", DRIFTWATCH_DEMO_KEY_FILE=str(key_file), SECRET_KEY="x" * 50,
    )  # fmt: skip
    assert given.stdout.strip() == "x" * 50, "SECRET_KEY set in the environment wins over the demo's file"


def test_the_demo_script_keeps_its_key_where_settings_look_for_it():
    demo = (ROOT / "scripts" / "demo").read_text()
    assert 'key_file="${DRIFTWATCH_DEMO_KEY_FILE:-$ROOT/.demo-secret-key}"' in demo
    assert (
        'DRIFTWATCH_DEMO_KEY_FILE", str(BASE_DIR / ".demo-secret-key")' in (ROOT / "dashboard/settings.py").read_text()
    )


def test_database_connections_are_health_checked(settings):
    """After a PostgreSQL restart a kept connection is checked before use, so the first request works."""
    assert settings.DATABASES["default"]["CONN_HEALTH_CHECKS"] is True


def test_celery_stores_no_results_and_limits_every_task(settings):
    assert settings.CELERY_TASK_IGNORE_RESULT is True
    assert 0 < settings.CELERY_TASK_SOFT_TIME_LIMIT < settings.CELERY_TASK_TIME_LIMIT
    schedule = settings.CELERY_BEAT_SCHEDULE
    assert all("expires" in entry.get("options", {}) for entry in schedule.values()), "beat's tasks expire"


@pytest.mark.django_db(transaction=True)
def test_the_first_query_after_postgresql_dropped_the_connection_works():
    """What a PostgreSQL restart does to a kept connection, done to this one connection only."""
    import psycopg
    from django.contrib.auth import get_user_model
    from django.core.signals import request_started
    from django.db import connection

    get_user_model().objects.create_user("kept")  # committed: the reconnected query must find it
    connection.ensure_connection()
    backend = connection.connection.info.backend_pid
    database = connection.settings_dict
    with psycopg.connect(
        host=database["HOST"], port=database["PORT"], user=database["USER"], password=database["PASSWORD"],
        dbname=database["NAME"], autocommit=True,
    ) as other:  # fmt: skip
        other.execute("SELECT pg_terminate_backend(%s)", [backend])
    request_started.send(sender=None)  # what Django does before each request
    assert list(get_user_model().objects.values_list("username", flat=True)) == ["kept"]
    assert connection.connection.info.backend_pid != backend, "answered by a new connection"


def policy(response) -> dict[str, list[str]]:
    header = response.headers.get("Content-Security-Policy", "")
    return {name: values for name, *values in (part.split() for part in header.split(";") if part.strip())}


@pytest.mark.django_db
@pytest.mark.usefixtures("plain_http")
def test_every_page_sends_a_content_security_policy_without_inline_script_or_eval(client):
    pages = [client.get(reverse("login"))]
    root = user("root")
    root.is_staff = root.is_superuser = True
    root.save()
    client.force_login(root)
    pages += [client.get(path) for path in (reverse("overview"), reverse("notifications"), reverse("audit"),
                                            "/admin/", "/no-such-page/")]  # fmt: skip
    for response in pages:
        directives = policy(response)
        assert directives, f"{response.request['PATH_INFO']} sends no Content-Security-Policy"
        assert directives["default-src"] == ["'self'"]
        assert directives["script-src"] == ["'self'"] and directives["style-src"] == ["'self'"]
        assert directives["object-src"] == ["'none'"] and directives["frame-ancestors"] == ["'none'"]
        assert directives["base-uri"] == ["'none'"] and "'self'" in directives["form-action"]
        assert not any("unsafe" in value for values in directives.values() for value in values)


@pytest.mark.django_db
@pytest.mark.usefixtures("plain_http")
def test_htmx_needs_no_eval_nor_inline_style_and_keeps_no_page_history(client):
    import json

    client.force_login(user("vera", "viewer"))
    content = client.get(reverse("overview")).content.decode()
    meta = re.search(r'<meta name="htmx-config" content=\'([^\']*)\'>', content)
    assert meta, "htmx is configured in the page head"
    config = json.loads(meta.group(1))
    assert config["allowEval"] is False and config["allowScriptTags"] is False
    assert config["includeIndicatorStyles"] is False
    # Nothing of a page stays in the browser's storage after logout; going back loads the page again.
    assert config["historyCacheSize"] == 0 and config["refreshOnHistoryMiss"] is True
    assert re.search(r'<body[^>]* hx-history="false"', content)


TEMPLATE_COMMENT = re.compile(r"\{#.*?#\}|\{% comment %\}.*?\{% endcomment %\}", re.DOTALL)
INLINE = re.compile(r"<script(?![^>]*\ssrc=)[^>]*>|<style|\sstyle=|\son[a-z]+=|hx-on|javascript:", re.IGNORECASE)


def test_templates_hold_no_inline_script_style_or_event_handler():
    """What the Content-Security-Policy would block: scripts and styles live in static files."""
    found = [
        f"{path.relative_to(ROOT)}: {match.group(0)}"
        for path in sorted((ROOT / "templates").rglob("*.html")) + sorted((ROOT / "dashboard").rglob("*.html"))
        for match in INLINE.finditer(TEMPLATE_COMMENT.sub("", path.read_text()))
    ]
    assert found == []
